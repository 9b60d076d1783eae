"""ISO-8601 durations, instants and start intervals as the publisher's file and hand-off use them.

The text is read and written by `core.time`, the one ISO-8601 module (its bounds included);
this module keeps the catalogue's own rules on top of it: a duration here must be longer than
zero (a runtime or a requested duration), and an instant must carry its time zone (a publisher
or researcher types it, and a guessed zone would silently move the start by hours).

Pure: parsing and formatting only, no clock. Errors are `core.time.InvalidTime` (a
`ValueError`) whose message is a reason a person can act on; callers attach the field name.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from core import time
from core.time import InvalidTime, format_duration, format_instant

__all__ = [
    "DURATION_EXAMPLES",
    "format_duration",
    "format_instant",
    "parse_duration",
    "parse_instant",
    "parse_start",
]

DURATION_EXAMPLES: Final = "e.g. PT30M, PT2H, P1DT6H"
_ZONE_EXAMPLE: Final = "e.g. Z for UTC: 2026-09-01T10:00Z"


def parse_duration(text: str) -> timedelta:
    """A positive ISO-8601 duration (`PT2H`, `P1DT6H`, `P2W`); years and months are refused.

    Raises:
        InvalidTime: when `text` is not a positive ISO-8601 duration within
            `core.time.LONGEST_DURATION`.
    """
    value = time.parse_duration(text)
    if value <= timedelta(0):
        raise InvalidTime(f"{text!r}: a duration must be longer than zero ({DURATION_EXAMPLES})")
    return value


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant with a time zone (`2026-09-01T10:00Z`), returned in UTC.

    Raises:
        InvalidTime: when it cannot be read, is out of bounds or has no time zone.
    """
    value, assumed_utc = time.parse_instant(text)
    if assumed_utc:
        raise InvalidTime(f"{text!r} has no time zone: add one ({_ZONE_EXAMPLE})")
    return value


def parse_start(text: str) -> str:
    """Normalise a requested start: an ISO-8601 interval (any of the three forms) or an instant.

    Returns the interval in the `start/duration` form the Execution Broker schema uses; an
    instant means "start exactly then" (`<instant>/PT0S`).

    Raises:
        InvalidTime: when a part cannot be read or has no time zone, the interval ends before
            it starts, or it reaches out of bounds.
    """
    interval = time.Interval.parse(text)
    if interval.assumed_utc:
        raise InvalidTime(f"{text!r} has no time zone: add one ({_ZONE_EXAMPLE})")
    return interval.iso()
