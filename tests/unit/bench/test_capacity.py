"""The benchmark's capacity check finds every over-commitment and nothing else.

`overbooked` must be right for `bench.bench_accepts` to refuse to publish numbers from a run that
double-booked; it is compared here with a brute force that sums the commitments covering each
instant on a fine grid.
"""

from hypothesis import given
from hypothesis import strategies as st

from bench.capacity import Commitment, overbooked

CAPACITY = {"a": (8, 32.0), "b": (4, 16.0)}


def slot(platform: str, start: int, end: int, cores: int = 2, memory: float = 8.0) -> Commitment:
    return Commitment(platform, start, end, cores, memory)


def test_back_to_back_slots_at_full_capacity_are_within_it() -> None:
    # Slots are half-open: the four ending at 10 and the four starting there never overlap.
    commitments = [slot("a", 0, 10) for _ in range(4)] + [slot("a", 10, 20) for _ in range(4)]
    assert overbooked(commitments, CAPACITY) == []


def test_one_core_too_many_at_one_instant_is_reported_with_the_platform() -> None:
    commitments = [slot("a", 0, 10) for _ in range(4)] + [slot("a", 9, 12, cores=1, memory=0)]
    [problem] = overbooked(commitments, CAPACITY)
    assert problem.startswith("a: 9 cores and 32 GiB committed from 1970-01-01T00:00:00.000009")


def test_memory_alone_can_be_exceeded() -> None:
    commitments = [slot("b", 0, 10, cores=1, memory=10.0), slot("b", 5, 15, cores=1, memory=7.0)]
    [problem] = overbooked(commitments, CAPACITY)
    assert "2 cores and 17 GiB" in problem


def test_platforms_are_counted_apart_and_an_unknown_one_has_no_capacity() -> None:
    full = [slot("a", 0, 10) for _ in range(4)] + [slot("b", 0, 10) for _ in range(2)]
    assert overbooked(full, CAPACITY) == []
    assert [p.split(":")[0] for p in overbooked([*full, slot("c", 0, 1)], CAPACITY)] == ["c"]


def test_float_memory_that_adds_up_to_the_capacity_is_within_it() -> None:
    tenths = [slot("a", 0, 10, cores=0, memory=0.1) for _ in range(3)]
    assert 0.1 + 0.1 + 0.1 > 0.3  # the rounding the check must forgive
    assert overbooked(tenths, {"a": (8, 0.3)}) == []


commitments_strategy = st.lists(
    st.builds(
        lambda platform, start, length, cores, memory: slot(
            platform, start, start + length, cores, float(memory)
        ),
        st.sampled_from(["a", "b"]),
        st.integers(0, 30),
        st.integers(1, 10),
        st.integers(0, 4),
        st.integers(0, 16),
    ),
    max_size=12,
)


@given(commitments_strategy)
def test_agrees_with_a_brute_force_over_every_instant(commitments: list[Commitment]) -> None:
    over = set()
    for platform, (cores, memory) in CAPACITY.items():
        for instant in range(41):
            covering = [
                c for c in commitments if c.platform == platform and c.start <= instant < c.end
            ]
            if sum(c.cores for c in covering) > cores or sum(c.memory for c in covering) > memory:
                over.add(platform)
    assert {problem.split(":")[0] for problem in overbooked(commitments, CAPACITY)} == over
