"""Capacity audits: does what a platform has promised ever exceed what it has?

Owns two checks over bookings and holds, which count as the broker promises: bookings add
up; the holds of one offer set (`Booking.group`) are alternatives — accepting one rejects the
others — so they take, per platform, resource and instant, the most any one of them takes.

The checks:

* `overbookings`: each resource of a platform whose bookings and holds together exceed its
  capacity at some instant, and from when. The tests and `bench/capacity.py` run it over the
  rows read straight from the database after concurrent runs.
* `holds_fit`: whether new holds fit next to the bookings already there. `BrokerService` calls it
  under the platform's lock before it stores offers it computed without that lock, so that an
  offer another process made in the meantime can never be double-booked.

Both count as the scheduler does (`broker.scheduling.slots`): memory and storage in whole MiB
(bookings rounded up, capacities rounded down), storage only on a platform that manages it, one
resource per GPU model the platform has (a share of a model it no longer has takes nothing),
and maintenance windows take everything. A hold fits when, at every instant it covers, every
resource it takes some of is within capacity; a resource it takes none of never stops it, even
where that resource is already over-committed (say, after the capacity was lowered).

The code is a plain sweep over interval endpoints, independent of the scheduler's timeline on
purpose, so that it can check the scheduler's results. Pure: no I/O, no clock. Imports
`broker.scheduling.intervals` and `broker.scheduling.resources` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

import msgspec

from broker.scheduling.intervals import from_micros, to_micros
from broker.scheduling.resources import (
    MEMORY_UNITS_PER_GIB,
    Booking,
    BookingKind,
    PlatformSpec,
    Resources,
    capacity_units,
    memory_units,
)

__all__ = ["Overbooking", "holds_fit", "overbookings"]


class Overbooking(msgspec.Struct, frozen=True, kw_only=True):
    """One resource of a platform committed beyond its capacity, from `start` on."""

    platform: str
    resource: str
    """`cores`, `GiB of memory`, `GiB of storage` or `<model> GPUs`."""
    start: datetime
    """The first instant the resource is over-committed."""
    used: float
    """What is committed just after `start`, in the resource's unit (GiB for memory)."""
    capacity: float

    def describe(self) -> str:
        """In words, for a report or an assertion message."""
        return (
            f"{self.platform}: {self.used:g} {self.resource} committed from "
            f"{self.start.isoformat()} (capacity {self.capacity:g})"
        )


class _Dimensions:
    """A platform's resources as integer dimensions: their names, capacities and units."""

    def __init__(self, platform: PlatformSpec) -> None:
        self.names = ["cores", "GiB of memory"]
        self.capacity = [platform.cores, capacity_units(platform.memory)]
        self.scale = [1, MEMORY_UNITS_PER_GIB]
        self.storage: int | None = None
        if platform.storage is not None:
            self.storage = len(self.capacity)
            self.names.append("GiB of storage")
            self.capacity.append(capacity_units(platform.storage))
            self.scale.append(MEMORY_UNITS_PER_GIB)
        self.gpu: dict[str, int] = {}
        for gpu in platform.gpus:
            self.gpu[gpu.model] = len(self.capacity)
            self.names.append(f"{gpu.model} GPUs")
            self.capacity.append(gpu.count)
            self.scale.append(1)

    def amounts(self, resources: Resources) -> list[int]:
        """What `resources` take of each dimension."""
        vector = [0] * len(self.capacity)
        vector[0] = resources.cores
        vector[1] = memory_units(resources.memory)
        if self.storage is not None:
            vector[self.storage] = memory_units(resources.storage)
        for share in resources.gpus:
            index = self.gpu.get(share.model)
            if index is not None:
                vector[index] += share.count
        return vector


class _Alternatives:
    """The holds of one offer set, swept in time order: what they take together, now."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.edges: dict[int, list[tuple[int, list[int]]]] = {}
        self.active: list[list[int]] = []
        self.most = [0] * width

    def add(self, start: int, end: int, amounts: list[int]) -> None:
        self.edges.setdefault(start, []).append((1, amounts))
        self.edges.setdefault(end, []).append((-1, amounts))

    def move(self, at: int) -> list[int]:
        """Apply what starts and ends at `at`; returns the change of what the set takes."""
        for sign, amounts in self.edges.get(at, ()):
            if sign > 0:
                self.active.append(amounts)
            else:
                self.active.remove(amounts)
        most = [max(column) for column in zip(*self.active, strict=True)] or [0] * self.width
        change = [new - old for new, old in zip(most, self.most, strict=True)]
        self.most = most
        return change


def _levels(
    platform: PlatformSpec,
    dimensions: _Dimensions,
    bookings: Iterable[Booking],
    hold: Booking | None = None,
) -> Iterator[tuple[int, list[int], list[bool]]]:
    """Sweep the platform's commitments in time order.

    Yields, at each instant where something starts or ends, what is used of each dimension
    from that instant on (bookings, holds, maintenance and `hold`) and, per dimension, whether
    `hold` covers that instant taking some of it. Use is constant between two instants and
    intervals are half-open, so these levels are every level the use ever takes.

    Bookings add up. The holds of one offer set (same `group`) are alternatives: per
    dimension they take, at each instant, the most any one of them covering it takes.
    """
    width = len(dimensions.capacity)
    changes: dict[int, list[int]] = {}
    sets: dict[str, _Alternatives] = {}

    def commit(start: int, end: int, vector: Sequence[int]) -> None:
        for at, sign in ((start, 1), (end, -1)):
            row = changes.setdefault(at, [0] * width)
            for index, amount in enumerate(vector):
                row[index] += sign * amount

    for booking in bookings:
        if booking.platform != platform.name:
            continue
        start, end = to_micros(booking.interval.start), to_micros(booking.interval.end)
        amounts = dimensions.amounts(booking.resources)
        if booking.group is None or booking.kind is not BookingKind.HOLD:
            commit(start, end, amounts)
        else:
            sets.setdefault(booking.group, _Alternatives(width)).add(start, end, amounts)
            commit(start, end, [0] * width)  # no amount of its own: the set's sweep says
    for window in platform.maintenance:
        commit(to_micros(window.start), to_micros(window.end), dimensions.capacity)
    taking, covered = [False] * width, (0, 0)
    if hold is not None:
        covered = (to_micros(hold.interval.start), to_micros(hold.interval.end))
        commit(*covered, dimensions.amounts(hold.resources))
        taking = [amount > 0 for amount in dimensions.amounts(hold.resources)]
    moving: dict[int, list[str]] = {}  # the sets whose holds start or end at an instant
    for group, alternatives in sets.items():
        for at in alternatives.edges:
            moving.setdefault(at, []).append(group)
    level = [0] * width
    for at in sorted(changes):
        for index, amount in enumerate(changes[at]):
            level[index] += amount
        for group in moving.get(at, ()):
            for index, amount in enumerate(sets[group].move(at)):
                level[index] += amount
        inside = covered[0] <= at < covered[1]
        yield at, level, [inside and takes for takes in taking]


def overbookings(platform: PlatformSpec, bookings: Iterable[Booking]) -> list[Overbooking]:
    """Each resource of `platform` that its bookings and holds exceed at some instant.

    Args:
        platform: the platform, with its capacity and maintenance windows.
        bookings: bookings and holds; those of other platforms are ignored.

    Returns:
        One `Overbooking` per resource exceeded, at the first instant it is, in the platform's
        resource order (cores, memory, storage, GPU models); empty when everything fits.
    """
    dimensions = _Dimensions(platform)
    first: dict[int, Overbooking] = {}
    for at, level, _ in _levels(platform, dimensions, bookings):
        for index, (use, total) in enumerate(zip(level, dimensions.capacity, strict=True)):
            if use > total and index not in first:
                scale = dimensions.scale[index]
                first[index] = Overbooking(
                    platform=platform.name,
                    resource=dimensions.names[index],
                    start=from_micros(at),
                    used=use / scale,
                    capacity=total / scale,
                )
    return [first[index] for index in sorted(first)]


def holds_fit(
    platform: PlatformSpec, bookings: Iterable[Booking], holds: Sequence[Booking]
) -> bool:
    """True when each of `holds` fits on `platform` next to `bookings`.

    `holds` are the offers of one new set: alternatives, so each must fit on its own and
    together they take their maximum. A hold fits when, at every instant it covers, every
    resource it takes some of is within capacity once everything is counted; see the module
    docstring.

    Args:
        platform: the platform the holds are on.
        bookings: the platform's live bookings and holds over the holds' intervals (at least);
            those of other platforms are ignored.
        holds: the new holds, all on `platform`, all of one offer set.

    Raises:
        ValueError: a hold is on another platform.
    """
    strangers = sorted({hold.platform for hold in holds} - {platform.name})
    if strangers:
        raise ValueError(f"holds of {', '.join(strangers)} checked on {platform.name}")
    dimensions = _Dimensions(platform)
    for hold in holds:  # alternatives: each must fit on its own
        for _, level, covering in _levels(platform, dimensions, bookings, hold):
            for use, total, takes in zip(level, dimensions.capacity, covering, strict=True):
                if takes and use > total:
                    return False
    return True
