"""Federation in the service: remote brokers asked beside the local platforms, updates forwarded.

The service's side of the `remote` platforms (`broker.platforms.remote`), kept here so that
`BrokerService` needs only a few calls:

* `Federation.gather` asks every remote broker at once (outside any transaction), with the
  request narrowed to what this broker may offer there, and reads back the offers that meet
  the request, or why there are none, naming the broker. A request whose path already names
  this broker is a loop: it is answered NO and forwarded nowhere.
* `Gathered.merged` adds those offers and reasons to the local ones; `with_link` gives each
  remote offer's session the message naming the remote session (`REMOTE_SESSION`).
* `Federation.forwarding` wraps a client's update: an accept of a remote offer is forwarded
  first and booked here only if the remote broker accepted (if booking here then fails, the
  remote session is cancelled); rejects and cancels are forwarded too. Once an accept is
  stored, the remote offers of the same set are released there.

Remote platforms take no part in the local scheduler: their capacity and limits only narrow
what is forwarded (`assess`), and their offers hold until the remote ones expire.

Imports `core`, the broker's model, scheduling, ports, store and the remote adapter.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import msgspec

from broker.lifecycle import Phase
from broker.model import (
    ComponentMetadata,
    ExecutionRequest,
    MessageItem,
    MessageLevel,
    SessionPhase,
    message_item,
)
from broker.model.codec import Media, encode, to_builtins
from broker.platforms.port import REMOTE_SESSION, Platform, remote_session_of
from broker.platforms.remote import MAX_PATH, Asked, RemotePlatform, ask_all
from broker.platforms.remote_client import RemoteOffer
from broker.scheduling.intervals import Interval
from broker.scheduling.offers import Offer, OfferSet
from broker.scheduling.resources import Demand, PlatformSpec, Reason, Resources, assess, reason
from broker.store.port import SessionRecord, SessionStore
from core.errors import Conflict
from core.time import format_duration

__all__ = ["LOOP", "Federation", "Gathered", "RemoteRefused", "parse_path", "with_link"]

log = logging.getLogger(__name__)

LOOP: Final = "urn:voexec:federation-loop"


class RemoteRefused(Conflict):
    """The remote broker refused (or could not be asked) to accept the offer; says why."""


def parse_path(header: str | None) -> tuple[str, ...]:
    """The broker ids of a forwarded request's path header (comma-separated), in order."""
    if not header:
        return ()
    return tuple(part.strip() for part in header.split(",") if part.strip())


@dataclass
class Gathered:
    """What the remote brokers answered one request."""

    offers: list[Offer] = field(default_factory=list)
    links: dict[int, str] = field(default_factory=dict)
    """Remote session URL per offer (by the offer object's id: offers may be equal)."""
    reasons: list[Reason] = field(default_factory=list)
    loop: MessageItem | None = None
    """Set when the request already passed through this broker: answer NO, forward nothing."""

    def merged(self, found: OfferSet) -> OfferSet:
        """The local offers and reasons, then the remote ones."""
        if not self.offers and not self.reasons:
            return found
        return OfferSet(
            offers=(*found.offers, *self.offers), reasons=(*found.reasons, *self.reasons)
        )

    def link(self, offer: Offer) -> str | None:
        """The remote session `offer` stands for, if it is a remote offer."""
        return self.links.get(id(offer))


def with_link(record: SessionRecord, url: str, now: datetime) -> SessionRecord:
    """The session with the message naming its remote session (`REMOTE_SESSION`)."""
    note = message_item(
        REMOTE_SESSION,
        "This session is {url} on {platform}",
        time=now,
        url=url,
        platform=record.platform,
    )
    meta = record.document.meta or ComponentMetadata()
    document = msgspec.structs.replace(
        record.document, meta=msgspec.structs.replace(meta, messages=[*meta.messages, note])
    )
    return dataclasses.replace(record, document=document)


class Federation:
    """The remote platforms of one broker, and what the service does with them."""

    def __init__(
        self,
        platforms: Mapping[str, Platform],
        specs: Sequence[PlatformSpec],
        *,
        broker_id: str,
        horizon: timedelta,
        max_offers: int,
        offer_ttl: timedelta,
    ) -> None:
        self.broker_id = broker_id
        self.remotes = {
            name: platform
            for name, platform in platforms.items()
            if isinstance(platform, RemotePlatform)
        }
        self.specs = {spec.name: spec for spec in specs if spec.name in self.remotes}
        self.horizon = horizon
        self.max_offers = max_offers
        self.offer_ttl = offer_ttl

    def local(self, specs: Sequence[PlatformSpec]) -> list[PlatformSpec]:
        """The platforms the local scheduler offers (all but the remote ones)."""
        return [spec for spec in specs if spec.name not in self.remotes]

    def is_remote(self, platform: str) -> bool:
        """Whether `platform` is another broker."""
        return platform in self.remotes

    # ------------------------------------------------------------------ offers
    def gather(
        self,
        request: ExecutionRequest,
        demand: Demand | None,
        path: Sequence[str],
        now: datetime,
    ) -> Gathered:
        """Ask every remote broker for offers at once; see the module's description."""
        if self.broker_id in path or len(path) >= MAX_PATH:
            return Gathered(loop=self._loop(path, now))
        if not self.remotes or demand is None:
            return Gathered()
        gathered = Gathered()
        asks = {}
        onward = (*path, self.broker_id)
        for name, platform in self.remotes.items():
            spec = self.specs[name]
            refusals = assess(spec, demand)
            window = _window(demand, now, self.horizon)
            if refusals or window is None:
                gathered.reasons += refusals or [
                    reason(spec, "remote-not-asked", "{platform}: no start within the horizon")
                ]
                continue
            body = encode(_narrowed(request, demand, spec, window), Media.JSON)
            asks[platform] = _asker(platform, body, onward, demand.duration)
        for asked in ask_all(asks):
            self._read(asked, demand, now, gathered)
        return gathered

    def _loop(self, path: Sequence[str], now: datetime) -> MessageItem:
        return message_item(
            LOOP,
            "This request already passed through this broker ({broker}) on its way here "
            "({path}); it is not answered again, so that forwarding never loops",
            time=now,
            level=MessageLevel.ERROR,
            broker=self.broker_id,
            path=" -> ".join(path),
        )

    def _read(self, asked: Asked, demand: Demand, now: datetime, gathered: Gathered) -> None:
        spec = self.specs[asked.platform]
        for text in asked.refusals:
            gathered.reasons.append(reason(spec, "remote-broker", "{why}", why=text))
        kept = 0
        for remote in asked.offers:
            why = _unmet(remote, demand, spec, now)
            if why is not None:
                gathered.reasons.append(
                    reason(spec, "remote-offer-left-out", "{platform}: {why}", why=why)
                )
                self.remotes[asked.platform].reject(remote.url)
                continue
            if kept >= self.max_offers:
                self.remotes[asked.platform].reject(remote.url)  # holds nothing there
                continue
            expires = now + self.offer_ttl
            if remote.expires is not None:
                expires = min(expires, remote.expires)
            offer = Offer(
                platform=asked.platform,
                start=remote.start,
                end=remote.end,
                resources=Resources(cores=remote.cores, memory=remote.memory),
                cost=None,
                expires=expires,
                strategy="earliest",
            )
            gathered.offers.append(offer)
            gathered.links[id(offer)] = remote.url
            kept += 1

    # ------------------------------------------------------------------ updates
    @contextmanager
    def forwarding(self, store: SessionStore, uuid: UUID, target: SessionPhase) -> Iterator[None]:
        """Forward a client's update of a remote session around the local update."""
        if not self.remotes:  # no remote platform: nothing to forward, nothing to read
            yield
            return
        with store.read() as tx:
            record = tx.session(str(uuid))
        if record is None:
            yield
            return
        remote = self.remotes.get(record.platform)
        url = _link_of(record)
        accepting = target is Phase.ACCEPTED and record.phase is Phase.OFFERED
        if remote is not None and url is not None:
            if accepting:
                try:
                    remote.accept(url)
                except Exception as error:  # noqa: BLE001 - any failure refuses the accept
                    raise RemoteRefused(
                        f"session {uuid}: {record.platform} did not accept the offer: {error}"
                    ) from None
            elif target in (Phase.REJECTED, Phase.CANCELLED):
                trouble = remote.reject(url) if target is Phase.REJECTED else remote.cancel(url)
                if trouble is not None:
                    log.warning("session %s: forwarding %s failed: %s", uuid, target, trouble)
        try:
            yield
        except Exception:
            if accepting and remote is not None and url is not None:
                remote.cancel(url)  # booked there, refused here: release it there
            raise
        if target is Phase.ACCEPTED:
            self._release_siblings(store, record)

    def _release_siblings(self, store: SessionStore, record: SessionRecord) -> None:
        """Reject, on their brokers, the remote offers of the set whose offer was accepted."""
        with store.read() as tx:
            siblings = tx.siblings(record)
        for sibling in siblings:
            remote = self.remotes.get(sibling.platform)
            url = _link_of(sibling)
            if remote is not None and url is not None:
                trouble = remote.reject(url)
                if trouble is not None:
                    log.info("offer %s: releasing %s failed: %s", sibling.id, url, trouble)


def _asker(platform: RemotePlatform, body: bytes, path: Sequence[str], duration: timedelta) -> Any:
    return lambda: platform.ask(body, path, duration=duration)


def _link_of(record: SessionRecord) -> str | None:
    meta = record.document.meta
    return remote_session_of(meta.messages) if meta is not None else None


def _window(demand: Demand, now: datetime, horizon: timedelta) -> Interval | None:
    """The requested start range, from now to the horizon at most (one interval)."""
    start = max(min(w.start for w in demand.windows), now)
    end = min(max(w.end for w in demand.windows), now + horizon)
    return Interval(start, end) if start <= end else None


def _narrowed(
    request: ExecutionRequest, demand: Demand, spec: PlatformSpec, window: Interval
) -> dict[str, Any]:
    """The request as forwarded: its start range and sizes within what may be offered there."""
    tree: dict[str, Any] = to_builtins(request)
    tree["schedule"] = {
        "requested": {
            "start": f"{_iso(window.start)}/{_iso(window.end)}",
            "duration": format_duration(demand.duration),
        }
    }
    compute = tree.get("compute")
    if isinstance(compute, dict):
        cores_max = _least(demand.cores_max, spec.limits.cores, spec.cores)
        memory_max = _least(demand.memory_max, spec.limits.memory, spec.memory)
        compute["cores"] = {"min": demand.cores_min, "max": int(cores_max)}
        compute["memory"] = {"min": _whole(demand.memory_min), "max": int(memory_max)}
    return tree


def _least(*values: float | None) -> float:
    return min(value for value in values if value is not None)


def _whole(gib: float) -> int:
    return int(gib) if gib == int(gib) else int(gib) + 1


def _iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def _unmet(remote: RemoteOffer, demand: Demand, spec: PlatformSpec, now: datetime) -> str | None:
    """Why a remote offer does not meet the request as this broker promises, or None."""
    if not any(w.start <= remote.start <= w.end for w in demand.windows) or remote.start < now:
        return f"{remote.url} starts at {_iso(remote.start)}, outside the requested start range"
    if remote.end - remote.start < demand.duration:
        return f"{remote.url} is shorter than the requested {format_duration(demand.duration)}"
    if remote.cores < demand.cores_min or remote.memory < demand.memory_min:
        return (
            f"{remote.url} offers {remote.cores} cores and {remote.memory:g} GiB, less than the "
            f"{demand.cores_min} cores and {demand.memory_min:g} GiB asked"
        )
    if remote.expires is not None and remote.expires <= now:
        return f"{remote.url} had expired when it arrived"
    return None
