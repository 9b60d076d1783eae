"""The capacity invariant, checked from the broker's rows: nothing is promised twice.

`committed` reads `broker_booking` straight from the database (bookings, and the holds of
offers still OFFERED and unexpired) without going through the store's own queries, and the
pure `overbooked` sweeps every interval endpoint per platform for an instant where the
commitments exceed the platform's cores or memory. Used by `bench.bench_accepts` after each
run; the same check as `tests/integration/test_broker_concurrency.py`, for any number of
platforms. Imports SQLAlchemy and the store's time encoding; no broker service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import Engine

from broker.store_sql import from_micros, to_micros

__all__ = ["Commitment", "committed", "overbooked"]

MEMORY_TOLERANCE: Final = 1e-6
"""GiB: memory is a float, and sums of floats may land a rounding error above the capacity."""


@dataclass(frozen=True)
class Commitment:
    """A booking, or the hold of an unexpired offer: capacity promised over [start, end)."""

    platform: str
    start: int
    end: int
    cores: int
    memory: float


def overbooked(
    commitments: Iterable[Commitment], capacity: Mapping[str, tuple[int, float]]
) -> list[str]:
    """The platforms whose commitments exceed their (cores, GiB) at some instant, in words.

    One sweep per platform over the start and end instants in time order. Use is constant
    between instants and slots are half-open, so the use just after each instant, once every
    slot ending and starting there is counted, is every level the use ever takes. A platform
    missing from `capacity` has none.
    """
    changes: dict[str, dict[int, tuple[int, float]]] = {}
    for item in commitments:
        at = changes.setdefault(item.platform, {})
        cores, memory = at.get(item.start, (0, 0.0))
        at[item.start] = (cores + item.cores, memory + item.memory)
        cores, memory = at.get(item.end, (0, 0.0))
        at[item.end] = (cores - item.cores, memory - item.memory)
    problems = []
    for platform, at in sorted(changes.items()):
        most_cores, most_memory = capacity.get(platform, (0, 0.0))
        used_cores, used_memory = 0, 0.0
        for instant in sorted(at):
            used_cores += at[instant][0]
            used_memory += at[instant][1]
            if used_cores > most_cores or used_memory > most_memory + MEMORY_TOLERANCE:
                problems.append(
                    f"{platform}: {used_cores} cores and {used_memory:g} GiB committed from "
                    f"{from_micros(instant).isoformat()} (capacity {most_cores} cores, "
                    f"{most_memory:g} GiB)"
                )
                break
    return problems


def committed(engine: Engine, now: datetime) -> tuple[list[Commitment], int]:
    """The commitments read raw from `broker_booking`, and how many are bookings."""
    query = text(
        "SELECT b.platform, b.slot_start, b.slot_end, b.cores, b.memory, b.kind"
        " FROM broker_booking b JOIN broker_session s ON s.id = b.session_id"
        " WHERE b.kind = 'booking' OR (s.phase = 'OFFERED' AND s.expires > :now)"
    )
    with engine.connect() as connection:
        rows = list(connection.execute(query, {"now": to_micros(now)}))
    items = [Commitment(r.platform, r.slot_start, r.slot_end, r.cores, r.memory) for r in rows]
    return items, sum(1 for row in rows if row.kind == "booking")
