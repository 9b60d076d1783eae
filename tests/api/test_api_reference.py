"""/schema is a readable API reference that needs nothing from another host."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from core.settings import settings_from_mapping
from voexec.app import create_app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = settings_from_mapping(
        {"data_dir": str(tmp_path / "var"), "vocabularies": {"offline": True}}
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_reference_lists_every_operation_of_the_openapi_document(client: TestClient) -> None:
    page = client.get("/schema")
    document = client.get("/schema/openapi.json").json()

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    operations = [
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert operations
    for method, path in operations:
        assert f"<span class='method'>{method}</span><code" in page.text
        assert f">{path}</code>" in page.text
    assert "/schema/openapi.json" in page.text
    assert "/schema/openapi.yaml" in page.text


def test_the_reference_loads_nothing_from_another_host(client: TestClient) -> None:
    page = client.get("/schema").text

    assert "<script" not in page
    assert not re.findall(r"""(?:src|href)=['"]?(?:https?:)?//""", page)
    # One link element: the site's icon, from this server (else browsers ask for /favicon.ico).
    assert re.findall(r"<link[^>]*>", page) == [
        "<link rel='icon' href='/static/img/favicon.svg' type='image/svg+xml'>"
    ]
