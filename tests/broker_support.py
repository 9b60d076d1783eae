"""Driving a real `BrokerService` from offer to end, as the platform tests do.

`broker_store(kind, folder)` opens a fresh store for a service: the in-memory fake
(`broker.store.memory`, for tests of the service's own logic: no database to set up) or a
migrated SQLite file. `local_broker` builds a service over one local platform on either.
`accept_first(service, offers)` accepts the first offer of a YES; `tick_until(service, uuid,
*phases)` ticks the work queue until the session reaches one of `phases` (failing at once when
it ends elsewhere); `wait_for(check, what)` polls any condition. Every wait has a generous
deadline, never a fixed sleep: a loaded machine is slow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from sqlalchemy.engine import Engine

from broker import model
from broker.platforms import build_platform
from broker.platforms.port import Platform
from broker.service import BrokerService
from broker.store.memory import MemorySessionStore
from broker.store.sql import SqlBrokerStore
from core.clock import SystemClock
from core.db import make_engine
from core.settings import (
    BrokerSettings,
    Capacity,
    LocalPlatformSettings,
    PlatformDataSettings,
    PlatformSettings,
)

DEADLINE = 150.0
"""Seconds any one wait may take before the test fails."""

POLL = 0.2
"""Seconds between two looks at a condition with a deadline."""


StoreKind = Literal["memory", "sqlite"]
"""Where a test's broker keeps its state: in memory (the fake) or in a SQLite file."""


def broker_store(kind: StoreKind, folder: Path) -> SqlBrokerStore | MemorySessionStore:
    """A fresh store: the in-memory fake, or a migrated SQLite file `folder/broker.db`."""
    if kind == "memory":
        return MemorySessionStore()
    store = SqlBrokerStore(make_engine(f"sqlite:///{folder / 'broker.db'}"))
    store.migrate()
    return store


def close_store(store: SqlBrokerStore | MemorySessionStore) -> None:
    """Let go of a store's database connections (nothing to do in memory)."""
    if isinstance(store, SqlBrokerStore):
        store.engine.dispose()


@dataclass
class LocalBrokerParts:
    """A broker service over one `local` platform ("workstation", 2 cores, 3 GiB)."""

    service: BrokerService
    platform: Platform
    store: SqlBrokerStore | MemorySessionStore

    @property
    def engine(self) -> Engine:
        """The SQLite database of a broker built over it."""
        assert isinstance(self.store, SqlBrokerStore), "this broker keeps its state in memory"
        return self.store.engine

    @property
    def root(self) -> Path:
        """The folder the platform keeps its sessions in."""
        return Path(self.platform.root)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Let go of the store's database connections."""
        close_store(self.store)


def local_broker(
    tmp_path: Path,
    executables: Sequence[str],
    data: PlatformDataSettings | None = None,
    *,
    store: StoreKind = "sqlite",
) -> LocalBrokerParts:
    """A real broker service whose one local platform runs `executables` (no containers)."""
    settings = PlatformSettings(
        name="workstation",
        adapter="local",
        capacity=Capacity(cores=2, memory=3),
        executables=list(executables),  # type: ignore[arg-type]
        preparation=timedelta(seconds=1),
        local=LocalPlatformSettings(
            poll=timedelta(milliseconds=200),
            grace=timedelta(seconds=2),
            container_runtime="none",
            container_engine="none",
        ),
        **({"data": data} if data is not None else {}),
    )
    opened = broker_store(store, tmp_path)
    platform = build_platform(settings, tmp_path / "var")
    service = BrokerService(
        BrokerSettings(platforms=[settings], max_offers=1),
        SystemClock(),
        opened,
        {settings.name: platform},
    )
    return LocalBrokerParts(service, platform, opened)


def messages(document: Any) -> list[str]:
    """The messages of a session or an offer set, oldest first."""
    return [m.message or "" for m in (document.meta.messages if document.meta else [])]


def accept_first(service: BrokerService, offers: model.OfferSetResponse) -> UUID:
    """Accept the first offer of `offers`, which must be a YES; the session's UUID."""
    assert offers.result == "YES", messages(offers)
    uuid = offers.offers[0].meta.uuid  # type: ignore[union-attr]
    assert uuid is not None
    accept = model.EnumValueUpdate(path="phase", value="ACCEPTED")
    assert service.update_session(uuid, accept).phase is model.SessionPhase.ACCEPTED
    return uuid


def tick_until(
    service: BrokerService,
    session: UUID,
    *phases: model.SessionPhase,
    seconds: float = DEADLINE,
) -> model.AnySession:
    """Tick the work queue until the session is in one of `phases`."""
    deadline = time.monotonic() + seconds
    while True:
        service.tick()
        found = service.get_session(session)
        if found.phase in phases:
            return found
        assert found.phase not in model.TERMINAL_PHASES, " / ".join(messages(found)[-3:])
        assert time.monotonic() < deadline, f"still {found.phase}: {messages(found)}"
        time.sleep(POLL)


def wait_for(check: Callable[[], object], what: str, seconds: float = DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(POLL)
