"""`voexec.shared_limits`: one table of rate-limit buckets for every worker process.

The table must hold a client to its limit whichever process answers, never let a collision
between keys loosen a limit (only refuse sooner), stay the same size whatever the traffic and
give a client left alone its whole burst back.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from datetime import timedelta
from pathlib import Path

import pytest

from core.errors import TooManyRequests
from core.limits import MemoryBuckets, RateLimiter
from core.settings import RateLimit, RateLimits
from tests.clocks import MonotonicClock
from voexec.shared_limits import SharedBuckets, create_table, table_bytes

pytestmark = pytest.mark.usefixtures("rate_limits")


def limits(requests: int = 3, per: timedelta = timedelta(minutes=1)) -> RateLimits:
    return RateLimits(offers=RateLimit(requests=requests, per=per))


def passes(limiter: RateLimiter, key: str, kind: str = "offers") -> bool:
    try:
        limiter.take(kind, key)
    except TooManyRequests:
        return False
    return True


def test_two_processes_mapping_one_table_share_each_clients_bucket(tmp_path: Path) -> None:
    table = create_table(tmp_path / "rate-limits.table")
    clock = MonotonicClock()
    first = RateLimiter(limits(3), clock, SharedBuckets(table))
    second = RateLimiter(limits(3), clock, SharedBuckets(table))
    assert [passes(first, "token:alice"), passes(second, "token:alice")] == [True, True]
    assert passes(first, "token:alice")
    with pytest.raises(TooManyRequests, match="at most 3 every 1 min") as refused:
        second.take("offers", "token:alice")
    assert refused.value.retry_after == 20
    assert passes(second, "token:bob")  # another client, its own bucket
    assert passes(second, "token:alice", kind="sign_in")  # another kind, its own table
    clock.now += 20
    assert passes(first, "token:alice")
    assert not passes(second, "token:alice")


def test_a_table_of_two_slots_makes_every_client_share_one_bucket_never_a_looser_one(
    tmp_path: Path,
):
    table = SharedBuckets(create_table(tmp_path / "t", 2))
    shared = RateLimiter(limits(3), MonotonicClock(), table)
    allowed = [passes(shared, f"token:{name}") for name in ("alice", "bob", "carol", "dan")]
    assert allowed == [True, True, True, False]


@pytest.mark.parametrize("slots", [2, 3, 7, 64])
def test_whatever_the_collisions_each_client_passes_no_more_than_its_own_bucket_allows(
    tmp_path: Path, slots: int
):
    # Random traffic of many clients over a small table: every request the shared table lets
    # through, replayed into a private bucket per client, must pass there too.
    rules = limits(4, timedelta(seconds=10))
    clock = MonotonicClock()
    shared = RateLimiter(rules, clock, SharedBuckets(create_table(tmp_path / "t", slots)))
    private = RateLimiter(rules, clock, MemoryBuckets())
    chance = random.Random(slots)
    let_through: list[tuple[float, str]] = []
    for _ in range(3000):
        clock.now += chance.expovariate(20.0)
        key = f"token:{chance.randrange(40)}"
        if passes(shared, key):
            let_through.append((clock.now, key))
    assert let_through, "some requests pass"
    for at, key in let_through:
        clock.now = at
        private.take("offers", key)  # raises if the shared table was looser


def test_a_client_left_alone_for_per_gets_its_whole_burst_back_on_a_crowded_table(
    tmp_path: Path,
):
    clock = MonotonicClock()
    shared = RateLimiter(limits(2), clock, SharedBuckets(create_table(tmp_path / "t", 4)))
    for name in range(50):
        passes(shared, f"token:{name}")
    assert not passes(shared, "token:alice")  # every slot is spent by the crowd
    clock.now += 60
    assert [passes(shared, "token:alice") for _ in range(3)] == [True, True, False]


def test_the_table_keeps_its_size_whatever_the_number_of_clients(tmp_path: Path) -> None:
    path = create_table(tmp_path / "t", 1024)
    shared = RateLimiter(limits(1), MonotonicClock(), SharedBuckets(path))
    for name in range(20_000):
        passes(shared, f"address:10.0.{name // 256}.{name % 256}")
    assert path.stat().st_size == table_bytes(1024)


def test_a_file_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_bytes(b"not a table" * 100)
    with pytest.raises(ValueError, match="not a voexec rate-limit table"):
        SharedBuckets(other)


def test_a_new_table_replaces_the_old_file_without_touching_a_process_mapping_it(
    tmp_path: Path,
):
    path = tmp_path / "rate-limits.table"
    clock = MonotonicClock()
    running = RateLimiter(limits(1), clock, SharedBuckets(create_table(path)))
    assert passes(running, "k")
    restarted = RateLimiter(limits(1), clock, SharedBuckets(create_table(path)))
    assert not passes(running, "k")
    assert passes(restarted, "k")


def _hammer(path: str, requests: int, start: object, results: object) -> None:
    limiter = RateLimiter(
        limits(1000, timedelta(hours=1)), time.monotonic, SharedBuckets(Path(path))
    )
    start.wait()  # type: ignore[attr-defined]
    allowed = sum(passes(limiter, "token:alice") for _ in range(requests))
    results.put(allowed)  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_processes_taking_at_once_from_one_bucket_let_through_exactly_the_limit(
    tmp_path: Path, method: str
):
    context = multiprocessing.get_context(method)
    path = str(create_table(tmp_path / "rate-limits.table"))
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=_hammer, args=(path, 500, start, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    start.set()
    allowed = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    # 2000 asked at once, the refill over the test is far below one: a lost update would show
    assert sum(allowed) == 1000
