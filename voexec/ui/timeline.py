"""Geometry of the pages' SVG timelines: the offers chart and the platforms' Gantt chart.

Rows of time spans become bars placed on a shared time axis. Horizontal positions are fractions
of the axis (0 to 1), so the template writes them as percentages and the chart stretches to any
screen width while its text keeps its size; vertical positions are pixels. Spans that overlap
within a row go to separate lanes (first-fit over spans sorted by start), so concurrent
bookings on one platform are all visible. Ticks fall on round UTC times (every 15 minutes,
every 6 hours, every day...), chosen so that at most `max_ticks` fit.

Text is laid out for two chart widths, because the server cannot know the real one: `WIDE`,
the narrowest chart on a screen wider than the pages' phone breakpoint, and `NARROW`, the chart
on the narrowest phone. Since positions are fractions, two boxes apart at some width are
further apart at any wider one, so text that fits at `WIDE` fits on every desktop and text that
fits at `NARROW` fits on every phone. Widths of text are estimated from the glyphs of DejaVu
Sans (the widest common sans-serif font, Debian's default), rounded up. Long names are cut with
an ellipsis (the full text stays in the tooltip); a tick whose label would touch another's
keeps its line and loses its label; ticks marked `sparse` are hidden on phones.

Pure: no I/O, no clock (`now` is an argument).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

STEPS: Final = tuple(
    timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)
)
AXIS_HEIGHT: Final = 24
LABEL_HEIGHT: Final = 18
LANE_HEIGHT: Final = 22
ROW_GAP: Final = 12

WIDE: Final = 640
"""Pixels: the narrowest chart above the phone breakpoint (50rem) of `app.css` (703 px at an
801 px wide window in Chromium)."""
NARROW: Final = 250
"""Pixels: the chart on a 320 px phone (254 px there in Chromium)."""
TICK_TEXT: Final = 12
"""Font sizes in pixels, as `app.css` sets them: tick labels, row labels and notes (bold
labels), and the text inside bars (bold)."""
ROW_TEXT: Final = 13
BAR_TEXT: Final = 11
TICK_INSET: Final = 3
"""Pixels between a tick's line and its label."""
BAR_INSET: Final = 5
"""Pixels between a bar's left edge and its text, and kept free on its right."""
ROW_INSET: Final = 2
"""Pixels before a row's label, so the halo of its first glyph is not cut."""
TEXT_GAP: Final = 6
"""The least room between two tick labels, in pixels."""
ELLIPSIS: Final = "\u2026"

# Advance widths in em, rounded up from DejaVu Sans Book; bold is at most BOLD times wider.
_THIN: Final = frozenset(" .,:;'|!()[]ijlft-")
_BROAD: Final = frozenset("mwMW%@")
BOLD: Final = 1.13


def _em(char: str) -> float:
    if char in _THIN:
        return 0.4
    if char in _BROAD:
        return 1.0
    if char.isascii() and (char.islower() or char.isdigit()):
        return 0.64
    if char.isascii() and char.isupper():
        return 0.8
    return 1.0  # anything else, measured as the widest


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    """An upper estimate of `text`'s width in pixels at font size `size`."""
    return sum(_em(char) for char in text) * size * (BOLD if bold else 1.0)


def fit(text: str, width: float, size: float, *, bold: bool = False, middle: bool = False) -> str:
    """`text` cut to `width` pixels.

    The whole text when it fits; else its longest start that fits with an ellipsis (with
    `middle`, its start and its end around one: names often differ only at the end); empty when
    not even two characters would fit.
    """
    if text_width(text, size, bold=bold) <= width:
        return text
    kept = ""
    for length in range(1, len(text)):
        if middle:
            head = length - length * 2 // 5
            candidate = text[:head].rstrip() + ELLIPSIS + text[len(text) - (length - head) :]
        else:
            candidate = text[:length].rstrip() + ELLIPSIS
        if text_width(candidate, size, bold=bold) > width:
            break
        kept = candidate
    return kept if len(kept.replace(ELLIPSIS, "").strip()) >= 2 else ""


def fit_parts(text: str, width: float, size: float, *, bold: bool = False) -> str:
    """`text` cut to `width` pixels, whole parts first.

    Trailing parts go before any part is cut: `8 cores, 16 GiB` becomes `8 cores`.
    """
    parts = text.split(", ")
    for count in range(len(parts), 0, -1):
        shorter = ", ".join(parts[:count])
        if text_width(shorter, size, bold=bold) <= width:
            return shorter
    return fit(parts[0], width, size, bold=bold)


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
    text: str = ""
    """The span's label as it fits inside the bar on a desktop (`WIDE`), maybe cut."""
    short_text: str = ""
    """The same on a phone (`NARROW`)."""

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
    """The row's label as it fits on a desktop (`WIDE`), maybe cut."""
    note: str
    y: int
    """Top of the row's label line, in pixels."""
    height: int
    lanes: int
    bars: list[Bar]
    short_label: str = ""
    """The label as it fits on a phone (`NARROW`), where the note is hidden."""
    title: str = ""
    """The whole label and note, as a tooltip, when either was cut; else empty."""


@dataclass(frozen=True)
class Tick:
    """A labelled line on the time axis."""

    x: float
    label: str
    major: bool
    """True at midnight UTC (the label names the day)."""
    sparse: bool
    """True for the ticks hidden on phones, so that the others' labels do not collide."""
    anchor: str = "start"
    """`start`: the label begins just right of the line; `end`: it ends just left of it
    (near the right edge)."""

    @property
    def x_percent(self) -> str:
        """`x` for an SVG attribute."""
        return f"{self.x * 100:.3f}%"

    @property
    def dx(self) -> int:
        """The label's offset from the line, in pixels."""
        return TICK_INSET if self.anchor == "start" else -TICK_INSET

    def box(self, width: float) -> tuple[float, float]:
        """Left and right edges of the label, in pixels, on a chart `width` pixels wide."""
        line = self.x * width
        extent = text_width(self.label, TICK_TEXT)
        if self.anchor == "start":
            return line + TICK_INSET, line + TICK_INSET + extent
        return line - TICK_INSET - extent, line - TICK_INSET


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


def _label(moment: datetime, step: timedelta) -> str:
    if step >= timedelta(days=1) or (moment.hour == 0 and moment.minute == 0):
        return moment.strftime("%a %d %b")
    return moment.strftime("%H:%M")


def _moments(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    midnight = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    steps_in = -(-(start - midnight) // step)  # ceiling division of timedeltas
    moment = midnight + steps_in * step
    found = []
    while moment <= end:
        found.append(moment)
        moment += step
    return found


def _step(start: datetime, end: datetime, max_ticks: int) -> timedelta:
    """The shortest step giving at most `max_ticks` ticks whose labels have room at `WIDE`."""
    span = end - start
    for step in STEPS:
        if span / step > max_ticks:
            continue
        widest = max(
            (text_width(_label(m, step), TICK_TEXT) for m in _moments(start, end, step)),
            default=0.0,
        )
        if step / span * WIDE >= widest + TICK_INSET + TEXT_GAP:
            return step
    return STEPS[-1]


def _anchored(tick: Tick, width: float) -> Tick:
    """The tick with its label after its line, or before it when it would pass the edge."""
    after = replace(tick, anchor="start")
    return after if after.box(width)[1] <= width else replace(tick, anchor="end")


def _clear(box: tuple[float, float], taken: list[tuple[float, float]], width: float) -> bool:
    left, right = box
    if left < 0 or right > width:
        return False
    return all(
        right + TEXT_GAP <= other_left or other_right + TEXT_GAP <= left
        for other_left, other_right in taken
    )


def ticks(start: datetime, end: datetime, max_ticks: int = 8) -> list[Tick]:
    """Round UTC times between `start` and `end`, at most `max_ticks` (plus one) of them.

    On a phone (`NARROW`) only the ticks not marked `sparse` show: taken from the left, each
    whose label has room beside those already kept. On a desktop (`WIDE`) all show, and a
    sparse tick whose label would touch another's loses its label.
    """
    if end <= start:
        return []
    step = _step(start, end, max_ticks)
    length = (end - start).total_seconds()
    placed = [
        Tick(
            x=_fraction(moment, start, length),
            label=_label(moment, step),
            major=moment.hour == 0 and moment.minute == 0,
            sparse=True,
        )
        for moment in _moments(start, end, step)
    ]
    on_phone: list[tuple[float, float]] = []
    for index, tick in enumerate(placed):
        anchored = _anchored(tick, NARROW)
        if _clear(anchored.box(NARROW), on_phone, NARROW):
            placed[index] = replace(anchored, sparse=False)
            on_phone.append(anchored.box(NARROW))
    on_desktop = [tick.box(WIDE) for tick in placed if not tick.sparse]
    for index, tick in enumerate(placed):
        if tick.sparse:
            anchored = _anchored(tick, WIDE)
            if _clear(anchored.box(WIDE), on_desktop, WIDE):
                placed[index] = anchored
                on_desktop.append(anchored.box(WIDE))
            else:
                placed[index] = replace(anchored, label="")
    return placed


def _row_texts(label: str, note: str) -> tuple[str, str, str]:
    """The label and note as they fit at `WIDE`, and the label as it fits at `NARROW`."""
    room = WIDE - ROW_INSET
    note_width = text_width(" " + note, ROW_TEXT) if note else 0.0
    # The name comes first: it keeps at least 60% of the line, the note gets what is left.
    wide_label = fit(label, max(room - note_width, room * 0.6), ROW_TEXT, bold=True, middle=True)
    rest = room - text_width(wide_label + " ", ROW_TEXT, bold=True)
    wide_note = fit(note, rest, ROW_TEXT) if note else ""
    short_label = fit(label, NARROW - ROW_INSET, ROW_TEXT, bold=True, middle=True)
    return wide_label, wide_note, short_label


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
            x = min(x, 1 - minimum)
            width = min(width, 1 - x)
            bars.append(
                Bar(
                    span=span,
                    x=x,
                    width=width,
                    y=bars_top + lane * LANE_HEIGHT,
                    height=LANE_HEIGHT - 4,
                    clipped=span.start < start or span.end > end,
                    text=fit_parts(span.label, width * WIDE - 2 * BAR_INSET, BAR_TEXT, bold=True),
                    short_text=fit_parts(
                        span.label, width * NARROW - 2 * BAR_INSET, BAR_TEXT, bold=True
                    ),
                )
            )
        height = LABEL_HEIGHT + max(count, 1) * LANE_HEIGHT + ROW_GAP
        label, note, short_label = _row_texts(row.label, row.note)
        cut = (label, note) != (row.label, row.note) or short_label != row.label
        placed.append(
            PlacedRow(
                label=label,
                note=note,
                y=y,
                height=height,
                lanes=count,
                bars=bars,
                short_label=short_label,
                title=" ".join(part for part in (row.label, row.note) if part) if cut else "",
            )
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
