"""Offers: the slots of every platform, ranked by named strategies, each one a hold on capacity.

Owns `make_offers` (platforms + live bookings + a demand -> an `OfferSet`), the strategies,
pricing and de-duplication. Pure: no I/O, no clock (`now` is an argument); the same input
always gives the same offers. Imports `core` and the scheduling modules only.

Strategies, each ranking every platform's slots (ties go to the earlier start, then to the
platform listed first, counting from `rotation`):

* `earliest` — the soonest start; offers what the slot policy allows above the minimum.
* `largest` — the most cores, then the most memory (up to the policy's ceiling and the
  demand's maximum); offers that amount.
* `longest` — the longest session. The wire request carries one duration, which we read as the
  least the work needs: this strategy offers the minimum resources for as long as they stay
  free after the start, up to `SlotPolicy.stretch` times the duration (and the platform's
  duration limit). The extra time is real: the offered end is when the session ends.
* `cheapest` — the lowest price from the platform's cost model for the minimum resources and
  the requested duration. Prices in the broker's main unit (the unit most platforms quote)
  rank first, then prices in other units (amounts in different units are not comparable),
  then platforms without a price.
* `nearest-data` — the shortest preparation, which for a request with data includes moving
  it to the platform (a platform holding a replica moves nothing), then the soonest start.

Offers are chosen one at a time, taking the strategies in the configured order, round after
round, so that each strategy contributes; an offer already chosen (same platform, start and
resources) is not chosen twice, and the strategy takes its next best instead.

Every offer is a hold on capacity until it is accepted or expires. The offers of one set are
alternatives — accepting one rejects the others — so together they hold, per platform and resource,
their pointwise maximum over time, not their sum (`broker.scheduling.resources.counted`). Each offer
therefore needs only to fit next to the bookings and the other sets' holds, whatever its siblings
take: a set of four offers on a small platform holds what one of them would. When the soonest starts
are taken (booked, or held by other sets), the search moves on to the next free starts inside the
requested start range: a busy platform answers later, not NO.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

import msgspec

from broker.scheduling.intervals import Interval
from broker.scheduling.resources import (
    Booking,
    BookingKind,
    Demand,
    PlatformSpec,
    Prices,
    Reason,
    Resources,
    Slot,
    SlotPolicy,
)
from broker.scheduling.slots import SlotSearch, booking_range
from core.settings import BrokerSettings, Strategy

STRATEGIES: Final[tuple[Strategy, ...]] = (
    "earliest",
    "largest",
    "longest",
    "cheapest",
    "nearest-data",
)
_HOUR = timedelta(hours=1)


class Cost(msgspec.Struct, frozen=True):
    """A price: `amount` of `unit` (a currency code or an allocation unit)."""

    amount: float
    unit: str


class Offer(msgspec.Struct, frozen=True, kw_only=True):
    """One offer: one time slot on one platform, what it gives, its price and its expiry."""

    platform: str
    start: datetime
    end: datetime
    resources: Resources
    cost: Cost | None
    expires: datetime
    """Until then the offer holds its capacity; after it, it cannot be accepted."""
    strategy: Strategy
    """The strategy that chose it."""

    def hold(self, group: str | None = None) -> Booking:
        """The capacity this offer holds while it is open, as a hold of offer set `group`."""
        return Booking(
            platform=self.platform,
            interval=Interval(self.start, self.end),
            resources=self.resources,
            kind=BookingKind.HOLD,
            group=group,
        )


class OfferSet(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a demand: offers (YES) or none, and why each platform said no."""

    offers: tuple[Offer, ...]
    reasons: tuple[Reason, ...]
    """One or more per platform that offers nothing (also when other platforms do offer)."""

    @property
    def result(self) -> str:
        """`YES` when there is at least one offer, else `NO` (the standard's offer-set result)."""
        return "YES" if self.offers else "NO"


class OfferPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How many offers, by which strategies, how far ahead, for how long they hold."""

    horizon: timedelta = timedelta(days=7)
    offer_ttl: timedelta = timedelta(minutes=5)
    max_offers: int = 4
    strategies: tuple[Strategy, ...] = STRATEGIES
    slots: SlotPolicy = SlotPolicy()

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies or self.max_offers < 1:
            raise ValueError(
                f"an offer policy needs max_offers >= 1 and strategies among {STRATEGIES}"
            )

    @classmethod
    def from_settings(cls, settings: BrokerSettings) -> OfferPolicy:
        """The policy configured under `broker:`; the duration stretch follows the resources'."""
        return cls(
            horizon=settings.horizon,
            offer_ttl=settings.offer_ttl,
            max_offers=settings.max_offers,
            strategies=tuple(dict.fromkeys(settings.strategies)),
            slots=SlotPolicy(
                above_minimum=settings.offer_above_minimum,
                stretch=settings.offer_above_minimum,
            ),
        )


def price(prices: Prices | None, resources: Resources, duration: timedelta) -> Cost | None:
    """Core-hours, GiB-hours and GPU-hours at the platform's prices; None without a cost model."""
    if prices is None:
        return None
    hours = duration / _HOUR
    gpus = sum(share.count for share in resources.gpus)
    hourly = (
        resources.cores * prices.core_hour
        + resources.memory * prices.gib_hour
        + gpus * prices.gpu_hour
    )
    return Cost(amount=round(hourly * hours, 6), unit=prices.unit)


# ------------------------------------------------------------------------- ranking
_Rank = tuple[object, ...]


class _Ranker:
    """Turns slots into each strategy's candidate offers and ranks them."""

    def __init__(
        self,
        platforms: Sequence[PlatformSpec],
        now: datetime,
        policy: OfferPolicy,
        rotation: int = 0,
    ) -> None:
        self.platforms = {platform.name: platform for platform in platforms}
        count = len(platforms) or 1
        self.order = {
            platform.name: (index - rotation) % count for index, platform in enumerate(platforms)
        }
        self.expires = now + policy.offer_ttl
        units = Counter(p.prices.unit for p in platforms if p.prices is not None)
        # The unit most platforms quote in; ties go to the first in alphabetical order.
        self.main_unit = min(units, key=lambda unit: (-units[unit], unit)) if units else None

    def offer(self, strategy: Strategy, slot: Slot) -> Offer:
        generous = strategy in ("earliest", "largest")
        end = slot.latest_end if strategy == "longest" else slot.end
        resources = slot.offered if generous else slot.minimum
        return Offer(
            platform=slot.platform,
            start=slot.start,
            end=end,
            resources=resources,
            cost=price(self.platforms[slot.platform].prices, resources, end - slot.start),
            expires=self.expires,
            strategy=strategy,
        )

    def rank(self, offer: Offer) -> _Rank:
        """Smaller is better; every key ends with the start and the platform's position."""
        resources = offer.resources
        gpus = sum(share.count for share in resources.gpus)
        tail = (offer.start, self.order[offer.platform], offer.end, resources)
        match offer.strategy:
            case "earliest":
                return (offer.start, -resources.cores, -resources.memory, *tail)
            case "largest":
                return (-resources.cores, -resources.memory, -gpus, *tail)
            case "longest":
                return (offer.start - offer.end, *tail)
            case "cheapest":
                cost = offer.cost
                if cost is None:
                    return (2, 0.0, *tail)
                return (0 if cost.unit == self.main_unit else 1, cost.amount, *tail)
            case "nearest-data":
                # The platform's preparation for this request grows with the data it must
                # move (`broker.service.data`): the least moved, the soonest ready.
                preparation = self.platforms[offer.platform].preparation
                return (preparation, offer.start, -resources.cores, -resources.memory, *tail)


def _key(offer: Offer) -> tuple[str, datetime, Resources]:
    """Two offers with the same platform, start and resources are the same offer."""
    return (offer.platform, offer.start, offer.resources)


def make_offers(
    platforms: Sequence[PlatformSpec],
    bookings: Iterable[Booking],
    demand: Demand,
    now: datetime,
    policy: OfferPolicy | None = None,
    *,
    rotation: int = 0,
) -> OfferSet:
    """Offers for one demand across platforms, at most `policy.max_offers`: alternatives.

    Each offer fits next to `bookings` on its own; the set holds their pointwise maximum.

    Args:
        platforms: every platform the broker offers, in their configured order (it breaks
            ties).
        bookings: the live bookings and holds of all platforms (see `SlotSearch`).
        demand: what is asked.
        now: the current instant (aware); offers expire at `now + policy.offer_ttl`.
        policy: how many offers, by which strategies.
        rotation: which platform breaks ties first: the platform at this position in
            `platforms` (modulo their number), then the ones after it, wrapping round. The
            service varies it from request to request, so that equal platforms share the
            requests instead of the first-listed one taking them all (and every request
            queuing for its lock).

    Returns:
        The offers in the order they were chosen, and the reasons of every platform that
        offers nothing.
    """
    policy = policy or OfferPolicy()
    searches = _searches(platforms, bookings, demand, now, policy)
    reasons = [reason for search in searches.values() for reason in search.reasons]
    slots = {name: search.slots() for name, search in searches.items() if not search.reasons}
    reasons.extend(
        reason for name, found in slots.items() if not found for reason in searches[name].explain()
    )
    ranker = _Ranker(platforms, now, policy, rotation)
    chosen: list[Offer] = []
    taken: set[tuple[str, datetime, Resources]] = set()
    progressed = True
    while progressed and len(chosen) < policy.max_offers:
        progressed = False
        for strategy in policy.strategies:
            if len(chosen) >= policy.max_offers:
                break
            best = _best(ranker, strategy, searches, slots, taken)
            if best is None:
                continue
            # Siblings are alternatives: a choice takes nothing from the next one, which only
            # has to differ from those already chosen (`_best` skips them); the next may start
            # when this one ends, as consecutive start times.
            chosen.append(best)
            taken.add(_key(best))
            searches[best.platform].start_after(best.end)
            slots[best.platform] = searches[best.platform].slots()
            progressed = True
    return OfferSet(offers=tuple(chosen), reasons=tuple(reasons))


def _searches(
    platforms: Sequence[PlatformSpec],
    bookings: Iterable[Booking],
    demand: Demand,
    now: datetime,
    policy: OfferPolicy,
) -> dict[str, SlotSearch]:
    """One search per platform, each given only the bookings that can matter to it."""
    ranges: dict[str, Interval] = {}
    for platform in platforms:
        interval = booking_range(platform, demand, now, policy.horizon, policy=policy.slots)
        if interval is not None:
            ranges[platform.name] = interval
    # One pass over all bookings, which may be many: the searches never see the others. The
    # first test, against the span of every range, turns most bookings away cheaply.
    relevant: dict[str, list[Booking]] = {platform.name: [] for platform in platforms}
    if ranges:
        first = min(within.start for within in ranges.values())
        last = max(within.end for within in ranges.values())
        for booking in bookings:
            interval = booking.interval
            if interval.start < last and interval.end > first:
                within = ranges.get(booking.platform)
                if (
                    within is not None
                    and interval.start < within.end
                    and interval.end > within.start
                ):
                    relevant[booking.platform].append(booking)
    return {
        platform.name: SlotSearch(
            platform, relevant[platform.name], demand, now, policy.horizon, policy=policy.slots
        )
        for platform in platforms
    }


def _best(
    ranker: _Ranker,
    strategy: Strategy,
    searches: Mapping[str, SlotSearch],
    slots: Mapping[str, list[Slot]],
    taken: set[tuple[str, datetime, Resources]],
) -> Offer | None:
    """The strategy's best offer not chosen yet, over every platform."""

    def chosen(slot: Slot) -> bool:
        return _key(ranker.offer(strategy, slot)) in taken

    best: Offer | None = None
    for name, cached in slots.items():
        found = cached
        if any(chosen(slot) for slot in cached):
            # The search keeps only the best slots; with some of them already offered, ask
            # again without those, so that the next best of this platform shows up.
            found = searches[name].slots(skip=chosen)
        for slot in found:
            offer = ranker.offer(strategy, slot)
            if best is None or ranker.rank(offer) < ranker.rank(best):
                best = offer
    return best
