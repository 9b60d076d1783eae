"""Page details seen in a browser: the API reference, a crowded platforms chart, the harvest
page's advice when no source is configured.

The platforms chart and the harvest page run on a server of their own (`voexec serve`, as an
operator starts it): twelve platforms with long names, a dozen holds and bookings on them, and
no harvest source. The chart's text is measured as Chromium draws it, at a desktop and at a
phone width: no two labels may share a pixel, and none may leave the chart.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from litestar.testing import TestClient

from core.settings import CONFIG_ENV, settings_from_mapping
from tests.catalogue_support import app_settings
from tests.conftest import ROOT
from tests.e2e.conftest import DESKTOP, PHONE, screenshot
from tests.live_server import live_voexec
from voexec.app import create_app
from voexec.client import Broker

DOCKER = {
    "kind": "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/executable/"
    "docker-container.yaml",
    "image": {"locations": ["registry.example.org/chart:1.0"], "digest": "sha256:" + "c" * 64},
}
NAME = "observatory-compute-cluster-{:02d}-{}-west-region-long-name"
PLATFORMS = [
    {
        "name": NAME.format(i, "eu" if i % 2 else "us"),
        "description": "A platform with a long name",
        "capacity": {"cores": 64 + 8 * i, "memory": 256},
        "simulated": {"prepare": "PT0.3S", "release": "PT0.3S"},
    }
    for i in range(12)
]
# (cores, duration) of each request; the first of each offer set is accepted, except the last
# two sets, whose offers stay held.
REQUESTS = [(4, "PT2H"), (8, "PT6H"), (16, "PT1H"), (2, "PT12H"), (32, "PT3H"), (4, "PT30M")] * 2

# Boxes of every chart text Chromium shows (display not none), with what they belong to.
CHART_TEXT = """
(id) => {
  const svg = document.getElementById(id);
  const frame = svg.getBoundingClientRect();
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).display !== 'none'
    && (el.textContent || '').trim() !== '';
  const box = (el) => { const r = el.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, text: el.textContent}; };
  return {
    frame: {left: frame.left, right: frame.right, top: frame.top, bottom: frame.bottom},
    labels: [...svg.querySelectorAll('text.tick-label, text.row-label')].filter(shown).map(box),
    bars: [...svg.querySelectorAll('svg.bar')].map((bar) => {
      const text = bar.querySelector('text');
      return {bar: box(bar), text: text && shown(text) ? box(text) : null};
    }),
    titles: [...svg.querySelectorAll('text.row-label > title')].map((t) => t.textContent),
  };
}
"""


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and b["top"] < a["bottom"]
    )


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A voexec serving twelve long-named platforms with holds and bookings, and no harvest."""
    settings = {"broker": {"platforms": PLATFORMS, "offer_ttl": "PT30M"}}
    with live_voexec(tmp_path_factory.mktemp("crowded"), settings) as url:
        with Broker(url) as broker:
            for index, (cores, duration) in enumerate(REQUESTS):
                offers = broker.request(executable=DOCKER, cores=cores, memory=8, duration=duration)
                assert offers.offers, f"no offer for {cores} cores over {duration}"
                if index < len(REQUESTS) - 2:
                    offers.offers[0].accept()
        yield url


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    """A factory of tabs at a given window size; a script error on any page fails the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_tab(viewport: dict[str, int]) -> Any:
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    try:
        yield open_tab
    finally:
        for context in contexts:
            context.close()
    assert not errors, f"the pages reported script errors: {errors}"


@pytest.mark.parametrize("hours", [6, 48, 168])
@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_the_crowded_platforms_chart_keeps_its_labels_apart(crowded, tab, hours, screen):
    page = tab(DESKTOP if screen == "desktop" else PHONE)
    page.goto(f"{crowded}/platforms?hours={hours}")
    drawn = page.evaluate(CHART_TEXT, "platforms-chart")
    screenshot(page, f"platforms-crowded-{hours}h-{screen}")

    labels, frame = drawn["labels"], drawn["frame"]
    rows = [label for label in labels if label["top"] > frame["top"] + 20]
    assert len(rows) == len(PLATFORMS)  # every platform keeps a visible label
    assert len(labels) - len(rows) >= 2  # and the time axis at least two
    for index, label in enumerate(labels):
        assert frame["left"] <= label["left"], label
        assert label["right"] <= frame["right"] + 0.5, label
        for other in labels[index + 1 :]:
            assert not overlap(label, other), (label, other)
    texts = [bar for bar in drawn["bars"] if bar["text"] is not None]
    assert texts, "no bar is wide enough for its text"
    for bar in texts:
        assert bar["text"]["right"] <= bar["bar"]["right"] + 0.5, bar
    # A cut name keeps the whole name and its capacity in the tooltip.
    assert sorted(title.split(" ")[0] for title in drawn["titles"]) == sorted(
        p["name"] for p in PLATFORMS
    )


def test_the_empty_harvest_page_shows_how_to_add_each_kind_of_source(crowded, tab):
    page = tab(DESKTOP)
    page.goto(f"{crowded}/harvest")
    help_box = page.locator("#add-a-source")
    assert help_box.is_visible()
    screenshot(page, "harvest-no-sources")
    examples = help_box.locator(".source-examples pre")
    assert examples.count() == 3
    kinds = []
    for index in range(3):
        document = yaml.safe_load(examples.nth(index).inner_text())
        # Each example, pasted as it is, is a valid settings file.
        settings = settings_from_mapping(document)
        (source,) = settings.harvest.sources
        kinds.append(type(source).__name__)
    assert kinds == ["GitLabSource", "OaiPmhSource", "RegTapSource"]
    for heading in ["GitLab", "OAI-PMH", "RegTAP"]:
        assert help_box.get_by_role("heading", name=heading).is_visible()
    text = help_box.inner_text()
    # This server was started with --config and no $VOEXEC_CONFIG: the page names the option.
    assert "voexec serve --config" in text
    assert "docs/harvesting.md" in text
    assert "docs/registry.md" in text
    assert (ROOT / "docs" / "harvesting.md").exists()  # the page names a page that exists
    phone = tab(PHONE)
    phone.goto(f"{crowded}/harvest")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the examples make the phone page scroll sideways"


def test_the_harvest_page_names_the_settings_file_it_was_started_with(tmp_path, monkeypatch):
    config = tmp_path / "operator.yaml"
    monkeypatch.setenv(CONFIG_ENV, str(config))
    with TestClient(create_app(app_settings(tmp_path / "var"))) as client:
        page = client.get("/harvest")
    assert page.status_code == 200
    assert f'<code class="config-path">{config}</code>' in page.text


def test_the_api_reference_lists_the_broker_and_needs_no_other_host(page, live):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/schema")
    document = httpx.get(f"{live.url}/schema/openapi.json", timeout=30).json()

    broker_operations = [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if path.startswith("/broker") and method in {"get", "post", "put", "patch", "delete"}
    ]
    assert ("POST", "/broker/requests") in broker_operations
    listed = page.evaluate(
        """() => [...document.querySelectorAll('details > summary')].map((s) =>
             [s.querySelector('.method').textContent.toUpperCase(),
              s.querySelector('code').textContent])"""
    )
    for operation in broker_operations:
        assert list(operation) in listed, operation
    # Opening an operation shows its answers.
    request_offers = page.locator("details", has=page.locator("code", has_text="/broker/requests"))
    request_offers.first.locator("summary").click()
    assert request_offers.first.locator("table").first.is_visible()
    screenshot(page, "api-reference")

    for name in ["openapi.json", "openapi.yaml"]:
        href = page.get_by_role("link", name=name).get_attribute("href")
        answer = page.request.get(href)  # through the tab's own context, as a click would
        assert answer.status == 200, name
        parsed = yaml.safe_load(answer.text())  # JSON is YAML too
        assert parsed["openapi"].startswith("3."), name
        assert "/broker/requests" in parsed["paths"]
    page.reload()  # the icon and anything else the page loads, asked again

    own = urlsplit(live.url).netloc
    assert requested
    assert {urlsplit(url).netloc for url in requested} == {own}, requested
