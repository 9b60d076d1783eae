"""Signing in on the pages when the broker's writes need a token, over HTTP without a browser.

Two real apps (demo catalogue, demo platforms) under Litestar's test client: one with
`auth.tokens` set, whose page writes (offers, accept, reject, cancel) need a sign-in
cookie or a bearer header, and one without, whose pages must behave exactly as before. The
cookie is checked for what it carries (never the token) and how it is set (HttpOnly,
SameSite=Strict, Secure over https), and forged, expired and foreign cookies are refused.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from core.auth import sign_in_value, token_sha256
from core.settings import NamedToken
from tests.auth_support import researchers
from tests.catalogue_support import app_settings
from voexec.app import create_app
from voexec.page_auth import COOKIE, LIFETIME
from voexec.wiring import Services, build_services

pytestmark = pytest.mark.shared

TOKEN = "page-token-4f9c1d7e2b8a-long-enough-for-voexec"
OTHER_TOKEN = "portal-token-0b6e5a3c9d1f-long-enough-too"
JSON = {"Accept": "application/json"}
OFFER_FORM = {"cores": "2", "memory": "4", "gpus": "0", "duration": "1", "unit": "h", "data": ""}


def _app(folder: Path, tokens: list[str]) -> tuple[Any, Services]:
    settings = app_settings(folder, demo=True)
    entries = [msgspec.convert(entry, NamedToken) for entry in researchers(*tokens)]
    settings = msgspec.structs.replace(
        settings,
        auth=msgspec.structs.replace(settings.auth, tokens=[*settings.auth.tokens, *entries]),
        broker=msgspec.structs.replace(settings.broker, allow_anonymous_runs=not tokens),
    )
    services = build_services(settings)
    return create_app(settings, services), services


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient[Any], Services]]:
    """The app whose broker writes need one of two tokens."""
    app, services = _app(tmp_path_factory.mktemp("guarded"), [TOKEN, OTHER_TOKEN])
    with TestClient(app) as client:
        yield client, services


@pytest.fixture
def client(guarded: tuple[TestClient[Any], Services]) -> Iterator[TestClient[Any]]:
    """The guarded app's client, starting each test signed out."""
    client = guarded[0]
    client.cookies.clear()
    yield client
    client.cookies.clear()


@pytest.fixture(scope="module")
def open_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    """An app without write tokens (the local default)."""
    app, _ = _app(tmp_path_factory.mktemp("open"), [])
    with TestClient(app) as client:
        yield client


def entry_id(client: TestClient[Any], name: str = "aoflagger") -> str:
    hits = client.get("/catalogue/search", params={"q": name}).json()["hits"]
    return str(next(hit["id"] for hit in hits if hit["name"] == name))


def offers_by_api(client: TestClient[Any]) -> dict[str, Any]:
    """An offer set asked for over the API with a bearer token (no page involved)."""
    answer = client.post(
        f"/catalogue/executables/{entry_id(client)}/offers",
        json={},
        headers={**JSON, "Authorization": f"Bearer {TOKEN}"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return dict(answer.json())


def phase_of(client: TestClient[Any], session: str) -> str:
    return str(client.get(f"/broker/sessions/{session}", headers=JSON).json()["phase"])


def accept_by_api(client: TestClient[Any], session: str) -> None:
    answer = client.post(
        f"/broker/sessions/{session}",
        json={"kind": "uri:enum-value-update", "path": "phase", "value": "ACCEPTED"},
        headers={**JSON, "Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 200, answer.text


def set_cookie(answer: httpx.Response) -> SimpleCookie:
    cookies: SimpleCookie = SimpleCookie()
    for header in answer.headers.get_list("set-cookie"):
        cookies.load(header)
    return cookies


def sign_in(client: TestClient[Any], token: str = TOKEN, next_page: str = "/") -> httpx.Response:
    return client.post("/sign-in", data={"token": token, "next": next_page}, follow_redirects=False)


def holds(services: Services) -> int:
    now = datetime.now(UTC)
    broker = services.components["broker"]
    return len(broker.bookings(now - timedelta(days=1), now + timedelta(days=30)))


# ----------------------------------------------------------------------------- no tokens
def test_without_tokens_the_pages_have_no_sign_in_and_every_write_works(
    open_client: TestClient[Any],
):
    entry = entry_id(open_client)
    page = open_client.get(f"/executables/{entry}")
    assert page.status_code == 200
    assert 'href="/sign-in' not in page.text
    assert "Sign out" not in page.text
    assert "sign-in-note" not in page.text
    assert "cache-control" not in page.headers  # pages stay as cacheable as before
    made = open_client.post(f"/executables/{entry}/offers", data=OFFER_FORM, follow_redirects=False)
    assert made.status_code == 303
    offers = open_client.get(made.headers["location"])
    assert "disabled" not in re.sub(r"<input[^>]*>", "", offers.text.split("<main", 1)[1])
    first, second = re.findall(r'data-offer="([0-9a-f-]{36})"', offers.text)[:2]
    accepted = open_client.post(
        f"/sessions/{first}", data={"phase": "ACCEPTED"}, follow_redirects=False
    )
    assert accepted.status_code == 303
    assert "set-cookie" not in accepted.headers
    # The page scripts' JSON goes through the same route, and answers the session.
    cancelled = open_client.post(
        f"/sessions/{first}",
        json={"kind": "uri:enum-value-update", "path": "phase", "value": "CANCELLED"},
        headers=JSON,
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["phase"] == "CANCELLED"
    assert phase_of(open_client, second) == "REJECTED"  # released when the first was accepted
    note = open_client.get("/sign-in")
    assert note.status_code == 200
    assert "needs no sign-in" in note.text
    assert 'name="token"' not in note.text


# ----------------------------------------------------------------------------- refused
def test_with_tokens_pages_offer_a_sign_in_and_show_writes_disabled(client: TestClient[Any]):
    entry = entry_id(client)
    page = client.get(f"/executables/{entry}", params={"version": ""})
    assert f'href="/sign-in?next=/executables/{entry}%3Fversion%3D"' in page.text
    assert "Sign out" not in page.text
    assert re.search(
        r'<button class="button" type="submit" disabled aria-describedby="sign-in-to-request">'
        r"Request offers</button>",
        page.text,
    )
    assert page.headers["cache-control"] == "private"
    offers = offers_by_api(client)
    page = client.get(f"/offersets/{offers['meta']['uuid']}")
    assert page.text.count('id="sign-in-to-accept"') == 1
    accept_buttons = re.findall(r"<button[^>]*>Accept</button>", page.text)
    assert accept_buttons
    assert all("disabled" in button for button in accept_buttons)
    session = client.get(f"/sessions/{offers['offers'][0]['meta']['uuid']}")
    assert 'id="sign-in-to-update"' in session.text


def test_with_tokens_page_writes_without_sign_in_are_refused_with_a_readable_page(
    client: TestClient[Any], guarded: tuple[TestClient[Any], Services]
):
    entry = entry_id(client)
    before = holds(guarded[1])
    refused = client.post(f"/executables/{entry}/offers", data=OFFER_FORM, follow_redirects=False)
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("text/html")
    assert refused.headers["www-authenticate"] == "Bearer"
    assert "Sign in to continue" in refused.text
    assert "sign in with a broker token to request offers" in refused.text
    assert f'href="/sign-in?next=/executables/{entry}%23request"' in refused.text
    assert holds(guarded[1]) == before  # nothing was held

    offers = offers_by_api(client)
    offer = offers["offers"][0]["meta"]["uuid"]
    form = client.post(
        f"/sessions/{offer}",
        data={"phase": "ACCEPTED", "next": f"/offersets/{offers['meta']['uuid']}"},
        follow_redirects=False,
    )
    assert form.status_code == 401
    assert f'href="/sign-in?next=/offersets/{offers["meta"]["uuid"]}"' in form.text
    script = client.post(
        f"/sessions/{offer}",
        json={"kind": "uri:enum-value-update", "path": "phase", "value": "ACCEPTED"},
        headers=JSON,
    )
    assert script.status_code == 401
    assert script.headers["content-type"] == "application/problem+json"
    assert script.headers["www-authenticate"] == "Bearer"
    assert script.json()["sign_in"] == f"/sign-in?next=/sessions/{offer}"
    assert "sign in" in script.json()["detail"]
    assert phase_of(client, offer) == "OFFERED"

    accept_by_api(client, offer)
    cancel = client.post(f"/sessions/{offer}", data={"phase": "CANCELLED"}, follow_redirects=False)
    assert cancel.status_code == 401
    assert phase_of(client, offer) != "CANCELLED"


def test_a_bearer_header_works_on_the_page_routes_and_a_wrong_one_is_forbidden(
    client: TestClient[Any],
):
    entry = entry_id(client)
    wrong = client.post(
        f"/executables/{entry}/offers",
        data=OFFER_FORM,
        headers={"Authorization": "Bearer not-a-token"},
        follow_redirects=False,
    )
    assert wrong.status_code == 403
    assert "may not request offers" in wrong.text
    right = client.post(
        f"/executables/{entry}/offers",
        data=OFFER_FORM,
        headers={"Authorization": f"bearer {OTHER_TOKEN}"},
        follow_redirects=False,
    )
    assert right.status_code == 303


# ----------------------------------------------------------------------------- signing in
def test_a_wrong_or_empty_token_is_refused_with_a_message_and_no_cookie(client: TestClient[Any]):
    form = client.get("/sign-in", params={"next": "/platforms"})
    assert form.status_code == 200
    assert 'type="password" id="f-token" name="token"' in form.text
    assert 'name="next" value="/platforms"' in form.text
    wrong = sign_in(client, "guessed-token-123", "/platforms")
    assert wrong.status_code == 401
    assert "not one of this voexec's tokens" in html.unescape(wrong.text)
    assert 'aria-invalid="true"' in wrong.text
    assert "guessed-token-123" not in wrong.text  # what was pasted is never shown back
    assert "set-cookie" not in wrong.headers
    empty = sign_in(client, "   ")
    assert empty.status_code == 400
    assert "Paste your voexec token" in html.unescape(empty.text)
    assert "set-cookie" not in empty.headers


def test_the_sign_in_cookie_is_signed_httponly_strict_and_holds_no_token(client: TestClient[Any]):
    answer = sign_in(client, TOKEN, "/platforms")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/platforms"
    header = answer.headers["set-cookie"]
    assert TOKEN not in header
    cookie = set_cookie(answer)[COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == str(int(LIFETIME.total_seconds()))
    assert not cookie["secure"]  # plain http: a Secure cookie would never come back
    assert re.fullmatch(r"1\.\d+\.[A-Za-z0-9_-]{43}", cookie.value)
    page = client.get("/platforms")
    assert "Sign out" in page.text
    assert 'href="/sign-in' not in page.text
    again = client.get("/sign-in", params={"next": "/platforms"})
    assert "You are signed in until" in again.text
    assert 'name="token"' not in again.text


def test_the_cookie_is_secure_over_https(client: TestClient[Any]):
    answer = client.post(
        "https://testserver.local/sign-in", data={"token": TOKEN}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert set_cookie(answer)[COOKIE]["secure"]


def test_signed_in_the_pages_request_offers_accept_and_cancel(client: TestClient[Any]):
    entry = entry_id(client)
    assert sign_in(client, TOKEN, f"/executables/{entry}").status_code == 303
    page = client.get(f"/executables/{entry}")
    assert "sign-in-note" not in page.text
    made = client.post(f"/executables/{entry}/offers", data=OFFER_FORM, follow_redirects=False)
    assert made.status_code == 303, made.text
    offers = client.get(made.headers["location"])
    assert "sign-in-to-accept" not in offers.text
    first = re.findall(r'data-offer="([0-9a-f-]{36})"', offers.text)[0]
    accepted = client.post(
        f"/sessions/{first}",
        data={"phase": "ACCEPTED", "next": f"/sessions/{first}"},
        follow_redirects=False,
    )
    assert accepted.status_code == 303
    assert accepted.headers["location"] == f"/sessions/{first}"
    assert phase_of(client, first) != "OFFERED"
    cancelled = client.post(
        f"/sessions/{first}",
        json={"kind": "uri:enum-value-update", "path": "phase", "value": "CANCELLED"},
        headers=JSON,
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["phase"] == "CANCELLED"
    wrong = client.post(
        f"/sessions/{first}",
        json={"kind": "uri:enum-value-update", "path": "phase", "value": "ACCEPTED"},
        headers=JSON,
    )
    assert wrong.status_code == 409  # signed in, and refused by the broker for its own reason
    assert "ACCEPTED" in wrong.json()["detail"]
    broken = client.post(f"/sessions/{first}", json={"path": "phase"}, headers=JSON)
    assert broken.status_code == 400


def test_forged_foreign_and_expired_cookies_are_refused(client: TestClient[Any]):
    offer = offers_by_api(client)["offers"][0]["meta"]["uuid"]
    now = datetime.now(UTC)
    valid = sign_in_value(token_sha256(TOKEN), now + timedelta(hours=1))
    _, expiry, mac = valid.split(".")
    forged = {
        "expiry moved": f"1.{int(expiry) + 86400}.{mac}",
        "MAC changed": f"1.{expiry}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        "unknown token": sign_in_value("not-configured-token", now + timedelta(hours=1)),
        "expired": sign_in_value(token_sha256(TOKEN), now - timedelta(seconds=1)),
        "longer than a sign-in lasts": sign_in_value(token_sha256(TOKEN), now + LIFETIME * 3),
        "the token itself": TOKEN,
    }
    for what, value in forged.items():
        client.cookies.set(COOKIE, value)
        refused = client.post(
            f"/sessions/{offer}", data={"phase": "ACCEPTED"}, follow_redirects=False
        )
        assert refused.status_code == 401, what
        assert "expired or is no longer valid" in refused.text, what
        assert 'href="/sign-in?next=' in client.get("/platforms").text, what
    assert phase_of(client, offer) == "OFFERED"
    client.cookies.set(COOKIE, valid)  # the same checks let the real one through
    accepted = client.post(f"/sessions/{offer}", data={"phase": "ACCEPTED"}, follow_redirects=False)
    assert accepted.status_code == 303


def test_sign_out_forgets_the_sign_in(client: TestClient[Any]):
    sign_in(client)
    offer = offers_by_api(client)["offers"][0]["meta"]["uuid"]
    out = client.post("/sign-out", data={"next": "/platforms"}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/platforms"
    cleared = set_cookie(out)[COOKIE]
    assert cleared.value == ""
    assert cleared["max-age"] == "0"
    assert cleared["httponly"]
    assert cleared["samesite"].lower() == "strict"
    assert COOKIE not in client.cookies
    refused = client.post(f"/sessions/{offer}", data={"phase": "ACCEPTED"}, follow_redirects=False)
    assert refused.status_code == 401


def test_sign_in_and_out_posted_from_another_site_are_refused(client: TestClient[Any]):
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        refused = client.post(
            "/sign-in", data={"token": TOKEN}, headers=headers, follow_redirects=False
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "set-cookie" not in refused.headers
        out = client.post("/sign-out", headers=headers, follow_redirects=False)
        assert out.status_code == 403
    same_site = client.post(
        "/sign-in",
        data={"token": TOKEN},
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver.local"},
        follow_redirects=False,
    )
    assert same_site.status_code == 303


def test_signing_in_never_sends_the_reader_to_another_site(client: TestClient[Any]):
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        answer = sign_in(client, TOKEN, target)
        assert answer.headers["location"] == "/", target
