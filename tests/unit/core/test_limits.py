"""`core.limits`: a token bucket per kind of request and identity."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.errors import TooManyRequests
from core.limits import RateLimiter
from core.settings import RateLimit, RateLimits
from tests.clocks import MonotonicClock

pytestmark = pytest.mark.usefixtures("rate_limits")


def limiter(requests: int = 3, per: timedelta = timedelta(minutes=1), **more: bool) -> tuple:
    clock = MonotonicClock()
    limits = RateLimits(offers=RateLimit(requests=requests, per=per), **more)
    return RateLimiter(limits, clock), clock


def test_a_burst_up_to_the_limit_passes_and_the_next_waits_for_a_refill():
    limits, clock = limiter(requests=3, per=timedelta(minutes=1))
    for _ in range(3):
        limits.take("offers", "token:alice")
    with pytest.raises(TooManyRequests, match="at most 3 every 1 min") as refused:
        limits.take("offers", "token:alice")
    assert refused.value.retry_after == 20  # one request comes back every 20 s
    clock.now += 19
    with pytest.raises(TooManyRequests) as still:
        limits.take("offers", "token:alice")
    assert still.value.retry_after == 1
    clock.now += 1
    limits.take("offers", "token:alice")


def test_identities_and_kinds_have_their_own_buckets():
    limits, _ = limiter(requests=1)
    limits.take("offers", "token:alice")
    limits.take("offers", "token:bob")
    limits.take("sign_in", "token:alice")
    with pytest.raises(TooManyRequests):
        limits.take("offers", "token:alice")


def test_a_quiet_client_gets_its_whole_burst_back_and_no_more():
    limits, clock = limiter(requests=2)
    limits.take("offers", "k")
    limits.take("offers", "k")
    clock.now += 3600
    limits.take("offers", "k")
    limits.take("offers", "k")
    with pytest.raises(TooManyRequests):
        limits.take("offers", "k")


def test_limits_can_be_switched_off():
    limits, _ = limiter(requests=1, enabled=False)
    for _ in range(10):
        limits.take("offers", "k")
