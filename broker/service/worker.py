"""The work-queue runner: a daemon thread that calls `BrokerService.tick` every `broker.tick`.

It also ticks at once when woken (`wake`): the service has just queued work that is due now,
such as an accepted session's first step, which would otherwise wait for the next tick.

Owns the thread only; what a tick does is the service's business, and all state is in the
database, so stopping the thread (or the process) at any moment loses nothing.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Final, Protocol

__all__ = ["WorkQueueRunner"]

log = logging.getLogger(__name__)

WOKEN_GAP: Final = 0.1
"""Seconds between the end of a tick and the next one a wake asks for (or the interval, when
shorter): under a burst of accepts, wakes are gathered into at most ten ticks a second, since
each tick costs transactions. The wait for the next tick counts it."""


class _Ticks(Protocol):
    def tick(self) -> int: ...


class WorkQueueRunner:
    """Runs `service.tick()` every `interval` in a daemon thread, between `start` and `stop`."""

    def __init__(self, service: _Ticks, interval: timedelta) -> None:
        self._service = service
        self._interval = interval.total_seconds()
        self._stopping = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="broker-work-queue", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Tick as soon as the tick in progress (if any) is done; wakes during it make one more."""
        self._woken.set()

    def stop(self) -> None:
        """Ask the thread to stop and wait for the tick in progress to finish."""
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while True:
            self._woken.wait(max(self._interval - WOKEN_GAP, 0.0))
            self._woken.clear()
            if self._stopping.is_set():
                return
            try:
                self._service.tick()
            except Exception:  # a failing tick must not end the queue; the next one retries
                log.exception("broker work queue: tick failed")
            if self._stopping.wait(min(WOKEN_GAP, self._interval)):
                return
