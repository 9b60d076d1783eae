"""The page routes over HTTP, without a browser: what they answer, and what they refuse.

The app is the real one (demo catalogue, demo platforms, the IVOA vocabularies from
../shared) under Litestar's test client. These checks need no JavaScript: the pages must work
as plain HTML forms and links, answer wrong input with a readable page naming the field, never
load anything from another site, and refuse forms posted from other sites.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.catalogue_support import app_settings
from voexec.app import create_app

pytestmark = pytest.mark.shared

HTML = "text/html; charset=utf-8"


class _Resources(HTMLParser):
    """The URLs a page loads (stylesheets, scripts, images, icons) and its form controls."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.checkboxes: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "link" and found.get("href"):
            self.loads.append(found["href"] or "")
        if tag in {"script", "img"} and found.get("src"):
            self.loads.append(found["src"] or "")
        if tag == "input" and found.get("type") == "checkbox":
            self.checkboxes.append(found)


def parse(html: str) -> _Resources:
    parser = _Resources()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    settings = app_settings(tmp_path_factory.mktemp("pages"), demo=True)
    with TestClient(create_app(settings)) as client:
        yield client


def entry_id(client: TestClient[Any], name: str) -> str:
    hits = client.get("/catalogue/search", params={"q": name}).json()["hits"]
    return str(next(hit["id"] for hit in hits if hit["name"] == name))


def offer_set(client: TestClient[Any], name: str = "aoflagger", **overrides: Any) -> dict[str, Any]:
    answer = client.post(
        f"/catalogue/executables/{entry_id(client, name)}/offers",
        json=overrides,
        headers={"Accept": "application/json"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return dict(answer.json())


def test_every_page_answers_html_with_its_server_time(client: TestClient[Any]):
    offers = offer_set(client)
    session = offers["offers"][0]["meta"]["uuid"]
    for path in (
        "/",
        "/?q=wsclean&subject=radio-astronomy",
        f"/executables/{entry_id(client, 'aoflagger')}",
        f"/offersets/{offers['meta']['uuid']}",
        f"/sessions/{session}",
        "/platforms",
        "/platforms?hours=168",
        "/harvest",
    ):
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert page.headers["content-type"] == HTML
        assert re.fullmatch(r"app;dur=\d+\.\d", page.headers["server-timing"])
        assert page.text.count("<h1>") == 1, path


def test_pages_load_nothing_from_other_sites_and_their_assets_exist(client: TestClient[Any]):
    page = client.get("/")
    loads = parse(page.text).loads
    assert loads, "the page loads its stylesheet and scripts"
    for url in loads:
        assert url.startswith("/static/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert "max-age=31536000" in asset.headers["cache-control"]


def test_the_search_page_is_the_state_in_its_url(client: TestClient[Any]):
    page = client.get(
        "/", params=[("q", "imaging"), ("kind", "docker-container"), ("sort", "name")]
    )
    boxes = parse(page.text).checkboxes
    checked = {(box["name"], box["value"]) for box in boxes if "checked" in box}
    assert checked == {("kind", "docker-container")}
    assert 'value="imaging"' in page.text
    assert '<option value="name" selected>' in page.text
    # The chip that removes the kind keeps the text and the sort order.
    assert 'href="/?q=imaging&amp;sort=name"' in page.text


def test_a_subject_named_by_its_label_is_shown_as_its_term(client: TestClient[Any]):
    page = client.get("/", params={"subject": "Radio astronomy"})
    checked = [b for b in parse(page.text).checkboxes if "checked" in b]
    assert [(b["name"], b["value"]) for b in checked] == [("subject", "radio-astronomy")]
    assert "Remove Subject: Radio astronomy" in page.text


def test_unknown_values_and_bad_cursors_are_left_out_and_said(client: TestClient[Any]):
    page = client.get("/", params={"subject": "galaxys", "kind": "docker-container"})
    assert page.status_code == 200
    assert "Part of this search was left out" in page.text
    assert "galaxys" in page.text
    assert "Did you mean" in page.text  # with links that choose the suggestion
    still = {(b["name"], b["value"]) for b in parse(page.text).checkboxes if "checked" in b}
    assert still == {("kind", "docker-container")}
    stale = client.get("/", params={"q": "clean", "cursor": "not-a-cursor", "page": "3"})
    assert stale.status_code == 200
    assert "<strong>Page</strong>" in stale.text


def test_the_results_part_alone_for_scripts(client: TestClient[Any]):
    part = client.get(
        "/", params={"kind": "python-program"}, headers={"X-Voexec-Partial": "results"}
    )
    assert part.status_code == 200
    assert "<html" not in part.text
    assert 'class="search-layout"' in part.text
    assert part.headers["cache-control"] == "no-store"
    assert "X-Voexec-Partial" in part.headers["vary"]


def test_tree_branches_are_sent_only_when_open(client: TestClient[Any]):
    def children(headers: dict[str, str]) -> set[str]:
        page = client.get("/", headers={"X-Voexec-Partial": "results", **headers})
        return {str(b["value"]) for b in parse(page.text).checkboxes if b["name"] == "subject"}

    closed = children({})
    opened = children({"X-Voexec-Open": "subject:observational-astronomy"})
    assert "observational-astronomy" in closed
    assert "astronomical-techniques" not in closed
    assert "astronomical-techniques" in opened
    # A chosen value opens the branches above it by itself.
    chosen = client.get("/", params={"subject": "photometry"})
    assert 'value="photometry" checked' in chosen.text


def test_unknown_things_answer_a_readable_page(client: TestClient[Any]):
    for path, words in (
        ("/executables/no-such-entry", "no-such-entry"),
        ("/offersets/not-a-uuid", "not a UUID"),
        ("/sessions/00000000-0000-0000-0000-000000000000", "00000000-0000"),
        ("/platforms?hours=many", "hours"),
    ):
        page = client.get(path)
        assert page.status_code in {400, 404}, path
        assert page.headers["content-type"] == HTML, path
        assert words in page.text, path
        assert 'href="/"' in page.text  # a way back


def test_the_offers_form_says_what_is_wrong_beside_each_field(client: TestClient[Any]):
    entry = entry_id(client, "aoflagger")
    page = client.post(
        f"/executables/{entry}/offers",
        data={
            "cores": "many",
            "memory": "8",
            "gpus": "0",
            "duration": "30",
            "unit": "min",
            "earliest": "2030-01-02T10:00",
            "latest": "2030-01-01T10:00",
            "data": "",
        },
        follow_redirects=False,
    )
    assert page.status_code == 400
    assert 'id="f-cores" name="cores" value="many"' in page.text  # what was typed is kept
    assert 'aria-describedby="h-cores e-cores" aria-invalid="true"' in page.text
    assert 'id="e-latest"' in page.text
    bad_data = client.post(
        f"/executables/{entry}/offers",
        data={"cores": "4", "memory": "8", "duration": "30", "unit": "min", "data": "ftp:nowhere"},
        follow_redirects=False,
    )
    assert bad_data.status_code == 400
    assert 'id="e-data"' in bad_data.text


def test_the_offers_form_goes_to_the_offers(client: TestClient[Any]):
    entry = entry_id(client, "aoflagger")
    answer = client.post(
        f"/executables/{entry}/offers",
        data={
            "cores": "4",
            "memory": "8",
            "gpus": "0",
            "duration": "1",
            "unit": "h",
            "data": "https://data.example.org/obs1.ms\nivo://example.org/obs#2",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert re.fullmatch(rf"/offersets/[0-9a-f-]{{36}}\?entry={entry}", location)
    page = client.get(location)
    assert "AOFlagger" in page.text  # the entry is named and linked back
    assert "Accept" in page.text


def test_forms_posted_from_another_site_are_refused(client: TestClient[Any]):
    entry = entry_id(client, "aoflagger")
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        refused = client.post(
            f"/executables/{entry}/offers",
            data={"cores": "4"},
            headers=headers,
            follow_redirects=False,
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"] == HTML
    session = offer_set(client)["offers"][0]["meta"]["uuid"]
    refused = client.post(
        f"/sessions/{session}",
        data={"phase": "ACCEPTED"},
        headers={"Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    assert (
        client.get(f"/broker/sessions/{session}", headers={"Accept": "application/json"}).json()[
            "phase"
        ]
        == "OFFERED"
    )


def test_accept_and_reject_without_script(client: TestClient[Any]):
    offers = offer_set(client)
    first, *others = [o["meta"]["uuid"] for o in offers["offers"]]
    accepted = client.post(
        f"/sessions/{first}",
        data={"phase": "ACCEPTED", "next": f"/sessions/{first}"},
        follow_redirects=False,
    )
    assert accepted.status_code == 303
    assert accepted.headers["location"] == f"/sessions/{first}"
    again = client.post(f"/sessions/{first}", data={"phase": "ACCEPTED"}, follow_redirects=False)
    assert again.status_code == 409
    assert "cannot become ACCEPTED" in again.text
    if others:  # siblings were released when the first was accepted
        page = client.get(f"/offersets/{offers['meta']['uuid']}")
        assert page.text.count('data-update="ACCEPTED"') == 0


def test_a_form_never_sends_the_reader_to_another_site(client: TestClient[Any]):
    session = offer_set(client)["offers"][0]["meta"]["uuid"]
    answer = client.post(
        f"/sessions/{session}",
        data={"phase": "REJECTED", "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/sessions/{session}"
