"""From a catalogue entry to offers to an accepted session over the API; the local commands.

The client commands (`voexec search`, `offers`, `accept`...) are tested against a live server
in tests/api/test_cli.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import yaml
from litestar.testing import TestClient

from core.settings import NamedToken
from tests.auth_support import named
from tests.catalogue_support import app_settings, executable
from voexec.app import create_app
from voexec.cli import main

ACCEPT = {"kind": "uri:enum-value-update", "path": "phase", "value": "ACCEPTED"}


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    settings = app_settings(tmp_path_factory.mktemp("handoff"), demo=True)
    with TestClient(create_app(settings)) as client:
        yield client


def entry_id(client: TestClient, name: str) -> str:
    hits = client.get("/catalogue/search", params={"q": name}).json()["hits"]
    assert hits[0]["name"] == name
    return hits[0]["id"]


def test_from_entry_to_offers_to_an_accepted_session(client):
    gpu_entry = entry_id(client, "galaxy-morphology-cnn")
    response = client.post(
        f"/catalogue/executables/{gpu_entry}/offers",
        json={"duration": "PT30M", "data": ["https://data.example.org/cutouts.tar"]},
        follow_redirects=False,
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert "/broker/offersets/" in location
    assert response.json()["result"] == "YES"

    offer_set = client.get(location, headers={"accept": "application/json"}).json()
    offer = offer_set["offers"][0]
    assert offer["phase"] == "OFFERED"
    assert offer["compute"]["accelerators"]["count"]["min"] >= 1
    accepted = client.post(
        offer["meta"]["url"],
        content=json.dumps(ACCEPT),
        headers={"content-type": "application/json", "accept": "application/json"},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["phase"] in {"ACCEPTED", "WAITING", "PREPARING"}
    session = client.get(offer["meta"]["url"], headers={"accept": "application/json"}).json()
    assert session["phase"] != "OFFERED"


def test_overrides_in_yaml_and_their_problems(client):
    notebook = entry_id(client, "tess-lightcurve-notebook")
    url = f"/catalogue/executables/{notebook}/offers"
    ok = client.post(
        url,
        content="cores: 4\nmemory: 8\nduration: PT1H\n",
        headers={"content-type": "application/yaml"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert ok.json()["offers"][0]["compute"]["cores"]["min"] >= 4

    bad = client.post(url, json={"start": "soon", "cores": 0, "colour": "red"})
    assert bad.status_code == 400
    fields = {p["field"]: p for p in bad.json()["problems"]}
    assert {"cores", "colour"} <= set(fields)
    bad_start = client.post(url, json={"start": "soon"})
    assert bad_start.json()["problems"][0]["field"] == "start"
    assert client.post("/catalogue/executables/nothing/offers").status_code == 404


# ------------------------------------------------------------------------ the local commands
def test_a_results_destination_no_platform_may_write_is_a_no_naming_it(client):
    path = f"/catalogue/executables/{entry_id(client, 'galaxy-morphology-cnn')}/offers"
    answer = client.post(
        path, json={"duration": "PT30M", "results": "https://store.example.org/upload/run-1"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["result"] == "NO"
    refusals = [m for m in body["meta"]["messages"] if m["kind"] == "urn:voexec:results-unwritable"]
    assert refusals
    assert "https://store.example.org/upload/run-1" in refusals[0]["message"]
    bad = client.post(path, json={"results": "ftp://store.example.org/x"})
    assert bad.status_code == 400
    assert [p["field"] for p in bad.json()["problems"]] == ["results"]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    settings = {
        "data_dir": str(folder / "var"),
        "vocabularies": {"offline": True, "names": ["uat", "messenger"]},
        "catalogue": {"demo": True},
        "broker": {
            "platforms": yaml.safe_load(
                (Path(__file__).parents[2] / "voexec.example.yaml").read_text()
            )["broker"]["platforms"]
        },
    }
    path = folder / "voexec.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def test_cli_publish_check_lists_problems_with_lines(config, tmp_path, capsys):
    broken = tmp_path / "ivoa-executable.yaml"
    broken.write_text(yaml.safe_dump(executable(licence="gplv3"), sort_keys=False))
    assert main(["publish", str(broken), "--check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    line = next(n for n, text in enumerate(broken.read_text().splitlines(), 1) if "licence" in text)
    assert f"{broken}:{line}: error: licence:" in out
    assert "GPL-3.0-only" in out

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(executable(name="cli-published")))
    assert main(["publish", str(good), "--check", "--config", str(config)]) == 0
    assert "valid (cli-published)" in capsys.readouterr().out
    # Publishing goes to a server (tests/api/test_cli.py); reindexing stays on this machine.
    assert main(["reindex", "--config", str(config)]) == 0
    assert "search index rebuilt" in capsys.readouterr().out


BOOKER = "booker-token-long-enough-for-voexec-to-take"


def test_with_identities_the_hand_off_needs_one_that_may_run(tmp_path):
    """Offers hold platform capacity, so the hand-off is guarded like the broker's writes."""
    settings = app_settings(tmp_path, demo=True)
    settings = msgspec.structs.replace(
        settings,
        auth=msgspec.structs.replace(
            settings.auth,
            tokens=[*settings.auth.tokens, msgspec.convert(named("booker", BOOKER), NamedToken)],
        ),
        broker=msgspec.structs.replace(settings.broker, allow_anonymous_runs=False),
    )
    with TestClient(create_app(settings)) as client:
        path = f"/catalogue/executables/{entry_id(client, 'aoflagger')}/offers"

        missing = client.post(path, json={}, follow_redirects=False)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        unknown = {"authorization": f"Bearer {BOOKER}-not"}
        assert client.post(path, json={}, headers=unknown).status_code == 403
        booked = client.post(
            path, json={}, headers={"authorization": f"Bearer {BOOKER}"}, follow_redirects=False
        )
        assert booked.status_code == 303
        # Reading stays open.
        assert client.get(booked.headers["location"]).status_code == 200
