"""The remote platform: another IVOA Execution Broker, whose offers this broker passes on.

Federation, as the standard's talks describe it: a broker asks other brokers for offers and
delegates the question to their platforms. A platform with `adapter: remote` is another broker
(another voexec, the reference implementation, any broker of the newest schema); this module
owns what this broker does with it, over `remote_client.RemoteBrokerClient`:

* **Offers** (`RemotePlatform.ask`): the request is forwarded, narrowed to what this broker may
  offer there (its start range within the horizon, cores and memory within the platform's
  capacity and limits), carrying the path of brokers it passed through. The remote offers that
  meet the request become offers on this platform, holding until no later than the remote
  ones expire; each carries the remote session's URL (`REMOTE_SESSION`). Several remote
  brokers are asked at once (`ask_all`), each within its `timeout`: an unreachable or slow one
  never delays the answer beyond it and is named in a NO message; after `failures_to_open`
  failures in a row its circuit opens and it is not asked for `open_for`.
* **Updates** (`accept`, `reject`, `cancel`): forwarded to the remote session. The service
  forwards an accept before booking anything here, and books only when it succeeded.
* **Sessions** (the `Platform` port): the remote broker runs the work; `prepare`, `start`,
  `observe` and `release` mirror its session's phase by polling it, with a backoff from `poll`
  to `poll_max` while nothing changes; a remote failure fails the session here with the remote's
  reason; `stop` cancels the remote session.

Imports `core`, the broker's model, lifecycle and port, and the HTTP client; no database.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import httpx

from broker.lifecycle import (
    AnyEvent,
    ComponentCancelled,
    Failed,
    PlatformCheckDue,
    ReleaseDone,
    ReleaseStarted,
    ResourcesReady,
)
from broker.model import AnyExecutable
from broker.platforms.port import PlatformError, PlatformReport, SessionPlan
from broker.platforms.remote_client import (
    RemoteBrokerClient,
    RemoteError,
    RemoteOffer,
    basic_auth,
    bearer_auth,
)
from core.errors import ConfigError
from core.settings import PlatformSettings, RemotePlatformSettings
from core.time import format_instant

__all__ = ["MAX_PATH", "Asked", "RemotePlatform", "ask_all", "mirrored"]

log = logging.getLogger(__name__)

MAX_PATH: Final = 8
"""The most brokers a request may pass through: a bound on forwarding whatever the paths say."""

_POOL: Final = ThreadPoolExecutor(max_workers=16, thread_name_prefix="federation")
"""Remote calls run here, so that the caller waits only as long as the slowest timeout."""


@dataclass(frozen=True, slots=True)
class Asked:
    """One remote broker's answer: its offers that meet the request, or why there are none."""

    platform: str
    offers: tuple[RemoteOffer, ...] = ()
    refusals: tuple[str, ...] = ()
    """Why it offers nothing (or why some offers were left out), for the client."""


@dataclass(slots=True)
class _Circuit:
    """Consecutive failures of one remote broker; open (not asked) for a while after many."""

    failures_to_open: int
    open_for: timedelta
    failures: int = 0
    last_error: str = ""
    open_until: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refusal(self, name: str, now: datetime) -> str | None:
        with self.lock:
            if self.open_until is None or now >= self.open_until:
                return None
            return (
                f"{name} was not asked: it failed {self.failures} times in a row (the last: "
                f"{self.last_error}); it is asked again from {format_instant(self.open_until)}"
            )

    def succeeded(self) -> None:
        with self.lock:
            self.failures, self.open_until = 0, None

    def failed(self, error: str, now: datetime) -> None:
        with self.lock:
            self.failures += 1
            self.last_error = error
            if self.failures >= self.failures_to_open:
                self.open_until = now + self.open_for


@dataclass(slots=True)
class _Poll:
    phase: str | None = None
    interval: timedelta = timedelta(0)
    unreachable_since: datetime | None = None


class RemotePlatform:
    """A `Platform` that is another Execution Broker; see the module's description."""

    def __init__(
        self,
        settings: PlatformSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        remote = settings.remote
        where = f"broker.platforms[{settings.name}].remote"
        if remote is None or not remote.url:
            raise ConfigError(f"setting {where}.url: a remote platform needs the broker's URL")
        if not remote.url.startswith(("http://", "https://")):
            raise ConfigError(f"setting {where}.url: {remote.url!r} is not an http(s) URL")
        self.name = settings.name
        self.settings: RemotePlatformSettings = remote
        headers, auth = _credentials(remote, where, os.environ if environ is None else environ)
        self.client = RemoteBrokerClient(
            settings.name,
            remote.url,
            timeout=remote.timeout,
            headers=headers,
            auth=auth,
            transport=transport,
        )
        self._circuit = _Circuit(remote.failures_to_open, remote.open_for)
        self._polls: dict[str, _Poll] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ federation
    def ask(self, body: bytes, path: Sequence[str], *, duration: timedelta) -> Asked:
        """Forward a (narrowed) request and read the remote offers; never raises.

        Args:
            body: the request to forward, in JSON.
            path: the brokers it has passed through, this one last.
            duration: the requested duration (for offers whose slot gives only a start).
        """
        now = _now()
        closed = self._circuit.refusal(self.name, now)
        if closed is not None:
            return Asked(self.name, refusals=(closed,))
        try:
            answer = self.client.request_offers(body, path, duration=duration)
        except RemoteError as error:
            if error.transient:
                self._circuit.failed(str(error), _now())
            else:
                self._circuit.succeeded()  # it answered: the broker is up
            return Asked(self.name, refusals=(str(error),))
        self._circuit.succeeded()
        refusals = [f"{self.name}: {why}" for why in answer.unreadable]
        if not answer.offers:
            said = "; ".join(answer.messages) or "no reason given"
            refusals.insert(0, f"{self.name} offers nothing: {said}")
        return Asked(self.name, offers=answer.offers, refusals=tuple(refusals))

    def failed(self, error: str) -> None:
        """Count a failure found by the caller (it did not answer within its timeout)."""
        self._circuit.failed(error, _now())

    def accept(self, url: str) -> None:
        """Accept the remote offer.

        Raises:
            PlatformError: the remote broker refused it or could not be reached; says why.
        """
        try:
            self.client.update(url, "ACCEPTED")
        except RemoteError as error:
            raise PlatformError(str(error)) from None

    def reject(self, url: str) -> str | None:
        """Reject (release) a remote offer; returns what went wrong, or None."""
        return self._best_effort(url, "REJECTED")

    def cancel(self, url: str) -> str | None:
        """Cancel a remote session; returns what went wrong, or None."""
        return self._best_effort(url, "CANCELLED")

    def _best_effort(self, url: str, phase: str) -> str | None:
        try:
            session = self.client.session(url)
            if session.phase in _ENDED or session.phase == phase:
                return None  # nothing left to release there
            self.client.update(url, phase)
        except RemoteError as error:
            log.info("%s: %s of %s: %s", self.name, phase, url, error)
            return str(error)
        return None

    # ------------------------------------------------------------------ the Platform port
    def accepts(self, executable: AnyExecutable, gpus: int = 0) -> Sequence[str]:
        """The remote broker decides, when asked for offers."""
        return []

    def prepare(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """The remote broker prepares on its own: look at its session."""
        return self.observe(plan, now)

    def start(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """The remote broker starts the work on its own: keep looking."""
        return self.observe(plan, now)

    def release(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """The remote broker ends its session at its offered end: watch it do so."""
        return self.observe(plan, now)

    def stop(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Cancel the remote session (a cancel here); nothing more will be reported.

        Raises:
            PlatformError: the remote session could not be cancelled.
        """
        url = _url_of(plan, self.name)
        with self._lock:
            self._polls.pop(plan.session_id, None)
        trouble = self.cancel(url)
        if trouble is not None:
            raise PlatformError(trouble)
        return []

    def observe(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Mirror the remote session's phase; ask again later, less often while it keeps it."""
        url = _url_of(plan, self.name)
        with self._lock:
            poll = self._polls.setdefault(plan.session_id, _Poll())
        try:
            session = self.client.session(url)
        except RemoteError as error:
            return self._unreachable(plan, poll, error, now)
        poll.unreachable_since = None
        if session.phase != poll.phase:
            poll.phase, poll.interval = session.phase, self.settings.poll
        else:
            poll.interval = min(poll.interval * 2, self.settings.poll_max)
        events = mirrored(self.name, session.phase, url, session.messages)
        reports = [PlatformReport(now, event) for event in events]
        if session.phase in _ENDED:
            with self._lock:
                self._polls.pop(plan.session_id, None)
            return reports
        return [*reports, PlatformReport(now + poll.interval, PlatformCheckDue())]

    def _unreachable(
        self, plan: SessionPlan, poll: _Poll, error: RemoteError, now: datetime
    ) -> list[PlatformReport]:
        poll.unreachable_since = poll.unreachable_since or now
        poll.interval = min(max(poll.interval * 2, self.settings.poll), self.settings.poll_max)
        if not error.transient or now > plan.end + self.settings.give_up:
            # The remote session is gone (404), or the broker has been away past the offered
            # end and then some: what happened there cannot be known any more.
            with self._lock:
                self._polls.pop(plan.session_id, None)
            return [PlatformReport(now, Failed(reason=f"{self.name}: {error}"))]
        return [PlatformReport(now + poll.interval, PlatformCheckDue())]


_ENDED: Final = frozenset({"COMPLETED", "FAILED", "CANCELLED", "REJECTED", "EXPIRED"})


def mirrored(  # noqa: PLR0911 - one return per remote phase
    name: str, phase: str, url: str, messages: Sequence[str]
) -> list[AnyEvent]:
    """The events that bring a session here to the remote session's `phase`.

    Several in order where the remote went further than one step: COMPLETED is "releasing" then
    "released", so a session still preparing here passes through RELEASING as the lifecycle
    requires. Phases the lifecycle ignores where they do not apply.
    """
    said = "; ".join(messages[-3:]) or "no reason given"
    match phase:
        case "AVAILABLE" | "READY" | "RUNNING":
            return [ResourcesReady()]
        case "RELEASING":
            return [ReleaseStarted()]
        case "COMPLETED":
            return [ReleaseStarted(), ReleaseDone()]
        case "FAILED":
            return [Failed(reason=f"{name}: the remote session {url} failed: {said}")]
        case "CANCELLED":
            return [
                ComponentCancelled(
                    components=(url,), reason=f"{name}: the remote session was cancelled: {said}"
                )
            ]
        case "REJECTED" | "EXPIRED":
            return [Failed(reason=f"{name}: the remote session {url} is {phase}: {said}")]
        case _:  # INITIAL, OFFERED, ACCEPTED, WAITING, PREPARING: still on its way
            return []


def ask_all(
    asks: Mapping[RemotePlatform, Callable[[], Asked]],
) -> list[Asked]:
    """Ask several remote brokers at once; each answers within its own timeout or is named.

    The answers come back in the order of `asks`. A broker that has not answered within its
    `timeout` (plus a little for the thread to start) is answered for: a refusal naming it, a
    failure on its circuit, and, should its offers still arrive, they are rejected there at once
    so they hold nothing.
    """
    started = {platform: _POOL.submit(ask) for platform, ask in asks.items()}
    if not started:
        return []
    longest = max(p.settings.timeout for p in started).total_seconds() + 0.5
    wait_for(list(started.values()), timeout=longest)
    answers: list[Asked] = []
    for platform, future in started.items():
        if future.done():
            answers.append(future.result())
            continue
        seconds = platform.settings.timeout.total_seconds()
        error = f"{platform.name} ({platform.client.base_url}) did not answer within {seconds:g} s"
        platform.failed(error)
        future.add_done_callback(_release_late(platform))
        answers.append(Asked(platform.name, refusals=(error,)))
    return answers


def _release_late(platform: RemotePlatform) -> Callable[[Future[Asked]], None]:
    def release(future: Future[Asked]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        for offer in future.result().offers:
            _POOL.submit(platform.reject, offer.url)

    return release


def _url_of(plan: SessionPlan, name: str) -> str:
    if not plan.remote:
        raise PlatformError(f"{name}: session {plan.session_id} names no remote session")
    return plan.remote


def _credentials(
    remote: RemotePlatformSettings, where: str, environ: Mapping[str, str]
) -> tuple[dict[str, str], httpx.Auth | None]:
    if remote.token_env is None:
        return {}, None
    token = environ.get(remote.token_env, "")
    if not token:
        raise ConfigError(
            f"setting {where}.token_env: the environment variable {remote.token_env} is not set"
        )
    if remote.auth == "bearer":
        return bearer_auth(token), None
    if remote.username_env is None or not environ.get(remote.username_env):
        raise ConfigError(
            f"setting {where}.username_env: basic authentication needs the user name in an "
            "environment variable"
        )
    return {}, basic_auth(environ[remote.username_env], token)


def _now() -> datetime:
    return datetime.now(UTC)
