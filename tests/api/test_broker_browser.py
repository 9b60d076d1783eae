"""Broker URLs opened in a browser show the document as text; machine clients are unchanged."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from litestar.testing import TestClient

from core.settings import settings_from_mapping
from voexec.app import create_app

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
REQUEST = """
executable:
  kind: https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/executable/docker-container.yaml
  image: {locations: [ghcr.io/example/tool@sha256:0123]}
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    platform = {
        "name": "small",
        "capacity": {"cores": 8, "memory": 32},
        "executables": ["docker-container"],
    }
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True},
            "broker": {"platforms": [platform]},
        }
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def offerset_url(client: TestClient) -> str:
    answer = client.post(
        "/broker/requests",
        content=REQUEST,
        headers={"content-type": "application/yaml"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    return str(answer.headers["location"])


def test_a_browser_reads_the_offer_set_as_yaml_text(client: TestClient, offerset_url: str) -> None:
    answer = client.get(offerset_url, headers={"accept": BROWSER_ACCEPT})

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert yaml.safe_load(answer.text)["result"] == "YES"


def test_a_browser_reads_a_missing_session_as_yaml_text(client: TestClient) -> None:
    answer = client.get(
        "/broker/sessions/6f183202-59fb-41cb-bf8f-323b9497f7ef", headers={"accept": "text/html"}
    )

    assert answer.status_code == 404
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert yaml.safe_load(answer.text)["status"] == 404


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "application/yaml"),
        ("*/*", "application/yaml"),
        ("application/json", "application/json"),
        ("text/html, application/json;q=0.9", "application/json"),
        ("text/html, application/yaml", "application/yaml"),
    ],
)
def test_machine_clients_get_yaml_by_default_and_json_when_asked(
    client: TestClient, offerset_url: str, accept: str | None, media_type: str
) -> None:
    headers = {"accept": accept} if accept else {}
    answer = client.get(offerset_url, headers=headers)

    assert answer.headers["content-type"].split(";")[0] == media_type


def test_writes_from_a_browser_keep_the_negotiated_type(client: TestClient) -> None:
    answer = client.post(
        "/broker/requests",
        content=REQUEST,
        headers={"content-type": "application/yaml", "accept": BROWSER_ACCEPT},
        follow_redirects=False,
    )

    assert answer.headers["content-type"].split(";")[0] == "application/yaml"
