"""Rate limits: a token bucket per (kind of request, identity), kept in this process.

`RateLimiter.take(kind, key)` spends one request from the bucket of `key` (an identity's key,
`token:alice`, or an anonymous caller's `address:192.0.2.7`) for `kind` (`offers`, `sign_in`,
`publish`, `webhooks`), or raises `TooManyRequests` saying how many seconds until one is back
(the answer's `Retry-After`). A bucket holds `requests` and refills at `requests / per`, so a
client may burst up to the limit and then goes at the average rate.

Kept in memory, per process: behind a load balancer with N voexec processes a client may get up
to N times the rate, which is still a bound. Buckets that are full again are forgotten, so the
table holds only clients seen within the last `per` (and at most `MAX_KEYS` of them: beyond
that the fullest are dropped first, which only ever lets a client through sooner).

Pure: the caller passes the time (a monotonic clock in seconds); no I/O.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from core.errors import TooManyRequests
from core.settings import RateLimit, RateLimits

__all__ = ["KINDS", "MAX_KEYS", "RateLimiter"]

KINDS: Final = ("offers", "sign_in", "publish", "webhooks")
"""The kinds of request that are limited; each has a `RateLimit` in `auth.limits`."""
MAX_KEYS: Final = 100_000
"""Most clients remembered per kind; a bound on memory whatever the traffic."""
_WHAT: Final = {
    "offers": "offer requests",
    "sign_in": "sign-in attempts",
    "publish": "publications",
    "webhooks": "webhook calls",
}


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """The buckets of every limited kind, for every identity seen recently."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float]) -> None:
        """Start with no bucket.

        Args:
            limits: `auth.limits`.
            clock: seconds on a monotonic clock (`time.monotonic`; a controllable one in tests).
        """
        self.limits = limits
        self.clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def limit(self, kind: str) -> RateLimit:
        """The configured limit of `kind`."""
        found: RateLimit = getattr(self.limits, kind)
        return found

    def take(self, kind: str, key: str) -> None:
        """Spend one request of `kind` for `key`.

        Raises:
            TooManyRequests: the bucket is empty; `retry_after` is the whole seconds until one
                request is back (at least 1).
        """
        if not self.limits.enabled:
            return
        limit = self.limit(kind)
        capacity = float(limit.requests)
        rate = capacity / max(limit.per.total_seconds(), 1e-9)  # requests per second
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get((kind, key))
            if bucket is None:
                self._forget_full(now)
                bucket = self._buckets[(kind, key)] = _Bucket(tokens=capacity, at=now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = math.ceil((1.0 - bucket.tokens) / rate)
        raise TooManyRequests(
            f"too many {_WHAT.get(kind, kind)}: at most {limit.requests} every "
            f"{_seconds(limit.per.total_seconds())}; try again in {max(wait, 1)} s",
            retry_after=max(wait, 1),
        )

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (they behave as new ones); bound the table."""
        if len(self._buckets) < MAX_KEYS // 2:
            return
        for (kind, key), bucket in list(self._buckets.items()):
            limit = self.limit(kind)
            if now - bucket.at >= limit.per.total_seconds():
                del self._buckets[(kind, key)]
        while len(self._buckets) >= MAX_KEYS:
            oldest = min(self._buckets, key=lambda k: self._buckets[k].at)
            del self._buckets[oldest]


def _seconds(total: float) -> str:
    if total >= 3600 and total % 3600 == 0:
        return f"{int(total // 3600)} h"
    if total >= 60 and total % 60 == 0:
        return f"{int(total // 60)} min"
    return f"{total:g} s"
