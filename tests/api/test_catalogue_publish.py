"""Publishing, reading and withdrawing entries through the HTTP API."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import yaml
from litestar.testing import TestClient

from catalogue.store_sql import SqlCatalogueStore
from tests.catalogue_support import DOCKER, EXAMPLES, app_settings, executable
from voexec import cli as voexec_cli
from voexec.app import create_app

EXECUTABLES = "/catalogue/executables"
TOKEN = {"authorization": "Bearer s3cret-publisher-token-for-the-tests-only"}
YAML = {**TOKEN, "content-type": "application/yaml"}


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings(tmp_path))) as client:
        yield client


def publish(client: TestClient, document: dict, **headers):
    return client.post(EXECUTABLES, content=yaml.safe_dump(document), headers={**YAML, **headers})


def problems(response) -> dict[str, dict]:
    assert response.headers["content-type"].startswith("application/problem+json")
    return {problem["field"]: problem for problem in response.json()["problems"]}


def test_publishing_needs_a_valid_bearer_token(client):
    body = yaml.safe_dump(executable())
    missing = client.post(EXECUTABLES, content=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post(EXECUTABLES, content=body, headers={"authorization": "Bearer guess"})
    assert wrong.status_code == 403
    assert client.get("/catalogue/search").json()["total"] == 0


def test_publish_read_republish_and_a_new_version(client):
    created = publish(client, executable())
    assert created.status_code == 201
    entry = created.json()["entries"][0]
    assert entry["status"] == "new"
    assert created.headers["location"] == f"{EXECUTABLES}/{entry['id']}"
    detail = client.get(created.headers["location"]).json()
    assert detail["name"] == "cube-finder"
    assert detail["spec"]["executable"]["kind"] == DOCKER
    assert detail["subjects"] == [{"term": "radio-interferometry", "label": "Radio interferometry"}]

    again = publish(client, executable())
    assert again.status_code == 200
    assert again.json()["entries"][0]["status"] == "unchanged"

    newer = client.post(
        EXECUTABLES,
        content=msgspec.json.encode(executable(version="1.1.0")),
        headers={**TOKEN, "content-type": "application/json"},
    )
    assert newer.status_code == 201
    assert newer.json()["entries"][0]["status"] == "updated"
    detail = client.get(f"{EXECUTABLES}/{entry['id']}").json()
    assert [v["version"] for v in detail["versions"]] == ["1.1.0", "1.0.0"]
    old = client.get(f"{EXECUTABLES}/{entry['id']}/versions/1.0.0")
    assert old.status_code == 200
    assert old.json()["version"] == "1.0.0"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_documented_examples_publish(client, path):
    response = client.post(EXECUTABLES, content=path.read_bytes(), headers=YAML)
    assert response.status_code == 201, response.text
    assert {e["status"] for e in response.json()["entries"]} == {"new"}


def test_a_broken_document_is_400_with_every_problem_by_field(client):
    block = {"kind": DOCKER, "image": {"locations": ["registry.example.org/x:latest"]}}
    document = {"executables": [executable(subjects=["radio astronmy"], executable=block)]}
    response = publish(client, document)
    assert response.status_code == 400
    found = problems(response)
    assert "executables[0].executable.image.digest" in found
    assert "radio-astronomy" in found["executables[0].subjects[0]"]["suggestions"]
    assert client.get("/catalogue/search").json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"name: [unclosed\n", "application/yaml", "line 2"),
        (b'{"name": ', "application/json", "invalid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "nested"),
        (b"  ", "application/yaml", "empty"),
        (b"\xff\xfe\x00", "application/yaml", "UTF-8"),
    ],
)
def test_unreadable_bodies_are_400_never_500(client, body, content_type, reason):
    response = client.post(
        EXECUTABLES, content=body, headers={**TOKEN, "content-type": content_type}
    )
    assert response.status_code == 400
    assert reason in response.json()["problems"][0]["reason"]


def test_withdraw_needs_a_token_and_hides_the_entry_from_search(client):
    entry_id = publish(client, executable()).json()["entries"][0]["id"]
    assert client.delete(f"{EXECUTABLES}/{entry_id}").status_code == 401
    withdrawn = client.delete(f"{EXECUTABLES}/{entry_id}", headers=TOKEN)
    assert withdrawn.status_code == 200
    assert withdrawn.json()["withdrawn"] is True
    assert client.get("/catalogue/search", params={"q": "cube-finder"}).json()["total"] == 0
    assert client.get(f"{EXECUTABLES}/{entry_id}").json()["withdrawn"] is True
    assert client.delete(f"{EXECUTABLES}/nothing-here", headers=TOKEN).status_code == 404


def test_unknown_entries_and_versions_are_404_problems(client):
    entry_id = publish(client, executable()).json()["entries"][0]["id"]
    for path in (f"{EXECUTABLES}/nothing-here", f"{EXECUTABLES}/{entry_id}/versions/9.9"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")


# ------------------------------------------------------------------ reindex beside the server
def config_file(tmp_path: Path) -> Path:
    """The app's settings as the YAML file `voexec reindex --config` reads."""
    path = tmp_path / "voexec.yaml"
    path.write_text(yaml.safe_dump(msgspec.to_builtins(app_settings(tmp_path))))
    return path


def all_names(client: TestClient) -> list[str]:
    page = client.get("/catalogue/search", params={"sort": "name", "limit": 100})
    assert page.status_code == 200, page.text
    return [hit["name"] for hit in page.json()["hits"]]


def test_reindex_while_the_app_serves_loses_nothing_and_never_fails(tmp_path, capsys, monkeypatch):
    config = config_file(tmp_path)
    answers: list[tuple[str, int, list[dict]]] = []
    published: list[str] = []
    lock = threading.Lock()
    with TestClient(create_app(app_settings(tmp_path))) as client:

        def publish_one(name: str) -> None:
            response = publish(client, executable(name=name))
            body = response.json() if response.status_code < 500 else {}
            with lock:
                answers.append(("publish", response.status_code, body.get("warnings", [])))
                published.append(name)

        for n in range(5):
            publish_one(f"before-{n}")
        # One entry is published while a rebuild reads the store, after its first entry.
        reading = SqlCatalogueStore.iter_current

        def iter_current(store: SqlCatalogueStore):
            for n, item in enumerate(reading(store)):
                yield item
                if n == 0 and "during-rebuild" not in published:
                    publish_one("during-rebuild")

        monkeypatch.setattr(SqlCatalogueStore, "iter_current", iter_current)
        exits: list[int] = []
        reindexing = threading.Thread(
            target=lambda: exits.extend(
                voexec_cli.main(["reindex", "--config", str(config)]) for _ in range(3)
            )
        )
        reindexing.start()
        deadline = time.monotonic() + 120
        n = 0
        while reindexing.is_alive() and time.monotonic() < deadline:
            publish_one(f"while-{n}")
            n += 1
            found = client.get("/catalogue/search", params={"q": "cube", "limit": 5})
            answers.append(("search", found.status_code, []))
        reindexing.join(timeout=max(deadline - time.monotonic(), 1))
        assert not reindexing.is_alive(), "voexec reindex did not finish"
        assert exits == [0, 0, 0]
        assert "during-rebuild" in published
        assert [a for a in answers if a[1] >= 500 or a[2]] == []  # no 5xx, no index warning
        assert all(status in (200, 201) for _, status, _ in answers)
        assert sorted(all_names(client)) == sorted(published)
        total = client.get("/catalogue/search").json()["total"]
    counts = [
        int(c) for c in re.findall(r"search index rebuilt: (\d+) entries", capsys.readouterr().out)
    ]
    assert len(counts) == 3
    assert total == len(published)
    assert all(6 <= count <= total for count in counts)
    with TestClient(create_app(app_settings(tmp_path))) as restarted:  # and after a restart
        assert sorted(all_names(restarted)) == sorted(published)


def test_a_publish_whose_index_update_fails_answers_its_stored_state(tmp_path):
    config = config_file(tmp_path)
    with TestClient(create_app(app_settings(tmp_path))) as client:
        assert publish(client, executable(name="first")).status_code == 201
        search = tmp_path / "search"
        # The live generation vanishes under the server (what `voexec reindex` used to do).
        shutil.rmtree(search / (search / "CURRENT").read_text().split()[0])
        for name in ("kept", "also-kept"):
            response = publish(client, executable(name=name))
            assert response.status_code == 201, response.text
            assert response.headers["content-type"].startswith("application/json")
            body = response.json()
            assert body["entries"][0]["status"] == "new"
            assert [w["field"] for w in body["warnings"]] == ["(index)"]
            stored = client.get(response.headers["location"])
            assert stored.status_code == 200
            assert stored.json()["name"] == name
        assert voexec_cli.main(["reindex", "--config", str(config)]) == 0
        assert sorted(all_names(client)) == ["also-kept", "first", "kept"]
        later = publish(client, executable(name="later"))
        assert later.status_code == 201
        assert later.json()["warnings"] == []
        assert client.get("/catalogue/search", params={"q": "later"}).json()["total"] == 1
