"""Rate limits: a token bucket per (kind of request, identity), in a store of buckets.

`RateLimiter.take(kind, key)` spends one request from the bucket of `key` (an identity's key,
`token:alice`, or an anonymous caller's `address:192.0.2.7`) for `kind` (`offers`, `sign_in`,
`publish`, `webhooks`), or raises `TooManyRequests` saying how many seconds until one is back
(the answer's `Retry-After`). A bucket holds `requests` and refills at `requests / per`, so a
client may burst up to the limit and then goes at the average rate.

Where the buckets live is the store's business (`BucketStore`):

- `MemoryBuckets` (the default) keeps them in this process. Buckets that are full again are
  forgotten, so the table holds only clients seen within the last `per` (and at most
  `MAX_KEYS` of them: beyond that the fullest are dropped first, which only ever lets a client
  through sooner than its bucket would, never past the limit over any `per`).
- `voexec.shared_limits.SharedBuckets` keeps them in a fixed table mapped by every worker
  process of one `voexec serve --workers N`, so the limit holds for the machine, not for each
  worker. A store may hand a key several buckets (shared with other keys): a request passes
  only if every one of them holds a token and is charged to all of them, so sharing a bucket
  can only refuse sooner, never let a client past its limit.

Pure: the caller passes the time (a monotonic clock in seconds); no I/O.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from core.errors import TooManyRequests
from core.settings import RateLimit, RateLimits

__all__ = [
    "KINDS",
    "MAX_KEYS",
    "Bucket",
    "BucketStore",
    "Change",
    "MemoryBuckets",
    "RateLimiter",
    "spend",
]

KINDS: Final = ("offers", "sign_in", "publish", "webhooks")
"""The kinds of request that are limited; each has a `RateLimit` in `auth.limits`."""
MAX_KEYS: Final = 100_000
"""Most clients `MemoryBuckets` remembers; a bound on memory whatever the traffic."""
_WHAT: Final = {
    "offers": "offer requests",
    "sign_in": "sign-in attempts",
    "publish": "publications",
    "webhooks": "webhook calls",
}


@dataclass
class Bucket:
    """Tokens left, as of `at` (seconds on the limiter's monotonic clock)."""

    tokens: float
    at: float


Change = Callable[[Sequence[Bucket | None]], tuple[Sequence[Bucket], float]]
"""What a store applies to a key's buckets under its lock: the buckets as found (None: new)
to the buckets to keep and the seconds to wait (0: the request passes)."""


class BucketStore(Protocol):
    """Where the buckets live; `update` is atomic for the buckets of one key."""

    def update(self, kind: str, key: str, now: float, idle: float, change: Change) -> float:
        """Apply `change` to the buckets of (`kind`, `key`); return its seconds to wait.

        `idle` is how long a bucket left alone takes to be full again (`per`): after that it
        is the same as no bucket, so a store may forget it.
        """
        ...


def spend(
    buckets: Sequence[Bucket | None], now: float, capacity: float, rate: float
) -> tuple[list[Bucket], float]:
    """Refill `buckets` to `now` and take one token from each if each holds one.

    Returns the buckets to keep and 0 if the request passes, else the seconds until every
    bucket holds a token again (nothing is taken then).
    """
    refilled = [
        Bucket(capacity, now)
        if bucket is None
        else Bucket(min(capacity, bucket.tokens + max(now - bucket.at, 0.0) * rate), now)
        for bucket in buckets
    ]
    fewest = min((bucket.tokens for bucket in refilled), default=capacity)
    if fewest >= 1.0:
        for bucket in refilled:
            bucket.tokens -= 1.0
        return refilled, 0.0
    return refilled, (1.0 - fewest) / rate


class MemoryBuckets:
    """The buckets of this process only: one per (kind, key), forgotten once full again."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._idle: dict[str, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def update(self, kind: str, key: str, now: float, idle: float, change: Change) -> float:
        """Apply `change` to the one bucket of (`kind`, `key`) (see `BucketStore.update`)."""
        with self._lock:
            self._idle[kind] = idle
            found = self._buckets.get((kind, key))
            if found is None:
                self._forget_full(now)
            kept, wait = change([found])
            self._buckets[(kind, key)] = kept[0]
            return wait

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (they behave as new ones); bound the table."""
        if len(self._buckets) < MAX_KEYS // 2:
            return
        for (kind, key), bucket in list(self._buckets.items()):
            if now - bucket.at >= self._idle.get(kind, 0.0):
                del self._buckets[(kind, key)]
        while len(self._buckets) >= MAX_KEYS:
            oldest = min(self._buckets, key=lambda k: self._buckets[k].at)
            del self._buckets[oldest]


class RateLimiter:
    """The buckets of every limited kind, for every identity seen recently."""

    def __init__(
        self,
        limits: RateLimits,
        clock: Callable[[], float],
        store: BucketStore | None = None,
    ) -> None:
        """Start with no bucket.

        Args:
            limits: `auth.limits`.
            clock: seconds on a monotonic clock (`time.monotonic`; a controllable one in tests).
                A store shared between processes needs a clock they share (`time.monotonic`
                is the system's on Linux).
            store: where the buckets live (default: `MemoryBuckets`, this process only).
        """
        self.limits = limits
        self.clock = clock
        self.store: BucketStore = store if store is not None else MemoryBuckets()

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
        per = max(limit.per.total_seconds(), 1e-9)
        rate = capacity / per  # requests per second

        def change(buckets: Sequence[Bucket | None]) -> tuple[Sequence[Bucket], float]:
            return spend(buckets, now, capacity, rate)

        now = self.clock()
        wait = self.store.update(kind, key, now, per, change)
        if wait <= 0.0:
            return
        after = max(math.ceil(wait), 1)
        raise TooManyRequests(
            f"too many {_WHAT.get(kind, kind)}: at most {limit.requests} every "
            f"{_seconds(limit.per.total_seconds())}; try again in {after} s",
            retry_after=after,
        )


def _seconds(total: float) -> str:
    if total >= 3600 and total % 3600 == 0:
        return f"{int(total // 3600)} h"
    if total >= 60 and total % 60 == 0:
        return f"{int(total // 60)} min"
    return f"{total:g} s"
