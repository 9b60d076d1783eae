"""ISO-8601 durations, instants and intervals: the one parser every part of voexec uses."""

import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.time import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    LONGEST_DURATION,
    Duration,
    Interval,
    InvalidTime,
    format_duration,
    format_instant,
    parse_duration,
    parse_instant,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT1H", timedelta(hours=1)),
        ("PT90M", timedelta(minutes=90)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("P2W", timedelta(weeks=2)),
        ("P1W2D", timedelta(days=9)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT1,25S", timedelta(seconds=1.25)),
        ("pt4h", timedelta(hours=4)),
        ("P0D", timedelta(0)),
        (" PT10S ", timedelta(seconds=10)),
    ],
)
def test_fixed_length_durations_parse(text, expected):
    parsed = parse_duration(text)
    assert parsed == expected
    assert isinstance(parsed, Duration)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("P1M", "no fixed length"),
        ("P1Y", "no fixed length"),
        ("P1Y2M3D", "no fixed length"),
        ("P1H", "after 'T'"),
        ("P2D4H", "after 'T'"),
        ("-PT1H", "negative"),
        ("P", "not an ISO-8601 duration"),
        ("PT", "not an ISO-8601 duration"),
        ("P1DT", "not an ISO-8601 duration"),
        ("1H", "not an ISO-8601 duration"),
        ("PT1H30", "not an ISO-8601 duration"),
        ("PT1.5H", "not an ISO-8601 duration"),
        ("", "not an ISO-8601 duration"),
        ("PT99999999999999999999H", "longer than the longest"),
        ("P3000000D", "longer than the longest"),
        ("P3661D", "longer than the longest"),
        ("PT" + "9" * 5000 + "S", "characters long"),
    ],
)
def test_durations_without_fixed_length_or_malformed_are_refused_with_a_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_duration(text)


def test_a_duration_must_be_a_string():
    with pytest.raises(ValueError, match="string"):
        parse_duration(3600)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(hours=1), "PT1H"),
        (timedelta(seconds=3600), "PT1H"),
        (timedelta(minutes=90), "PT1H30M"),
        (timedelta(days=1, minutes=30), "P1DT30M"),
        (timedelta(weeks=2), "P14D"),
        (timedelta(0), "PT0S"),
        (timedelta(milliseconds=1500), "PT1.5S"),
        (timedelta(microseconds=1), "PT0.000001S"),
    ],
)
def test_durations_are_written_in_the_largest_whole_units(delta, text):
    assert format_duration(delta) == text
    assert str(Duration.of(delta)) == text


def test_negative_durations_cannot_be_written():
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@given(st.timedeltas(min_value=timedelta(0), max_value=LONGEST_DURATION))
def test_every_duration_survives_a_round_trip(delta):
    assert parse_duration(format_duration(delta)) == delta


@pytest.mark.parametrize(
    ("text", "expected", "assumed"),
    [
        ("2026-09-01T10:00:00Z", datetime(2026, 9, 1, 10, tzinfo=UTC), False),
        ("2026-09-01T12:00:00+02:00", datetime(2026, 9, 1, 10, tzinfo=UTC), False),
        ("2026-09-01T10:00Z", datetime(2026, 9, 1, 10, tzinfo=UTC), False),
        ("2026-09-01T10:00:00", datetime(2026, 9, 1, 10, tzinfo=UTC), True),
        ("2026-09-01", datetime(2026, 9, 1, tzinfo=UTC), True),
    ],
)
def test_instants_are_read_in_utc_and_say_when_utc_was_assumed(text, expected, assumed):
    instant, was_assumed = parse_instant(text)
    assert instant == expected
    assert instant.tzinfo is UTC
    assert was_assumed is assumed


def test_instants_that_are_not_iso_are_refused():
    with pytest.raises(ValueError, match="not an ISO-8601 date-time"):
        parse_instant("1 September 2026")


def test_instants_are_written_in_utc_with_seconds_and_z():
    cest = timezone(timedelta(hours=2))
    assert format_instant(datetime(2026, 9, 1, 12, tzinfo=cest)) == "2026-09-01T10:00:00Z"
    assert format_instant(datetime(2026, 9, 1, 10, 0, 0, 250000, UTC)) == "2026-09-01T10:00:00.25Z"
    with pytest.raises(ValueError, match="naive"):
        format_instant(datetime(2026, 9, 1, 10))


START = datetime(2026, 9, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-09-01T10:00:00Z/2026-09-01T12:00:00Z", START, START + timedelta(hours=2)),
        ("2026-09-01T10:00:00Z/PT2H", START, START + timedelta(hours=2)),
        ("PT2H/2026-09-01T12:00:00Z", START, START + timedelta(hours=2)),
        ("2026-09-01T10:00:00Z", START, START),
        ("2026-09-01T10:00:00Z/PT0S", START, START),
        (
            "2023-08-09/2023-08-10",
            datetime(2023, 8, 9, tzinfo=UTC),
            datetime(2023, 8, 10, tzinfo=UTC),
        ),
        ("2023-08-09/PT2H", datetime(2023, 8, 9, tzinfo=UTC), datetime(2023, 8, 9, 2, tzinfo=UTC)),
    ],
)
def test_the_three_interval_forms_and_a_single_instant_parse(text, start, end):
    interval = Interval.parse(text)
    assert (interval.start, interval.end) == (start, end)
    assert interval.duration == end - start


def test_the_schema_examples_without_zone_are_read_as_utc_and_flagged():
    assert Interval.parse("2023-08-09/PT2H").assumed_utc
    assert not Interval.parse("2023-08-09T00:00:00Z/PT2H").assumed_utc
    assert Interval.parse("2023-08-09T00:00:00Z/2023-08-10").assumed_utc


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-09-01T12:00:00Z/2026-09-01T10:00:00Z", "before it starts"),
        ("PT1H/PT2H", "two durations"),
        ("R5/2026-09-01T10:00:00Z/PT1H", "repeating"),
        ("PT2H", "a duration, not an interval"),
        ("2026-09-01T10:00:00Z/P1M", "no fixed length"),
        ("2026-13-01T10:00:00Z/PT1H", "not an ISO-8601 date-time"),
        ("a/b/c", "more than one '/'"),
    ],
)
def test_bad_intervals_are_refused_with_a_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        Interval.parse(text)


def test_intervals_are_written_as_start_and_duration_and_compare_by_their_ends():
    interval = Interval.parse("2026-09-01T12:00:00+02:00/2026-09-01T12:00:00Z")
    assert interval.iso() == "2026-09-01T10:00:00Z/PT2H"
    assert Interval.parse(interval.iso()) == interval
    assert Interval.parse("2026-09-01T10:00:00/PT2H") == interval  # the UTC flag is not compared
    assert interval.contains(START + timedelta(hours=1))
    assert not interval.contains(START - timedelta(seconds=1))
    assert Interval.at(START).iso() == "2026-09-01T10:00:00Z/PT0S"


instants = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2989, 1, 1), timezones=st.just(UTC)
)


@given(instants, st.timedeltas(min_value=timedelta(0), max_value=LONGEST_DURATION))
def test_every_interval_survives_a_round_trip(start, length):
    interval = Interval.starting(start, length)
    assert Interval.parse(interval.iso()) == interval


# ------------------------------------------------------------------------- bounds and errors
@pytest.mark.parametrize(
    "text",
    [
        "0144-07-02T10:00:00Z",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # moving it to UTC leaves the calendar
        "1969-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_instants_out_of_bounds_are_refused_with_the_bounds(text):
    with pytest.raises(InvalidTime, match=r"out of range.*1970-01-01T00:00:00Z.*2999-12-31"):
        parse_instant(text)


def test_the_bounds_themselves_are_accepted():
    assert parse_instant("1970-01-01T00:00:00Z")[0] == EARLIEST_INSTANT
    assert parse_instant("2999-12-31T23:59:59.999999Z")[0] == LATEST_INSTANT
    assert parse_duration(format_duration(LONGEST_DURATION)) == LONGEST_DURATION


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2999-12-31T00:00:00Z/P2D", "out of range"),
        ("P2D/1970-01-01T10:00:00Z", "out of range"),
        ("0144-07-02T10:00:00Z/PT1H", "out of range"),
        ("2026-09-01T10:00:00Z/P3000000D", "longer than the longest"),
        ("9999-12-31T10:00:00Z/PT1H", "out of range"),
        ("2026-09-01T10:00:00Z/" + "P1D" * 40, "characters long"),
    ],
)
def test_intervals_reaching_out_of_bounds_are_refused(text, reason):
    with pytest.raises(InvalidTime, match=reason):
        Interval.parse(text)


def test_every_error_is_one_type_and_still_a_value_error():
    for call, value in [
        (parse_duration, "-PT1H"),
        (parse_duration, 3600),
        (parse_instant, "yesterday"),
        (Interval.parse, "PT1H/PT2H"),
    ]:
        with pytest.raises(InvalidTime) as caught:
            call(value)
        assert isinstance(caught.value, ValueError)


def test_years_are_written_with_four_digits_and_read_back():
    early = datetime(144, 7, 2, 10, tzinfo=UTC)
    assert format_instant(early) == "0144-07-02T10:00:00Z"
    assert datetime.fromisoformat(format_instant(early).replace("Z", "+00:00")) == early


@given(st.datetimes(timezones=st.just(UTC)))
def test_every_written_instant_is_iso_and_parses_exactly_when_within_bounds(instant):
    text = format_instant(instant)
    assert datetime.fromisoformat(text[:-1] + "+00:00") == instant
    if EARLIEST_INSTANT <= instant <= LATEST_INSTANT:
        assert parse_instant(text) == (instant, False)
    else:
        with pytest.raises(InvalidTime, match="out of range"):
            parse_instant(text)


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_invalid_time(text):
    for parse in (parse_duration, parse_instant, Interval.parse):
        with contextlib.suppress(InvalidTime):  # any other exception fails the test
            parse(text)


@given(
    st.from_regex(
        r"\A-?[Pp]([0-9]{1,14}[WwDdYyMm]){0,2}([Tt]([0-9]{1,14}([.,][0-9]{1,12})?[HhMmSs]){0,3})?\Z"
    )
)
def test_duration_lookalikes_parse_within_bounds_or_raise_invalid_time(text):
    try:
        parsed = parse_duration(text)
    except InvalidTime:
        return
    assert timedelta(0) <= parsed <= LONGEST_DURATION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT0.0000005S", timedelta(microseconds=1)),  # rounded to the microsecond
        ("PT0.000001S", timedelta(microseconds=1)),
        ("PT59.999999S", timedelta(seconds=59, microseconds=999_999)),
    ],
)
def test_fractional_seconds_are_exact_to_the_microsecond(text, expected):
    assert parse_duration(text) == expected


# ------------------------------------------------------------------------- one reading everywhere
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P2W", timedelta(weeks=2)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT1H30M", timedelta(minutes=90)),
    ],
)
def test_the_catalogue_and_the_pages_read_durations_as_core_time_does(text, expected):
    from catalogue import timing
    from voexec.ui import formats

    assert parse_duration(text) == timing.parse_duration(text) == expected
    assert formats.parse_duration(text) == expected
    assert timing.format_duration(expected) == format_duration(expected)


@pytest.mark.parametrize("text", ["-PT1H", "P1M", "P3000000D", "PT1.5H"])
def test_the_catalogue_and_the_pages_refuse_what_core_time_refuses(text):
    from catalogue import timing
    from voexec.ui import formats

    with pytest.raises(InvalidTime):
        timing.parse_duration(text)
    assert formats.parse_duration(text) is None


def test_a_requested_start_reads_the_same_in_the_catalogue_the_broker_and_the_pages():
    from broker.scheduling.intervals import parse_interval
    from catalogue import timing
    from voexec.ui import formats

    text = "PT2H/2026-09-01T12:00:00+02:00"
    interval = Interval.parse(text)
    assert timing.parse_start(text) == interval.iso() == "2026-09-01T08:00:00Z/PT2H"
    assert (parse_interval(text).start, parse_interval(text).end) == (interval.start, interval.end)
    assert formats.parse_interval(text) == (interval.start, interval.end)
    assert formats.interval_length(interval.iso()) == timedelta(hours=2)


def test_the_catalogue_refuses_zero_durations_and_instants_without_a_zone():
    from catalogue import timing

    with pytest.raises(InvalidTime, match="longer than zero"):
        timing.parse_duration("PT0S")
    with pytest.raises(InvalidTime, match="no time zone"):
        timing.parse_instant("2026-09-01T10:00:00")
    with pytest.raises(InvalidTime, match="no time zone"):
        timing.parse_start("2026-09-01T10:00:00/PT1H")
    assert timing.parse_start("2026-09-01T10:00:00Z") == "2026-09-01T10:00:00Z/PT0S"
