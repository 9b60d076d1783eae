"""Geometry of the pages' SVG timelines: the offers chart and the platforms' Gantt chart.

Rows of time spans become bars placed on a shared time axis. Horizontal positions are fractions
of the axis (0 to 1), so the template writes them as percentages and the chart stretches to any
screen width while its text keeps its size; vertical positions are pixels. Spans that overlap
within a row go to separate lanes (first-fit over spans sorted by start), so concurrent
bookings on one platform are all visible. Ticks fall on round UTC times (every 15 minutes,
every 6 hours, every day...), chosen so that at most `max_ticks` fit.

Pure: no I/O, no clock (`now` is an argument).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

STEPS: Final = tuple(
    timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)
)
AXIS_HEIGHT: Final = 24
LABEL_HEIGHT: Final = 18
LANE_HEIGHT: Final = 22
ROW_GAP: Final = 12


@dataclass(frozen=True)
class Span:
    """Something that happens from `start` to `end` on a row."""

    start: datetime
    end: datetime
    kind: str
    """A CSS class: `preparing`, `running`, `releasing`, `hold`, `booking`, `maintenance`..."""
    label: str = ""
    """Short text drawn inside the bar when it fits."""
    title: str = ""
    """Full description (tooltip and accessible text)."""


@dataclass(frozen=True)
class Row:
    """One line of the chart: an offer, or a platform."""

    label: str
    spans: Sequence[Span]
    note: str = ""
    """Text after the label, e.g. the platform's capacity."""


@dataclass(frozen=True)
class Bar:
    """A span placed on the chart."""

    span: Span
    x: float
    """Left edge, a fraction of the axis width."""
    width: float
    """A fraction of the axis width (never zero, so an instant stays visible)."""
    y: int
    """Top, in pixels."""
    height: int
    clipped: bool
    """True when the span runs beyond the chart's window."""

    @property
    def x_percent(self) -> str:
        """`x` for an SVG attribute."""
        return f"{self.x * 100:.3f}%"

    @property
    def width_percent(self) -> str:
        """`width` for an SVG attribute."""
        return f"{self.width * 100:.3f}%"


@dataclass(frozen=True)
class PlacedRow:
    """A row with its bars and its vertical place."""

    label: str
    note: str
    y: int
    """Top of the row's label line, in pixels."""
    height: int
    lanes: int
    bars: list[Bar]


@dataclass(frozen=True)
class Tick:
    """A labelled line on the time axis."""

    x: float
    label: str
    major: bool
    """True at midnight UTC (the label names the day)."""
    sparse: bool
    """True for every other tick: hidden on narrow screens so labels do not collide."""

    @property
    def x_percent(self) -> str:
        """`x` for an SVG attribute."""
        return f"{self.x * 100:.3f}%"


@dataclass(frozen=True)
class Chart:
    """A chart ready to draw."""

    start: datetime
    end: datetime
    rows: list[PlacedRow]
    ticks: list[Tick]
    now: float | None
    """Where "now" falls, a fraction of the axis; None when outside the window."""
    height: int

    @property
    def now_percent(self) -> str:
        """`now` for an SVG attribute (empty when outside the window)."""
        return "" if self.now is None else f"{self.now * 100:.3f}%"


def lanes(spans: Sequence[Span]) -> list[int]:
    """The lane of each span (in the given order): overlapping spans never share a lane.

    Spans that only touch (one ends when the next starts) share a lane, so an offer's
    preparation, run and release sit on one line.
    """
    order = sorted(range(len(spans)), key=lambda i: (spans[i].start, spans[i].end))
    ends: list[datetime] = []
    assigned = [0] * len(spans)
    for index in order:
        span = spans[index]
        for lane, end in enumerate(ends):
            if end <= span.start:
                ends[lane] = span.end
                assigned[index] = lane
                break
        else:
            ends.append(span.end)
            assigned[index] = len(ends) - 1
    return assigned


def _fraction(moment: datetime, start: datetime, length: float) -> float:
    return (moment - start).total_seconds() / length


def _step(span: timedelta, max_ticks: int) -> timedelta:
    for step in STEPS:
        if span / step <= max_ticks:
            return step
    return STEPS[-1]


def ticks(start: datetime, end: datetime, max_ticks: int = 8) -> list[Tick]:
    """Round UTC times between `start` and `end`, at most `max_ticks` (plus one) of them."""
    if end <= start:
        return []
    step = _step(end - start, max_ticks)
    midnight = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    steps_in = -(-(start - midnight) // step)  # ceiling division of timedeltas
    moment = midnight + steps_in * step
    length = (end - start).total_seconds()
    placed: list[Tick] = []
    while moment <= end:
        major = moment.hour == 0 and moment.minute == 0
        if step >= timedelta(days=1) or major:
            label = moment.strftime("%a %d %b")
        else:
            label = moment.strftime("%H:%M")
        placed.append(
            Tick(
                x=_fraction(moment, start, length),
                label=label,
                major=major,
                sparse=len(placed) % 2 == 1,
            )
        )
        moment += step
    return placed


def place(
    rows: Sequence[Row],
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
    max_ticks: int = 8,
) -> Chart:
    """Lay `rows` out on the window from `start` to `end`.

    Spans wholly outside the window are left out; spans crossing its edges are cut to it and
    marked `clipped`.

    Raises:
        ValueError: the window is empty (`end` is not after `start`).
    """
    if end <= start:
        raise ValueError("a chart's window must end after it starts")
    length = (end - start).total_seconds()
    minimum = 0.004  # about 4 px on a 1000 px chart: an instant is still a visible bar
    placed: list[PlacedRow] = []
    y = AXIS_HEIGHT
    for row in rows:
        visible = [s for s in row.spans if s.end > start and s.start < end]
        lane_of = lanes(visible)
        count = max(lane_of, default=-1) + 1
        bars_top = y + LABEL_HEIGHT
        bars: list[Bar] = []
        for span, lane in zip(visible, lane_of, strict=True):
            left = max(span.start, start)
            right = min(span.end, end)
            x = _fraction(left, start, length)
            width = max(_fraction(right, start, length) - x, minimum)
            bars.append(
                Bar(
                    span=span,
                    x=min(x, 1 - minimum),
                    width=min(width, 1 - min(x, 1 - minimum)),
                    y=bars_top + lane * LANE_HEIGHT,
                    height=LANE_HEIGHT - 4,
                    clipped=span.start < start or span.end > end,
                )
            )
        height = LABEL_HEIGHT + max(count, 1) * LANE_HEIGHT + ROW_GAP
        placed.append(
            PlacedRow(label=row.label, note=row.note, y=y, height=height, lanes=count, bars=bars)
        )
        y += height
    now_x = _fraction(now, start, length) if now is not None and start <= now <= end else None
    return Chart(
        start=start,
        end=end,
        rows=placed,
        ticks=ticks(start, end, max_ticks),
        now=now_x,
        height=y,
    )
