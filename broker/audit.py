"""Capacity audits: does what a platform has promised ever exceed what it has?

Owns two checks over bookings and holds:

* `overbookings`: each resource of a platform whose bookings and holds together exceed its
  capacity at some instant, and from when. The tests and `bench/capacity.py` run it over the
  rows read straight from the database after concurrent runs.
* `holds_fit`: whether new holds fit next to the bookings already there. `BrokerService` calls it
  under the platform's lock before it stores offers it computed without that lock, so that an
  offer another process made in the meantime can never be double-booked.

Both count as the scheduler does (`broker.scheduling`): memory and storage in whole MiB
(bookings rounded up, capacities rounded down), storage only on a platform that manages it, one
resource per GPU model the platform has (a share of a model it no longer has takes nothing),
and maintenance windows take everything. A hold fits when, at every instant it covers, every
resource it takes some of is within capacity; a resource it takes none of never stops it, even
where that resource is already over-committed (say, after the capacity was lowered).

The code is a plain sweep over interval endpoints, independent of the scheduler's timeline on
purpose, so that it can check the scheduler's results. Pure: no I/O, no clock. Imports
`broker.intervals` and `broker.resources` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

import msgspec

from broker.intervals import from_micros, to_micros
from broker.resources import (
    MEMORY_UNITS_PER_GIB,
    Booking,
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


def _levels(
    platform: PlatformSpec,
    dimensions: _Dimensions,
    bookings: Iterable[Booking],
    holds: Sequence[Booking] = (),
) -> Iterator[tuple[int, list[int], list[int]]]:
    """Sweep the platform's commitments in time order.

    Yields, at each instant where something starts or ends, what is used of each dimension
    from that instant on (bookings, holds and maintenance) and how many of `holds` cover it
    taking some of that dimension. Use is constant between two instants and intervals are
    half-open, so these levels are every level the use ever takes.
    """
    width = len(dimensions.capacity)
    used: dict[int, list[int]] = {}
    held: dict[int, list[int]] = {}

    def change(changes: dict[int, list[int]], at: int, vector: Sequence[int], sign: int) -> None:
        row = changes.setdefault(at, [0] * width)
        for index, amount in enumerate(vector):
            row[index] += sign * amount

    def commit(start: datetime, end: datetime, vector: Sequence[int]) -> None:
        change(used, to_micros(start), vector, 1)
        change(used, to_micros(end), vector, -1)

    for booking in bookings:
        if booking.platform == platform.name:
            commit(
                booking.interval.start, booking.interval.end, dimensions.amounts(booking.resources)
            )
    for window in platform.maintenance:
        commit(window.start, window.end, dimensions.capacity)
    for hold in holds:
        amounts = dimensions.amounts(hold.resources)
        commit(hold.interval.start, hold.interval.end, amounts)
        taking = [1 if amount > 0 else 0 for amount in amounts]
        change(held, to_micros(hold.interval.start), taking, 1)
        change(held, to_micros(hold.interval.end), taking, -1)
    level, covering = [0] * width, [0] * width
    for at in sorted(used.keys() | held.keys()):
        for index, amount in enumerate(used.get(at, ())):
            level[index] += amount
        for index, count in enumerate(held.get(at, ())):
            covering[index] += count
        yield at, level, covering


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
    """True when `holds` fit on `platform` next to `bookings` (and to each other).

    A hold fits when, at every instant it covers, every resource it takes some of is within
    capacity once everything is counted; see the module docstring.

    Args:
        platform: the platform the holds are on.
        bookings: the platform's live bookings and holds over the holds' intervals (at least);
            those of other platforms are ignored.
        holds: the new holds, all on `platform`.

    Raises:
        ValueError: a hold is on another platform.
    """
    strangers = sorted({hold.platform for hold in holds} - {platform.name})
    if strangers:
        raise ValueError(f"holds of {', '.join(strangers)} checked on {platform.name}")
    dimensions = _Dimensions(platform)
    for _, level, covering in _levels(platform, dimensions, bookings, holds):
        for use, total, count in zip(level, dimensions.capacity, covering, strict=True):
            if count and use > total:
                return False
    return True
