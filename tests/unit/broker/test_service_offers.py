"""Reading a request for offers: which platforms are candidates, before any lock is taken.

`read_question` decides which platforms' bookings an offer request reads and which platforms it
may lock: those that run the executable, could ever serve the demand, and can reach one of its
start windows. Getting this wrong would either lock platforms for nothing or, worse, leave out
a platform that could serve the request. The locking itself is proven under concurrency in
`tests/integration/test_broker_concurrency.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest

from broker import model
from broker.lifecycle import Phase, SessionState
from broker.model import codec
from broker.platforms.simulated import SimulatedPlatform
from broker.scheduling.intervals import Interval
from broker.scheduling.offers import OfferPolicy, OfferSet
from broker.scheduling.resources import Booking, BookingKind, PlatformSpec, Resources
from broker.scheduling.slots import booking_range
from broker.service.offers import Question, place_offers, read_question
from broker.store.port import BookingSnapshot, SessionRecord, SessionStore
from core.settings import BrokerSettings, settings_from_mapping
from tests.broker_support import StoreKind, broker_store, close_store

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


def settings_with(*platforms: dict[str, Any]) -> BrokerSettings:
    configured = [
        {
            "name": platform["name"],
            "capacity": {"cores": platform.get("cores", 8), "memory": 32},
            "executables": platform.get("executables", ["docker-container"]),
            "preparation": platform.get("preparation", "PT1M"),
        }
        for platform in platforms
    ]
    return settings_from_mapping({"broker": {"platforms": configured}}).broker


def request(
    cores: int = 2,
    cores_max: int | None = None,
    start: str = "2026-09-01T09:00:00Z/2026-09-01T11:00:00Z",
) -> Any:
    document = {
        "executable": {
            "kind": model.KINDS + "executable/docker-container.yaml",
            "image": {"locations": ["ghcr.io/example/job:1.0"]},
        },
        "compute": {
            "kind": model.KINDS + "compute/simple-compute-resource.yaml",
            "cores": {"min": cores, "max": cores_max},
        },
        "schedule": {"requested": {"start": start, "duration": "PT1H"}},
    }
    return codec.decode_request(codec.encode(document, codec.Media.JSON), codec.Media.JSON).value


def question(settings: BrokerSettings, wanted: Any, unknown: Sequence[Any] = ()) -> Question:
    specs = [PlatformSpec.from_settings(p) for p in settings.platforms]
    return read_question(
        wanted,
        unknown,
        settings=settings,
        specs=specs,
        adapters={p.name: SimulatedPlatform(p) for p in settings.platforms},
        policy=OfferPolicy.from_settings(settings),
        now=NOW,
    )


def test_candidates_are_the_platforms_that_could_serve_in_name_order_and_the_span_covers_them():
    settings = settings_with(
        {"name": "zeta"},
        {"name": "alpha", "preparation": "PT30M"},
        {"name": "notebooks", "executables": ["jupyter-notebook"]},  # does not run it
        {"name": "tiny", "cores": 1},  # never has 2 cores
        {"name": "slow", "preparation": "PT4H"},  # cannot start before the range ends
    )
    asked = question(settings, request())
    # Every platform is searched (the others answer NO with their reasons, from the search),
    # in the configured order, which breaks ties; only the candidates' bookings are read and
    # only they can be locked, in name order.
    assert [spec.name for spec in asked.platforms] == [
        "zeta",
        "alpha",
        "notebooks",
        "tiny",
        "slow",
    ]
    assert asked.candidates == ("alpha", "zeta")
    assert asked.demand is not None
    policy = OfferPolicy.from_settings(settings)
    ranges = [
        booking_range(spec, asked.demand, NOW, policy.horizon, policy=policy.slots)
        for spec in asked.platforms
        if spec.name in asked.candidates
    ]
    assert asked.span == Interval(
        min(r.start for r in ranges if r), max(r.end for r in ranges if r)
    )


def test_a_request_no_platform_could_serve_has_no_candidates_and_no_span():
    asked = question(settings_with({"name": "small", "cores": 4}), request(cores=16))
    assert asked.demand is not None
    assert (asked.candidates, asked.span) == ((), None)


def test_a_request_with_errors_asks_no_platform():
    asked = question(settings_with({"name": "small"}), request(cores=4, cores_max=2))
    assert asked.demand is None
    assert asked.candidates == ()
    assert any(m.level is model.MessageLevel.ERROR for m in asked.messages)


def test_a_broker_without_platforms_says_so():
    asked = question(settings_with(), request())
    assert asked.demand is None
    assert [m.kind for m in asked.messages] == ["urn:voexec:no-platform"]


# ------------------------------------------------------------------ placing offers
class _Interloping:
    """A store where another transaction (`meanwhile`) commits right after the first snapshot."""

    def __init__(self, store: SessionStore, meanwhile: Callable[[], None] | None) -> None:
        self._store = store
        self._meanwhile = meanwhile
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self._store.read() as tx:
            yield _Counting(tx, self)
        if self._meanwhile is not None:
            self._meanwhile()
            self._meanwhile = None

    @contextmanager
    def write(self) -> Iterator[Any]:
        with self._store.write() as tx:
            yield _Counting(tx, self)


class _Counting:
    def __init__(self, tx: Any, owner: _Interloping) -> None:
        self._tx, self._owner = tx, owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def live_bookings(self, *args: Any) -> list[Booking]:
        self._owner.reads += 1
        found: list[Booking] = self._tx.live_bookings(*args)
        return found

    def bookings_snapshot(self, *args: Any) -> BookingSnapshot:
        self._owner.reads += 1
        found: BookingSnapshot = self._tx.bookings_snapshot(*args)
        return found


def _session_record(booking: Booking, phase: Phase, expires: datetime | None) -> SessionRecord:
    interval = booking.interval
    state = SessionState(
        session_id=_OTHER, phase=phase, start=interval.start, end=interval.end, expires=expires
    )
    return SessionRecord(
        id=_OTHER,
        offerset_id=None,
        platform=booking.platform,
        resources=booking.resources,
        state=state,
        document=model.ScheduledExecutionSession(phase=model.SessionPhase(phase.value)),
    )


_OTHER = "00000000-0000-4000-8000-000000000001"


def _book(store: SessionStore, booking: Booking) -> None:
    record = _session_record(booking, Phase.ACCEPTED, None)
    with store.write() as tx:
        tx.add_session(record, start=booking.interval.start, end=booking.interval.end)
        tx.add_booking(_OTHER, booking)


def _placed(
    tmp_path: Path,
    interloper: Booking | None = None,
    *,
    store_kind: StoreKind = "sqlite",
    before: Callable[[SessionStore], None] | None = None,
    meanwhile: Callable[[SessionStore], None] | None = None,
) -> tuple[OfferSet, int]:
    """Offers for 8 cores on platform `a` (8 cores), with `before` stored before the request
    and `meanwhile` (or the interloper's booking) committed between its snapshot and its lock.
    """
    settings = settings_with({"name": "a", "cores": 8})
    asked = question(settings, request(cores=8))
    assert asked.span is not None
    store = broker_store(store_kind, tmp_path)
    with store.write() as tx:
        tx.ensure_platforms(["a"])
    if before is not None:
        before(store)
    action = meanwhile or (partial(_book, booking=interloper) if interloper else None)
    interloping = _Interloping(store, partial(action, store) if action else None)
    kept: list[OfferSet] = []

    def keep(tx: Any, found: OfferSet) -> None:
        kept.append(found)

    place_offers(
        cast("SessionStore", interloping), asked, NOW, OfferPolicy.from_settings(settings), keep
    )
    close_store(store)
    return kept[0], interloping.reads


def test_offers_stored_without_a_second_read_when_nothing_was_booked_since_the_snapshot(
    tmp_path: Path,
) -> None:
    found, reads = _placed(tmp_path, None)
    assert found.offers
    assert reads == 1


def test_capacity_taken_after_the_snapshot_is_read_again_under_the_lock(tmp_path: Path) -> None:
    # Booked full over the whole span between the snapshot and the lock: the offers the
    # snapshot allowed no longer fit, and none are stored.
    span = question(settings_with({"name": "a", "cores": 8}), request(cores=8)).span
    assert span is not None
    full = Booking(platform="a", interval=span, resources=Resources(cores=8, memory=32))
    found, reads = _placed(tmp_path, full)
    assert found.offers == ()
    assert reads > 1


@pytest.mark.parametrize("store_kind", ["sqlite", "memory"])
def test_a_hold_accepted_on_time_after_the_snapshot_is_counted_under_the_lock(
    tmp_path: Path, store_kind: StoreKind
) -> None:
    # A hold fills the platform and expires at the request's instant, so the snapshot leaves
    # it out; its owner's accept, whose clock was read just before the expiry, turns it into
    # a booking between the snapshot and the lock. That takes no capacity anew (the count
    # stays), yet the capacity is booked: no offer may be stored on it.
    span = question(settings_with({"name": "a", "cores": 8}), request(cores=8)).span
    assert span is not None
    full = Booking(
        platform="a", interval=span, resources=Resources(cores=8, memory=32), kind=BookingKind.HOLD
    )
    offered = _session_record(full, Phase.OFFERED, NOW)

    def hold(store: SessionStore) -> None:
        with store.write() as tx:
            tx.add_session(offered, start=span.start, end=span.end)
            tx.add_booking(_OTHER, full)

    def accept(store: SessionStore) -> None:
        with store.write() as tx:
            tx.convert_hold(_OTHER)
            accepted = msgspec.structs.replace(offered.state, phase=Phase.ACCEPTED, expires=None)
            tx.save_session(dataclasses.replace(offered, state=accepted))

    found, reads = _placed(tmp_path, store_kind=store_kind, before=hold, meanwhile=accept)
    assert found.offers == ()
    assert reads > 1


def test_a_snapshot_names_the_platforms_with_holds_expired_but_still_offered(
    tmp_path: Path,
) -> None:
    span = question(settings_with({"name": "a", "cores": 8}), request(cores=8)).span
    assert span is not None
    store = broker_store("memory", tmp_path)
    held = Booking(
        platform="a", interval=span, resources=Resources(cores=2, memory=1), kind=BookingKind.HOLD
    )
    with store.write() as tx:
        tx.add_session(_session_record(held, Phase.OFFERED, NOW), start=span.start, end=span.end)
        tx.add_booking(_OTHER, held)
    with store.read() as tx:
        before = tx.bookings_snapshot(NOW - timedelta(seconds=1), ["a"], span)
        after = tx.bookings_snapshot(NOW, ["a"], span)
    assert [b.resources.cores for b in before.bookings] == [2]
    assert before.pending_holds == frozenset()
    assert after.bookings == []
    assert after.pending_holds == frozenset({"a"})
