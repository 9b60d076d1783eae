"""The one ISO-8601 module: instants, durations and intervals, with bounds.

Every part of voexec reads and writes time through here (the broker's wire, the catalogue's
publisher files and hand-off, the web pages), so `P2W`, `PT0.5S` or `2026-09-01T10:00Z` mean
the same thing everywhere. Pure: no I/O, no clock; imports only the standard library.

- **Durations** (`PT1H`, `P1DT2H30M`, `P2W`, `PT0.5S`, `PT0S`) parse to `Duration`, a
  `timedelta` subclass, so the scheduler can do arithmetic on them and the codec can still
  recognise them and write them back in ISO form (`PT1H`, never `PT3600S`). Years and months
  are refused: they have no fixed length, and a booking must know exactly when it ends.
  **Negative durations are refused everywhere** (`-PT1H`): nothing on the wire, in a publisher
  file or on a page lasts less than no time. Zero (`PT0S`) is a duration; fields that need a
  positive one say so themselves.
- **Instants** are ISO-8601 dates or date-times. An instant without a UTC offset is taken as UTC
  (the Execution Broker standard's own examples, such as `2023-08-09/PT2H`, carry no zone, so
  refusing them would refuse the standard); `parse_instant` says when this happened so the
  caller can warn (or refuse, as the catalogue does). Instants are written in UTC with a
  four-digit year, seconds and `Z` (`0999-01-01T00:00:00Z`, never `999-01-01...`, which no
  ISO-8601 reader takes back).
- **Intervals** accept the three forms of ISO-8601 without repetition: `start/end`,
  `start/duration` and `duration/end`; a single instant is an interval of length zero ("start
  exactly then"). They are written as `start/duration`.

**Bounds.** What is parsed lies within `EARLIEST_INSTANT`..`LATEST_INSTANT` and lasts at most
`LONGEST_DURATION`, so any parsed instant plus any parsed duration is still a date the standard
library, the scheduler's microsecond clock and the database can represent. Text longer than
`LONGEST_TEXT` is refused before any pattern sees it. The bounds may be widened, never
narrowed: stored documents are read back through the same parser.

**Errors.** Every malformed or out-of-range value raises `InvalidTime`, a `ValueError` whose
message is the reason, written for the person who typed the value. Callers add the field: the
broker's codec turns it into a 400 naming the JSON path, the catalogue into a problem-details
error naming the field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = [
    "EARLIEST_INSTANT",
    "LATEST_INSTANT",
    "LONGEST_DURATION",
    "LONGEST_TEXT",
    "Duration",
    "Interval",
    "InvalidTime",
    "check_instant",
    "format_duration",
    "format_instant",
    "parse_duration",
    "parse_instant",
]

EARLIEST_INSTANT: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest instant accepted: the epoch of the scheduler's clock; nothing before it can be
booked, and no real request, offer or record names an earlier time."""
LATEST_INSTANT: Final = datetime(2999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
"""The latest instant accepted; adding `LONGEST_DURATION` (and any preparation time) to it stays
far inside what `datetime` (year 9999) and the scheduler's clock (about year 146000) hold."""
LONGEST_DURATION: Final = timedelta(days=3660)
"""The longest duration accepted: ten years (leap days included), longer than any session,
start range or runtime estimate anyone asks for."""
LONGEST_TEXT: Final = 100
"""The most characters an instant, a duration or an interval may have (the longest real one,
`2026-09-01T10:00:00.123456+02:00/2026-09-01T12:00:00.123456+02:00`, has 65)."""

_DURATION_EXAMPLES: Final = "e.g. PT1H30M, P2D, P2W or PT0.5S"
_INSTANT_EXAMPLE: Final = "e.g. 2026-09-01T10:00:00Z"
_INTERVAL_EXAMPLE: Final = "e.g. 2026-09-01T10:00:00Z/PT2H"
_MAX_DIGITS: Final = 12
"""Most digits in one duration field; more is far beyond `LONGEST_DURATION` in any unit."""

_DURATION: Final = re.compile(
    r"""
    P(?:(?P<weeks>\d+)W)?
     (?:(?P<days>\d+)D)?
     (?:T(?:(?P<hours>\d+)H)?
         (?:(?P<minutes>\d+)M)?
         (?:(?P<seconds>\d+)(?:[.,](?P<fraction>\d{1,9}))?S)?
     )?
    """,
    re.VERBOSE,
)
_CALENDAR_UNITS: Final = re.compile(r"P[^T]*?\d+(?:[.,]\d+)?[YM]")
_TIME_UNIT_BEFORE_T: Final = re.compile(r"P[^T]*\d+[HS]")
_MICROS_PER: Final = {
    "weeks": 7 * 86_400 * 10**6,
    "days": 86_400 * 10**6,
    "hours": 3_600 * 10**6,
    "minutes": 60 * 10**6,
    "seconds": 10**6,
}


class InvalidTime(ValueError):
    """A time value that is malformed or out of bounds; the message says why."""


def _text(value: object, what: str, example: str) -> str:
    """The stripped text of a value that must be a short string."""
    if not isinstance(value, str):
        raise InvalidTime(f"expected an ISO-8601 {what} string ({example})")
    text = value.strip()
    if len(text) > LONGEST_TEXT:
        raise InvalidTime(
            f"{text[:20]!r}... is {len(text)} characters long; an ISO-8601 {what} has at most "
            f"{LONGEST_TEXT}"
        )
    return text


# ------------------------------------------------------------------------- durations
class Duration(timedelta):
    """A `timedelta` that came from (and goes back to) an ISO-8601 duration.

    Arithmetic gives plain `timedelta`s; `Duration.of(delta)` turns one back into a `Duration`.
    `str()` gives the ISO form.
    """

    @classmethod
    def of(cls, delta: timedelta) -> Duration:
        """The same length of time as a `Duration`."""
        return cls(days=delta.days, seconds=delta.seconds, microseconds=delta.microseconds)

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse an ISO-8601 duration; see `parse_duration`."""
        return parse_duration(text)

    def iso(self) -> str:
        """The ISO-8601 form, in the largest whole units (`PT1H`, `P1DT30M`)."""
        return format_duration(self)

    def __str__(self) -> str:
        return format_duration(self)


def _too_long(shown: str) -> str:
    return (
        f"{shown} is longer than the longest duration accepted "
        f"({format_duration(LONGEST_DURATION)}, about ten years)"
    )


def parse_duration(text: str) -> Duration:
    """Parse an ISO-8601 duration such as `PT1H30M`, `P2D`, `P2W`, `PT0.5S` or `PT0S`.

    Lower case and a decimal comma are accepted; fractions only on seconds, to the microsecond.

    Raises:
        InvalidTime: the text is not a fixed-length, non-negative ISO-8601 duration within
            `LONGEST_DURATION`; the message says why (months and years, a missing `T`, a
            negative sign, too long, a typo).
    """
    value = _text(text, "duration", _DURATION_EXAMPLES).upper()
    if value.startswith("-"):
        raise InvalidTime(f"negative durations are not allowed: {text!r}")
    if _CALENDAR_UNITS.match(value):
        raise InvalidTime(
            f"{text!r} uses years or months, which have no fixed length; give days instead "
            "(e.g. P30D)"
        )
    if _TIME_UNIT_BEFORE_T.match(value):
        raise InvalidTime(f"{text!r}: hours and seconds come after 'T' (e.g. PT1H, not P1H)")
    match = _DURATION.fullmatch(value)
    if match is None or value in {"P", "PT"} or value.endswith("T"):
        raise InvalidTime(f"{text!r} is not an ISO-8601 duration ({_DURATION_EXAMPLES})")
    parts = match.groupdict()
    micros = 0
    for unit, size in _MICROS_PER.items():
        digits = parts[unit]
        if digits is None:
            continue
        if len(digits.lstrip("0")) > _MAX_DIGITS:
            raise InvalidTime(_too_long(repr(text)))
        micros += int(digits) * size
    if parts["fraction"]:
        # Exact to the microsecond, rounded half up (no float: PT0.000001S stays one microsecond).
        nanos = int(parts["fraction"].ljust(9, "0"))
        micros += (nanos + 500) // 1000
    if micros > LONGEST_DURATION // timedelta(microseconds=1):
        raise InvalidTime(_too_long(repr(text)))
    return Duration(microseconds=micros)


def format_duration(delta: timedelta) -> str:
    """Write a non-negative `timedelta` as an ISO-8601 duration in the largest whole units.

    `PT0S` for zero; days (never weeks) for whole days; fractions only on seconds, to the
    microsecond (`PT0.5S`, `PT0.000001S`).

    Raises:
        InvalidTime: the duration is negative.
    """
    if delta < timedelta(0):
        raise InvalidTime(f"negative duration {delta} has no ISO-8601 form here")
    days, seconds, micros = delta.days, delta.seconds, delta.microseconds
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    date_part = f"{days}D" if days else ""
    time_part = ""
    if hours:
        time_part += f"{hours}H"
    if minutes:
        time_part += f"{minutes}M"
    if seconds or micros:
        fraction = f".{micros:06d}".rstrip("0") if micros else ""
        time_part += f"{seconds}{fraction}S"
    if not date_part and not time_part:
        return "PT0S"
    return f"P{date_part}" + (f"T{time_part}" if time_part else "")


# ------------------------------------------------------------------------- instants
def check_instant(instant: datetime, text: str | None = None) -> datetime:
    """`instant` in UTC when it lies within `EARLIEST_INSTANT`..`LATEST_INSTANT`.

    Raises:
        InvalidTime: it is naive or out of bounds.
    """
    if instant.tzinfo is None:
        raise InvalidTime(f"naive datetime {instant} has no time zone")
    if not EARLIEST_INSTANT <= instant <= LATEST_INSTANT:
        raise InvalidTime(
            _out_of_range(repr(text) if text is not None else format_instant(instant))
        )
    return instant.astimezone(UTC)


def _out_of_range(shown: str) -> str:
    return (
        f"{shown} is out of range: instants lie between {format_instant(EARLIEST_INSTANT)} "
        f"and {format_instant(LATEST_INSTANT.replace(microsecond=0))}"
    )


def parse_instant(text: str) -> tuple[datetime, bool]:
    """Parse an ISO-8601 date or date-time; return it in UTC and whether UTC was assumed.

    A date alone means midnight at the start of that day. Minutes without seconds
    (`2026-09-01T10:00Z`), fractions of a second and `Z` are accepted.

    Raises:
        InvalidTime: the text is not an ISO-8601 date or date-time (years have four digits), or
            it lies outside `EARLIEST_INSTANT`..`LATEST_INSTANT`.
    """
    value = _text(text, "date-time", _INSTANT_EXAMPLE)
    if value[-1:] in {"z", "Z"}:
        value = value[:-1] + "+00:00"
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidTime(f"{text!r} is not an ISO-8601 date-time ({_INSTANT_EXAMPLE})") from None
    assumed = instant.tzinfo is None
    try:
        # Moving 0001-01-01T00:00+01:00 to UTC leaves the calendar: that is out of range too.
        aware = instant.replace(tzinfo=UTC) if assumed else instant.astimezone(UTC)
    except OverflowError:
        raise InvalidTime(_out_of_range(repr(text))) from None
    return check_instant(aware, text), assumed


def format_instant(instant: datetime) -> str:
    """Write an aware datetime in UTC: four-digit year, seconds, microseconds when present, `Z`.

    Raises:
        InvalidTime: the datetime is naive (its meaning would be a guess).
    """
    if instant.tzinfo is None:
        raise InvalidTime(f"naive datetime {instant} cannot be written as an instant")
    utc = instant.astimezone(UTC)
    # Not strftime("%Y"): it writes year 144 as "144", which no ISO-8601 reader takes back.
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


# ------------------------------------------------------------------------- intervals
class Interval:
    """A closed time range `[start, end]` from an ISO-8601 interval, both ends in UTC.

    Two intervals are equal when their ends are; `assumed_utc` (whether the text carried no
    zone) does not take part in equality, so a value survives a round trip. The constructor
    checks order only; `Interval.parse` also checks the bounds.
    """

    __slots__ = ("assumed_utc", "end", "start")

    start: datetime
    end: datetime
    assumed_utc: bool

    def __init__(self, start: datetime, end: datetime, *, assumed_utc: bool = False) -> None:
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidTime("interval ends must be timezone-aware")
        if end < start:
            raise InvalidTime(
                f"interval ends ({format_instant(end)}) before it starts ({format_instant(start)})"
            )
        self.start = start.astimezone(UTC)
        self.end = end.astimezone(UTC)
        self.assumed_utc = assumed_utc

    @classmethod
    def at(cls, instant: datetime) -> Interval:
        """The zero-length interval "exactly at `instant`"."""
        return cls(instant, instant)

    @classmethod
    def starting(cls, start: datetime, length: timedelta) -> Interval:
        """The interval from `start` lasting `length`."""
        return cls(start, start + length)

    @classmethod
    def parse(cls, text: str) -> Interval:
        """Parse `start/end`, `start/duration`, `duration/end` or a single instant.

        Raises:
            InvalidTime: with the reason (repetitions, two durations, a bad part, end before
                start, an end out of bounds).
        """
        value = _text(text, "interval", _INTERVAL_EXAMPLE)
        if value[:1] in {"R", "r"}:
            raise InvalidTime(f"{text!r}: repeating intervals are not supported")
        parts = value.split("/")
        if len(parts) > 2:
            raise InvalidTime(f"{text!r} has more than one '/'")
        if len(parts) == 1:
            if value[:1] in {"P", "p"}:
                raise InvalidTime(
                    f"{text!r} is a duration, not an interval; give a start too "
                    f"({_INTERVAL_EXAMPLE})"
                )
            instant, assumed = parse_instant(value)
            return cls(instant, instant, assumed_utc=assumed)
        first, second = parts
        first_is_duration = first.strip()[:1] in {"P", "p"}
        second_is_duration = second.strip()[:1] in {"P", "p"}
        if first_is_duration and second_is_duration:
            raise InvalidTime(
                f"{text!r}: an interval needs at least one date-time, not two durations"
            )
        if first_is_duration:
            end, assumed = parse_instant(second)
            start = end - parse_duration(first)
            return cls(check_instant(start, f"{text} (its start)"), end, assumed_utc=assumed)
        start, assumed = parse_instant(first)
        if second_is_duration:
            end = start + parse_duration(second)
            return cls(start, check_instant(end, f"{text} (its end)"), assumed_utc=assumed)
        end, end_assumed = parse_instant(second)
        return cls(start, end, assumed_utc=assumed or end_assumed)

    @property
    def duration(self) -> Duration:
        """How long the interval lasts."""
        return Duration.of(self.end - self.start)

    def contains(self, instant: datetime) -> bool:
        """True when `start <= instant <= end`."""
        return self.start <= instant <= self.end

    def iso(self) -> str:
        """The `start/duration` form, e.g. `2026-09-01T10:00:00Z/PT2H`."""
        return f"{format_instant(self.start)}/{format_duration(self.end - self.start)}"

    def __str__(self) -> str:
        return self.iso()

    def __repr__(self) -> str:
        return f"Interval({self.iso()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Interval):
            return NotImplemented
        return (self.start, self.end) == (other.start, other.end)

    def __hash__(self) -> int:
        return hash((self.start, self.end))
