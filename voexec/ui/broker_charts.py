"""The broker's pages as charts: offers on a timeline, a session's schedule, platforms' bookings.

Turns `broker_views` (offer sets, sessions) and the platforms' settings and bookings into
`timeline` rows: an offer is a row of preparation, available time and release; a platform is
a row of holds (offers not yet answered, dashed), bookings (accepted sessions, solid; running
ones green) and maintenance windows, over the next hours or days.

Bookings are read from the mappings `BrokerService.bookings` gives (`platform`, `session`,
`phase`, `start`, `end`, `cores`, `memory`, `gpus`, `expires`), leniently like the rest of the
wire format.

Pure: no I/O, no clock (`now` is an argument).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from core.settings import PlatformSettings
from voexec.ui.broker_views import OfferSetView, SessionView
from voexec.ui.formats import duration_text, gib_text, number_text, parse_instant, parse_interval
from voexec.ui.timeline import Chart, Row, Span, place

HOLD_PHASES: Final = frozenset({"OFFERED"})
RUNNING_PHASES: Final = frozenset({"PREPARING", "AVAILABLE", "RUNNING", "RELEASING"})
MARGIN: Final = 0.04
"""Room left on each side of a chart's content, as a share of its window."""


def _spans_of(view: SessionView, label: str) -> list[Span]:
    schedule = view.schedule
    if schedule is None or schedule.start is None or schedule.end is None:
        return []
    closed = view.terminal and view.phase != "COMPLETED"
    spans: list[Span] = []
    if schedule.preparing is not None and schedule.preparing < schedule.start:
        spans.append(
            Span(
                schedule.preparing,
                schedule.start,
                "closed" if closed else "preparing",
                title=f"Preparing: {duration_text(schedule.start - schedule.preparing)}",
            )
        )
    spans.append(
        Span(
            schedule.start,
            schedule.end,
            "closed" if closed else "running",
            label=label,
            title=f"{label}: available for {duration_text(schedule.end - schedule.start)}",
        )
    )
    if schedule.releasing is not None and schedule.releasing_for:
        end = schedule.releasing + schedule.releasing_for
        spans.append(
            Span(
                schedule.releasing,
                end,
                "closed" if closed else "releasing",
                title=f"Releasing: {duration_text(schedule.releasing_for)}",
            )
        )
    return spans


def _window(spans: Sequence[Span], now: datetime) -> tuple[datetime, datetime]:
    start = min([now, *(s.start for s in spans)])
    end = max([now + timedelta(minutes=5), *(s.end for s in spans)])
    margin = (end - start) * MARGIN
    return start - margin, end + margin


def _resources(view: SessionView) -> str:
    parts = []
    if view.cores is not None:
        parts.append(f"{number_text(view.cores)} cores")
    if view.memory is not None:
        parts.append(gib_text(view.memory))
    if view.gpus:
        parts.append(f"{view.gpus} GPU")
    return ", ".join(parts)


def offers_chart(offer_set: OfferSetView, now: datetime) -> Chart | None:
    """Each offer's preparation, available time and release; None when nothing is scheduled."""
    rows = [
        Row(
            label=f"Offer {index}",
            note=f"{offer.platform or ''} · {offer.phase.lower()}",
            spans=_spans_of(offer, _resources(offer)),
        )
        for index, offer in enumerate(offer_set.offers, start=1)
    ]
    spans = [span for row in rows for span in row.spans]
    if not spans:
        return None
    start, end = _window(spans, now)
    return place(rows, start, end, now=now)


def session_chart(session: SessionView, now: datetime) -> Chart | None:
    """The session's schedule on one row; None when it has none."""
    spans = _spans_of(session, _resources(session))
    if not spans:
        return None
    start, end = _window(spans, now)
    row = Row(label=session.platform or "Schedule", note=session.phase.lower(), spans=spans)
    return place([row], start, end, now=now)


# ----------------------------------------------------------------------------- platforms
@dataclass(frozen=True)
class Booking:
    """Capacity held or booked on a platform by one session."""

    session: str
    phase: str
    start: datetime
    end: datetime
    cores: float | None = None
    memory: float | None = None
    gpus: int = 0
    expires: datetime | None = None

    @property
    def kind(self) -> str:
        """The chart's class for it: a hold, a booking, or a booking at work now."""
        if self.phase in HOLD_PHASES:
            return "hold"
        return "active" if self.phase in RUNNING_PHASES else "booking"

    @property
    def label(self) -> str:
        """`8 cores, 16 GiB`."""
        parts = [f"{number_text(self.cores)} cores" if self.cores is not None else ""]
        parts.append(gib_text(self.memory))
        if self.gpus:
            parts.append(f"{self.gpus} GPU")
        return ", ".join(part for part in parts if part)


@dataclass(frozen=True)
class PlatformView:
    """A platform as its page shows it."""

    name: str
    description: str
    adapter: str
    cores: int
    memory: float
    gpus: list[str]
    kinds: list[str]
    limits: list[str]
    cost: str
    maintenance: list[Span]
    bookings: list[Booking] = field(default_factory=list)

    def peak(self, start: datetime, end: datetime) -> tuple[float, float]:
        """The most cores and GiB held or booked at any one instant between start and end."""
        changes: list[tuple[datetime, float, float]] = []
        for b in self.bookings:
            if b.end > start and b.start < end:
                changes.append((max(b.start, start), b.cores or 0, b.memory or 0))
                changes.append((min(b.end, end), -(b.cores or 0), -(b.memory or 0)))
        # Ends sort before starts at the same instant: touching bookings do not add up.
        changes.sort(key=lambda change: (change[0], change[1] > 0))
        cores = memory = most_cores = most_memory = 0.0
        for _, d_cores, d_memory in changes:
            cores, memory = cores + d_cores, memory + d_memory
            most_cores, most_memory = max(most_cores, cores), max(most_memory, memory)
        return most_cores, most_memory


def booking(data: Mapping[str, Any]) -> Booking | None:
    """A booking from its mapping; None when it has no readable start and end."""
    start, end = parse_instant(data.get("start")), parse_instant(data.get("end"))
    if start is None or end is None:
        return None
    cores, memory, gpus = data.get("cores"), data.get("memory"), data.get("gpus")
    return Booking(
        session=str(data.get("session") or ""),
        phase=str(data.get("phase") or ""),
        start=start,
        end=end,
        cores=float(cores) if isinstance(cores, int | float) else None,
        memory=float(memory) if isinstance(memory, int | float) else None,
        gpus=int(gpus) if isinstance(gpus, int) else 0,
        expires=parse_instant(data.get("expires")),
    )


def platform_view(
    settings: PlatformSettings, bookings: Sequence[Mapping[str, Any]]
) -> PlatformView:
    """A configured platform with its bookings."""
    capacity, limits = settings.capacity, settings.limits
    limit_texts = [
        text
        for text in (
            f"{limits.cores} cores" if limits.cores else "",
            gib_text(limits.memory) if limits.memory else "",
            f"{limits.gpus} GPUs" if limits.gpus is not None else "",
            duration_text(limits.duration) if limits.duration else "",
        )
        if text
    ]
    cost = ""
    if settings.cost is not None:
        c = settings.cost
        rates = [
            f"{number_text(c.core_hour, digits=4)} per core-hour" if c.core_hour else "",
            f"{number_text(c.gib_hour, digits=4)} per GiB-hour" if c.gib_hour else "",
            f"{number_text(c.gpu_hour, digits=4)} per GPU-hour" if c.gpu_hour else "",
        ]
        cost = f"{c.unit}: " + ", ".join(rate for rate in rates if rate)
    maintenance = [
        Span(bounds[0], bounds[1], "maintenance", label=window.reason, title=window.reason)
        for window in settings.maintenance
        if (bounds := parse_interval(window.interval)) is not None
    ]
    read = [b for b in (booking(item) for item in bookings) if b is not None]
    return PlatformView(
        name=settings.name,
        description=settings.description,
        adapter=settings.adapter,
        cores=capacity.cores,
        memory=capacity.memory,
        gpus=[f"{g.count} x {g.model} ({gib_text(g.memory)})" for g in capacity.gpus],
        kinds=list(settings.executables),
        limits=limit_texts,
        cost=cost,
        maintenance=maintenance,
        bookings=sorted(read, key=lambda b: b.start),
    )


WINDOWS: Final = (6, 24, 48, 168)
"""The Gantt chart's windows, in hours from now."""
LOOK_BACK: Final = timedelta(hours=1)


def fit_window(platforms: Sequence[PlatformView], now: datetime, asked: int | None = None) -> int:
    """The chart's window in hours from now.

    The one asked for, rounded up to a choice; else the smallest choice that shows every
    hold and booking (at most a week), or a day when there are none.
    """
    if asked is not None:
        return next((hours for hours in WINDOWS if hours >= asked), WINDOWS[-1])
    ends = [b.end for p in platforms for b in p.bookings if b.end > now]
    if not ends:
        return 24
    latest = max(ends)
    return next((h for h in WINDOWS if now + timedelta(hours=h) >= latest), WINDOWS[-1])


def platforms_chart(platforms: Sequence[PlatformView], now: datetime, hours: int) -> Chart:
    """Holds, bookings and maintenance of every platform from an hour ago to `hours` ahead."""
    start = now - LOOK_BACK
    end = now + timedelta(hours=hours)
    rows = [
        Row(
            label=platform.name,
            note=f"{platform.cores} cores, {gib_text(platform.memory)}",
            spans=[
                *platform.maintenance,
                *(
                    Span(
                        b.start,
                        b.end,
                        b.kind,
                        label=b.label,
                        title=f"{b.phase.title()}: {b.label}, {duration_text(b.end - b.start)}",
                    )
                    for b in platform.bookings
                ),
            ],
        )
        for platform in platforms
    ]
    return place(rows, start, end, now=now, max_ticks=8)
