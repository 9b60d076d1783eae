"""The /vocabularies routes through the real app (create_app builds the registry via wiring).

The IVOA vocabularies come from the snapshot shipped in the package: the app runs offline.
"""

import itertools
import json
import socket

import pytest
from litestar.testing import TestClient

from core.settings import settings_from_mapping
from tests.conftest import SNAPSHOT
from vocabularies.sources import Snapshot
from voexec.app import create_app

OURS = {"accelerator-class", "executable-kind", "software-function"}
IVOA = {"uat", "messenger", "product-type"}


@pytest.fixture(scope="module")
def uat_raw():
    return json.loads((SNAPSHOT / "uat.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path_factory.mktemp("var")),
            "vocabularies": {"offline": True, "names": sorted(IVOA)},
        }
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _problem(response, status):
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def test_list_names_every_loaded_vocabulary_with_its_source_and_version(client, uat_raw):
    body = client.get("/vocabularies").json()
    by_name = {v["name"]: v for v in body["vocabularies"]}
    assert set(by_name) == OURS | IVOA
    assert by_name["uat"]["concepts"] == len(uat_raw["terms"])
    assert by_name["uat"]["source"] == "snapshot"
    assert by_name["software-function"]["source"] == "builtin"
    assert by_name["software-function"]["title"] == "Software functions"
    assert by_name["software-function"]["origin"]["summary"] == "our own, shipped with voexec"
    assert body["problems"] == []
    shipped = Snapshot(SNAPSHOT)
    taken = shipped.manifest.taken.isoformat()
    for name in IVOA:
        entry = shipped.entry(name)
        assert entry is not None
        origin = by_name[name]["origin"]
        assert origin["kind"] == "snapshot"
        assert origin["version"] == entry.version
        assert origin["snapshot_date"] == taken
        assert origin["licence"] == entry.licence
        assert origin["summary"].startswith(f"snapshot of {taken} shipped with voexec")
        assert origin["fetched_at"] is None


def test_a_vocabulary_shows_which_copy_it_is(client):
    body = client.get("/vocabularies/messenger", params={"depth": 0}).json()
    assert body["origin"]["kind"] == "snapshot"
    assert body["origin"]["version"] == "2020-08-26"


def test_a_vocabulary_shows_its_computed_top_level(client, uat_raw):
    body = client.get("/vocabularies/uat", params={"depth": 0}).json()
    expected = {t for t, e in uat_raw["terms"].items() if not e["wider"] and "deprecated" not in e}
    assert {root["term"] for root in body["roots"]} == expected
    assert all(root["children"] == [] for root in body["roots"])
    assert all(root["descendants"] > 0 for root in body["roots"])
    deeper = client.get("/vocabularies/uat").json()  # depth 1 by default
    assert any(root["children"] for root in deeper["roots"])


def test_a_branch_can_be_expanded_from_any_concept(client, uat_raw):
    parent = next(t for t, e in uat_raw["terms"].items() if e["narrower"] and e["wider"])
    body = client.get("/vocabularies/uat", params={"root": parent, "depth": 1}).json()
    (branch,) = body["roots"]
    assert branch["term"] == parent
    assert {c["term"] for c in branch["children"]} == set(uat_raw["terms"][parent]["narrower"])
    missing = _problem(client.get("/vocabularies/uat", params={"root": "no-such-term"}), 404)
    assert "'no-such-term'" in missing["detail"]


def test_a_concept_shows_broader_narrower_and_its_path_to_the_top(client, uat_raw):
    term = next(t for t, e in uat_raw["terms"].items() if len(e["wider"]) > 1 and e["narrower"])
    body = client.get(f"/vocabularies/uat/concepts/{term}").json()
    assert body["term"] == term
    assert {b["term"] for b in body["broader"]} == set(uat_raw["terms"][term]["wider"])
    assert {n["term"] for n in body["narrower"]} == set(uat_raw["terms"][term]["narrower"])
    path = [step["term"] for step in body["path_to_root"]]
    assert path[-1] == term
    assert not uat_raw["terms"][path[0]]["wider"]
    for parent, child in itertools.pairwise(path):
        assert parent in uat_raw["terms"][child]["wider"]


def test_a_deprecated_concept_names_its_replacement(client, uat_raw):
    term, entry = next((t, e) for t, e in uat_raw["terms"].items() if "useInstead" in e)
    body = client.get(f"/vocabularies/uat/concepts/{term}").json()
    assert body["deprecated"] is True
    assert body["use_instead"]["term"] == entry["useInstead"]


def test_unknown_vocabulary_and_concept_are_404_problems_naming_them(client):
    missing = _problem(client.get("/vocabularies/nothing"), 404)
    assert "'nothing'" in missing["detail"]
    typo = _problem(client.get("/vocabularies/uat/concepts/galaxy-clustres"), 404)
    assert "'galaxy-clustres'" in typo["detail"]
    assert "galaxy-clusters" in typo["detail"]


def test_names_with_a_slash_are_reachable_with_a_dash(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "datalink-core.desise").write_text(
        '{"uri": "http://www.ivoa.net/rdf/datalink/core", "flavour": "RDF Property",'
        ' "terms": {"calibration": {"label": "Calibration"}}}',
        encoding="utf-8",
    )
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"path": str(folder), "names": ["datalink/core"]},
        }
    )
    with TestClient(create_app(settings)) as app:
        body = app.get("/vocabularies/datalink-core").json()
        assert body["name"] == "datalink/core"
        assert body["origin"]["summary"] == "read from a local folder"  # no server path shown
        assert app.get("/vocabularies/datalink-core/concepts/calibration").status_code == 200


def test_suggest_autocompletes_on_labels_ranked_and_limited(client):
    found = client.get("/vocabularies/uat/suggest", params={"q": "x-ray bin", "limit": 3}).json()
    assert 0 < len(found) <= 3
    assert found[0]["term"] == "x-ray-binary-stars"
    assert set(found[0]) == {"term", "label", "uri", "matched"}
    ours = client.get("/vocabularies/software-function/suggest", params={"q": "calib"}).json()
    assert ours[0]["term"] == "calibration"


@pytest.mark.parametrize(
    ("params", "field"),
    [({"q": ""}, "q"), ({"q": "a", "limit": 0}, "limit"), ({"q": "a", "limit": "many"}, "limit")],
)
def test_bad_suggest_parameters_are_400_problems_naming_the_field(client, params, field):
    body = _problem(client.get("/vocabularies/uat/suggest", params=params), 400)
    assert [p["field"] for p in body["problems"]] == [field]


def test_resolve_maps_deprecated_subjects_with_a_warning(client, uat_raw):
    term, entry = next((t, e) for t, e in uat_raw["terms"].items() if "useInstead" in e)
    body = client.get("/vocabularies/uat/resolve", params={"text": term}).json()
    assert body["term"] == entry["useInstead"]
    assert term in body["warning"]
    unknown = client.get("/vocabularies/uat/resolve", params={"text": "astronomy softwar"}).json()
    assert unknown["term"] is None
    assert "astronomy-software" in unknown["suggestions"]


def test_the_routes_are_in_the_openapi_document(client):
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert "/vocabularies" in paths
    assert "/vocabularies/{name}/concepts/{term}" in paths
    assert "/vocabularies/{name}/suggest" in paths


def test_the_app_starts_with_no_network_and_no_cache_on_the_snapshot(tmp_path):
    with socket.socket() as probe:  # a loopback port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {
                "base_url": f"http://127.0.0.1:{port}/rdf",
                "names": ["uat", "messenger", "product-type", "datalink/core"],
            },
        }
    )
    with TestClient(create_app(settings)) as offline:
        body = offline.get("/vocabularies").json()
        by_name = {v["name"]: v for v in body["vocabularies"]}
        assert set(by_name) == OURS | IVOA
        assert "could not be reached" in by_name["uat"]["origin"]["summary"]
        # Only what the snapshot does not hold is missing, and the reason is given.
        assert [p.split(":")[0] for p in body["problems"]] == ["datalink/core"]
        assert "not cached" in body["problems"][0]
        tree = offline.get("/vocabularies/uat", params={"depth": 1}).json()
        assert any(root["children"] for root in tree["roots"])  # a hierarchy, not flat slugs
        _problem(offline.get("/vocabularies/datalink-core"), 404)


def test_the_search_page_footer_says_which_copy_of_each_vocabulary_is_used(client):
    page = client.get("/")
    assert page.status_code == 200
    footer = page.text.split('id="vocabulary-sources"', 1)[1].split("</div>", 1)[0]
    taken = Snapshot(SNAPSHOT).manifest.taken.isoformat()
    uat = footer.split('data-vocabulary="uat">', 1)[1].split("</span>", 1)[0]
    assert uat.startswith("Unified Astronomy Thesaurus (IVOA rendering), version 2026-01-02: ")
    assert f"snapshot of {taken} shipped with voexec" in uat
    assert "our own: Accelerator classes, Executable kinds, Software functions" in footer
    assert "not loaded" not in footer


def test_the_search_page_footer_says_why_a_vocabulary_is_missing(tmp_path):
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True, "names": ["uat", "datalink/core"]},
        }
    )
    with TestClient(create_app(settings)) as app:
        footer = app.get("/").text.split('id="vocabulary-sources"', 1)[1].split("</div>", 1)[0]
    assert "not loaded: datalink/core: not cached, and vocabularies.offline forbids" in footer
