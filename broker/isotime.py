"""ISO-8601 durations, instants and intervals as the Execution Broker's wire uses them.

Pure: no I/O, no clock, imports only the standard library.

- **Durations** (`PT1H`, `P1DT2H30M`, `P2W`, `PT0.5S`) parse to `Duration`, a `timedelta`
  subclass, so the scheduler can do arithmetic on them and the codec can still recognise them
  and write them back in ISO form (`PT1H`, never `PT3600S`). Years and months are refused: they
  have no fixed length, and a booking must know exactly when it ends. Negative durations are
  refused: nothing on the wire can last less than no time.
- **Instants** are ISO-8601 dates or date-times. An instant without a UTC offset is taken as UTC
  (the standard's own examples, such as `2023-08-09/PT2H`, carry no zone, so refusing them would
  refuse the standard); `Interval.assumed_utc` records that this happened so the broker can say so
  in a message. Instants are written in UTC with seconds and `Z`.
- **Intervals** accept the three forms of ISO-8601 without repetition: `start/end`,
  `start/duration` and `duration/end`; a single instant is an interval of length zero ("start
  exactly then"). They are written as `start/duration`.

Every parse error is a `ValueError` whose message is the reason, written for the person who
typed the value (the codec adds the JSON path).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = [
    "Duration",
    "Interval",
    "format_duration",
    "format_instant",
    "parse_duration",
    "parse_instant",
]

_DURATION: Final = re.compile(
    r"""
    P(?:(?P<weeks>\d+)W)?
     (?:(?P<days>\d+)D)?
     (?:T(?:(?P<hours>\d+)H)?
         (?:(?P<minutes>\d+)M)?
         (?:(?P<seconds>\d+(?:[.,]\d{1,9})?)S)?
     )?
    """,
    re.VERBOSE,
)
_CALENDAR_UNITS: Final = re.compile(r"P(?:[^T]*?)\d+(?:[.,]\d+)?[YM]")
_TIME_UNIT_BEFORE_T: Final = re.compile(r"P[^T]*\d+[HS]")
_DURATION_EXAMPLES: Final = "e.g. PT1H30M, P2D or P2W"


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


def parse_duration(text: str) -> Duration:
    """Parse an ISO-8601 duration such as `PT1H30M`, `P2D`, `P2W` or `PT0.5S`.

    Raises:
        ValueError: the text is not a fixed-length, non-negative ISO-8601 duration; the message
            says why (months and years, a missing `T`, a negative sign, a typo).
    """
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO-8601 duration string ({_DURATION_EXAMPLES})")
    value = text.strip().upper()
    if value.startswith("-"):
        raise ValueError(f"negative durations are not allowed: {text!r}")
    if _CALENDAR_UNITS.match(value):
        raise ValueError(
            f"{text!r} uses years or months, which have no fixed length; give days instead "
            "(e.g. P30D)"
        )
    if _TIME_UNIT_BEFORE_T.match(value):
        raise ValueError(f"{text!r}: hours and seconds come after 'T' (e.g. PT1H, not P1H)")
    match = _DURATION.fullmatch(value)
    if match is None or value in {"P", "PT"} or value.endswith("T"):
        raise ValueError(f"{text!r} is not an ISO-8601 duration ({_DURATION_EXAMPLES})")
    parts = {name: part for name, part in match.groupdict().items() if part is not None}
    try:
        return Duration(
            weeks=int(parts.get("weeks", 0)),
            days=int(parts.get("days", 0)),
            hours=int(parts.get("hours", 0)),
            minutes=int(parts.get("minutes", 0)),
            seconds=float(parts.get("seconds", "0").replace(",", ".")),
        )
    except OverflowError:
        raise ValueError(f"{text!r} is too long to be a duration") from None


def format_duration(delta: timedelta) -> str:
    """Write a non-negative `timedelta` as an ISO-8601 duration in the largest whole units.

    `PT0S` for zero; days (never weeks) for whole days; fractions only on seconds.

    Raises:
        ValueError: the duration is negative.
    """
    if delta < timedelta(0):
        raise ValueError(f"negative duration {delta} has no ISO-8601 form here")
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


def parse_instant(text: str) -> tuple[datetime, bool]:
    """Parse an ISO-8601 date or date-time; return it in UTC and whether UTC was assumed.

    A date alone means midnight at the start of that day. Minutes without seconds
    (`2026-09-01T10:00Z`) are accepted.

    Raises:
        ValueError: the text is not an ISO-8601 date or date-time.
    """
    if not isinstance(text, str):
        raise ValueError("expected an ISO-8601 date-time string (e.g. 2026-09-01T10:00:00Z)")
    value = text.strip()
    if value[-1:] in {"z", "Z"}:
        value = value[:-1] + "+00:00"
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO-8601 date-time (e.g. 2026-09-01T10:00:00Z)"
        ) from None
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC), True
    return instant.astimezone(UTC), False


def format_instant(instant: datetime) -> str:
    """Write an aware datetime in UTC with seconds and `Z` (microseconds only when present).

    Raises:
        ValueError: the datetime is naive (its meaning would be a guess).
    """
    if instant.tzinfo is None:
        raise ValueError(f"naive datetime {instant} cannot be written as an instant")
    utc = instant.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


class Interval:
    """A closed time range `[start, end]` from an ISO-8601 interval, both ends in UTC.

    Two intervals are equal when their ends are; `assumed_utc` (whether the text carried no
    zone) does not take part in equality, so a value survives a round trip.
    """

    __slots__ = ("assumed_utc", "end", "start")

    start: datetime
    end: datetime
    assumed_utc: bool

    def __init__(self, start: datetime, end: datetime, *, assumed_utc: bool = False) -> None:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("interval ends must be timezone-aware")
        if end < start:
            raise ValueError(
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
            ValueError: with the reason (repetitions, two durations, a bad part, end before
                start).
        """
        if not isinstance(text, str):
            raise ValueError(
                "expected an ISO-8601 interval string (e.g. 2026-09-01T10:00:00Z/PT2H)"
            )
        value = text.strip()
        if value[:1] in {"R", "r"}:
            raise ValueError(f"{text!r}: repeating intervals are not supported")
        parts = value.split("/")
        if len(parts) > 2:
            raise ValueError(f"{text!r} has more than one '/'")
        if len(parts) == 1:
            if value[:1] in {"P", "p"}:
                raise ValueError(
                    f"{text!r} is a duration, not an interval; give a start too "
                    "(e.g. 2026-09-01T10:00:00Z/PT2H)"
                )
            instant, assumed = parse_instant(value)
            return cls(instant, instant, assumed_utc=assumed)
        first, second = parts
        first_is_duration = first[:1] in {"P", "p"}
        second_is_duration = second[:1] in {"P", "p"}
        if first_is_duration and second_is_duration:
            raise ValueError(
                f"{text!r}: an interval needs at least one date-time, not two durations"
            )
        if first_is_duration:
            end, assumed = parse_instant(second)
            return cls(end - parse_duration(first), end, assumed_utc=assumed)
        start, assumed = parse_instant(first)
        if second_is_duration:
            return cls(start, start + parse_duration(second), assumed_utc=assumed)
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
