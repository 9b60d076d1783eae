"""Offers across platforms: strategies, prices, de-duplication, holds, and the NO answer."""

import typing
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.scheduling.audit import overbookings
from broker.scheduling.intervals import Interval
from broker.scheduling.offers import STRATEGIES, Cost, OfferPolicy, make_offers, price
from broker.scheduling.slots import (
    Booking,
    BookingKind,
    Demand,
    Gpu,
    GpuDemand,
    GpuShare,
    PlatformSpec,
    Prices,
    Resources,
    SlotPolicy,
)
from core.settings import BrokerSettings, Strategy

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
KINDS = frozenset({"docker-container"})


def at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def platform(name: str, cores: int = 32, memory: float = 128.0, **more) -> PlatformSpec:
    return PlatformSpec(
        name=name, cores=cores, memory=memory, kinds=KINDS, preparation=timedelta(0), **more
    )


def demand(**overrides) -> Demand:
    fields = {
        "kind": "docker-container",
        "duration": HOUR,
        "windows": (Interval(NOW, at(6)),),
        "cores_min": 4,
        "memory_min": 8.0,
    }
    return Demand(**(fields | overrides))


def busy(name: str, start: float, end: float, cores: int) -> Booking:
    return Booking(
        platform=name,
        interval=Interval(at(start), at(end)),
        resources=Resources(cores=cores, memory=0.0),
    )


def one(strategy: str, **policy) -> OfferPolicy:
    return OfferPolicy(max_offers=1, strategies=(strategy,), **policy)


# ------------------------------------------------------------------------- each strategy
def test_earliest_takes_the_soonest_start_across_platforms():
    platforms = [platform("alpha"), platform("beta")]
    bookings = [busy("alpha", 0, 2, 30)]
    (offer,) = make_offers(platforms, bookings, demand(), NOW, one("earliest")).offers
    assert (offer.platform, offer.start, offer.end) == ("beta", NOW, at(1))
    assert (offer.resources.cores, offer.resources.memory) == (8, 16.0)  # 2 x minimum


def test_nearest_data_takes_the_shortest_preparation_before_the_soonest_start():
    # "far" must move its data first (its preparation for this request is 40 s longer), yet
    # it could start sooner: "near" holds a replica and wins under nearest-data only.
    far = msgspec.structs.replace(platform("far"), preparation=timedelta(seconds=40))
    near = msgspec.structs.replace(platform("near"), preparation=timedelta(seconds=5))
    bookings = [busy("near", 0, 1, 30)]
    (offer,) = make_offers([far, near], bookings, demand(), NOW, one("nearest-data")).offers
    assert offer.platform == "near"
    (soonest,) = make_offers([far, near], bookings, demand(), NOW, one("earliest")).offers
    assert soonest.platform == "far"


def test_largest_takes_the_most_cores_then_memory():
    platforms = [platform("alpha", cores=6), platform("beta", cores=8, memory=10)]
    offered = make_offers(platforms, [], demand(), NOW, one("largest")).offers[0]
    assert (offered.platform, offered.resources.cores) == ("beta", 8)
    assert offered.resources.memory == 10.0


def test_largest_may_start_later_to_give_more():
    bookings = [busy("alpha", 0, 2, 26)]
    (offer,) = make_offers([platform("alpha")], bookings, demand(), NOW, one("largest")).offers
    assert (offer.start, offer.resources.cores) == (at(2), 8)


def test_longest_offers_the_minimum_for_as_long_as_it_stays_free():
    platforms = [platform("alpha"), platform("beta")]
    bookings = [busy("alpha", 1.5, 9, 30)]
    (offer,) = make_offers(platforms, bookings, demand(), NOW, one("longest")).offers
    assert offer.platform == "beta"
    assert offer.end - offer.start == 2 * HOUR  # stretch 2 x the requested hour
    assert (offer.resources.cores, offer.resources.memory) == (4, 8.0)
    stretched = make_offers(
        [platform("beta")], [], demand(), NOW, one("longest", slots=SlotPolicy(stretch=3))
    ).offers[0]
    assert stretched.end - stretched.start == 3 * HOUR


def test_cheapest_compares_prices_for_the_minimum():
    platforms = [
        platform("alpha", prices=Prices(core_hour=0.10)),
        platform("beta", prices=Prices(core_hour=0.02, gib_hour=0.01)),
        platform("gamma"),
    ]
    (offer,) = make_offers(platforms, [], demand(), NOW, one("cheapest")).offers
    assert offer.platform == "beta"
    assert offer.cost == Cost(amount=4 * 0.02 + 8 * 0.01, unit="EUR")
    assert offer.resources == Resources(cores=4, memory=8.0)


def test_cheapest_ranks_the_main_unit_first_and_unpriced_platforms_last():
    platforms = [
        platform("free"),
        platform("units", prices=Prices(core_hour=0.001, unit="CPUh")),
        platform("euro-1", prices=Prices(core_hour=1.0)),
        platform("euro-2", prices=Prices(core_hour=2.0)),
    ]
    policy = OfferPolicy(max_offers=4, strategies=("cheapest",))
    exact = demand(windows=(Interval(at(1), at(1)),))  # one start: one offer per platform
    offers = make_offers(platforms, [], exact, NOW, policy).offers
    assert [o.platform for o in offers] == ["euro-1", "euro-2", "units", "free"]


def test_cheapest_keeps_to_the_cheapest_platform_while_it_has_room():
    platforms = [
        platform("dear", prices=Prices(core_hour=2.0)),
        platform("cheap", prices=Prices(core_hour=1.0)),
    ]
    policy = OfferPolicy(max_offers=3, strategies=("cheapest",))
    offers = make_offers(platforms, [], demand(), NOW, policy).offers
    assert [o.platform for o in offers] == ["cheap"] * 3
    assert len({o.start for o in offers}) == 3  # distinct offers, not the same one thrice


def test_price_multiplies_hours_by_each_resource():
    gpus = Resources(cores=2, memory=4.0, gpus=(GpuShare("A100", 2),))
    prices = Prices(core_hour=0.5, gib_hour=0.25, gpu_hour=3.0, unit="CHF")
    assert price(prices, gpus, timedelta(minutes=90)) == Cost(amount=1.5 * (1 + 1 + 6), unit="CHF")
    assert price(None, gpus, HOUR) is None


# ------------------------------------------------------------------------- the set
def test_strategies_take_turns_in_the_configured_order():
    platforms = [platform("alpha", prices=Prices(core_hour=1)), platform("beta")]
    policy = OfferPolicy(max_offers=6, strategies=("largest", "earliest"))
    offers = make_offers(platforms, [], demand(), NOW, policy).offers
    assert [o.strategy for o in offers] == ["largest", "earliest"] * 3


def test_at_most_max_offers_and_each_offer_once():
    policy = OfferPolicy(max_offers=3)
    offers = make_offers([platform("alpha"), platform("beta")], [], demand(), NOW, policy).offers
    assert len(offers) == 3
    keys = {(o.platform, o.start, o.resources) for o in offers}
    assert len(keys) == 3


def test_every_offer_expires_after_the_ttl():
    policy = OfferPolicy(offer_ttl=timedelta(minutes=7))
    offers = make_offers([platform("alpha")], [], demand(), NOW, policy).offers
    assert {o.expires for o in offers} == {NOW + timedelta(minutes=7)}
    assert all(o.hold().kind is BookingKind.HOLD for o in offers)


def test_offers_of_one_set_are_alternatives_at_consecutive_starts():
    """Room for one session at a time: the set still offers several starts, one after another."""
    tight = platform("alpha", cores=4, memory=8)
    offers = make_offers([tight], [], demand(), NOW, OfferPolicy(max_offers=4)).offers
    assert len(offers) == 4
    assert offers[0].start == NOW
    # Each later offer starts when an earlier one ends: consecutive start times.
    for index, offer in enumerate(offers[1:], start=1):
        assert offer.start in {earlier.end for earlier in offers[:index]}
    # Together they hold only what one of them takes: the platform is not over-committed.
    assert overbookings(tight, [o.hold("set") for o in offers]) == []


def test_other_sets_hold_their_maximum_so_a_new_request_still_starts_now():
    """Seven sets of four 2-core offers each on 16 cores: the eighth request still starts now."""
    sixteen = platform("alpha", cores=16, memory=64)
    two = demand(cores_min=2, cores_max=2, memory_min=2.0, memory_max=2.0)
    held: list[Booking] = []
    for number in range(7):
        offers = make_offers([sixteen], held, two, NOW, OfferPolicy(max_offers=4)).offers
        assert offers[0].start == NOW, number
        held.extend(offer.hold(f"set-{number}") for offer in offers)
    eighth = make_offers([sixteen], held, two, NOW, OfferPolicy(max_offers=4)).offers
    assert eighth[0].start == NOW
    held.extend(offer.hold("set-8") for offer in eighth)
    assert overbookings(sixteen, held) == []
    ninth = make_offers([sixteen], held, two, NOW, OfferPolicy(max_offers=4))
    assert ninth.result == "YES"
    assert min(o.start for o in ninth.offers) > NOW  # pushed past the held ones


@settings(max_examples=40, deadline=None)
@given(
    cores=st.integers(1, 8),
    cores_min=st.integers(1, 4),
    window_hours=st.integers(0, 8),
    max_offers=st.integers(2, 6),
    busy_cores=st.integers(0, 8),
)
def test_each_offer_of_a_set_fits_on_its_own_next_to_the_bookings(
    cores, cores_min, window_hours, max_offers, busy_cores
):
    small = platform("alpha", cores=cores, memory=64)
    bookings = [busy("alpha", 0.5, 2.5, min(busy_cores, cores))]
    wanted = demand(cores_min=cores_min, windows=(Interval(NOW, at(window_hours)),))
    offers = make_offers([small], bookings, wanted, NOW, OfferPolicy(max_offers=max_offers)).offers
    for offer in offers:
        assert overbookings(small, [*bookings, offer.hold()]) == []
    assert overbookings(small, [*bookings, *(o.hold("set") for o in offers)]) == []


# ------------------------------------------------------------------------- NO, and GPUs
def test_a_request_bigger_than_any_platform_gets_reasons_per_platform():
    platforms = [platform("alpha", cores=16), platform("beta", cores=64)]
    result = make_offers(platforms, [], demand(cores_min=600), NOW)
    assert result.result == "NO"
    assert [r.text for r in result.reasons] == [
        "alpha: needs 600 cores, has 16 in all",
        "beta: needs 600 cores, has 64 in all",
    ]


def test_reasons_cover_platforms_that_are_full_too():
    platforms = [platform("alpha"), platform("beta", cores=2)]
    result = make_offers(platforms, [busy("alpha", 0, 12, 32)], demand(), NOW)
    assert result.result == "NO"
    assert [r.code for r in result.reasons] == ["over-capacity", "no-capacity"]
    assert result.reasons[1].text.startswith("alpha: no free 4 cores")


def test_a_gpu_request_goes_only_to_the_platform_that_fits():
    platforms = [
        platform("cpu-only"),
        platform("small-gpu", gpus=(Gpu(model="A10", memory=24, count=4),)),
        platform("big-gpu", gpus=(Gpu(model="A100", memory=80, count=4),)),
    ]
    wanted = demand(gpus=GpuDemand(count_min=2, memory_min=40))
    result = make_offers(platforms, [], wanted, NOW)
    assert result.offers
    assert {o.platform for o in result.offers} == {"big-gpu"}
    assert {o.resources.gpus for o in result.offers} == {(GpuShare("A100", 2),)}
    assert [r.text for r in result.reasons] == [
        "cpu-only: needs 2 GPUs with >= 40 GiB, has no GPUs",
        "small-gpu: needs 2 GPUs with >= 40 GiB, has 4 x A10 24 GiB",
    ]


# ------------------------------------------------------------------------- policy
def test_policy_from_settings():
    settings = BrokerSettings(
        offer_ttl=timedelta(minutes=2),
        horizon=timedelta(days=3),
        max_offers=2,
        strategies=["cheapest", "earliest", "cheapest"],
        offer_above_minimum=1.5,
    )
    policy = OfferPolicy.from_settings(settings)
    assert (policy.offer_ttl, policy.horizon, policy.max_offers) == (
        timedelta(minutes=2),
        timedelta(days=3),
        2,
    )
    assert policy.strategies == ("cheapest", "earliest")
    assert policy.slots == SlotPolicy(above_minimum=1.5, stretch=1.5)


@pytest.mark.parametrize(
    "bad", [{"max_offers": 0}, {"strategies": ()}, {"strategies": ("fastest",)}]
)
def test_policy_refuses_nonsense(bad):
    with pytest.raises(ValueError, match="offer policy"):
        OfferPolicy(**bad)


def test_strategy_names_match_the_settings():
    # Every strategy the settings can name is implemented; the defaults leave nearest-data out
    # (an operator whose platforms hold replicas turns it on).
    assert set(STRATEGIES) == set(typing.get_args(Strategy))
    assert set(BrokerSettings().strategies) == set(STRATEGIES) - {"nearest-data"}
