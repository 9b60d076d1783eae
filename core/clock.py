"""Clocks: the only way code of ours learns what time it is.

Pure code takes `now` as an argument; services take a `Clock`, so tests can move time by hand.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the current time, always timezone-aware UTC."""

    def now(self) -> datetime:
        """The current instant (UTC, aware)."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current instant, truncated to the microsecond the OS gives."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; for tests and simulations."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The instant the clock was last set to."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by `delta` and return the new instant."""
        with self._lock:
            self._now += delta
            return self._now

    def set(self, instant: datetime) -> None:
        """Jump to `instant` (aware)."""
        with self._lock:
            self._now = instant.astimezone(UTC)
