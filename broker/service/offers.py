"""Offers for a request: computed without locks, checked and stored under the fewest locks.

Owns how an offer request meets the database, in three steps:

1. No transaction (`read_question`): the request is read as a demand (`broker.service.demand`),
   each platform says whether it runs the executable, and the *candidates* are kept: the
   platforms that could ever serve the demand (`broker.scheduling.resources.assess`) and can
   reach one of its start windows. Capability and limits need no lock.
2. One read transaction, no lock (`place_offers`): how much capacity has been taken on each
   candidate (`capacity_taken`, a count that grows with every transaction adding or moving a
   booking there), then the candidates' live bookings that can matter, then the offers
   (`broker.scheduling.offers.make_offers`), computed by this process while no other waits
   for it.
3. One write transaction: the rows of the platforms the offers are on are locked (in name
   order, as every lock of `broker_platform` is taken) and their counts read again. Where no
   count changed, nothing was booked there since the snapshot, which is then still exact (or
   counts holds released since): it is not read again, unless the snapshot left out a hold
   expired but still OFFERED there (an accept that read its clock before the expiry turns it
   into a booking without changing the count). Otherwise those platforms' bookings
   over the offers' times are read again. The offers' holds are checked against them either
   way (`broker.scheduling.audit.holds_fit`). When they
   fit, the caller stores them in that transaction. When another request took the capacity in
   the meantime, the offers are computed again with the fresh bookings of the locked platforms;
   if they are all on locked platforms they are stored. Otherwise (what is left best is on a
   platform not locked) the transaction ends without writing, and a last transaction locks
   every candidate, reads their bookings and computes the offers under the locks, as every
   request did before: a request never answers NO for capacity one of its platforms has.

Why nothing is promised twice: capacity is taken on a platform only under its lock (offers
here, direct bookings likewise); each statement of a PostgreSQL READ COMMITTED transaction sees
every transaction committed before it, so the bookings read once the locks are held include
everything the previous holders stored (on SQLite the write transaction is the only writer).
A hold counts while its offer is OFFERED and unexpired at `now`, the instant the request was
read, which is never later than the check: an accept reads the clock only once it holds its
platform's lock (`BrokerService.update_session`), so an offer counted here as expired can no
longer be accepted.

Imports `core`, the broker's model and pure modules, the ports and the store; no web framework.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from broker.model import ExecutionRequest, MessageItem, MessageLevel, UnknownKind, message_item
from broker.platforms.port import Platform
from broker.scheduling.audit import holds_fit
from broker.scheduling.intervals import Interval
from broker.scheduling.offers import Offer, OfferPolicy, OfferSet, make_offers
from broker.scheduling.resources import Booking, Demand, PlatformSpec, Reason, assess
from broker.scheduling.slots import booking_range
from broker.service.data import data_ready
from broker.service.demand import read_request
from broker.service.platforms import accepting_platforms
from broker.store.port import SessionStore, SessionTransaction
from core.settings import BrokerSettings

__all__ = ["NO_OFFERS", "Question", "answer_messages", "place_offers", "read_question"]

T = TypeVar("T")

NO_OFFERS = OfferSet(offers=(), reasons=())


@dataclass(frozen=True)
class Question:
    """A request read for offers: what is wrong with it, and what the platforms are asked."""

    messages: tuple[MessageItem, ...]
    """About the request itself (errors make the answer NO whatever the platforms have)."""
    demand: Demand | None
    """None when some message is an error, or no platform is configured."""
    platforms: tuple[PlatformSpec, ...] = ()
    """The platforms that run the executable, in their configured order (it breaks ties)."""
    refusals: tuple[Reason, ...] = ()
    """Why each other platform cannot run it."""
    candidates: tuple[str, ...] = ()
    """Of `platforms`, those whose calendar can matter, in name order (the lock order)."""
    span: Interval | None = None
    """Where the candidates' bookings can matter; None without candidates."""

    def spec(self, name: str) -> PlatformSpec | None:
        """The platform `name` as this request sees it (its preparation includes the data)."""
        return next((spec for spec in self.platforms if spec.name == name), None)


def read_question(
    request: ExecutionRequest,
    unknown: Sequence[UnknownKind],
    *,
    settings: BrokerSettings,
    specs: Sequence[PlatformSpec],
    adapters: Mapping[str, Platform],
    policy: OfferPolicy,
    now: datetime,
    forwarding: bool = False,
) -> Question:
    """Read a request, ask the platforms whether they run it, and find the candidates.

    No I/O of its own; each platform's adapter answers `accepts`, and the platforms that stage
    data ask its sources for their sizes (`broker.service.data`), which sets each platform's
    preparation for this request.
    """
    reading = read_request(request, unknown, settings, now)
    messages = tuple(reading.messages)
    demand = reading.demand
    if demand is None or request.executable is None:
        return Question(messages, None)
    if not specs and not forwarding:  # with remote brokers, they may still offer
        missing = message_item(
            "urn:voexec:no-platform",
            "This broker has no compute platform configured",
            time=now,
            level=MessageLevel.ERROR,
        )
        return Question((*messages, missing), None)
    gpus = demand.gpus.count_min if demand.gpus is not None else 0
    able, refusals = accepting_platforms(adapters, specs, request.executable, gpus)
    # The data's sources are asked here, outside any transaction (bounded, cached probes).
    able, unreachable, moves = data_ready(
        able, request.data, settings.platforms, now, storage=request.storage
    )
    refusals += unreachable
    messages = (*messages, *moves)
    ranges = {
        spec.name: booking_range(spec, demand, now, policy.horizon, policy=policy.slots)
        for spec in able
        if not assess(spec, demand)
    }
    reachable = {name: within for name, within in ranges.items() if within is not None}
    span = None
    if reachable:
        span = Interval(
            min(within.start for within in reachable.values()),
            max(within.end for within in reachable.values()),
        )
    return Question(messages, demand, tuple(able), tuple(refusals), tuple(sorted(reachable)), span)


def answer_messages(question: Question, found: OfferSet, now: datetime) -> list[MessageItem]:
    """The answer's messages: the request's, then every platform's reasons for saying no.

    The reasons are errors when nothing is offered, and information beside offers.
    """
    level = MessageLevel.INFO if found.offers else MessageLevel.ERROR
    reasons = [*question.refusals, *found.reasons]
    return [
        *question.messages,
        *(
            message_item(
                f"urn:voexec:{reason.code}", reason.template, time=now, level=level, **reason.values
            )
            for reason in reasons
        ),
    ]


def place_offers(
    store: SessionStore,
    question: Question,
    now: datetime,
    policy: OfferPolicy,
    keep: Callable[[SessionTransaction, OfferSet], T],
    *,
    rotation: int = 0,
) -> T:
    """Compute the offers for `question` and have `keep` store them, never beyond capacity.

    Args:
        store: the broker's store.
        question: the request, read by `read_question`.
        now: the instant the request was read (holds expire, slots start, from it).
        policy: how many offers, by which strategies.
        keep: stores the answer; called once, inside the write transaction that holds the locks
            of the platforms its offers are on, with offers whose holds fit there. Its result
            is returned once that transaction has committed.
        rotation: which platform wins ties (see `make_offers`); the service varies it from
            request to request, so that equal platforms share the requests and their locks.

    Returns:
        What `keep` returned.
    """
    demand = question.demand
    if demand is None or not question.candidates:
        found = (
            NO_OFFERS
            if demand is None
            else _search(question, demand, (), now, policy, rotation=rotation)
        )
        with store.write() as tx:
            return keep(tx, found)
    with store.read() as tx:
        # The count first: a booking stored after it makes it change, never goes unseen.
        taken = tx.capacity_taken(question.candidates)
        snapshot = tx.bookings_snapshot(now, question.candidates, question.span)
    found = _search(question, demand, snapshot.bookings, now, policy, rotation=rotation)
    locked = sorted({offer.platform for offer in found.offers})
    with store.write() as tx:
        tx.lock_platforms(locked)
        if not found.offers:
            return keep(tx, found)
        if _unchanged(taken, tx.capacity_taken(locked), locked) and not (
            snapshot.pending_holds & set(locked)
        ):
            # Nothing was booked on these platforms since the snapshot: it is exact here (or
            # counts more than is left, when something was released), and need not be read
            # again. The holds are still checked against it. Not where it left out a hold
            # expired but still OFFERED: an accept that read its clock before the expiry may
            # have made it a booking since, without changing the count.
            current = [booking for booking in snapshot.bookings if booking.platform in locked]
        else:
            current = tx.live_bookings(now, locked, _covering(found.offers))
        if _fit(question, found.offers, current):
            return keep(tx, found)
        # Another request took some of this capacity since the snapshot: search again, with
        # what is booked now where this request holds the locks.
        fresh = tx.live_bookings(now, locked, question.span)
        others = [booking for booking in snapshot.bookings if booking.platform not in locked]
        found = _search(question, demand, [*fresh, *others], now, policy, rotation=rotation)
        if {offer.platform for offer in found.offers} <= set(locked):
            _verify(question, found, fresh)
            return keep(tx, found)
    # The best left is on a platform this request does not hold: one serialised search.
    with store.write() as tx:
        tx.lock_platforms(question.candidates)
        fresh = tx.live_bookings(now, question.candidates, question.span)
        found = _search(question, demand, fresh, now, policy, rotation=rotation)
        _verify(question, found, fresh)
        return keep(tx, found)


def _search(
    question: Question,
    demand: Demand,
    bookings: Iterable[Booking],
    now: datetime,
    policy: OfferPolicy,
    *,
    rotation: int,
) -> OfferSet:
    return make_offers(question.platforms, bookings, demand, now, policy, rotation=rotation)


def _unchanged(before: Mapping[str, int], now: Mapping[str, int], platforms: Sequence[str]) -> bool:
    """True when no capacity was taken on any of `platforms` between the two counts."""
    return all(before.get(name) == now.get(name) for name in platforms)


def _covering(offers: Sequence[Offer]) -> Interval:
    """From the first offer's start to the last one's end: where their holds can clash."""
    return Interval(min(offer.start for offer in offers), max(offer.end for offer in offers))


def _fit(question: Question, offers: Sequence[Offer], bookings: Sequence[Booking]) -> bool:
    """True when the offers' holds fit, platform by platform, next to `bookings`."""
    specs = {spec.name: spec for spec in question.platforms}
    platforms = sorted({offer.platform for offer in offers})
    return all(
        holds_fit(
            specs[name],
            bookings,
            [offer.hold() for offer in offers if offer.platform == name],
        )
        for name in platforms
    )


def _verify(question: Question, found: OfferSet, bookings: Sequence[Booking]) -> None:
    """Refuse to store offers that do not fit (the scheduler computed them from `bookings`).

    Raises:
        RuntimeError: they do not fit; nothing is stored, the request fails.
    """
    if not _fit(question, found.offers, bookings):
        raise RuntimeError(
            "the offers computed under the platforms' locks exceed their capacity; "
            "nothing was stored"
        )
