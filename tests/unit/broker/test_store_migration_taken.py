"""Migration broker_0005: platform rows count capacity taken and know their longest booking.

A database made before it gets the two columns; every platform with bookings has its row
afterwards (made if missing) with `longest` set from its bookings, so that a bounded
`live_bookings`, which walks the index only to the window's end plus `longest`, still finds
a long booking that began well before the window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from broker.scheduling.intervals import Interval, to_micros
from broker.store.sql import MIGRATIONS, VERSION_TABLE, SqlBrokerStore
from core.db import make_engine

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _upgrade(store: SqlBrokerStore, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["version_table"] = VERSION_TABLE
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _booked(store: SqlBrokerStore, number: int, platform: str, start: datetime, hours: int) -> None:
    """A booking of an accepted session, written as rows (as a database before 0005 holds)."""
    session = f"00000000-0000-4000-8000-{number:012d}"
    slot = {"start": to_micros(start), "end": to_micros(start + hours * HOUR)}
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO broker_session (id, position, platform, phase, slot_start, slot_end,"
                " resources, state, document) VALUES (:id, 0, :platform, 'ACCEPTED', :start,"
                " :end, '{}', '{}', '{}')"
            ),
            {"id": session, "platform": platform, **slot},
        )
        connection.execute(
            text(
                "INSERT INTO broker_booking (session_id, platform, slot_start, slot_end, cores,"
                " memory, storage, gpus, kind) VALUES (:id, :platform, :start, :end, 1, 1.0,"
                " 0.0, '[]', 'booking')"
            ),
            {"id": session, "platform": platform, **slot},
        )


def test_the_migration_gives_every_booked_platform_its_row_and_longest_booking(
    tmp_path: Path,
) -> None:
    store = SqlBrokerStore(make_engine(f"sqlite:///{tmp_path / 'broker.db'}"))
    _upgrade(store, "broker_0004")
    with store.engine.begin() as connection:
        connection.execute(text("INSERT INTO broker_platform (name) VALUES ('small'), ('idle')"))
    _booked(store, 1, "small", NOW, 2)
    _booked(store, 2, "small", NOW + HOUR, 3)
    _booked(store, 3, "rowless", NOW - 4 * HOUR, 10)  # no platform row before the migration

    store.migrate()

    with store.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT name, taken, longest FROM broker_platform ORDER BY name")
        ).all()
    assert [tuple(row) for row in rows] == [
        ("idle", 0, 0),
        ("rowless", 0, to_micros(NOW + 6 * HOUR) - to_micros(NOW - 4 * HOUR)),
        ("small", 0, to_micros(NOW + 3 * HOUR) - to_micros(NOW)),
    ]
    # A 10-hour booking that began 9 hours before a window still overlaps it.
    window = Interval(NOW + 5 * HOUR, NOW + 5 * HOUR + HOUR / 2)
    with store.read() as tx:
        found = tx.live_bookings(NOW - HOUR, ["rowless", "small"], window)
        assert [b.interval for b in found] == [Interval(NOW - 4 * HOUR, NOW + 6 * HOUR)]
        found = tx.live_bookings(NOW - HOUR, ["small"], Interval(NOW + 2 * HOUR, NOW + 5 * HOUR))
        assert [b.interval for b in found] == [Interval(NOW + HOUR, NOW + 4 * HOUR)]
        assert tx.capacity_taken(["idle", "rowless", "small", "nowhere"]) == {
            "idle": 0,
            "rowless": 0,
            "small": 0,
        }
    store.engine.dispose()


def test_the_migration_goes_down_and_up_again(tmp_path: Path) -> None:
    store = SqlBrokerStore(make_engine(f"sqlite:///{tmp_path / 'broker.db'}"))
    store.migrate()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["version_table"] = VERSION_TABLE
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "broker_0004")
    with store.engine.connect() as connection:
        columns = [row[1] for row in connection.execute(text("PRAGMA table_info(broker_platform)"))]
    assert columns == ["name"]
    store.migrate()
    with store.engine.connect() as connection:
        columns = [row[1] for row in connection.execute(text("PRAGMA table_info(broker_platform)"))]
    assert columns == ["name", "taken", "longest"]
    store.engine.dispose()
