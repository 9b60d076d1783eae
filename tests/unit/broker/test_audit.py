"""The capacity audit finds every over-commitment, and lets new holds in exactly when they fit.

`overbookings` is what the concurrency tests and the accepts benchmark trust to say that nothing
was double-booked; `holds_fit` is what the broker trusts, under a platform's lock, to store
offers it computed without the lock. Both are compared here with a brute force that, at each
instant of a fine grid, sums the bookings and adds, per offer set, the most any of its holds
takes (the holds of one set are alternatives), and `holds_fit` with the scheduler itself:
offers made from some bookings always fit next to those bookings.
"""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.scheduling.audit import holds_fit, overbookings
from broker.scheduling.intervals import Interval
from broker.scheduling.offers import make_offers
from broker.scheduling.resources import (
    Booking,
    BookingKind,
    Gpu,
    GpuShare,
    PlatformSpec,
    Resources,
    capacity_units,
    memory_units,
)
from tests.unit.broker.test_scheduling_properties import NOW, worlds

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
PLATFORM = PlatformSpec(
    name="a",
    cores=8,
    memory=32.0,
    gpus=(Gpu(model="A100", memory=80.0, count=2), Gpu(model="A10", memory=24.0, count=1)),
    storage=100.0,
    kinds=frozenset({"docker-container"}),
)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def booking(
    start: int,
    end: int,
    cores: int = 2,
    memory: float = 8.0,
    *,
    platform: str = "a",
    storage: float = 0.0,
    gpus: tuple[GpuShare, ...] = (),
    kind: BookingKind = BookingKind.BOOKING,
) -> Booking:
    return Booking(
        platform=platform,
        interval=Interval(at(start), at(end)),
        resources=Resources(cores=cores, memory=memory, storage=storage, gpus=gpus),
        kind=kind,
    )


def hold(
    start: int,
    end: int,
    cores: int = 2,
    memory: float = 8.0,
    *,
    platform: str = "a",
    gpus: tuple[GpuShare, ...] = (),
    group: str | None = None,
) -> Booking:
    return Booking(
        platform=platform,
        interval=Interval(at(start), at(end)),
        resources=Resources(cores=cores, memory=memory, gpus=gpus),
        kind=BookingKind.HOLD,
        group=group,
    )


# ------------------------------------------------------------------------- overbookings
def test_back_to_back_slots_at_full_capacity_are_within_it():
    # Half-open slots: the four ending at 60 and the four starting there never overlap.
    full = [booking(0, 60) for _ in range(4)] + [booking(60, 120) for _ in range(4)]
    assert overbookings(PLATFORM, full) == []


def test_one_core_too_many_is_reported_from_the_instant_it_happens():
    commitments = [booking(0, 60) for _ in range(4)] + [booking(50, 70, cores=1, memory=0)]
    [excess] = overbookings(PLATFORM, commitments)
    assert (excess.resource, excess.start, excess.used, excess.capacity) == ("cores", at(50), 9, 8)
    assert excess.describe() == f"a: 9 cores committed from {at(50).isoformat()} (capacity 8)"


def test_memory_storage_and_each_gpu_model_are_counted_apart():
    commitments = [
        booking(0, 10, cores=1, memory=20.0, storage=60.0, gpus=(GpuShare("A100", 2),)),
        booking(5, 15, cores=1, memory=13.0, storage=50.0, gpus=(GpuShare("A10", 1),)),
    ]
    found = {excess.resource: excess for excess in overbookings(PLATFORM, commitments)}
    assert sorted(found) == ["GiB of memory", "GiB of storage"]
    assert (found["GiB of memory"].used, found["GiB of storage"].used) == (33.0, 110.0)
    more = [*commitments, booking(8, 9, cores=0, memory=0.0, gpus=(GpuShare("A100", 1),))]
    assert [e.resource for e in overbookings(PLATFORM, more)][-1] == "A100 GPUs"


def test_storage_counts_only_on_a_platform_that_manages_it():
    unmanaged = PlatformSpec(name="a", cores=8, memory=32.0)
    assert overbookings(unmanaged, [booking(0, 10, storage=500.0)]) == []


def test_a_share_of_a_gpu_model_the_platform_no_longer_has_takes_nothing():
    assert overbookings(PLATFORM, [booking(0, 10, gpus=(GpuShare("H100", 9),))]) == []


def test_maintenance_takes_everything_and_other_platforms_do_not_count():
    closed = PlatformSpec(name="a", cores=8, memory=32.0, maintenance=(Interval(at(100), at(200)),))
    assert overbookings(closed, [booking(0, 100), booking(200, 300)]) == []
    assert overbookings(closed, [booking(0, 100, platform="b", cores=99)]) == []
    assert [e.resource for e in overbookings(closed, [booking(150, 160, memory=0)])] == ["cores"]


def test_memory_is_counted_as_the_scheduler_counts_it_in_whole_mib():
    # Bookings are rounded up to whole MiB, capacities down: 3 x 0.1 GiB is 3 x 103 MiB,
    # more than the 307 MiB of a 0.3 GiB platform, as the scheduler would also find.
    tiny = PlatformSpec(name="a", cores=8, memory=0.3)
    assert 3 * memory_units(0.1) > capacity_units(0.3)
    assert [e.resource for e in overbookings(tiny, [booking(0, 1, 0, 0.1)] * 3)] == [
        "GiB of memory"
    ]
    assert overbookings(tiny, [booking(0, 1, 0, 0.1)] * 2) == []


# ------------------------------------------------------------------------- holds_fit
def test_a_hold_fits_where_the_bookings_leave_room_and_not_where_they_do_not():
    bookings = [booking(0, 60, cores=6)]
    assert holds_fit(PLATFORM, bookings, [hold(0, 60, cores=2)])
    assert not holds_fit(PLATFORM, bookings, [hold(30, 90, cores=3)])
    assert holds_fit(PLATFORM, bookings, [hold(60, 120, cores=8, memory=32.0)])


def test_the_holds_of_one_new_set_are_alternatives_each_fitting_on_its_own():
    bookings = [booking(0, 60, cores=4)]
    assert holds_fit(PLATFORM, bookings, [hold(0, 60, cores=2)])
    # 2 + 3 cores next to 4 would be 9 of 8, but only one of them can be accepted.
    assert holds_fit(PLATFORM, bookings, [hold(0, 60, cores=2), hold(30, 60, cores=3)])
    assert holds_fit(PLATFORM, bookings, [hold(0, 60, cores=4), hold(0, 60, cores=4)])
    assert not holds_fit(PLATFORM, bookings, [hold(0, 60, cores=2), hold(30, 60, cores=5)])


def test_the_holds_of_a_stored_set_count_by_their_maximum_per_resource():
    # One set: 4 cores and 8 GiB, or 2 cores and 24 GiB; it takes 4 cores and 24 GiB at most.
    stored = [
        hold(0, 60, cores=4, memory=8.0, group="s"),
        hold(0, 60, cores=2, memory=24.0, group="s"),
    ]
    assert overbookings(PLATFORM, [*stored, booking(0, 60, cores=4, memory=8.0)]) == []
    [excess] = overbookings(PLATFORM, [*stored, booking(30, 60, cores=5, memory=8.0)])
    assert (excess.resource, excess.start, excess.used) == ("cores", at(30), 9)
    [excess] = overbookings(PLATFORM, [*stored, booking(0, 60, cores=1, memory=9.0)])
    assert (excess.resource, excess.used) == ("GiB of memory", 33)
    # Two sets, or holds without a set, add up.
    other = [hold(0, 60, cores=4, group="t")]
    assert [e.resource for e in overbookings(PLATFORM, [*stored, *other, *other])] == []
    assert [
        e.resource for e in overbookings(PLATFORM, [*stored, *other, hold(0, 9, memory=0.0)])
    ] == ["cores"]
    assert holds_fit(PLATFORM, [*stored, *other], [hold(0, 60, cores=0, memory=8.0)]) is False
    assert holds_fit(PLATFORM, stored, [hold(0, 60, cores=4, memory=8.0)]) is True


def test_an_accepted_booking_counts_in_full_whatever_its_set():
    # Once accepted, the session's booking is no alternative: it adds up with its set's holds
    # (which the accept releases in the same transaction).
    accepted = Booking(
        platform="a",
        interval=Interval(at(0), at(60)),
        resources=Resources(cores=4, memory=8.0),
        group="s",
    )
    assert overbookings(PLATFORM, [accepted, hold(0, 60, cores=4, group="s")]) == []
    assert [
        e.resource for e in overbookings(PLATFORM, [accepted, hold(0, 60, cores=5, group="s")])
    ] == ["cores"]


def test_a_resource_the_hold_does_not_take_never_stops_it():
    # The A100s are over-committed (the platform lost some), a core-only hold still fits;
    # one that wants an A100 there does not.
    bookings = [booking(0, 60, cores=1, memory=0.0, gpus=(GpuShare("A100", 3),))]
    assert holds_fit(PLATFORM, bookings, [hold(0, 60)])
    assert not holds_fit(PLATFORM, bookings, [hold(0, 60, gpus=(GpuShare("A100", 1),))])


def test_a_hold_during_maintenance_does_not_fit():
    closed = PlatformSpec(name="a", cores=8, memory=32.0, maintenance=(Interval(at(60), at(90)),))
    assert holds_fit(closed, [], [hold(0, 60)])
    assert not holds_fit(closed, [], [hold(30, 61)])


def test_holds_of_another_platform_are_refused():
    with pytest.raises(ValueError, match="holds of b checked on a"):
        holds_fit(PLATFORM, [], [hold(0, 10, platform="b")])


# ------------------------------------------------------------------------- brute force
SMALL = PlatformSpec(
    name="a", cores=4, memory=16.0, gpus=(Gpu(model="A100", memory=80.0, count=2),)
)
commitment = st.builds(
    lambda platform, start, length, cores, memory, gpus, group: Booking(
        platform=platform,
        interval=Interval(at(start), at(start + length)),
        resources=Resources(
            cores=cores, memory=float(memory), gpus=(GpuShare("A100", gpus),) if gpus else ()
        ),
        kind=BookingKind.BOOKING if group is None else BookingKind.HOLD,
        group=group,
    ),
    st.sampled_from(["a", "a", "b"]),
    st.integers(0, 30),
    st.integers(1, 10),
    st.integers(0, 3),
    st.integers(0, 10),
    st.integers(0, 2),
    st.sampled_from([None, None, "s", "t"]),
)


def amounts(item: Booking) -> tuple[int, int, int]:
    return (
        item.resources.cores,
        memory_units(item.resources.memory),
        sum(share.count for share in item.resources.gpus),
    )


def load_at(items: list[Booking], minute: int) -> tuple[int, int, int]:
    """Bookings add up; the holds of one set add, per resource, the most any of them takes."""
    covering = [
        item for item in items if item.platform == "a" and item.interval.contains(at(minute))
    ]
    load = [0, 0, 0]
    sets: dict[str, list[int]] = {}
    for item in covering:
        if item.group is None:
            load = [a + b for a, b in zip(load, amounts(item), strict=True)]
        else:
            most = sets.setdefault(item.group, [0, 0, 0])
            sets[item.group] = [max(a, b) for a, b in zip(most, amounts(item), strict=True)]
    for most in sets.values():
        load = [a + b for a, b in zip(load, most, strict=True)]
    return load[0], load[1], load[2]


CAPACITY = (SMALL.cores, capacity_units(SMALL.memory), 2)
NAMES = ("cores", "GiB of memory", "A100 GPUs")


@given(st.lists(commitment, max_size=12))
def test_overbookings_agree_with_a_brute_force_over_every_minute(items: list[Booking]) -> None:
    over: dict[str, int] = {}
    for minute in range(41):
        for name, used, total in zip(NAMES, load_at(items, minute), CAPACITY, strict=True):
            if used > total:
                over.setdefault(name, minute)
    found = overbookings(SMALL, items)
    assert {excess.resource: excess.start for excess in found} == {
        name: at(minute) for name, minute in over.items()
    }


@given(st.lists(commitment, max_size=8), st.lists(commitment, min_size=1, max_size=3))
def test_holds_fit_agrees_with_a_brute_force_over_every_minute(
    bookings: list[Booking], drawn: list[Booking]
) -> None:
    holds = [
        Booking(platform="a", interval=h.interval, resources=h.resources, kind=BookingKind.HOLD)
        for h in drawn
    ]
    # The new holds are one set's alternatives: each must fit on its own.
    fits = True
    for new in holds:
        for minute in range(41):
            if not new.interval.contains(at(minute)):
                continue
            used = load_at([*bookings, new], minute)
            taken = [amount > 0 for amount in amounts(new)]
            if any(t and u > c for t, u, c in zip(taken, used, CAPACITY, strict=True)):
                fits = False
    assert holds_fit(SMALL, bookings, holds) is fits


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_the_offers_made_from_some_bookings_fit_next_to_them(world):
    specs, bookings, demand, policy = world
    offers = make_offers(specs, bookings, demand, NOW, policy).offers
    for spec in specs:
        holds = [offer.hold() for offer in offers if offer.platform == spec.name]
        assert holds_fit(spec, bookings, holds), (spec, holds)
