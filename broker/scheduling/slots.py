"""Where and when a demand fits: a platform's free capacity over time, and the slots it leaves.

Owns `find_slots`, `explain_no_slots`, `usage_timeline` and `free_capacity`. Pure: no I/O,
no clock (`now` is an argument), no database, no globals; the same input always gives the same
output. The domain types live in `broker.scheduling.resources` and are re-exported here.

How a search works, for one platform:

1. The requested start windows are clipped to `[now + preparation, now + horizon]`. A window
   is the *closed* range of instants the session may start at, so a zero-length window means
   "start exactly then".
2. One sweep over the live bookings and holds that overlap the range of interest, plus the
   maintenance windows (which take everything), gives a `UsageTimeline` per resource
   dimension: cores, memory, managed storage, and one dimension per GPU model.
3. Candidate starts are each window's start and every breakpoint inside a window, i.e. every
   instant where capacity frees up. The earliest feasible start, the start with the most free
   resources and the start with the most room after it are always among them, so nothing is
   lost to a time step.
4. For every candidate, the peak usage over `[start, start + duration)` (a sliding-window
   maximum) says whether the minimum fits and how much more can be offered.

GPUs are offered per model: a slot gets `count_min` devices of one acceptable model, and each
acceptable model is searched on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta

from broker.scheduling.intervals import (
    ExcessScan,
    Interval,
    UsageTimeline,
    duration_micros,
    format_duration,
    from_micros,
    to_micros,
)
from broker.scheduling.resources import (
    MEMORY_UNITS_PER_GIB,
    Booking,
    BookingKind,
    Demand,
    Gpu,
    GpuDemand,
    GpuShare,
    Limits,
    PlatformSpec,
    Prices,
    Reason,
    Resources,
    Slot,
    SlotPolicy,
    assess,
    capacity_units,
    counted,
    gpu_models,
    kind_name,
    memory_units,
    reason,
    units_to_gib,
)
from core.time import LONGEST_DURATION

__all__ = [
    "Booking",
    "BookingKind",
    "Demand",
    "Gpu",
    "GpuDemand",
    "GpuShare",
    "Limits",
    "PlatformSpec",
    "Prices",
    "Reason",
    "Resources",
    "Slot",
    "SlotPolicy",
    "SlotSearch",
    "assess",
    "booking_range",
    "earliest_start",
    "explain_no_slots",
    "find_slots",
    "free_capacity",
    "kind_name",
    "usage_timeline",
]


# ------------------------------------------------------------------------- the timeline
class _Layout:
    """How one platform's resources map onto the dimensions of its usage timeline."""

    CORES = 0
    MEMORY = 1

    def __init__(self, platform: PlatformSpec) -> None:
        capacity = [platform.cores, capacity_units(platform.memory)]
        self.storage: int | None = None
        if platform.storage is not None:
            self.storage = len(capacity)
            capacity.append(capacity_units(platform.storage))
        self.gpu: dict[str, int] = {}
        for gpu in platform.gpus:
            self.gpu[gpu.model] = len(capacity)
            capacity.append(gpu.count)
        self.capacity = capacity

    def columns(self, bookings: Sequence[Booking], closed: int) -> list[list[int]]:
        """Per dimension, what each booking takes, then the whole capacity `closed` times."""
        held = [booking.resources for booking in bookings]
        columns = [
            [r.cores for r in held],
            [memory_units(r.memory) for r in held],
        ]
        if self.storage is not None:
            columns.append([memory_units(r.storage) for r in held])
        with_gpus = [index for index, r in enumerate(held) if r.gpus]
        for model in self.gpu:
            column = [0] * len(held)
            for index in with_gpus:
                column[index] = sum(s.count for s in held[index].gpus if s.model == model)
            columns.append(column)
        # Maintenance takes everything, on every dimension.
        for column, total in zip(columns, self.capacity, strict=True):
            column.extend([total] * closed)
        return columns

    def amounts(self, resources: Resources) -> list[int]:
        vector = [0] * len(self.capacity)
        vector[self.CORES] = resources.cores
        vector[self.MEMORY] = memory_units(resources.memory)
        if self.storage is not None:
            vector[self.storage] = memory_units(resources.storage)
        for share in resources.gpus:
            # A model the platform no longer has cannot take capacity from the ones it has.
            index = self.gpu.get(share.model)
            if index is not None:
                vector[index] += share.count
        return vector


def usage_timeline(
    platform: PlatformSpec, bookings: Iterable[Booking], within: Interval
) -> tuple[UsageTimeline, list[int]]:
    """The platform's usage over time (bookings, holds and maintenance) and its capacity.

    Only bookings of this platform that overlap `within` are counted, which is exact for every
    instant inside `within`; the holds of one offer set count as their pointwise maximum
    (`broker.scheduling.resources.counted`). Dimensions: cores, memory (MiB), managed storage
    (MiB), then one per GPU model in the platform's order.

    Returns:
        The timeline and the capacity of each dimension.
    """
    layout = _Layout(platform)
    name, first, last = platform.name, within.start, within.end
    # Inlined `Interval.overlaps`: this line sees every booking, the hot path of a search.
    # The holds of one offer set are alternatives: they count by their envelope (`counted`).
    taken = counted(
        booking
        for booking in bookings
        if booking.interval.start < last
        and booking.interval.end > first
        and booking.platform == name
    )
    closed = [interval for interval in platform.maintenance if interval.overlaps(within)]
    starts = [to_micros(b.interval.start) for b in taken] + [to_micros(c.start) for c in closed]
    ends = [to_micros(b.interval.end) for b in taken] + [to_micros(c.end) for c in closed]
    timeline = UsageTimeline.from_columns(starts, ends, layout.columns(taken, len(closed)))
    return timeline, layout.capacity


def free_capacity(
    platform: PlatformSpec, bookings: Iterable[Booking], within: Interval
) -> list[tuple[Interval, Resources]]:
    """What is free on the platform over `within`, piece by piece (for operators' views).

    Free amounts below zero (an over-booked period, say after capacity was lowered) show as 0.
    """
    layout = _Layout(platform)
    timeline, capacity = usage_timeline(platform, bookings, within)
    pieces: list[tuple[Interval, Resources]] = []
    start, end = to_micros(within.start), to_micros(within.end)
    for piece_start, piece_end, used in timeline.segments(start, end):
        free = [max(0, total - use) for total, use in zip(capacity, used, strict=True)]
        pieces.append(
            (
                Interval(from_micros(piece_start), from_micros(piece_end)),
                Resources(
                    cores=free[layout.CORES],
                    memory=units_to_gib(free[layout.MEMORY]),
                    storage=0.0 if layout.storage is None else units_to_gib(free[layout.storage]),
                    gpus=tuple(GpuShare(model, free[index]) for model, index in layout.gpu.items()),
                ),
            )
        )
    return pieces


def earliest_start(
    platform: PlatformSpec,
    bookings: Iterable[Booking],
    resources: Resources,
    duration: timedelta,
    starts: Interval,
) -> datetime | None:
    """The earliest start in `starts` (closed) where `resources` fit for `duration`, or None.

    For moving an accepted session whose start has passed: the same resources, the same
    duration, next to `bookings` (which must not include the session's own hold or its
    siblings'). A resource it takes none of never stops it, as in
    `broker.scheduling.audit.holds_fit`.
    """
    first, last, length = to_micros(starts.start), to_micros(starts.end), duration_micros(duration)
    if first > last or length <= 0:
        return None
    layout = _Layout(platform)
    timeline, capacity = usage_timeline(
        platform, bookings, Interval(starts.start, starts.end + duration)
    )
    amounts = layout.amounts(resources)
    dimensions = [index for index, amount in enumerate(amounts) if amount > 0]
    if not dimensions:
        return starts.start
    candidates = [first, *timeline.breakpoints(first, last)]
    peaks = timeline.window_peaks(candidates, length, dimensions)
    for start, peak in zip(candidates, peaks, strict=True):
        if all(used + amounts[d] <= capacity[d] for used, d in zip(peak, dimensions, strict=True)):
            return from_micros(start)
    return None


# ------------------------------------------------------------------------- the search
class _Plan:
    """One demand on one platform, in timeline units (microseconds, MiB)."""

    def __init__(
        self,
        platform: PlatformSpec,
        demand: Demand,
        now: datetime,
        horizon: timedelta,
        policy: SlotPolicy,
    ) -> None:
        self.platform, self.demand, self.policy = platform, demand, policy
        self.layout = _Layout(platform)
        self.duration = duration_micros(demand.duration)
        # Whatever the stretch, no offer lasts longer than `core.time` reads back: offers are
        # stored and read through its bounded parser (and `datetime` must hold their end).
        longest = min(int(self.duration * policy.stretch), duration_micros(LONGEST_DURATION))
        if platform.limits.duration is not None:
            longest = min(longest, duration_micros(platform.limits.duration))
        self.longest = max(self.duration, longest)
        self.earliest = to_micros(now + platform.preparation)
        self.latest = to_micros(now + horizon)
        # Closed windows [first, last] of allowed start instants, sorted and merged.
        windows: list[tuple[int, int]] = []
        for window in sorted((to_micros(w.start), to_micros(w.end)) for w in demand.windows):
            first, last = max(window[0], self.earliest), min(window[1], self.latest)
            if first > last:
                continue
            if windows and first <= windows[-1][1]:
                windows[-1] = (windows[-1][0], max(last, windows[-1][1]))
            else:
                windows.append((first, last))
        self.windows = windows
        self.extra_starts: set[int] = set()
        """Starts to try besides the breakpoints: where an alternative already offered ends."""
        self.clipped_by_horizon = any(to_micros(w.end) > self.latest for w in demand.windows)

    def range_of_interest(self) -> Interval:
        """Where bookings can matter: from the first start to the last possible end."""
        return Interval(
            from_micros(self.windows[0][0]), from_micros(self.windows[-1][1] + self.longest)
        )

    def candidates(self, timeline: UsageTimeline) -> list[int]:
        starts: list[int] = []
        for first, last in self.windows:
            found = [first, *timeline.breakpoints(first, last)]
            found.extend(at for at in self.extra_starts if first < at <= last)
            starts.extend(sorted(set(found)) if self.extra_starts else found)
        return starts

    def minimum(self, gpu: Gpu | None) -> dict[int, int]:
        """The minimum amount of each dimension the demand needs, with one GPU model."""
        layout, demand = self.layout, self.demand
        needed = {layout.CORES: demand.cores_min, layout.MEMORY: memory_units(demand.memory_min)}
        if layout.storage is not None and demand.storage:
            needed[layout.storage] = memory_units(demand.storage)
        if gpu is not None and demand.gpus is not None:
            needed[layout.gpu[gpu.model]] = demand.gpus.count_min
        return needed

    def ceilings(self) -> tuple[int, int]:
        """The most cores and memory units an offer may give, before looking at the calendar."""
        demand, limits, above = self.demand, self.platform.limits, self.policy.above_minimum
        cores = int(demand.cores_min * above)
        memory = capacity_units(demand.memory_min * above)
        for bound in (demand.cores_max, limits.cores):
            cores = cores if bound is None else min(cores, bound)
        for memory_bound in (demand.memory_max, limits.memory):
            memory = memory if memory_bound is None else min(memory, capacity_units(memory_bound))
        return max(cores, demand.cores_min), max(memory, memory_units(demand.memory_min))

    def gpu_options(self) -> list[Gpu | None]:
        if self.demand.gpus is None:
            return [None]
        return list(gpu_models(self.platform, self.demand.gpus))

    def resources(self, cores: int, memory: int, gpu: Gpu | None) -> Resources:
        """What a slot gives: `cores`, `memory` MiB (the exact minimum if that is all)."""
        demand = self.demand
        shares: tuple[GpuShare, ...] = ()
        if gpu is not None and demand.gpus is not None:
            shares = (GpuShare(gpu.model, demand.gpus.count_min),)
        storage = demand.storage if self.layout.storage is not None else 0.0
        gib = (
            demand.memory_min if memory <= memory_units(demand.memory_min) else units_to_gib(memory)
        )
        return Resources(cores=cores, memory=gib, storage=storage, gpus=shares)


def _whole_gib(units: int) -> int:
    return units - units % MEMORY_UNITS_PER_GIB  # offers give whole GiB, as the wire does


def _feasible_starts(
    plan: _Plan, timeline: UsageTimeline, needed: dict[int, int]
) -> Iterator[tuple[int, tuple[int, ...]]]:
    """Each candidate start where `needed` fits for the whole duration, with the free amounts.

    Free amounts are given for the dimensions of `needed`, in ascending dimension order. A
    dimension needed at 0 is measured but never blocks: taking none of it commits nothing,
    even where it is over-booked.
    """
    capacity = plan.layout.capacity
    dimensions = sorted(needed)
    limits = [capacity[d] - needed[d] if needed[d] else None for d in dimensions]
    starts = plan.candidates(timeline)
    peaks = timeline.window_peaks(starts, plan.duration, dimensions)
    for start, peak in zip(starts, peaks, strict=True):
        if all(limit is None or used <= limit for used, limit in zip(peak, limits, strict=True)):
            yield start, tuple(capacity[d] - used for d, used in zip(dimensions, peak, strict=True))


def _slots_for(
    plan: _Plan, timeline: UsageTimeline, gpu: Gpu | None, skip: Callable[[Slot], bool] | None
) -> list[Slot]:
    layout, platform, duration, longest = plan.layout, plan.platform, plan.duration, plan.longest
    needed = plan.minimum(gpu)
    # `needed` always has cores (dimension 0) and memory (dimension 1), so they come first.
    least_memory = needed[layout.MEMORY]
    max_cores, max_memory = plan.ceilings()
    largest = (max_cores, max(least_memory, _whole_gib(max_memory)))
    limits: list[int | None] = [None] * len(layout.capacity)
    for dimension, amount in needed.items():
        if amount:
            limits[dimension] = layout.capacity[dimension] - amount
    excess = ExcessScan(timeline, limits)
    minimum = plan.resources(plan.demand.cores_min, least_memory, gpu)
    slots: list[Slot] = []
    best_size: tuple[int, int] | None = None
    best_room = -1
    for start, free in _feasible_starts(plan, timeline, needed):
        size = (min(max_cores, free[0]), max(least_memory, _whole_gib(min(max_memory, free[1]))))
        # A feasible start has no excess inside its duration: the next one ends its room.
        latest_end = excess.next_excess(start + duration, start + longest)
        room = latest_end - start
        # Keep only starts that beat every earlier one on size or on room: a later start that
        # is no larger and no longer is never any strategy's better choice.
        if best_size is not None and size <= best_size and room <= best_room:
            continue
        slot = Slot(
            platform=platform.name,
            start=from_micros(start),
            end=from_micros(start + duration),
            offered=plan.resources(size[0], size[1], gpu),
            minimum=minimum,
            latest_end=from_micros(latest_end),
        )
        if skip is not None and skip(slot):
            continue  # already offered: it must not hide the next best
        best_size = size if best_size is None else max(best_size, size)
        best_room = max(best_room, room)
        slots.append(slot)
        if best_size == largest and best_room == longest:
            break  # nothing later can be larger or longer
    return slots


class SlotSearch:
    """The search for one demand on one platform; it can take holds as offers are chosen.

    Building it sweeps the bookings once; `hold` adds a booking to that timeline in place, so
    that choosing several offers on one platform does not sweep the bookings again.
    `find_slots` and `explain_no_slots` are the one-shot forms.

    Args:
        platform: the platform searched.
        bookings: the live bookings and holds (OFFERED not yet expired, ACCEPTED, WAITING,
            PREPARING, AVAILABLE, RUNNING, RELEASING); those of other platforms are ignored.
            They must include every booking that overlaps `booking_range(...)`.
        demand: what is asked.
        now: the current instant (aware).
        horizon: how far ahead a slot may start.
        policy: how generous offers are.
    """

    def __init__(
        self,
        platform: PlatformSpec,
        bookings: Iterable[Booking],
        demand: Demand,
        now: datetime,
        horizon: timedelta,
        *,
        policy: SlotPolicy | None = None,
    ) -> None:
        self.platform, self.demand, self.horizon = platform, demand, horizon
        self.reasons = assess(platform, demand)
        self._plan = _Plan(platform, demand, now, horizon, policy or SlotPolicy())
        self._timeline: UsageTimeline | None = None
        if not self.reasons and self._plan.windows:
            within = self._plan.range_of_interest()
            self._timeline, _ = usage_timeline(platform, bookings, within)

    def start_after(self, end: datetime) -> None:
        """Try `end` as a start too: an offer chosen for this demand ends then.

        The offers of one set are alternatives and take nothing from each other; offering
        the next one right after the last one gives the consecutive start times a client
        can choose among, where the calendar alone (no booking ending then) has no breakpoint.
        """
        self._plan.extra_starts.add(to_micros(end))

    def hold(self, booking: Booking) -> None:
        """Count one more booking (an offer just chosen) in the rest of the search."""
        if self._timeline is not None and booking.platform == self.platform.name:
            self._timeline.add(
                to_micros(booking.interval.start),
                to_micros(booking.interval.end),
                self._plan.layout.amounts(booking.resources),
            )

    def slots(self, skip: Callable[[Slot], bool] | None = None) -> list[Slot]:
        """The slots worth offering now, sorted by start (then GPU model); see `find_slots`.

        Args:
            skip: tells which slots are not wanted (say, already offered); they are left out
                before comparing, so that they do not hide the best of the others.
        """
        timeline = self._timeline
        if timeline is None:
            return []
        slots = [
            slot
            for gpu in self._plan.gpu_options()
            for slot in _slots_for(self._plan, timeline, gpu, skip)
        ]
        if self.demand.gpus is not None:
            slots.sort(key=lambda slot: slot.start)  # stable: model order kept within one start
        return slots

    def explain(self) -> list[Reason]:
        """Why there is no slot: see `explain_no_slots`."""
        if self.reasons:
            return self.reasons
        if self._timeline is None:
            return _window_reasons(self._plan, self.horizon)
        return _capacity_reasons(self._plan, self._timeline, self.horizon)


def find_slots(
    platform: PlatformSpec,
    bookings: Iterable[Booking],
    demand: Demand,
    now: datetime,
    horizon: timedelta,
    *,
    policy: SlotPolicy | None = None,
) -> list[Slot]:
    """The slots worth offering on one platform, sorted by start (then GPU model).

    Every slot starts inside a requested window, no earlier than `now + preparation` and no
    later than `now + horizon`; gives at least every minimum and no maximum; and fits, with the
    bookings given, within capacity at every instant. The earliest feasible start is always
    returned; a later start only when it offers more resources or more room than every earlier
    one (of the same GPU model). The arguments are those of `SlotSearch`.
    """
    return SlotSearch(platform, bookings, demand, now, horizon, policy=policy).slots()


def booking_range(
    platform: PlatformSpec,
    demand: Demand,
    now: datetime,
    horizon: timedelta,
    *,
    policy: SlotPolicy | None = None,
) -> Interval | None:
    """The interval whose bookings `find_slots` needs, or None when no window is reachable."""
    plan = _Plan(platform, demand, now, horizon, policy or SlotPolicy())
    return plan.range_of_interest() if plan.windows else None


def _resource_needs(
    plan: _Plan, options: Sequence[Gpu | None]
) -> Iterator[tuple[str, str, list[dict[int, int]]]]:
    """Each resource the demand needs: its name, in words, and its need per GPU option."""
    layout, demand = plan.layout, plan.demand
    yield (
        "cores",
        (f"{demand.cores_min} core" + "s" * (demand.cores_min != 1)),
        [{layout.CORES: demand.cores_min}],
    )
    if demand.memory_min:
        yield (
            "memory",
            f"{demand.memory_min:g} GiB of memory",
            [{layout.MEMORY: memory_units(demand.memory_min)}],
        )
    if layout.storage is not None and demand.storage:
        yield (
            "storage",
            f"{demand.storage:g} GiB of storage",
            [{layout.storage: memory_units(demand.storage)}],
        )
    if demand.gpus is not None:
        count = demand.gpus.count_min
        models = " or ".join(gpu.model for gpu in options if gpu is not None)
        needs = [{layout.gpu[gpu.model]: count} for gpu in options if gpu is not None]
        yield "gpus", f"{count} {models} GPU" + "s" * (count != 1), needs


def _in_words(phrases: Sequence[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def explain_no_slots(
    platform: PlatformSpec,
    bookings: Iterable[Booking],
    demand: Demand,
    now: datetime,
    horizon: timedelta,
    *,
    policy: SlotPolicy | None = None,
) -> list[Reason]:
    """Why `find_slots` finds nothing on this platform; empty when it does find a slot.

    Static reasons (`assess`) come first; then the start windows against the earliest start
    and the horizon; then which resources are never free for the whole duration in time.
    """
    return SlotSearch(platform, bookings, demand, now, horizon, policy=policy).explain()


def _window_reasons(plan: _Plan, horizon: timedelta) -> list[Reason]:
    platform, windows = plan.platform, plan.demand.windows
    reasons = []
    if any(to_micros(window.end) < plan.earliest for window in windows):
        reasons.append(
            reason(
                platform,
                "start-too-early",
                "{platform}: the requested start range ends before the earliest possible "
                "start (preparation takes {preparation})",
                preparation=format_duration(platform.preparation),
            )
        )
    if any(to_micros(window.start) > plan.latest for window in windows):
        reasons.append(
            reason(
                platform,
                "start-beyond-horizon",
                "{platform}: the requested start range begins after the booking horizon "
                "({horizon} from now)",
                horizon=format_duration(horizon),
            )
        )
    if not reasons:  # every window is in range, but the range itself is empty
        reasons.append(
            reason(
                platform,
                "horizon-too-short",
                "{platform}: preparation takes {preparation}, longer than the booking horizon "
                "({horizon})",
                preparation=format_duration(platform.preparation),
                horizon=format_duration(horizon),
            )
        )
    return reasons


def _capacity_reasons(plan: _Plan, timeline: UsageTimeline, horizon: timedelta) -> list[Reason]:
    options = plan.gpu_options()

    def fits(needs: Iterable[dict[int, int]]) -> bool:
        return any(next(_feasible_starts(plan, timeline, need), None) for need in needs)

    if fits(plan.minimum(gpu) for gpu in options):
        return []
    # Name each resource that is short even on its own; if none is, they are short together.
    wanted = list(_resource_needs(plan, options))
    short = [(name, phrase) for name, phrase, needs in wanted if not fits(needs)]
    resources = (
        _in_words([phrase for _, phrase in short])
        if short
        else _in_words([phrase for _, phrase, _ in wanted]) + " at the same time"
    )
    where = (
        "within the booking horizon ({horizon} from now)"
        if plan.clipped_by_horizon
        else "before the end of the requested start range"
    )
    return [
        reason(
            plan.platform,
            "no-capacity",
            "{platform}: no free {resources} " + where,
            resources=resources,
            # Which resources to ask less of: those short on their own, else all of them.
            short=",".join(name for name, _ in short) or ",".join(n for n, _, _ in wanted),
            horizon=format_duration(horizon),
            duration=format_duration(plan.demand.duration),
        )
    ]
