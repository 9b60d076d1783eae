"""The benchmark's capacity check reports every platform over capacity, and nothing else.

`overbooked` must be right for `bench.bench_accepts` to refuse to publish numbers from a run that
double-booked. The sweep itself is `broker.scheduling.audit.overbookings`, tested against a brute
force in `tests/unit/broker/test_audit.py`; here, what the benchmark adds: several platforms at
once, platforms missing from the configuration, and the words of the report.
"""

from datetime import UTC, datetime, timedelta

from bench.capacity import overbooked
from broker.scheduling.intervals import Interval
from broker.scheduling.resources import Booking, PlatformSpec, Resources

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
PLATFORMS = [
    PlatformSpec(name="a", cores=8, memory=32.0),
    PlatformSpec(name="b", cores=4, memory=16.0),
]


def slot(platform: str, start: int, end: int, cores: int = 2, memory: float = 8.0) -> Booking:
    return Booking(
        platform=platform,
        interval=Interval(T0 + timedelta(minutes=start), T0 + timedelta(minutes=end)),
        resources=Resources(cores=cores, memory=memory),
    )


def test_platforms_at_full_capacity_are_within_it():
    full = [slot("a", 0, 10) for _ in range(4)] + [slot("b", 0, 10) for _ in range(2)]
    assert overbooked(full, PLATFORMS) == []


def test_each_platform_over_capacity_is_reported_with_its_name_and_the_instant():
    over = [slot("a", 0, 10) for _ in range(5)] + [slot("b", 5, 10, cores=5, memory=1.0)]
    assert overbooked(over, PLATFORMS) == [
        f"a: 10 cores committed from {T0.isoformat()} (capacity 8)",
        f"a: 40 GiB of memory committed from {T0.isoformat()} (capacity 32)",
        f"b: 5 cores committed from {(T0 + timedelta(minutes=5)).isoformat()} (capacity 4)",
    ]


def test_commitments_on_a_platform_that_is_not_configured_are_reported():
    stray = [slot("a", 0, 10), slot("c", 0, 1), slot("c", 2, 3)]
    assert overbooked(stray, PLATFORMS) == ["c: 2 commitments on a platform that is not configured"]
