"""The capacity invariant, checked from the broker's rows: nothing is promised twice.

`committed` reads `broker_booking` straight from the database (bookings, and the holds of
offers still OFFERED and unexpired) without going through the store's own queries, and
`overbooked` runs the broker's pure audit (`broker.scheduling.audit.overbookings`) over them,
platform by platform. Used by `bench.bench_accepts` after each run and by
`tests/integration/test_broker_concurrency.py` after each race: one checker for both.
Imports SQLAlchemy, the store's time encoding and the pure audit; no broker service.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

import msgspec
from sqlalchemy import text
from sqlalchemy.engine import Engine

from broker.scheduling.audit import overbookings
from broker.scheduling.intervals import Interval
from broker.scheduling.resources import Booking, BookingKind, GpuShare, PlatformSpec, Resources
from broker.store.sql import from_micros, to_micros

__all__ = ["committed", "overbooked"]

_COMMITTED: Final = text(
    "SELECT b.platform, b.slot_start, b.slot_end, b.cores, b.memory, b.storage, b.gpus, b.kind,"
    " s.offerset_id FROM broker_booking b JOIN broker_session s ON s.id = b.session_id"
    " WHERE b.kind = 'booking' OR (s.phase = 'OFFERED' AND s.expires > :now)"
)
_gpus: Final = msgspec.json.Decoder(tuple[GpuShare, ...])


def committed(engine: Engine, now: datetime) -> list[Booking]:
    """Every booking, and the hold of every offer still OFFERED and unexpired at `now`.

    Holds carry their offer set (`Booking.group`), so that the audit counts them as the broker
    promises: the holds of one set by their maximum.
    """
    with engine.connect() as connection:
        rows = list(connection.execute(_COMMITTED, {"now": to_micros(now)}))
    return [
        Booking(
            platform=row.platform,
            interval=Interval(from_micros(row.slot_start), from_micros(row.slot_end)),
            resources=Resources(
                cores=row.cores, memory=row.memory, storage=row.storage, gpus=_gpus.decode(row.gpus)
            ),
            kind=BookingKind(row.kind),
            # The holds of one offer set are alternatives: the audit counts their maximum.
            group=row.offerset_id if row.kind == BookingKind.HOLD.value else None,
        )
        for row in rows
    ]


def overbooked(commitments: Iterable[Booking], platforms: Iterable[PlatformSpec]) -> list[str]:
    """What is promised beyond some platform's capacity, in words; empty when nothing is.

    A commitment on a platform that is not among `platforms` is reported too (it has no
    capacity here).
    """
    items = list(commitments)
    specs = {spec.name: spec for spec in platforms}
    problems = [
        f"{name}: {sum(1 for item in items if item.platform == name)} commitments on a "
        "platform that is not configured"
        for name in sorted({item.platform for item in items} - specs.keys())
    ]
    for spec in specs.values():
        problems.extend(excess.describe() for excess in overbookings(spec, items))
    return problems
