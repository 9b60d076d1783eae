"""Time intervals and usage timelines: the arithmetic under the broker's scheduling.

Two levels, both pure (no I/O, no clock; imports the standard library, msgspec and
`core.time`):

* `Interval` is a half-open UTC interval `[start, end)` of aware datetimes, with `union`,
  `intersection` and `subtract` over lists of them, and `parse_interval` for the three
  ISO-8601 forms (`start/end`, `start/duration`, `duration/end`). The text is read by
  `core.time`, the one ISO-8601 parser, bounds included; `format_duration` is its writer,
  re-exported for the scheduler's messages.
* `UsageTimeline` is a step function of time: sorted breakpoints with the summed usage of each
  dimension (cores, memory units, one per GPU model...) between them. It is built by one sweep
  over the bookings, so its cost depends on the number of bookings, never on the length of the
  horizon or on a time step. It works on integer microseconds since the epoch (`to_micros`) so
  that the hot loops compare plain ints and the sums are exact.

A booking occupies `[start, end)`: a session ending at 10:00 and one starting at 10:00 never
overlap.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from operator import neg
from typing import TypeAlias

import msgspec

from core.time import Interval as TextInterval
from core.time import InvalidTime, format_duration, format_instant

__all__ = [
    "BEGINNING",
    "ENDING",
    "EPOCH",
    "ExcessScan",
    "Interval",
    "Span",
    "UsageTimeline",
    "duration_micros",
    "format_duration",
    "from_micros",
    "intersection",
    "parse_interval",
    "subtract",
    "to_micros",
    "union",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

BEGINNING = -(2**62)
"""A time before every real instant, in microseconds (the timeline's first breakpoint)."""
ENDING = 2**62
"""A time after every real instant, in microseconds (the end of an unbounded range)."""


def to_micros(instant: datetime) -> int:
    """Microseconds since 1970-01-01T00:00Z of an aware datetime (exact, unlike `timestamp()`)."""
    return (instant - EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime `micros` microseconds after the epoch."""
    return EPOCH + timedelta(microseconds=micros)


def duration_micros(duration: timedelta) -> int:
    """A duration in whole microseconds."""
    return duration // _MICROSECOND


class Interval(msgspec.Struct, frozen=True, order=True):
    """The half-open interval `[start, end)` between two aware datetimes.

    An empty interval (`start == end`) is allowed: as a start window it means "exactly then".
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(f"interval {self.start}/{self.end} needs timezone-aware instants")
        if self.end < self.start:
            raise ValueError(
                "interval ends before it starts: "
                f"{format_instant(self.start)}/{format_instant(self.end)}"
            )

    @classmethod
    def of(cls, start: datetime, duration: timedelta) -> Interval:
        """The interval that starts at `start` and lasts `duration`."""
        return cls(start, start + duration)

    @property
    def duration(self) -> timedelta:
        """How long the interval lasts."""
        return self.end - self.start

    @property
    def is_empty(self) -> bool:
        """True for a zero-length interval, which contains no instant."""
        return self.end == self.start

    def contains(self, instant: datetime) -> bool:
        """True when `start <= instant < end`."""
        return self.start <= instant < self.end

    def overlaps(self, other: Interval) -> bool:
        """True when the two intervals share at least one instant."""
        return self.start < other.end and other.start < self.end

    def intersection(self, other: Interval) -> Interval | None:
        """The instants in both intervals, or None when they share none."""
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Interval(start, end) if start < end else None

    def isoformat(self) -> str:
        """The ISO-8601 `start/end` form, both ends in UTC with `Z`."""
        return f"{format_instant(self.start)}/{format_instant(self.end)}"


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """The same instants as sorted, disjoint, non-touching intervals; empty ones are dropped."""
    merged: list[Interval] = []
    for interval in sorted(i for i in intervals if not i.is_empty):
        if merged and interval.start <= merged[-1].end:
            if interval.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return merged


def intersection(first: Iterable[Interval], second: Iterable[Interval]) -> list[Interval]:
    """The instants in both sets, as sorted disjoint intervals (a sweep with two cursors)."""
    left, right = union(first), union(second)
    result: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        common = left[i].intersection(right[j])
        if common is not None:
            result.append(common)
        if left[i].end <= right[j].end:
            i += 1
        else:
            j += 1
    return result


def subtract(minuend: Iterable[Interval], subtrahend: Iterable[Interval]) -> list[Interval]:
    """The instants of `minuend` that are not in `subtrahend`, as sorted disjoint intervals."""
    holes = union(subtrahend)
    result: list[Interval] = []
    first_hole = 0
    for interval in union(minuend):
        start = interval.start
        # Holes ending before this interval cannot touch any later interval either.
        while first_hole < len(holes) and holes[first_hole].end <= start:
            first_hole += 1
        k = first_hole
        while k < len(holes) and holes[k].start < interval.end:
            if holes[k].start > start:
                result.append(Interval(start, holes[k].start))
            start = max(start, holes[k].end)
            k += 1
        if start < interval.end:
            result.append(Interval(start, interval.end))
    return result


def parse_interval(text: str) -> Interval:
    """An ISO-8601 interval with both ends: `start/end`, `start/duration` or `duration/end`.

    Read by `core.time` (its bounds included; a time without a zone is taken as UTC). Unlike
    a requested start, a single instant is refused: a maintenance window has a length.

    Raises:
        InvalidTime: naming the text, when it is none of the three forms or out of bounds.
    """
    if "/" not in text:
        raise InvalidTime(f"not an ISO-8601 interval (expected start/end): {text!r}")
    try:
        parsed = TextInterval.parse(text)
    except InvalidTime as error:
        raise InvalidTime(f"not a valid ISO-8601 interval {text!r}: {error}") from error
    return Interval(parsed.start, parsed.end)


# ------------------------------------------------------------------------- usage timeline
Span: TypeAlias = tuple[int, int, Sequence[int]]
"""`(start, end, amounts)`: something using `amounts[d]` of dimension `d` during `[start, end)`."""


class UsageTimeline:
    """Summed usage of several dimensions as a step function of time (integer microseconds).

    `times[i]` is a breakpoint and `levels[d][i]` the usage of dimension `d` from `times[i]` up
    to `times[i + 1]` (the last level lasts for ever). `times[0]` is `BEGINNING` with level 0, so
    every instant falls in exactly one segment. It changes only through `add`, which a search
    uses for the holds of offers it has just chosen.
    """

    __slots__ = ("levels", "times")

    def __init__(self, times: list[int], levels: list[list[int]]) -> None:
        if not times or times[0] != BEGINNING or any(len(level) != len(times) for level in levels):
            raise ValueError("a timeline starts at BEGINNING and has one level per breakpoint")
        self.times = times
        self.levels = levels

    @classmethod
    def sweep(cls, spans: Iterable[Span], dimensions: int) -> UsageTimeline:
        """Build the timeline from `(start, end, amounts)` spans; see `from_columns`."""
        listed = list(spans)
        return cls.from_columns(
            [span[0] for span in listed],
            [span[1] for span in listed],
            [[span[2][dimension] for span in listed] for dimension in range(dimensions)],
        )

    @classmethod
    def from_columns(
        cls, starts: Sequence[int], ends: Sequence[int], amounts: Sequence[Sequence[int] | None]
    ) -> UsageTimeline:
        """Build the timeline in one sweep over the sorted starts and ends of n spans.

        Span `i` uses `amounts[d][i]` of dimension `d` during `[starts[i], ends[i])`; a
        dimension given as None is used by no span. Spans with `end <= start` add nothing.
        Cost: one sort of the 2n ends, then linear passes that stay in C as much as possible
        (this runs once per platform per search, over every relevant booking).
        """
        count = len(starts)
        times = [*starts, *ends]
        order = sorted(range(2 * count), key=times.__getitem__)
        ordered = list(map(times.__getitem__, order))
        # Several ends at one instant make one breakpoint, holding the level after all of them.
        last = [k for k in range(2 * count - 1) if ordered[k] != ordered[k + 1]]
        if count:
            last.append(2 * count - 1)
        levels: list[list[int]] = []
        for column in amounts:
            if column is None or not any(column):
                levels.append([0] * (len(last) + 1))
                continue
            deltas = [*column, *map(neg, column)]
            running = list(accumulate(map(deltas.__getitem__, order)))
            levels.append([0, *map(running.__getitem__, last)])
        return cls([BEGINNING, *map(ordered.__getitem__, last)], levels)

    def level_at(self, instant: int) -> tuple[int, ...]:
        """The usage of every dimension at one instant."""
        index = bisect_right(self.times, instant) - 1
        return tuple(level[index] for level in self.levels)

    def segments(self, start: int = BEGINNING, end: int = ENDING) -> Iterator[Span]:
        """The constant pieces that overlap `[start, end)`, clipped to it, in time order."""
        times = self.times
        index = bisect_right(times, start) - 1
        while index < len(times) and times[index] < end:
            piece_end = times[index + 1] if index + 1 < len(times) else ENDING
            yield (
                max(times[index], start),
                min(piece_end, end),
                tuple(level[index] for level in self.levels),
            )
            index += 1

    def breakpoints(self, start: int, end: int) -> list[int]:
        """The breakpoints `t` with `start < t <= end` (where the usage may change)."""
        times = self.times
        return times[bisect_right(times, start) : bisect_right(times, end)]

    def peak(self, start: int, end: int) -> tuple[int, ...]:
        """The highest usage of each dimension over `[start, end)` (`end > start`)."""
        first = bisect_right(self.times, start) - 1
        last = bisect_left(self.times, end)
        return tuple(max(level[first:last]) for level in self.levels)

    def window_peaks(
        self, starts: Iterable[int], length: int, dimensions: Sequence[int]
    ) -> Iterator[tuple[int, ...]]:
        """For each start, the highest usage of `dimensions` over `[start, start + length)`.

        `starts` must be ascending and `length` positive. Both ends of the window only move
        forward, so one monotonic deque per dimension answers every window in O(n + k) in all
        (k starts over n breakpoints) instead of rescanning each window. Lazy: a caller that
        stops early pays only for the windows it looked at.

        Yields:
            The peak of each of `dimensions`, in that order, for each start.
        """
        times = self.times
        count = len(times)
        levels = [self.levels[dimension] for dimension in dimensions]
        windows: list[deque[int]] = [deque() for _ in dimensions]  # indexes, levels decreasing
        following = 0  # first segment not yet pushed: it starts at or after the window's end
        for start in starts:
            first = bisect_right(times, start) - 1  # the segment holding the window's start
            following = max(following, first)
            end = start + length
            while following < count and times[following] < end:
                for level, window in zip(levels, windows, strict=True):
                    value = level[following]
                    while window and level[window[-1]] <= value:
                        window.pop()
                    window.append(following)
                following += 1
            peaks = []
            for level, window in zip(levels, windows, strict=True):
                while window[0] < first:
                    window.popleft()
                peaks.append(level[window[0]])
            yield tuple(peaks)

    def add(self, start: int, end: int, amounts: Sequence[int]) -> None:
        """Add one more span in place (a hold placed after the sweep); O(n) list moves."""
        if end <= start:
            return
        first, stop = self._split(start), self._split(end)
        for level, amount in zip(self.levels, amounts, strict=True):
            if amount:
                for index in range(first, stop):
                    level[index] += amount

    def _split(self, instant: int) -> int:
        """Make `instant` a breakpoint (same levels on both sides) and return its index."""
        index = bisect_left(self.times, instant)
        if index < len(self.times) and self.times[index] == instant:
            return index
        self.times.insert(index, instant)
        for level in self.levels:
            level.insert(index, level[index - 1])
        return index


class ExcessScan:
    """Finds, for ascending instants, the next breakpoint where usage goes above given limits.

    Used to measure how long a slot's resources stay free after its end. The scan only moves
    forward, so a run of queries with ascending instants costs O(n) in all.
    """

    __slots__ = ("_checked", "_index", "_times")

    def __init__(self, timeline: UsageTimeline, limits: Sequence[int | None]) -> None:
        self._times = timeline.times
        self._checked = [
            (level, limit)
            for level, limit in zip(timeline.levels, limits, strict=True)
            if limit is not None
        ]
        self._index = 0

    def next_excess(self, instant: int, give_up_at: int) -> int:
        """The first excess at or after `instant`, or `give_up_at` if none comes before it.

        An excess is a breakpoint after which some usage is above its limit. Successive calls
        must not decrease `instant` or `give_up_at`.
        """
        times, checked = self._times, self._checked
        index = max(self._index, bisect_left(times, instant))
        while index < len(times) and times[index] < give_up_at:
            if any(level[index] > limit for level, limit in checked):
                self._index = index
                return times[index]
            index += 1
        self._index = index
        return give_up_at
