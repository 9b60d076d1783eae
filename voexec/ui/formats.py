"""Numbers, durations and instants as people read them on the pages.

The broker's wire format writes instants as ISO-8601 strings (`2026-11-22T03:40:10Z`), start
intervals as `start/duration` and durations as `PT2M`; these helpers read them through
`core.time` (the one ISO-8601 parser, so a page reads exactly what the broker wrote) but
leniently (a value that cannot be read gives None, never an exception: a page must render
even when a field is odd) and write them in a short, readable form. Times are shown in UTC on
the server; the browser rewrites `<time data-local>` elements to local time.

Pure: no I/O, no clock (`now` is an argument).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from core import time
from core.time import InvalidTime

_UNITS: Final = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))


def parse_instant(value: object) -> datetime | None:
    """An aware UTC datetime from a datetime or an ISO-8601 string (None when unreadable).

    A start interval (`start/duration`) gives its first instant.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return time.parse_instant(value.strip().partition("/")[0])[0]
    except InvalidTime:
        return None


def parse_duration(value: object) -> timedelta | None:
    """A timedelta from a timedelta or an ISO-8601 duration (`PT2M`; None when unreadable)."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return time.parse_duration(value)
    except InvalidTime:
        return None


def _interval(value: object) -> time.Interval | None:
    if not isinstance(value, str) or "/" not in value:
        return None
    try:
        return time.Interval.parse(value)
    except InvalidTime:
        return None


def interval_length(value: object) -> timedelta:
    """The length of an interval in any of its three forms (zero for an instant or junk)."""
    interval = _interval(value)
    return interval.duration if interval is not None else timedelta(0)


def parse_interval(value: object) -> tuple[datetime, datetime] | None:
    """The bounds of an interval that lasts some time (None when unreadable or of length zero)."""
    interval = _interval(value)
    if interval is None or interval.end == interval.start:
        return None
    return interval.start, interval.end


def duration_text(value: object, *, parts: int = 2) -> str:
    """`1 h 30 min`, `2 d 6 h`, `45 s`: the largest `parts` units, zero units left out."""
    length = parse_duration(value)
    if length is None:
        return "" if value is None else str(value)
    seconds = round(abs(length.total_seconds()))
    if seconds == 0:
        return "0 s"
    words: list[str] = []
    for unit, size in _UNITS:
        amount, seconds = divmod(seconds, size)
        if amount:
            words.append(f"{amount} {unit}")
        if len(words) == parts:
            break
    return " ".join(words)


def instant_text(value: object, *, seconds: bool = False) -> str:
    """`22 Nov 2026, 03:42 UTC` (empty when there is no instant)."""
    moment = parse_instant(value)
    if moment is None:
        return ""
    pattern = "%d %b %Y, %H:%M:%S UTC" if seconds else "%d %b %Y, %H:%M UTC"
    return moment.strftime(pattern)


def iso(value: object) -> str:
    """The instant as `2026-11-22T03:40:10Z`, for `datetime` attributes and scripts."""
    moment = parse_instant(value)
    return time.format_instant(moment.replace(microsecond=0)) if moment else ""


def relative_text(value: object, now: datetime) -> str:
    """`in 4 min`, `3 h ago`, `now`: how far an instant is from `now`."""
    moment = parse_instant(value)
    if moment is None:
        return ""
    delta = moment - now
    if abs(delta) < timedelta(seconds=1):
        return "now"
    text = duration_text(abs(delta), parts=1)
    return f"in {text}" if delta > timedelta(0) else f"{text} ago"


def number_text(value: float | int | None, *, digits: int = 2) -> str:
    """`8`, `0.5`, `12.25`: no trailing zeros, at most `digits` decimals."""
    if value is None:
        return ""
    rounded = round(float(value), digits)
    return f"{rounded:.{digits}f}".rstrip("0").rstrip(".") if rounded % 1 else f"{int(rounded)}"


def gib_text(value: float | int | None) -> str:
    """`8 GiB`."""
    return "" if value is None else f"{number_text(value)} GiB"


def plural(count: int, singular: str, many: str | None = None) -> str:
    """`1 offer`, `3 offers`."""
    return f"{count} {singular if count == 1 else (many or singular + 's')}"


def short_hash(value: str | None, length: int = 12) -> str:
    """The start of a commit id or digest (`sha256:` kept), for display beside the full value."""
    if not value:
        return ""
    algorithm, colon, digest = value.partition(":")
    if colon and digest:
        return f"{algorithm}:{digest[:length]}"
    return value[:length]


def countdown_text(until: object, now: datetime) -> str:
    """Time left as a clock: `4:05`, `1:02:03`, or `0:00` when it has passed."""
    moment = parse_instant(until)
    if moment is None:
        return ""
    left = max(int((moment - now).total_seconds()), 0)
    hours, rest = divmod(left, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
