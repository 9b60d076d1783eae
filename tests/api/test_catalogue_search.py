"""Faceted search over the demo catalogue, through the HTTP API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from tests.catalogue_support import app_settings
from voexec.app import create_app

SEARCH = "/catalogue/search"


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    settings = app_settings(tmp_path_factory.mktemp("search"), demo=True)
    with TestClient(create_app(settings)) as client:
        yield client


def search(client: TestClient, **params) -> dict:
    response = client.get(SEARCH, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def hit_names(page: dict) -> list[str]:
    return [hit["name"] for hit in page["hits"]]


def every_bucket(buckets: list[dict]) -> Iterator[dict]:
    for bucket in buckets:
        yield bucket
        yield from every_bucket(bucket["children"])


def test_the_demo_catalogue_is_searchable(client):
    assert search(client)["total"] >= 25


@pytest.mark.parametrize("name", ["source-extractor", "photutils-detect", "wsclean", "sofia-2"])
def test_an_exact_name_ranks_first(client, name):
    assert hit_names(search(client, q=name))[0] == name


@pytest.mark.parametrize(
    ("typed", "name"),
    [("wsclaen", "wsclean"), ("aoflager", "aoflagger"), ("redrok", "redrock-redshifts")],
)
def test_a_misspelt_name_is_still_found(client, typed, name):
    assert name in hit_names(search(client, q=typed))[:3]


def test_a_broad_subject_returns_entries_tagged_with_narrower_ones(client):
    page = search(client, subject="interferometry", limit=100)
    own_subjects = {hit["name"]: {s["term"] for s in hit["subjects"]} for hit in page["hits"]}
    assert "wsclean" in own_subjects
    # found through a narrower concept, not because it carries the broad one itself
    assert "interferometry" not in own_subjects["wsclean"]
    assert "radio-interferometry" in own_subjects["wsclean"]


def test_subject_labels_and_uris_select_like_terms(client):
    by_term = search(client, subject="radio-astronomy", limit=100)
    by_label = search(client, subject="Radio astronomy", limit=100)
    by_uri = search(client, subject="http://www.ivoa.net/rdf/uat#radio-astronomy", limit=100)
    assert hit_names(by_term) == hit_names(by_label) == hit_names(by_uri)
    assert by_term["total"] > 0


def test_facet_counts_equal_the_hits_they_select(client):
    page = search(client)
    checked = 0
    for facet in page["facets"]:
        for bucket in every_bucket(facet["buckets"]):
            selected = search(client, **{facet["name"]: bucket["value"], "limit": 1})
            assert selected["total"] == bucket["count"], (facet["name"], bucket["value"])
            checked += 1
    assert checked > 20


def test_facet_counts_with_a_selection_are_multi_select(client):
    page = search(client, kind="docker-container")
    for facet in page["facets"]:
        for bucket in facet["buckets"]:
            if facet["name"] == "kind":
                # its own facet ignores its selection, so a second kind can be added
                expected = search(client, kind=bucket["value"], limit=1)["total"]
            else:
                params = {"kind": "docker-container", facet["name"]: bucket["value"], "limit": 1}
                expected = search(client, **params)["total"]
            assert bucket["count"] == expected, (facet["name"], bucket["value"])
    kinds = {
        b["value"]: b for b in next(f for f in page["facets"] if f["name"] == "kind")["buckets"]
    }
    assert kinds["docker-container"]["selected"] is True
    assert len(kinds) > 1


def test_repeated_parameters_select_any_of_them(client):
    notebooks = search(client, kind="jupyter-notebook")["total"]
    programs = search(client, kind="python-program")["total"]
    both = client.get(SEARCH, params=[("kind", "jupyter-notebook"), ("kind", "python-program")])
    assert both.json()["total"] == notebooks + programs


@pytest.mark.parametrize("sort", ["relevance", "name", "newest"])
def test_cursors_walk_every_result_exactly_once(client, sort):
    total = search(client)["total"]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 4, "sort": sort, **({"cursor": cursor} if cursor else {})}
        page = search(client, **params)
        seen.extend(hit["id"] for hit in page["hits"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == total
    assert len(set(seen)) == total
    if sort == "name":
        names = [client.get(f"/catalogue/executables/{i}").json()["name"] for i in seen]
        assert names == sorted(names)


def test_gpu_and_platform_facets(client):
    required = search(client, gpu="required", limit=100)
    assert required["total"] > 0
    assert {hit["gpu"] for hit in required["hits"]} == {"required"}
    # only the demo's GPU platform can run entries that need a GPU
    on_alpha = set(hit_names(search(client, platform="alpha", limit=100)))
    assert set(hit_names(required)) <= on_alpha
    assert not set(hit_names(required)) & set(hit_names(search(client, platform="beta", limit=100)))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"subject": "radio astronmy"}, "subject"),
        ({"gpu": "maybe"}, "gpu"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"sort": "stars"}, "sort"),
        ({"limit": "0"}, "limit"),
        ({"q": "x" * 5000}, "q"),
        ({"facets": "kind,subjects"}, "facets"),
    ],
)
def test_bad_search_parameters_are_problems_naming_the_parameter(client, params, field):
    response = client.get(SEARCH, params=params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problems = response.json()["problems"]
    assert any(field in problem["field"] for problem in problems), problems
    if field == "subject":
        assert "radio-astronomy" in problems[0]["suggestions"]


@pytest.mark.parametrize(
    ("facets", "shown"),
    [
        ("subject,kind", ["subject", "kind"]),
        (["licence", "subject"], ["subject", "licence"]),
        ("", []),
    ],
)
def test_only_the_facets_asked_for_are_counted(client, facets, shown):
    every = {facet["name"]: facet for facet in search(client, q="galaxy")["facets"]}
    page = search(client, q="galaxy", facets=facets)
    assert [facet["name"] for facet in page["facets"]] == shown
    assert all(facet == every[facet["name"]] for facet in page["facets"])
    assert page["total"] == search(client, q="galaxy")["total"]


def test_a_repeated_search_is_answered_with_the_same_json(client):
    params = {"q": "source", "kind": "docker-container", "facets": "kind,subject"}
    first = client.get(SEARCH, params=params)
    again = client.get(SEARCH, params=params)  # kept: sent as it was encoded
    assert first.status_code == again.status_code == 200
    assert again.headers["content-type"].startswith("application/json")
    assert again.content == first.content
    assert [facet["name"] for facet in again.json()["facets"]] == ["subject", "kind"]


def test_the_search_answer_is_documented_as_a_search_page(client):
    schema = client.get("/schema/openapi.json").json()
    answer = schema["paths"][SEARCH]["get"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["$ref"].endswith("/SearchPage")


def test_voexec_serve_keeps_start_up_objects_out_of_garbage_collections(tmp_path):
    import gc

    from voexec.cli import with_frozen_heap

    gc.unfreeze()
    app = with_frozen_heap(create_app(app_settings(tmp_path)))
    try:
        assert gc.get_freeze_count() == 0
        with TestClient(app) as started:
            assert gc.get_freeze_count() > 0  # what start-up built is no longer walked
            assert started.get(SEARCH).status_code == 200
    finally:
        gc.unfreeze()
