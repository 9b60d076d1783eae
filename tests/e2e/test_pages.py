"""Every page at desktop and phone width: screenshots, layout, accessibility, and load times.

For each page (search, a filtered search, an entry, offers, a session, platforms, harvest, an
error page) at 1280 and 375 pixels wide: a full-page screenshot is saved for people to look at
(`$TEST_OUTPUT_DIR/screenshots`), nothing is wider than the screen, and the page passes the
checks a reviewer would make by hand: one `h1`, the landmarks, a label on every control, a name
on every link and button, headings that do not skip levels, unique ids, charts that describe
themselves, and text contrast of at least WCAG AA. Load times (navigation start to the load
event, and the server's own time from `Server-Timing`) are recorded in
`$TEST_OUTPUT_DIR/page-timings.json`; they are reported in docs/benchmarks.md, never asserted.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.conftest import DESKTOP, PHONE, Live, screenshot

pytestmark = [pytest.mark.chromium, pytest.mark.shared, pytest.mark.slow]

ROUTES = {
    "search": "/",
    "search-filtered": "/?subject=radio-astronomy&kind=docker-container",
    "entry": "/executables/{id}",
    "offers": "/offersets/{uuid}",
    "session": "/sessions/{uuid}",
    "platforms": "/platforms",
    "harvest": "/harvest",
    "not-found": "/executables/no-such-entry (404)",
}
LOADS = 7
"""Loads per page for the timings (the first is a warm-up and is left out)."""

CHECKS = (Path(__file__).parent / "page_checks.js").read_text(encoding="utf-8")

TIMING = """
() => {
  const n = performance.getEntriesByType("navigation")[0];
  const app = (n.serverTiming || []).find((t) => t.name === "app");
  return {
    load: n.loadEventEnd - n.startTime,
    dom: n.domContentLoadedEventEnd - n.startTime,
    first_byte: n.responseStart - n.startTime,
    server: app ? app.duration : null,
    bytes: n.transferSize,
  };
}
"""


def _entry(live: Live, name: str) -> str:
    hits = httpx.get(f"{live.url}/catalogue/search", params={"q": name}).json()["hits"]
    return next(hit["id"] for hit in hits if hit["name"] == name)


@pytest.fixture(scope="module")
def pages(live: Live) -> dict[str, str]:
    """The path of one instance of each page, made through the APIs."""
    entry = _entry(live, "sofia-2")
    made = httpx.post(
        f"{live.url}/catalogue/executables/{entry}/offers",
        json={"duration": "PT1H"},
        headers={"Accept": "application/json"},
    )
    assert made.status_code == 303, made.text
    offer_set = made.json()
    accepted = httpx.post(
        f"{live.url}/catalogue/executables/{entry}/offers",
        json={"duration": "PT2H", "cores": 12},
        headers={"Accept": "application/json"},
    ).json()["offers"][0]["meta"]["uuid"]
    httpx.post(
        f"{live.url}/broker/sessions/{accepted}",
        json={"kind": "uri:enum-value-update", "path": "phase", "value": "ACCEPTED"},
    ).raise_for_status()
    return {
        "search": "/",
        "search-filtered": "/?subject=radio-astronomy&kind=docker-container",
        "entry": f"/executables/{entry}",
        "offers": f"/offersets/{offer_set['meta']['uuid']}?entry={entry}",
        "session": f"/sessions/{accepted}",
        "platforms": "/platforms",
        "harvest": "/harvest",
        "not-found": "/executables/no-such-entry",
    }


def _open(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_function("performance.getEntriesByType('navigation')[0].loadEventEnd > 0")


@pytest.mark.parametrize(
    "name",
    [
        "search",
        "search-filtered",
        "entry",
        "offers",
        "session",
        "platforms",
        "harvest",
        "not-found",
    ],
)
def test_each_page_fits_desktop_and_phone_and_passes_the_accessibility_checks(
    browser: Browser, live: Live, pages: dict[str, str], name: str
):
    for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport, base_url=live.url)
        page = context.new_page()
        try:
            _open(page, pages[name])
            screenshot(page, f"{name}-{width}")
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= viewport["width"], f"{name} is {wide}px wide on a {width} screen"
            assert page.evaluate(CHECKS) == [], f"{name} at {width} width"
        finally:
            context.close()


def test_the_keyboard_reaches_the_skip_link_first_and_focus_is_visible(page: Page):
    page.goto("/")
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "({text: document.activeElement.textContent,"
        " outline: getComputedStyle(document.activeElement).outlineStyle})"
    )
    assert focused["text"] == "Skip to the content"
    assert focused["outline"] != "none"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_page_load_times_are_measured(browser: Browser, live: Live, pages: dict[str, str]):
    context = browser.new_context(viewport=DESKTOP, base_url=live.url)
    page = context.new_page()
    try:
        for name, path in pages.items():
            samples: list[dict[str, Any]] = []
            for _ in range(LOADS):
                _open(page, path)
                samples.append(page.evaluate(TIMING))
            measured = samples[1:]
            assert all(sample["server"] is not None for sample in measured), name
            live.timings.append(
                {
                    "page": name,
                    "route": ROUTES[name],
                    "path": path,
                    "loads": len(measured),
                    **{
                        f"{key}_ms_{stat}": round(func(s[key] for s in measured), 1)
                        for key in ("load", "dom", "first_byte", "server")
                        for stat, func in (("median", statistics.median), ("max", max))
                    },
                    "bytes": measured[-1]["bytes"],
                }
            )
    finally:
        context.close()
