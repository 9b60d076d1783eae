"""Builds the services and adapters that settings ask for, once per process.

`build_services(settings)` is the only place that chooses adapters (SQLite or PostgreSQL,
tantivy or OpenSearch, simulated or real platforms). Tests call it with their own `Settings`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.clock import Clock, SystemClock
from core.settings import Settings


@dataclass
class Services:
    """Everything the web app and the CLI need, built from one `Settings`."""

    settings: Settings
    clock: Clock
    on_startup: list[Callable[[], None]] = field(default_factory=list)
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)

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
    return Services(settings=settings, clock=clock or SystemClock())
