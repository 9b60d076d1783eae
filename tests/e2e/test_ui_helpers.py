"""The pages' pure helpers: URL state, timeline geometry, broker documents, the offers form.

These decide what the pages show, so they are tested on their own, with examples and with
properties over generated input (hypothesis): a search state survives its URL; lanes never
overlap; reading any broker document never raises. Descriptions (`text`) are tested with
the entry page, in tests/api/test_entry_descriptions.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalogue.model import DeclaredNeeds, ExpectedData, Facet, FacetBucket, GpuNeeds
from core.errors import Problem
from core.settings import settings_from_mapping
from voexec.ui import broker_charts, formats, timeline
from voexec.ui.broker_views import offer_set_view, session_view
from voexec.ui.offer_form import OfferForm, form_field
from voexec.ui.search_state import FACETS, SearchState, open_branches, opened

NOW = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)


def params_of(href: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(href).query, keep_blank_values=False)


# ----------------------------------------------------------------------------- search state
values = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs")), min_size=1, max_size=12
)
states = st.builds(
    SearchState,
    text=st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=20).map(
        str.strip
    ),
    filters=st.dictionaries(
        st.sampled_from(FACETS),
        st.lists(values, min_size=1, max_size=3, unique=True).map(tuple),
        max_size=3,
    ),
    sort=st.sampled_from(["relevance", "name", "newest"]),
)


@given(states)
def test_a_search_state_survives_its_url(state):
    again = SearchState.from_params(params_of(state.href))
    assert again.text == state.text
    assert {f: set(v) for f, v in again.filters.items()} == {
        f: set(v) for f, v in state.filters.items()
    }
    assert again.sort == state.sort


def test_any_change_but_paging_restarts_from_the_first_page():
    state = SearchState.from_params({"q": ["clean"], "cursor": ["abc"], "page": ["3"]})
    assert (state.cursor, state.page) == ("abc", 3)
    for changed in (
        state.toggled("kind", "docker-container"),
        state.sorted_by("name"),
        state.without_text(),
    ):
        assert (changed.cursor, changed.page) == (None, 1)
    following = state.next_page("def")
    assert (following.cursor, following.page, following.text) == ("def", 4, "clean")


def test_toggling_a_value_twice_gives_the_same_url():
    state = SearchState(text="x", filters={"subject": ("a",)})
    assert state.toggled("subject", "b").toggled("subject", "b").href == state.href
    assert params_of(state.toggled("subject", "b").href)["subject"] == ["a", "b"]
    assert "subject" not in params_of(state.toggled("subject", "a").href)


def test_a_wrong_sort_falls_back_and_says_so():
    state = SearchState.from_params({"sort": ["popularity"], "page": ["2"]})
    assert state.sort == "relevance"
    assert [p.field for p in state.problems] == ["sort"]
    assert state.page == 1  # no cursor, no page two


def test_refused_facets_and_cursors_are_left_out_but_nothing_else():
    state = SearchState(
        text="x", filters={"subject": ("nope",), "kind": ("docker-container",)}, cursor="c", page=3
    )
    narrower = state.without_refused([Problem("subject", "unknown"), Problem("cursor", "stale")])
    assert narrower is not None
    assert (narrower.filters, narrower.cursor, narrower.page) == (
        {"kind": ("docker-container",)},
        None,
        1,
    )
    assert state.without_refused([Problem("q", "too long")]) is None
    assert state.without_refused([]) is None


def test_opened_branches_ignore_unknown_facets_and_decode_values():
    assert opened("subject:radio%2Castronomy, nonsense:x, kind:, function:imaging") == {
        "subject:radio,astronomy",
        "function:imaging",
    }


def test_branches_holding_a_choice_are_open():
    leaf = FacetBucket(value="light-curves", label="Light curves", count=1, selected=True)
    middle = FacetBucket(value="photometry", label="Photometry", count=2, children=[leaf])
    other = FacetBucket(value="cosmology", label="Cosmology", count=3)
    top = FacetBucket(value="observational", label="Observational", count=4, children=[middle])
    facets = [Facet(name="subject", hierarchical=True, buckets=[top, other])]
    assert open_branches(facets) == {"subject:observational", "subject:photometry"}


# ----------------------------------------------------------------------------- timelines
spans = st.lists(
    st.tuples(st.integers(0, 500), st.integers(1, 200)).map(
        lambda t: timeline.Span(
            NOW + timedelta(minutes=t[0]), NOW + timedelta(minutes=t[0] + t[1]), "booking"
        )
    ),
    max_size=25,
)


@given(spans)
def test_spans_in_one_lane_never_overlap(spans):
    lane_of = timeline.lanes(spans)
    for i, a in enumerate(spans):
        for j, b in enumerate(spans[i + 1 :], start=i + 1):
            if lane_of[i] == lane_of[j]:
                assert a.end <= b.start or b.end <= a.start


def test_touching_spans_share_a_lane():
    first = timeline.Span(NOW, NOW + timedelta(hours=1), "preparing")
    second = timeline.Span(NOW + timedelta(hours=1), NOW + timedelta(hours=2), "running")
    assert timeline.lanes([first, second]) == [0, 0]


@given(st.integers(1, 60 * 24 * 14), st.integers(2, 12))
def test_ticks_are_round_ordered_and_few(minutes, most):
    end = NOW + timedelta(minutes=minutes, seconds=17)
    ticks = timeline.ticks(NOW + timedelta(seconds=17), end, most)
    assert len(ticks) <= most + 1
    xs = [t.x for t in ticks]
    assert xs == sorted(xs)
    assert all(0 <= x <= 1 for x in xs)


def test_place_cuts_spans_to_the_window_and_leaves_out_the_rest():
    rows = [
        timeline.Row(
            "alpha",
            [
                timeline.Span(NOW - timedelta(hours=2), NOW + timedelta(hours=1), "booking"),
                timeline.Span(NOW + timedelta(days=5), NOW + timedelta(days=6), "booking"),
            ],
        )
    ]
    chart = timeline.place(rows, NOW, NOW + timedelta(hours=4), now=NOW + timedelta(hours=1))
    (bar,) = chart.rows[0].bars
    assert bar.x == 0
    assert bar.clipped
    assert bar.width == pytest.approx(0.25)
    assert chart.now == pytest.approx(0.25)
    with pytest.raises(ValueError, match="window"):
        timeline.place(rows, NOW, NOW)


# ----------------------------------------------------------------------------- broker documents
def offer(platform: str, phase: str = "OFFERED") -> dict:
    return {
        "kind": "https://example.org/session.yaml",
        "phase": phase,
        "expires": "2026-09-01T10:05:00Z",
        "meta": {
            "uuid": f"uuid-{platform}",
            "messages": [
                {
                    "kind": "urn:voexec:offer-platform",
                    "level": "INFO",
                    "template": "Offered on {platform} ({strategy})",
                    "values": {"platform": platform, "strategy": "cheapest"},
                },
            ],
            "options": [
                {
                    "kind": "uri:enum-value-option",
                    "path": "phase",
                    "values": ["ACCEPTED", "REJECTED"],
                }
            ],
        },
        "compute": {
            "cores": {"min": 8, "max": 8},
            "memory": {"min": 16, "max": 16},
            "accelerators": {"count": {"min": 2, "max": 2}, "models": ["A100"]},
        },
        "schedule": {
            "preparing": {"start": "2026-09-01T10:00:00Z", "duration": "PT2M"},
            "available": {"start": "2026-09-01T10:02:00Z/PT10M", "duration": "PT1H"},
            "releasing": {"start": "2026-09-01T11:12:00Z", "duration": "PT10S"},
        },
        "costs": [{"min": 0.24, "max": 0.24, "description": "EUR for the whole slot"}],
    }


def test_an_offer_reads_as_people_compare_offers():
    view = session_view(offer("alpha"))
    assert (view.platform, view.strategy_title, view.cores, view.memory, view.gpus) == (
        "alpha",
        "Lowest cost",
        8.0,
        16.0,
        2,
    )
    assert view.gpu_models == ("A100",)
    assert view.cost == "0.24 EUR"
    assert view.can_accept
    assert view.can_reject
    assert not view.can_cancel
    assert view.schedule is not None
    assert view.schedule.start == datetime(2026, 9, 1, 10, 2, tzinfo=UTC)
    assert view.schedule.end == datetime(2026, 9, 1, 11, 12, tzinfo=UTC)  # range + duration
    assert view.messages[0].text == "Offered on alpha (cheapest)"  # template filled in


def test_a_no_explains_itself_per_platform():
    document = {
        "result": "NO",
        "meta": {
            "uuid": "set",
            "messages": [
                {
                    "level": "ERROR",
                    "message": "alpha: needs 2 GPUs",
                    "values": {"platform": "alpha"},
                },
                {"level": "ERROR", "message": "alpha: too long", "values": {"platform": "alpha"}},
                {
                    "level": "ERROR",
                    "message": "beta: does not run singularity",
                    "values": {"platform": "beta"},
                },
                {"level": "ERROR", "message": "no start range given"},
                {"level": "WARN", "message": "time zone assumed"},
            ],
        },
    }
    view = offer_set_view(document)
    assert [(r.platform, r.reasons) for r in view.refusals] == [
        (None, ["no start range given"]),
        ("alpha", ["needs 2 GPUs", "too long"]),
        ("beta", ["does not run singularity"]),
    ]
    assert [n.text for n in view.notes] == ["time zone assumed"]
    assert view.offers == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["phase", "meta", "compute", "schedule", "costs", "offers", "expires", "result"]
        ),
        json_values,
    )
)
def test_reading_any_document_never_fails(document):
    session_view(document)
    offer_set_view(document)


def test_charts_of_offers_and_platforms():
    offers = offer_set_view(
        {
            "result": "YES",
            "meta": {"uuid": "s"},
            "offers": [offer("alpha"), offer("beta", "REJECTED")],
        }
    )
    chart = broker_charts.offers_chart(offers, NOW)
    assert chart is not None
    assert [row.label for row in chart.rows] == ["Offer 1", "Offer 2"]
    assert [bar.span.kind for bar in chart.rows[1].bars] == ["closed", "closed", "closed"]
    settings = settings_from_mapping(
        {
            "broker": {
                "platforms": [
                    {
                        "name": "alpha",
                        "capacity": {"cores": 16, "memory": 64},
                        "maintenance": [{"interval": "2026-09-01T12:00:00Z/PT2H"}],
                    }
                ]
            }
        }
    )
    platform = settings.broker.platforms[0]
    bookings = [
        {
            "session": "a",
            "phase": "OFFERED",
            "start": "2026-09-01T10:30:00Z",
            "end": "2026-09-01T11:30:00Z",
            "cores": 4,
        },
        {
            "session": "b",
            "phase": "RUNNING",
            "start": "2026-09-01T09:30:00Z",
            "end": "2026-09-01T11:00:00Z",
            "cores": 8,
        },
        {"session": "c", "phase": "ACCEPTED", "start": "not a time", "end": None},
    ]
    view = broker_charts.platform_view(platform, bookings)
    assert [b.kind for b in view.bookings] == ["active", "hold"]  # unreadable ones left out
    assert view.peak(NOW, NOW + timedelta(hours=3)) == (12, 0)  # 10:30-11:00 both at once
    assert view.peak(NOW + timedelta(hours=1), NOW + timedelta(hours=3)) == (4, 0)
    assert broker_charts.fit_window([view], NOW) == 6  # the latest booking ends in 1.5 h
    assert broker_charts.fit_window([view], NOW, asked=30) == 48
    gantt = broker_charts.platforms_chart([view], NOW, hours=24)
    kinds = sorted(bar.span.kind for bar in gantt.rows[0].bars)
    assert kinds == ["active", "hold", "maintenance"]
    assert gantt.rows[0].lanes == 2  # the hold overlaps the running booking


# ----------------------------------------------------------------------------- offers form
def test_the_form_is_prefilled_from_the_declared_needs():
    entry = SimpleNamespace(
        version="1.2",
        spec=SimpleNamespace(
            needs=DeclaredNeeds(cores=4, memory=7.5, gpus=GpuNeeds(count=2), duration="PT90M"),
            data=[
                ExpectedData(
                    description="cubes", examples=["s3://bucket/cube.fits", "https://x.org/a"]
                )
            ],
        ),
    )
    form = OfferForm.prefilled(entry)  # type: ignore[arg-type]
    assert (form.version, form.cores, form.memory, form.gpus) == ("1.2", "4", "7.5", "2")
    assert (form.duration, form.unit) == ("90", "min")
    assert form.data.splitlines() == ["s3://bucket/cube.fits", "https://x.org/a"]


def test_the_form_becomes_a_hand_off():
    form = OfferForm.from_form(
        {
            "cores": "4",
            "memory": "8",
            "gpus": "0",
            "duration": "2",
            "unit": "h",
            "earliest": "2026-09-02T08:00",
            "latest": "",
            "data": " https://x.org/a \n\n",
            "results": " s3+https://s3.example.net/runs/a/ ",
        }
    )
    hand_off, problems = form.hand_off(NOW, timedelta(hours=3))
    assert problems == []
    assert hand_off is not None
    assert (hand_off.cores, hand_off.memory, hand_off.gpus, hand_off.duration) == (
        4,
        8.0,
        0,
        "PT2H",
    )
    assert hand_off.start == "2026-09-02T08:00:00Z/2026-09-02T11:00:00Z"  # earliest + the window
    assert hand_off.data == ["https://x.org/a"]
    assert hand_off.results == "s3+https://s3.example.net/runs/a/"
    assert OfferForm.from_form({}).hand_off(NOW, timedelta(hours=3))[0].results is None  # type: ignore[union-attr]
    only_latest, _ = OfferForm.from_form({"latest": "2026-09-01T12:00"}).hand_off(
        NOW, timedelta(hours=3)
    )
    assert only_latest is not None
    assert only_latest.start == "2026-09-01T10:00:00Z/2026-09-01T12:00:00Z"


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        ({"cores": "0"}, "cores"),
        ({"cores": "2.5"}, "cores"),
        ({"memory": "-1"}, "memory"),
        ({"gpus": "x"}, "gpus"),
        ({"duration": "0"}, "duration"),
        ({"duration": "1", "unit": "weeks"}, "duration"),
        ({"earliest": "tomorrow"}, "earliest"),
        ({"earliest": "2026-09-02T08:00", "latest": "2026-09-02T07:00"}, "latest"),
    ],
)
def test_each_wrong_value_is_named_by_its_field(sent, field):
    hand_off, problems = OfferForm.from_form(sent).hand_off(NOW, timedelta(hours=2))
    assert hand_off is None
    assert [p.field for p in problems] == [field]


def test_catalogue_problems_point_at_form_fields():
    assert form_field("data[2]") == "data"
    assert form_field("start") == "earliest"
    assert form_field("$.cores") == "cores"


# ----------------------------------------------------------------------------- formats
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("PT30M", "30 min"),
        ("PT1H30M", "1 h 30 min"),
        ("P1DT6H", "1 d 6 h"),
        (timedelta(seconds=45), "45 s"),
        ("junk", "junk"),
    ],
)
def test_durations_read_as_people_say_them(value, shown):
    assert formats.duration_text(value) == shown


def test_countdowns():
    assert formats.countdown_text("2026-09-01T10:04:05Z", NOW) == "4:05"
    assert formats.countdown_text("2026-09-01T11:02:03Z", NOW) == "1:02:03"
    assert formats.countdown_text("2026-09-01T09:00:00Z", NOW) == "0:00"
