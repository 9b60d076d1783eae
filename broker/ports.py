"""The broker's ports: what the service needs from its store and from a compute platform.

Owns the `Platform` protocol and the `PlatformReport` it answers with, and the records the
store hands back. Imports `core` and the pure `broker` modules only; adapters live in
`broker.store_sql` and `broker.platforms`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from broker.lifecycle import AnyEvent

__all__ = ["Platform", "PlatformReport"]


@dataclass(frozen=True, slots=True)
class PlatformReport:
    """Something the platform foresees or observed: `event` for the session at `at`."""

    at: datetime
    event: AnyEvent


class Platform(Protocol):
    """One compute platform, as the work queue drives it.

    Every call returns the reports the platform can already give (a simulated platform knows
    when its preparation will be done); the service queues them in the same transaction as the
    session's new phase, so nothing is lost when the process stops.
    """

    name: str

    def prepare(self, session_id: str, now: datetime) -> Sequence[PlatformReport]:
        """Start preparing the session's components (stage data, pull images)."""
        ...

    def start(self, session_id: str, now: datetime) -> Sequence[PlatformReport]:
        """Start the work."""
        ...

    def release(self, session_id: str, now: datetime) -> Sequence[PlatformReport]:
        """End the session in order: stop what still runs, release the rest."""
        ...

    def stop(self, session_id: str, now: datetime) -> Sequence[PlatformReport]:
        """Stop the work now (a cancel) and release what the session holds there."""
        ...
