"""Signing in, in a real browser, on a voexec whose broker writes need a token.

A second live app (the demo catalogue and the journey's fast simulated platforms, with
`auth.tokens` set) under uvicorn on a loopback port, driven by Debian's Chromium: the
researcher finds the write buttons disabled with a way to sign in, pastes a wrong token and
then the right one, requests offers, accepts one (through the page script), cancels the
session, and signs out. The sign-in page passes the same accessibility checks as every page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from core.settings import settings_from_mapping
from tests.auth_support import researchers
from tests.conftest import shared_path
from tests.e2e.conftest import DESKTOP, PHONE, PLATFORMS, screenshot
from tests.live_server import serving_in_thread
from voexec.app import create_app
from voexec.demo import with_demo
from voexec.page_auth import COOKIE
from voexec.wiring import build_services

pytestmark = [pytest.mark.chromium, pytest.mark.shared, pytest.mark.slow]

TOKEN = "e2e-write-token-7d3f0a9c5b1e-long-enough-for-voexec"
ACTIVE = re.compile(r"^(ACCEPTED|WAITING|PREPARING|AVAILABLE|RUNNING)$")
CHECKS = (Path(__file__).parent / "page_checks.js").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def guarded_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a live voexec whose broker writes need `TOKEN`."""
    settings = with_demo(
        settings_from_mapping(
            {
                "data_dir": str(tmp_path_factory.mktemp("sign-in") / "var"),
                "vocabularies": {
                    "offline": True,
                    "path": str(shared_path("vocabularies")),
                    "names": ["uat", "messenger"],
                },
                "auth": {"tokens": researchers(TOKEN)},
                "broker": {"platforms": PLATFORMS, "offer_ttl": "PT10M"},
            }
        )
    )
    with serving_in_thread(create_app(settings, build_services(settings))) as url:
        yield url


@pytest.fixture
def tab(browser: Browser, guarded_url: str) -> Iterator[Page]:
    """A new tab on the guarded app; a script error on any page fails the test."""
    context = browser.new_context(viewport=DESKTOP, base_url=guarded_url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and "401" not in message.text  # the refused token
            else None
        ),
    )
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the pages reported script errors: {errors}"


def entry_id(base_url: str, name: str) -> str:
    hits = httpx.get(f"{base_url}/catalogue/search", params={"q": name}).json()["hits"]
    return str(next(hit["id"] for hit in hits if hit["name"] == name))


def test_sign_in_then_accept_an_offer_and_cancel_the_session(tab: Page, guarded_url: str):
    entry = entry_id(guarded_url, "astrometry-solve")
    tab.goto(f"/executables/{entry}")
    form = tab.locator("#offers-form")
    expect(form.get_by_role("button", name="Request offers")).to_be_disabled()
    expect(tab.locator("#sign-in-to-request")).to_contain_text("sign in with a broker token")
    screenshot(tab, "entry-signed-out-desktop")
    header = tab.get_by_role("banner")
    header.get_by_role("link", name="Sign in").click()

    tab.wait_for_url(re.compile(r"/sign-in\?next="))
    token = tab.get_by_label("Broker token")
    token.fill("not-the-token")
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.get_by_role("alert")).to_contain_text("not one of this voexec's tokens")
    expect(token).to_have_value("")  # what was pasted is not sent back
    tab.get_by_label("Broker token").fill(TOKEN)
    tab.get_by_role("button", name="Sign in").click()

    tab.wait_for_url(re.compile(rf"/executables/{re.escape(entry)}"))
    expect(header.get_by_role("button", name="Sign out")).to_be_visible()
    cookie = next(c for c in tab.context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    form.get_by_label("CPU cores").fill("12")  # more than `quick` allows: lands on `steady`
    form.get_by_role("button", name="Request offers").click()

    tab.wait_for_url(re.compile(r"/offersets/"))
    offer = tab.locator("[data-offer]", has_text="on steady").first
    offer.get_by_role("button", name="Accept").click()  # the script posts JSON to the page
    tab.wait_for_url(re.compile(r"/sessions/"))
    phase = tab.locator("#session-region .phase")
    expect(phase).to_have_text(ACTIVE)

    tab.once("dialog", lambda dialog: dialog.accept())
    tab.get_by_role("button", name="Cancel session").click()
    expect(phase).to_have_text("CANCELLED", timeout=20_000)
    session = tab.url.rsplit("/", 1)[-1]
    answer = httpx.get(
        f"{guarded_url}/broker/sessions/{session}", headers={"Accept": "application/json"}
    )
    assert answer.json()["phase"] == "CANCELLED"

    header.get_by_role("button", name="Sign out").click()
    expect(header.get_by_role("link", name="Sign in")).to_be_visible()
    assert all(c["name"] != COOKIE for c in tab.context.cookies())


def test_an_ended_sign_in_is_said_where_the_button_was_pressed(tab: Page, guarded_url: str):
    made = httpx.post(
        f"{guarded_url}/catalogue/executables/{entry_id(guarded_url, 'astrometry-solve')}/offers",
        json={},
        headers={"Accept": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    assert made.status_code == 303, made.text
    offers = made.json()
    tab.goto("/sign-in")
    tab.get_by_label("Broker token").fill(TOKEN)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(re.compile(r"/$"))
    tab.goto(f"/offersets/{offers['meta']['uuid']}")
    tab.context.clear_cookies()  # the sign-in ends while the page is open
    tab.locator("[data-offer]").first.get_by_role("button", name="Accept").click()
    error = tab.locator("#update-error")
    expect(error).to_contain_text("sign in with a broker token to accept")
    expect(error.get_by_role("link", name="Sign in")).to_have_attribute(
        "href", re.compile(r"^/sign-in\?next=%2Foffersets%2F")
    )
    assert tab.url.endswith(f"/offersets/{offers['meta']['uuid']}")  # nothing happened


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_the_sign_in_page_passes_the_accessibility_checks(
    browser: Browser, guarded_url: str, width: str
):
    viewport = DESKTOP if width == "desktop" else PHONE
    context = browser.new_context(viewport=viewport, base_url=guarded_url)
    page = context.new_page()
    try:
        for path, name in (("/sign-in?next=/platforms", "sign-in"), ("/platforms", "signed-out")):
            page.goto(path)
            screenshot(page, f"{name}-{width}")
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= viewport["width"], f"{path} is {wide}px wide on a {width} screen"
            assert page.evaluate(CHECKS) == [], f"{path} at {width} width"
    finally:
        context.close()
