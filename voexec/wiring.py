"""Builds the services and adapters that settings ask for, once per process.

`build_services(settings)` is the only place that chooses adapters (SQLite or PostgreSQL,
tantivy or OpenSearch, simulated or real platforms). Each package is wired by its own
`voexec/wire_<package>.py`, which exposes:

- `build(services)`: construct the package's service(s), register them in `services.components`
  for later parts, and add its routes, dependencies and start/stop hooks.

The command line does not go through here (importing this module imports Litestar and
SQLAlchemy): `voexec/cli.py` mounts the commands, and opens what a local command needs through
`wire_catalogue.open_catalogue` and `wire_harvest.open_pipeline`.

Parts are built in dependency order: vocabularies, broker, catalogue (needs both), harvest,
then the web pages (which use them all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litestar.di import Provide
from litestar.types import ControllerRouterHandler
from sqlalchemy.engine import Engine

from core.clock import Clock, SystemClock
from core.db import make_engine
from core.settings import Settings
from voexec import wire_broker, wire_catalogue, wire_harvest, wire_ui, wire_vocabularies

PARTS = (wire_vocabularies, wire_broker, wire_catalogue, wire_harvest, wire_ui)


@dataclass
class Services:
    """Everything the web app and the CLI need, built from one `Settings`."""

    settings: Settings
    clock: Clock
    components: dict[str, Any] = field(default_factory=dict)
    route_handlers: list[ControllerRouterHandler] = field(default_factory=list)
    dependencies: dict[str, Provide] = field(default_factory=dict)
    on_startup: list[Callable[[], None]] = field(default_factory=list)
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)

    def provide(self, name: str, value: object) -> None:
        """Make `value` injectable into handlers as the parameter `name`."""
        self.components[name] = value
        self.dependencies[name] = Provide(lambda: value, use_cache=True, sync_to_thread=False)

    def database(self) -> Engine:
        """The one SQLAlchemy engine every package shares: made on first use, disposed at stop."""
        engine: Engine | None = self.components.get("engine")
        if engine is None:
            engine = make_engine(self.settings.database_url)
            self.components["engine"] = engine
            self.on_shutdown.append(engine.dispose)
        return engine

    def start(self) -> None:
        """Start background work (queues, sweeps)."""
        for hook in self.on_startup:
            hook()

    def stop(self) -> None:
        """Stop background work, newest first."""
        for hook in reversed(self.on_shutdown):
            hook()


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    """Build every service the settings describe."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    services = Services(settings=settings, clock=clock or SystemClock())
    for part in PARTS:
        part.build(services)
    return services
