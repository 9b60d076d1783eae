"""ISO-8601 durations, instants and start intervals as the publisher's file and hand-off use them.

Pure: parsing and formatting only, no clock. Errors are `ValueError`s whose message is a reason
a person can act on; callers attach the field name.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

DURATION_EXAMPLES: Final = "e.g. PT30M, PT2H, P1DT6H"
_WEEKS = re.compile(r"^P(\d+)W$", re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """A positive ISO-8601 duration (`PT2H`, `P1DT6H`, `P2W`); years and months are refused.

    Raises:
        ValueError: when `text` is not a positive ISO-8601 duration in days or less.
    """
    text = text.strip()
    weeks = _WEEKS.match(text)
    if weeks:
        value = timedelta(weeks=int(weeks.group(1)))
    else:
        try:
            value = msgspec.convert(text, timedelta)
        except msgspec.ValidationError as error:
            if "Only units" in str(error):
                reason = "years and months have no fixed length; use days"
                raise ValueError(f"{text!r}: {reason} ({DURATION_EXAMPLES})") from error
            raise ValueError(
                f"{text!r} is not an ISO-8601 duration ({DURATION_EXAMPLES})"
            ) from error
    if value <= timedelta(0):
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return value


def format_duration(value: timedelta) -> str:
    """The canonical ISO-8601 form of a duration (`PT1H30M`, `P1DT2H`)."""
    seconds = int(value.total_seconds())
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    date = f"{days}D" if days else ""
    time = "".join(
        f"{amount}{unit}"
        for amount, unit in ((hours, "H"), (minutes, "M"), (seconds, "S"))
        if amount
    )
    if not date and not time:
        return "PT0S"
    return f"P{date}" + (f"T{time}" if time else "")


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant with a time zone (`2026-09-01T10:00Z`), returned in UTC.

    Raises:
        ValueError: when it cannot be read or has no time zone.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise ValueError(
            f"{text!r} is not an ISO-8601 date and time (e.g. 2026-09-01T10:00Z)"
        ) from error
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add one (e.g. Z for UTC)")
    return value.astimezone(UTC)


def format_instant(value: datetime) -> str:
    """An instant as `YYYY-MM-DDTHH:MM:SSZ`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_start(text: str) -> str:
    """Normalise a requested start: an interval (`start/end`, `start/duration`) or an instant.

    Returns the interval in the `start/duration` form the Execution Broker schema uses; an
    instant means "start exactly then" (`<instant>/PT0S`).

    Raises:
        ValueError: when neither part can be read, or the interval ends before it starts.
    """
    first, slash, second = text.strip().partition("/")
    begin = parse_instant(first)
    if not slash:
        return f"{format_instant(begin)}/PT0S"
    if second.upper().startswith("P"):
        length = parse_duration(second) if second.upper() != "PT0S" else timedelta(0)
    else:
        end = parse_instant(second)
        if end < begin:
            raise ValueError(f"{text!r}: the interval ends before it starts")
        length = end - begin
    return f"{format_instant(begin)}/{format_duration(length)}"
