"""A researcher's journey in a real browser: search, filter, open, request, accept, watch, cancel.

Runs against the live app (`conftest.live`): the demo catalogue, fast simulated platforms and
a harvested fake GitLab. Every step goes through the pages as a person would (typing, clicking,
the keyboard), and checks what the pages show against what the services hold.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import DESKTOP, PHONE, Live, screenshot

pytestmark = [pytest.mark.chromium, pytest.mark.shared, pytest.mark.slow]

ACTIVE = re.compile(r"^(ACCEPTED|WAITING|PREPARING|AVAILABLE|RUNNING)$")


def total(page: Page) -> int:
    return int(page.locator(".search-layout").get_attribute("data-total") or "-1")


def facet_counts(page: Page, facet: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for box in page.locator(f'#facets input[name="{facet}"]').all():
        value = box.get_attribute("value") or ""
        label = page.locator(f'label[for="{box.get_attribute("id")}"] .count')
        counts[value] = int(re.sub(r"\D", "", label.inner_text()))
    return counts


def entry_id(live: Live, name: str) -> str:
    hits = httpx.get(f"{live.url}/catalogue/search", params={"q": name}).json()["hits"]
    return next(hit["id"] for hit in hits if hit["name"] == name)


def test_search_by_text_ranks_the_exact_name_first(page: Page):
    page.goto("/")
    box = page.get_by_role("combobox", name="Search the catalogue")
    box.fill("wsclean")
    box.press("Enter")
    page.wait_for_url(re.compile(r"[?&]q=wsclean"))
    expect(page.locator(".result .ident code").first).to_have_text("wsclean")
    expect(page.locator("#results-summary")).to_contain_text("for “wsclean”")
    expect(page.get_by_role("link", name="Remove Text: “wsclean”")).to_be_visible()


def test_a_subject_facet_changes_counts_and_results_and_the_url_keeps_the_state(page: Page):
    page.goto("/")
    everything = total(page)
    kinds_before = facet_counts(page, "kind")
    subject = page.locator('#facets input[name="subject"][value="stellar-astronomy"]')
    expected = facet_counts(page, "subject")["stellar-astronomy"]
    assert 0 < expected < everything

    subject.check()
    page.wait_for_url(re.compile(r"subject=stellar-astronomy"))
    expect(page.locator(".search-layout")).to_have_attribute("data-total", str(expected))
    kinds_after = facet_counts(page, "kind")
    assert kinds_after != kinds_before
    assert sum(kinds_after.values()) == expected  # every entry has exactly one kind
    expect(page.locator(".result")).to_have_count(min(expected, 20))
    expect(subject).to_be_checked()
    # Multi-select: the subject facet's own counts ignore its selection.
    assert facet_counts(page, "subject")["observational-astronomy"] > 0

    chip = page.get_by_role("link", name="Remove Subject: Stellar astronomy")
    chip.click()
    expect(page.locator(".search-layout")).to_have_attribute("data-total", str(everything))
    page.go_back()
    expect(page.locator(".search-layout")).to_have_attribute("data-total", str(expected))
    expect(page.locator('#facets input[name="subject"][value="stellar-astronomy"]')).to_be_checked()
    page.reload()  # the URL alone carries the state
    expect(page.locator(".search-layout")).to_have_attribute("data-total", str(expected))


def test_the_keyboard_alone_selects_a_facet_and_keeps_its_place(page: Page):
    page.goto("/")
    docker = page.locator('#facets input[name="kind"][value="docker-container"]')
    expected = facet_counts(page, "kind")["docker-container"]
    docker.focus()
    page.keyboard.press("Space")
    expect(page.locator(".search-layout")).to_have_attribute("data-total", str(expected))
    focused = page.evaluate("[document.activeElement.name, document.activeElement.value]")
    assert focused == ["kind", "docker-container"]


def test_suggestions_offer_subjects_and_entries_as_you_type(page: Page):
    page.goto("/")
    box = page.get_by_role("combobox", name="Search the catalogue")
    box.press_sequentially("photom", delay=20)
    listbox = page.get_by_role("listbox", name="Suggestions")
    expect(listbox).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    subject = listbox.locator('[role="option"][data-kind="subject"][data-value="photometry"]')
    expect(subject).to_be_visible()
    expect(listbox.locator('[role="option"][data-kind="entry"]').first).to_be_visible()
    # Arrow down to the subject and pick it with Enter.
    options = listbox.locator('[role="option"]')
    position = [o.get_attribute("data-value") for o in options.all()].index("photometry")
    for _ in range(position + 1):
        box.press("ArrowDown")
    expect(subject).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    page.wait_for_url(re.compile(r"subject=photometry"))
    expect(box).to_have_value("")
    expect(page.get_by_role("link", name="Remove Subject: Photometry")).to_be_visible()


def test_from_an_entry_to_a_completed_session(page: Page, live: Live):
    page.goto("/?q=astrometry-solve")
    page.locator(".result h3 a").first.click()
    page.wait_for_url(re.compile(r"/executables/astrometry-solve-"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Astrometry.net")
    form = page.locator("#offers-form")
    expect(form.get_by_label("CPU cores")).to_have_value("2")  # prefilled from the entry
    form.get_by_label("Duration", exact=True).fill("2")
    form.get_by_label("Duration unit").select_option("min")
    form.get_by_role("button", name="Request offers").click()

    page.wait_for_url(re.compile(r"/offersets/"))
    offer = page.locator("[data-offer]", has_text="on quick").first
    expect(offer).to_be_visible()
    expect(offer.locator(".countdown")).to_have_text(re.compile(r"^\d+:\d\d$"))
    expect(page.locator("#offers-chart")).to_be_visible()
    screenshot(page, "offers-before-accepting-desktop")
    offer.get_by_role("button", name="Accept").click()

    page.wait_for_url(re.compile(r"/sessions/"))
    phase = page.locator("#session-region .phase")
    expect(phase).to_have_text("COMPLETED", timeout=60_000)
    expect(page.locator(".stepper li.done")).to_have_count(7)
    screenshot(page, "session-completed-desktop")
    session = page.url.rsplit("/", 1)[-1]
    answer = httpx.get(
        f"{live.url}/broker/sessions/{session}", headers={"Accept": "application/json"}
    )
    assert answer.json()["phase"] == "COMPLETED"


def test_cancel_a_running_session(page: Page, live: Live):
    page.goto(f"/executables/{entry_id(live, 'astrometry-solve')}")
    form = page.locator("#offers-form")
    form.get_by_label("CPU cores").fill("12")  # more than `quick` allows: lands on `steady`
    form.get_by_role("button", name="Request offers").click()
    page.wait_for_url(re.compile(r"/offersets/"))
    page.locator("[data-offer]", has_text="on steady").first.get_by_role(
        "button", name="Accept"
    ).click()
    page.wait_for_url(re.compile(r"/sessions/"))
    phase = page.locator("#session-region .phase")
    expect(phase).to_have_text(ACTIVE)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel session").click()
    expect(phase).to_have_text("CANCELLED", timeout=20_000)
    expect(page.get_by_role("button", name="Cancel session")).to_have_count(0)


def test_the_platforms_page_shows_a_booking(page: Page, live: Live):
    answer = httpx.post(
        f"{live.url}/catalogue/executables/{entry_id(live, 'astrometry-solve')}/offers",
        json={"cores": 12, "duration": "PT3H"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 303, answer.text
    offers = answer.json()["offers"]
    booked = next(o for o in offers if "steady" in str(o["meta"].get("messages")))
    uuid = booked["meta"]["uuid"]
    accepted = httpx.post(
        f"{live.url}/broker/sessions/{uuid}",
        json={"kind": "uri:enum-value-update", "path": "phase", "value": "ACCEPTED"},
        headers={"Accept": "application/json"},
    )
    assert accepted.status_code == 200, accepted.text

    page.goto("/platforms")
    row = page.locator(
        'tr[data-platform="steady"]', has=page.locator(f'a[href="/sessions/{uuid}"]')
    )
    expect(row).to_be_visible()
    expect(row).to_contain_text(f"{booked['compute']['cores']['min']} cores")  # as offered
    expect(
        page.locator("#platforms-chart .bar.booking, #platforms-chart .bar.active").first
    ).to_be_attached()


def test_the_harvest_page_reports_problems_per_project(page: Page):
    page.goto("/harvest")
    expect(page.get_by_role("cell", name=re.compile("survey-lab"))).to_be_visible()
    problems = page.locator("article", has_text="survey/unicorn")
    expect(problems).to_contain_text("subjects[0]")
    expect(page.locator("article", has_text="survey/broken-yaml")).to_contain_text("YAML")
    page.get_by_text("without problems").click()
    expect(page.get_by_role("cell", name="survey/mosaic-maker")).to_be_visible()


def test_on_a_phone_the_filters_open_from_a_button(browser, live: Live):
    context = browser.new_context(viewport=PHONE, base_url=live.url)
    page = context.new_page()
    try:
        page.goto("/")
        kind = page.locator('#facets input[name="kind"][value="python-program"]')
        expect(kind).to_be_hidden()
        toggle = page.get_by_role("button", name="Filters")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        kind.check()
        page.wait_for_url(re.compile(r"kind=python-program"))
        expect(
            page.get_by_role("link", name="Remove Executable kind: Python program")
        ).to_be_visible()
        expect(kind).to_be_visible()  # the panel stays open while choosing
    finally:
        context.close()


def test_without_javascript_the_pages_still_work(browser, live: Live):
    context = browser.new_context(viewport=DESKTOP, base_url=live.url, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/")
        page.locator('#facets input[name="gpu"][value="required"]').check()
        page.get_by_role("button", name="Apply filters").click()
        page.wait_for_url(re.compile(r"gpu=required"))
        expect(page.locator(".search-layout")).to_have_attribute(
            "data-total", re.compile(r"^[1-9]\d*$")
        )
        page.locator(".result h3 a").first.click()
        page.get_by_role("button", name="Request offers").click()
        page.wait_for_url(re.compile(r"/offersets/"))
        offer = page.locator("[data-offer]").first
        offer.get_by_role("button", name="Accept").click()
        page.wait_for_url(re.compile(r"/sessions/"))
        expect(page.locator("#session-region .phase")).to_have_text(ACTIVE)
    finally:
        context.close()


def test_when_no_platform_can_run_it_each_says_why(page: Page, live: Live):
    page.goto(f"/executables/{entry_id(live, 'astrometry-solve')}")
    form = page.locator("#offers-form")
    form.get_by_label("CPU cores").fill("500")
    form.get_by_role("button", name="Request offers").click()
    page.wait_for_url(re.compile(r"/offersets/"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("No offers")
    reasons = page.locator(".refusal")
    expect(reasons).to_have_count(3)
    for platform in ("quick", "steady", "gpu-farm"):
        refusal = reasons.filter(has=page.get_by_role("heading", name=platform, exact=True))
        expect(refusal).to_contain_text("cores")
    expect(page.get_by_role("link", name="change the request")).to_be_visible()
    screenshot(page, "offers-none-desktop")


def test_a_harvested_entry_shows_where_it_came_from_and_what_was_wrong(page: Page, live: Live):
    page.goto(f"/executables/{entry_id(live, 'star-counter')}")
    provenance = page.get_by_role("region", name="Provenance")
    expect(provenance).to_contain_text("survey-lab")
    expect(provenance.get_by_role("link", name="survey/star-counter")).to_be_visible()
    expect(provenance).to_contain_text(re.compile(r"Commit\s*[0-9a-f]{12}"))
    expect(provenance.locator("time")).not_to_have_count(0)  # harvested at, published
    versions = page.get_by_role("region", name="Versions")
    expect(versions).to_contain_text("latest")
    problems = page.get_by_role("note").filter(has_text="The last harvest of its repository")
    expect(problems).to_contain_text("v0.9")
    expect(problems).to_contain_text("subjects[0]")


def test_sorting_and_the_next_page(page: Page):
    page.goto("/")
    page.get_by_label("Sort by").select_option("name")
    page.wait_for_url(re.compile(r"sort=name"))
    names = page.locator(".result .ident code").all_inner_texts()
    assert names == sorted(names)
    everything = total(page)
    assert everything > 20
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url(re.compile(r"cursor=.*page=2"))
    summary = page.locator("#results-summary")
    expect(summary).to_contain_text(f"21\N{EN DASH}{everything} of {everything}")
    second = page.locator(".result .ident code").all_inner_texts()
    assert second == sorted(second)
    assert second[0] > names[-1]  # the order carries on across pages
    page.go_back()
    expect(summary).to_contain_text(f"1\N{EN DASH}20 of {everything}")


def test_a_subject_tree_opens_on_demand_and_stays_open(page: Page):
    page.goto("/")
    narrower = page.locator('#facets input[name="subject"][value="astronomical-techniques"]')
    expect(narrower).to_have_count(0)  # not sent until its branch is opened
    toggle = page.get_by_role("button", name="Narrower values of Observational astronomy")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(narrower).to_be_visible()
    expect(
        page.get_by_role("button", name="Narrower values of Observational astronomy")
    ).to_be_focused()
    expected = facet_counts(page, "subject")["astronomical-techniques"]
    narrower.check()
    expect(page.locator(".search-layout")).to_have_attribute("data-total", str(expected))
    expect(
        page.locator('#facets input[name="subject"][value="astronomical-techniques"]')
    ).to_be_visible()
    reopened = page.get_by_role("button", name="Narrower values of Observational astronomy")
    reopened.click()  # close it: the reader's choice wins over "holds a chosen value"
    expect(reopened).to_have_attribute("aria-expanded", "false")
    expect(
        page.locator('#facets input[name="subject"][value="astronomical-techniques"]')
    ).to_be_hidden()
