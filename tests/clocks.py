"""A monotonic clock a test moves by hand (`clock.now += 5`), for code taking `time.monotonic`."""

from __future__ import annotations


class MonotonicClock:
    """Called, answers `now` seconds; tests set or advance `now`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
