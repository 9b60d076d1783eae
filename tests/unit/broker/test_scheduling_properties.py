"""Properties of scheduling and offers for random platforms, bookings and requests.

Every check here recomputes usage by brute force (summing every booking at every instant that
matters), independently of the sweep the code uses. Times are whole multiples of five minutes
so that the brute force can also walk every possible start on that grid.
"""

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.scheduling.intervals import Interval
from broker.scheduling.offers import STRATEGIES, OfferPolicy, make_offers
from broker.scheduling.slots import (
    Booking,
    BookingKind,
    Demand,
    Gpu,
    GpuDemand,
    GpuShare,
    Limits,
    PlatformSpec,
    Prices,
    Resources,
    SlotPolicy,
    assess,
    find_slots,
)

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
STEP = 5  # minutes
KINDS = ("docker-container", "jupyter-notebook")
MODELS = (("A10", 24.0, 8.6), ("A100", 80.0, 8.0), ("H100", 80.0, 9.0))
FRACTIONS = st.sampled_from([0.0, 0.3, 0.5, 0.1])


def at(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def grid(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low // STEP, high // STEP).map(lambda n: n * STEP)


def intervals(first: int, last: int, longest: int, shortest: int = STEP):
    return st.tuples(grid(first, last), grid(shortest, longest)).map(
        lambda pair: Interval(at(pair[0]), at(pair[0] + pair[1]))
    )


@st.composite
def platforms(draw, name: str, fractions: bool = False) -> PlatformSpec:
    cores = draw(st.integers(1, 48))
    memory = draw(st.integers(1, 96)) + (draw(FRACTIONS) if fractions else 0)
    models = draw(st.lists(st.sampled_from(MODELS), max_size=2, unique_by=lambda m: m[0]))
    return PlatformSpec(
        name=name,
        cores=cores,
        memory=float(memory),
        gpus=tuple(
            Gpu(model=m, memory=mem, count=draw(st.integers(1, 4)), compute_capability=cc)
            for m, mem, cc in models
        ),
        storage=draw(st.none() | st.integers(10, 200).map(float)),
        kinds=frozenset(draw(st.sets(st.sampled_from(KINDS), min_size=1))),
        limits=Limits(
            cores=draw(st.none() | st.integers(1, 48)),
            memory=draw(st.none() | st.integers(1, 96).map(float)),
            gpus=draw(st.none() | st.integers(1, 4)),
            duration=draw(st.none() | grid(60, 3000).map(lambda m: timedelta(minutes=m))),
        ),
        prices=draw(
            st.none()
            | st.builds(
                Prices,
                core_hour=st.sampled_from([0.0, 0.01, 0.05]),
                gib_hour=st.sampled_from([0.0, 0.002]),
                gpu_hour=st.sampled_from([0.0, 1.5]),
                unit=st.sampled_from(["EUR", "EUR", "CPUh"]),
            )
        ),
        maintenance=tuple(draw(st.lists(intervals(0, 1500, 300), max_size=2))),
        preparation=timedelta(minutes=draw(grid(0, 30))),
    )


@st.composite
def bookings_for(draw, platform: PlatformSpec, most: int, fractions: bool = False):
    result = []
    for _ in range(draw(st.integers(0, most))):
        gpus = ()
        if platform.gpus and draw(st.booleans()):
            gpu = draw(st.sampled_from(platform.gpus))
            gpus = (GpuShare(gpu.model, draw(st.integers(1, gpu.count))),)
        # Some are the holds of other offer sets: a set's holds count by their maximum.
        group = draw(st.sampled_from([None, None, "set-1", "set-2"]))
        result.append(
            Booking(
                platform=platform.name,
                kind=BookingKind.BOOKING if group is None else BookingKind.HOLD,
                group=group,
                interval=draw(intervals(-200, 1500, 600)),
                resources=Resources(
                    cores=draw(st.integers(1, platform.cores)),
                    memory=draw(st.integers(0, int(platform.memory)))
                    + (draw(FRACTIONS) if fractions else 0.0),
                    storage=float(draw(st.integers(0, 50))),
                    gpus=gpus,
                ),
            )
        )
    return result


@st.composite
def demands(
    draw, longest_window: int = 600, longest_duration: int = 1500, fractions: bool = False
) -> Demand:
    cores = draw(st.integers(1, 32))
    memory = draw(st.integers(0, 64)) + (draw(FRACTIONS) if fractions else 0.0)
    gpus = None
    if draw(st.booleans()):
        gpus = GpuDemand(
            count_min=draw(st.integers(1, 3)),
            models=tuple(draw(st.sets(st.sampled_from([m for m, _, _ in MODELS])))),
            memory_min=draw(st.sampled_from([0.0, 24.0, 40.0])),
            compute_capability_min=draw(st.none() | st.sampled_from([8.0, 9.0])),
        )
    return Demand(
        kind=draw(st.sampled_from(KINDS)),
        duration=timedelta(minutes=draw(grid(STEP, longest_duration))),
        windows=tuple(
            draw(st.lists(intervals(-60, 1500, longest_window, shortest=0), min_size=1, max_size=3))
        ),
        cores_min=cores,
        cores_max=draw(st.none() | st.integers(cores, cores + 16)),
        memory_min=float(memory),
        memory_max=draw(st.none() | st.integers(0, 32).map(lambda extra: memory + extra)),
        storage=float(draw(st.integers(0, 50))),
        gpus=gpus,
    )


policies = st.builds(
    OfferPolicy,
    horizon=st.integers(1, 5).map(lambda days: timedelta(days=days)),
    offer_ttl=st.just(timedelta(minutes=5)),
    max_offers=st.integers(1, 6),
    strategies=st.permutations(STRATEGIES).flatmap(
        lambda order: st.integers(1, 4).map(lambda n: tuple(order[:n]))
    ),
    slots=st.builds(
        SlotPolicy,
        above_minimum=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
        stretch=st.sampled_from([1.0, 2.0, 3.0]),
    ),
)


@st.composite
def worlds(draw):
    names = ["alpha", "beta", "gamma"][: draw(st.integers(1, 3))]
    # Fractions of a GiB too: memory is counted in MiB, rounded against the asker.
    specs = [draw(platforms(name, fractions=True)) for name in names]
    bookings = [b for spec in specs for b in draw(bookings_for(spec, 15, fractions=True))]
    return specs, bookings, draw(demands(fractions=True)), draw(policies)


# ------------------------------------------------------------------------- brute force
def dimensions(platform: PlatformSpec) -> dict[str, float]:
    capacity = {"cores": platform.cores, "memory": platform.memory}
    if platform.storage is not None:
        capacity["storage"] = platform.storage
    capacity.update({f"gpu:{gpu.model}": gpu.count for gpu in platform.gpus})
    return capacity


def usage(resources: Resources) -> dict[str, float]:
    used = {"cores": resources.cores, "memory": resources.memory, "storage": resources.storage}
    for share in resources.gpus:
        used[f"gpu:{share.model}"] = used.get(f"gpu:{share.model}", 0) + share.count
    return used


def load_at(platform: PlatformSpec, bookings: list[Booking], instant: datetime) -> dict[str, float]:
    """What is taken at `instant`: bookings add up, the holds of one offer set by their maximum."""
    capacity = dimensions(platform)
    load = dict.fromkeys(capacity, 0.0)
    sets: dict[str, dict[str, float]] = {}
    for booking in bookings:
        if booking.platform == platform.name and booking.interval.contains(instant):
            most = None if booking.group is None else sets.setdefault(booking.group, {})
            for key, amount in usage(booking.resources).items():
                if key not in load:
                    continue
                if most is None:
                    load[key] += amount
                else:
                    most[key] = max(most.get(key, 0.0), amount)
    for most in sets.values():
        for key, amount in most.items():
            load[key] += amount
    for closed in platform.maintenance:
        if closed.contains(instant):
            for key in load:
                load[key] += capacity[key]
    return load


def peak_free(platform, bookings, start: datetime, end: datetime) -> dict[str, float]:
    """Least free amount of each dimension over [start, end), by brute force."""
    instants = {start} | {
        edge
        for interval in [b.interval for b in bookings] + list(platform.maintenance)
        for edge in (interval.start, interval.end)
        if start < edge < end
    }
    capacity = dimensions(platform)
    free = dict(capacity)
    for instant in instants:
        load = load_at(platform, bookings, instant)
        for key, least in free.items():
            free[key] = min(least, capacity[key] - load[key])
    return free


# ------------------------------------------------------------------------- properties
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_offers_never_commit_any_instant_beyond_capacity(world):
    specs, bookings, demand, policy = world
    offers = make_offers(specs, bookings, demand, NOW, policy).offers
    # The offers of one set are alternatives: the set holds their maximum, so each must fit
    # next to the bookings (and other sets' holds) on its own.
    for offer in offers:
        committed = [*bookings, offer.hold("this-set")]
        platform = next(spec for spec in specs if spec.name == offer.platform)
        instants = {offer.start} | {
            booking.interval.start
            for booking in committed
            if offer.start < booking.interval.start < offer.end
        }
        capacity = dimensions(platform)
        for instant in instants:
            load = load_at(platform, committed, instant)
            before = load_at(platform, bookings, instant)
            # Where offers take some of a dimension, it stays within capacity; a dimension
            # already over-booked by others may only be left as it is.
            for key in capacity:
                assert load[key] <= capacity[key] or load[key] == before[key], (offer, instant, key)
        assert not any(offer.hold().interval.overlaps(m) for m in platform.maintenance)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_every_offer_honours_the_whole_request(world):
    specs, bookings, demand, policy = world
    result = make_offers(specs, bookings, demand, NOW, policy)
    assert len(result.offers) <= policy.max_offers
    assert len({(o.platform, o.start, o.resources) for o in result.offers}) == len(result.offers)
    for offer in result.offers:
        platform = next(spec for spec in specs if spec.name == offer.platform)
        assert not assess(platform, demand)
        assert offer.start >= NOW + platform.preparation
        assert offer.start <= NOW + policy.horizon
        assert any(w.start <= offer.start <= w.end for w in demand.windows)
        longest = max(demand.duration, demand.duration * policy.slots.stretch)
        if platform.limits.duration is not None:
            longest = max(demand.duration, min(longest, platform.limits.duration))
        assert demand.duration <= offer.end - offer.start <= longest
        if offer.strategy != "longest":
            assert offer.end - offer.start == demand.duration
        given_ = offer.resources
        assert demand.cores_min <= given_.cores <= (demand.cores_max or given_.cores)
        assert given_.cores <= (platform.limits.cores or given_.cores)
        assert demand.memory_min <= given_.memory <= (demand.memory_max or given_.memory)
        assert given_.memory <= (platform.limits.memory or given_.memory)
        assert given_.cores <= demand.cores_min * policy.slots.above_minimum
        if demand.gpus is None:
            assert given_.gpus == ()
        else:
            (share,) = given_.gpus
            gpu = next(g for g in platform.gpus if g.model == share.model)
            assert share.count == demand.gpus.count_min
            assert demand.gpus.accepts(gpu)
        assert offer.expires == NOW + policy.offer_ttl
        assert offer.strategy in policy.strategies
    if not result.offers:
        named = {reason.platform for reason in result.reasons}
        assert named == {spec.name for spec in specs}
        assert all(reason.text.startswith(f"{reason.platform}: ") for reason in result.reasons)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_the_same_input_gives_the_same_offers(world):
    specs, bookings, demand, policy = world
    first = make_offers(specs, bookings, demand, NOW, policy)
    again = make_offers(specs, list(reversed(bookings)), demand, NOW, policy)
    assert first == again


@st.composite
def small_worlds(draw):
    spec = draw(platforms("alpha"))
    return (
        spec,
        draw(bookings_for(spec, 12)),
        draw(demands(longest_window=240, longest_duration=300)),
        draw(st.sampled_from([1.0, 2.0])),
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_worlds())
def test_slots_are_exact_against_every_start_on_the_grid(world):
    """The earliest slot is the earliest feasible start; the largest is the largest there is."""
    platform, bookings, demand, above = world
    horizon = timedelta(days=2)
    slots = find_slots(
        platform, bookings, demand, NOW, horizon, policy=SlotPolicy(above_minimum=above)
    )
    if assess(platform, demand):
        assert slots == []
        return
    options = [None]
    if demand.gpus is not None:
        options = [
            g for g in platform.gpus if demand.gpus.accepts(g) and g.count >= demand.gpus.count_min
        ]
    earliest = NOW + platform.preparation
    feasible: list[tuple[datetime, int, float]] = []
    for window in demand.windows:
        start = max(window.start, earliest)
        while start <= min(window.end, NOW + horizon):
            free = peak_free(platform, bookings, start, start + demand.duration)
            for gpu in options:
                fits = free["cores"] >= demand.cores_min
                if demand.memory_min:
                    fits = fits and free["memory"] >= demand.memory_min
                if platform.storage is not None and demand.storage:
                    fits = fits and free["storage"] >= demand.storage
                if gpu is not None:
                    fits = fits and free[f"gpu:{gpu.model}"] >= demand.gpus.count_min
                if fits:
                    cores = min(
                        free["cores"],
                        int(demand.cores_min * above),
                        demand.cores_max or 10**9,
                        platform.limits.cores or 10**9,
                    )
                    feasible.append((start, cores, free["memory"]))
            start += timedelta(minutes=STEP)
    if not feasible:
        assert slots == []
        return
    assert slots, "a feasible start exists but no slot was found"
    assert slots[0].start == min(start for start, _, _ in feasible)
    assert max(slot.offered.cores for slot in slots) == max(cores for _, cores, _ in feasible)
    for slot in slots:
        free = peak_free(platform, bookings, slot.start, slot.end)
        assert free["cores"] >= slot.offered.cores
        assert free["memory"] >= slot.offered.memory or not slot.offered.memory
        room = peak_free(platform, bookings, slot.start, slot.latest_end)
        assert room["cores"] >= demand.cores_min
        assert room["memory"] >= demand.memory_min or not demand.memory_min


def test_durations_of_days_over_a_horizon_of_weeks_with_many_bookings():
    spec = PlatformSpec(name="alpha", cores=64, memory=256.0, kinds=frozenset(KINDS))
    bookings = [
        Booking(
            platform="alpha",
            interval=Interval(at(k * 90), at(k * 90 + 600)),
            resources=Resources(cores=8 + k % 5, memory=16.0),
        )
        for k in range(300)
    ]
    demand = Demand(
        kind="docker-container",
        duration=timedelta(days=3),
        windows=(Interval(NOW, NOW + timedelta(days=20)),),
        cores_min=16,
        memory_min=32.0,
    )
    result = make_offers([spec], bookings, demand, NOW, OfferPolicy(horizon=timedelta(days=21)))
    assert result.offers
    for offer in result.offers:
        free = peak_free(spec, bookings, offer.start, offer.end)  # siblings take nothing
        assert free["cores"] >= offer.resources.cores
