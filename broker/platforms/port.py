"""The broker's ports: what the service needs from a compute platform.

Owns the `Platform` protocol, the `SessionPlan` the service hands it (what to run, with what,
when) and the `PlatformReport` it answers with. Imports `core` and the pure `broker` modules
only; adapters live in `broker.platforms`, the SQL store in `broker.store.sql`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from broker.lifecycle import AnyEvent
from broker.model import AnyExecutable, MessageItem, SimpleSessionConnector

__all__ = [
    "REMOTE_SESSION",
    "DataSource",
    "Platform",
    "PlatformError",
    "PlatformReport",
    "ResultsTarget",
    "SessionPlan",
    "remote_session_of",
]


class PlatformError(Exception):
    """An adapter cannot do what it was asked; the message is meant for the client.

    Any other exception from an adapter fails the session too, with its type in the reason.
    """


@dataclass(frozen=True, slots=True)
class PlatformReport:
    """Something the platform foresees or observed: `event` for the session at `at`."""

    at: datetime
    event: AnyEvent
    note: str | None = None
    """A message for the client (where the output goes, what failed), added to the session's
    messages when the report is given."""
    connectors: tuple[SimpleSessionConnector, ...] | None = None
    """The session's ways in as they are now (a Jupyter server's URL, a published port), which
    replace those it had; None leaves them as they are. A session that ends has its connectors
    marked FINISHED by the service."""
    messages: tuple[MessageItem, ...] = ()
    """Messages with values for the session (the results written, each with its checksum),
    added to the session's messages when the report is given."""


@dataclass(frozen=True, slots=True)
class DataSource:
    """One data resource of a session, as a platform stages it."""

    name: str
    """The resource's name in the request (or its UUID when it has none)."""
    kind: str
    """Its kind URI."""
    location: str | None
    """The URL to fetch it from; None when its kind names no single URL (S3, Rucio)."""


@dataclass(frozen=True, slots=True)
class ResultsTarget:
    """Where a session's output goes when its work ends (a results storage resource)."""

    name: str
    kind: str
    """Its kind's short name (`s3-results-storage`, ...)."""
    destination: str
    """`s3+http(s)://HOST/BUCKET/PREFIX`, an `http(s)://` URL prefix or a `file://` folder
    (`broker.platforms.results_plan`)."""
    root: str | None = None
    """For a folder: the allowed folder (`data.results.files`) it must stay under."""


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """What a platform must know to run one accepted session, built by the service.

    A frozen description, not the stored record: adapters never see the database.
    """

    session_id: str
    executable: AnyExecutable
    """The executable as offered."""
    cores: int
    memory: float
    """GiB."""
    gpus: int
    start: datetime
    """The offered start: the work must not start before it."""
    end: datetime
    """The offered end: nothing of the session may run after it."""
    data: tuple[DataSource, ...] = ()
    remote: str | None = None
    """For a platform that is another broker: the URL of the session there that this one
    mirrors (from the session's `urn:voexec:remote-session` message)."""
    results: tuple[ResultsTarget, ...] = ()
    """Where the output folder is copied when the work ends (during RELEASING)."""


REMOTE_SESSION: Final = "urn:voexec:remote-session"
"""The kind of the message naming the session on another broker that an offer (or session) on a
`remote` platform stands for; its `values.url` is that session's URL."""


def remote_session_of(messages: Iterable[MessageItem]) -> str | None:
    """The remote session URL a session's messages name (`REMOTE_SESSION`), if any."""
    for item in messages:
        if item.kind == REMOTE_SESSION and item.values:
            url = item.values.get("url")
            if url:
                return url
    return None


class Platform(Protocol):
    """One compute platform, as the offers and the work queue use it.

    Every call returns the reports the platform can already give (a simulated platform knows
    when its preparation will be done; a real one asks for a `PlatformCheckDue` a little later
    and answers `observe` then); the service queues them in the same transaction as the
    session's new phase, so nothing is lost when the process stops. The service calls the
    platform after the transition that decided the call has committed, with no transaction
    open (the outbox), so a slow call holds up no other request; still, a call should be short
    (submit, query, signal) and never wait for the work. A call may be made again after the
    process died during it: each must be idempotent per session (do the work once, as the
    session's own files or job name tell). A call that raises fails the session with the
    error as its reason.
    """

    name: str

    def accepts(self, executable: AnyExecutable, gpus: int = 0) -> Sequence[str]:
        """Why this platform cannot run `executable`, for the client; empty when it can.

        Asked at offer time, so that a request the platform could never run is answered NO
        with the reason instead of failing after acceptance. `gpus` is the least number of GPUs
        the request needs (0: none): a platform that declares GPUs but cannot hand them to this
        executable says so (the scheduler already answers for their number and models).
        """
        ...

    def prepare(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Start preparing the session's components (stage data, pull images)."""
        ...

    def start(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Start the work."""
        ...

    def observe(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Say how the work goes: what happened, and when to ask again while it goes on."""
        ...

    def release(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """End the session in order: stop what still runs, release the rest."""
        ...

    def stop(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Stop the work now (a cancel) and release what the session holds there."""
        ...
