"""Interval arithmetic and usage timelines, checked against brute force on a minute grid."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.scheduling.intervals import (
    BEGINNING,
    ENDING,
    ExcessScan,
    Interval,
    UsageTimeline,
    format_duration,
    from_micros,
    intersection,
    parse_interval,
    subtract,
    to_micros,
    union,
)
from core.time import LONGEST_DURATION, InvalidTime, parse_duration

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MINUTE = 60_000_000  # microseconds


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def minutes_in(intervals: list[Interval]) -> set[int]:
    """The whole minutes covered by half-open intervals on the minute grid."""
    covered: set[int] = set()
    for interval in intervals:
        first = int((interval.start - T0) / timedelta(minutes=1))
        last = int((interval.end - T0) / timedelta(minutes=1))
        covered.update(range(first, last))
    return covered


def is_canonical(intervals: list[Interval]) -> bool:
    """Sorted, non-empty, and neither overlapping nor touching."""
    return all(not i.is_empty for i in intervals) and all(
        a.end < b.start for a, b in pairwise(intervals)
    )


grid_intervals = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 60)).map(
        lambda pair: Interval(at(pair[0]), at(pair[0] + pair[1]))
    ),
    max_size=8,
)


# ------------------------------------------------------------------------- intervals
def test_interval_is_half_open():
    first, second = Interval(at(0), at(10)), Interval(at(10), at(20))
    assert not first.overlaps(second)
    assert first.contains(at(0))
    assert not first.contains(at(10))
    assert first.intersection(second) is None
    assert Interval(at(0), at(11)).intersection(second) == Interval(at(10), at(11))


def test_interval_refuses_naive_and_backwards_instants():
    with pytest.raises(ValueError, match="timezone-aware"):
        Interval(datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(ValueError, match="ends before it starts"):
        Interval(at(10), at(0))


def test_empty_interval_is_allowed_and_contains_nothing():
    exact = Interval(at(5), at(5))
    assert exact.is_empty
    assert not exact.contains(at(5))
    assert union([exact]) == []


@given(grid_intervals)
def test_union_covers_the_same_minutes_canonically(intervals):
    merged = union(intervals)
    assert minutes_in(merged) == minutes_in(intervals)
    assert is_canonical(merged)


@given(grid_intervals, grid_intervals)
def test_intersection_and_subtraction_match_set_arithmetic(first, second):
    common = intersection(first, second)
    rest = subtract(first, second)
    assert minutes_in(common) == minutes_in(first) & minutes_in(second)
    assert minutes_in(rest) == minutes_in(first) - minutes_in(second)
    assert is_canonical(common)
    assert is_canonical(rest)


def test_micros_round_trip_exactly():
    instant = datetime(2031, 7, 4, 13, 59, 59, 999_999, tzinfo=UTC)
    assert from_micros(to_micros(instant)) == instant
    assert to_micros(instant + timedelta(microseconds=1)) - to_micros(instant) == 1


# ------------------------------------------------------------------------- ISO-8601 text
def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T08:00:00Z/PT4H", Interval(utc(2026, 12, 1, 8), utc(2026, 12, 1, 12))),
        (
            "2026-12-01T08:00:00Z/2026-12-02T08:00Z",
            Interval(utc(2026, 12, 1, 8), utc(2026, 12, 2, 8)),
        ),
        ("PT1H/2026-12-01T08:00:00+01:00", Interval(utc(2026, 12, 1, 6), utc(2026, 12, 1, 7))),
        ("2026-12-01T08:00:00/P1D", Interval(utc(2026, 12, 1, 8), utc(2026, 12, 2, 8))),
    ],
)
def test_parse_interval_accepts_the_three_forms(text, expected):
    assert parse_interval(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-01T08:00:00Z",
        "/PT1H",
        "soon/PT1H",
        "2026-12-01/P1X",
        "0144-07-02T10:00:00Z/PT1H",
        "2026-12-01T08:00:00Z/P3000000D",
        "9999-12-31T08:00:00Z/PT1H",
    ],
)
def test_parse_interval_names_the_bad_text(text):
    with pytest.raises(InvalidTime, match="ISO-8601"):
        parse_interval(text)


def test_parsed_intervals_are_written_back_in_utc_with_z():
    interval = parse_interval("PT1H/2026-12-01T08:00:00+01:00")
    assert interval.isoformat() == "2026-12-01T06:00:00Z/2026-12-01T07:00:00Z"


@given(st.timedeltas(min_value=timedelta(0), max_value=LONGEST_DURATION))
def test_format_duration_round_trips(duration):
    assert parse_duration(format_duration(duration)) == duration


def test_format_duration_reads_naturally():
    assert format_duration(timedelta(minutes=5)) == "PT5M"
    assert format_duration(timedelta(days=2, hours=3)) == "P2DT3H"
    assert format_duration(timedelta(0)) == "PT0S"


# ------------------------------------------------------------------------- usage timelines
spans = st.lists(
    st.tuples(st.integers(0, 100), st.integers(0, 40), st.integers(0, 5), st.integers(0, 3)).map(
        lambda t: (t[0] * MINUTE, (t[0] + t[1]) * MINUTE, (t[2], t[3]))
    ),
    max_size=12,
)


def brute_usage(span_list, instant):
    return tuple(
        sum(amounts[d] for start, end, amounts in span_list if start <= instant < end)
        for d in range(2)
    )


@given(spans)
def test_sweep_equals_summing_every_span_at_every_instant(span_list):
    timeline = UsageTimeline.sweep(span_list, 2)
    assert timeline.times[0] == BEGINNING
    assert timeline.times == sorted(set(timeline.times))
    for minute in range(-1, 142):
        assert timeline.level_at(minute * MINUTE) == brute_usage(span_list, minute * MINUTE)
    # Right after the last breakpoint nothing is used any more.
    assert timeline.level_at(ENDING - 1) == (0, 0)


@given(spans, st.lists(st.integers(-5, 140), max_size=15), st.integers(1, 50))
def test_window_peaks_equal_the_brute_force_maximum(span_list, raw_starts, length):
    timeline = UsageTimeline.sweep(span_list, 2)
    starts = sorted(set(raw_starts))
    peaks = list(timeline.window_peaks([s * MINUTE for s in starts], length * MINUTE, [1, 0]))
    for start, peak in zip(starts, peaks, strict=True):
        instants = {start * MINUTE} | {
            t
            for span in span_list
            for t in span[:2]
            if start * MINUTE <= t < (start + length) * MINUTE
        }
        expected = [max(brute_usage(span_list, t)[d] for t in instants) for d in (1, 0)]
        assert list(peak) == expected
        assert timeline.peak(start * MINUTE, (start + length) * MINUTE) == tuple(reversed(expected))


@given(
    spans, st.tuples(st.integers(0, 100), st.integers(0, 40), st.integers(0, 5), st.integers(0, 3))
)
def test_adding_a_span_in_place_equals_sweeping_it_in(span_list, extra):
    start, length, first, second = extra
    span = (start * MINUTE, (start + length) * MINUTE, (first, second))
    timeline = UsageTimeline.sweep(span_list, 2)
    timeline.add(*span)
    rebuilt = UsageTimeline.sweep([*span_list, span], 2)
    for minute in range(-1, 142):
        assert timeline.level_at(minute * MINUTE) == rebuilt.level_at(minute * MINUTE)


def test_segments_are_clipped_and_cover_the_range():
    timeline = UsageTimeline.sweep([(10, 20, (3,)), (15, 30, (1,))], 1)
    assert list(timeline.segments(12, 25)) == [(12, 15, (3,)), (15, 20, (4,)), (20, 25, (1,))]
    assert timeline.breakpoints(10, 20) == [15, 20]


@settings(max_examples=60)
@given(spans, st.integers(0, 6), st.integers(0, 4))
def test_excess_scan_finds_the_first_breakpoint_above_the_limits(span_list, limit0, limit1):
    timeline = UsageTimeline.sweep(span_list, 2)
    scan = ExcessScan(timeline, [limit0, limit1])
    for minute in range(0, 140, 7):
        found = scan.next_excess(minute * MINUTE, (minute + 30) * MINUTE)
        candidates = [
            t
            for t in timeline.times
            if minute * MINUTE <= t < (minute + 30) * MINUTE
            and any(u > lim for u, lim in zip(timeline.level_at(t), (limit0, limit1), strict=True))
        ]
        assert found == (candidates[0] if candidates else (minute + 30) * MINUTE)
