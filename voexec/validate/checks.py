"""The scenarios' shared vocabulary: a run's context, the recorder, the calls they share.

The calls every scenario makes: ask for offers, read a session, update one, clean up.

A scenario is a small function `run(check)`; `Check` carries the wire, the run's options and
facts, and collects findings (`must`, `should`, `may`, `warn`, `skip`) with the exchanges that
showed them. Helpers raise `Unmet` when a prerequisite fails (no offer set came back, say):
the scenario is then reported as skipped with that reason, so one defect is failed once, by
the scenario that checks it, and not again by every scenario that needed it.

Documents are judged as plain dicts, as they came off the wire. Imports `core.time` and the
validator's own modules; nothing from `broker`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urljoin

from core.time import Interval, InvalidTime, format_instant, parse_duration, parse_instant
from voexec.validate.exchange import JSON, YAML, Exchange, OutsideBroker, Wire
from voexec.validate.report import Finding, Level, Outcome, Status

KINDS: Final = "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/"
DOCKER: Final = KINDS + "executable/docker-container.yaml"
COMPUTE: Final = KINDS + "compute/simple-compute-resource.yaml"
SESSION_KINDS: Final = frozenset(
    {
        KINDS + "session/simple-execution-session.yaml",
        KINDS + "session/scheduled-execution-session.yaml",
    }
)
ENUM_UPDATE: Final = "uri:enum-value-update"
ENUM_OPTION: Final = "uri:enum-value-option"
TEST_IMAGE: Final = "ghcr.io/zarquan/heliophorus-cantliei:latest"
"""The reference implementation's own test image (arguments: seconds to sleep, exit code)."""
TEST_DIGEST: Final = "sha256:" + "0" * 64
"""A well-formed digest: the reference implementation refuses a container without one."""
ACCEPTED_OR_LATER: Final = frozenset(
    {"ACCEPTED", "WAITING", "PREPARING", "AVAILABLE", "RUNNING", "RELEASING", "COMPLETED"}
)
ENDED: Final = frozenset({"CANCELLED", "RELEASING", "COMPLETED", "FAILED"})


class Unmet(Exception):
    """A prerequisite of a scenario failed; the scenario is skipped with this reason."""


@dataclass
class Options:
    """What a run may do."""

    booking: bool = False
    """Run the scenarios that fill the broker's capacity (`--booking`)."""
    books: bool = True
    """Run the scenarios that make and cancel one booking each (off on the web page)."""
    expiry_wait: float = 330.0
    """Longest wait, in seconds, for an offer to expire; 0 never waits."""
    max_fill: int = 12
    """Most sessions the capacity scenarios book while measuring capacity."""


@dataclass
class Run:
    """One run's wire, options and the facts scenarios share."""

    wire: Wire
    options: Options
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    facts: dict[str, Any] = field(default_factory=dict)
    broker_missing: str | None = None

    def start_range(self, *, days: float = 1, hours: float = 2) -> str:
        """A start range beginning `days` from now on a whole hour, lasting `hours`."""
        start = (self.now() + timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
        return f"{format_instant(start)}/{format_instant(start + timedelta(hours=hours))}"


def execution_request(
    run: Run,
    *,
    cores: tuple[int, int] = (1, 2),
    memory: tuple[int, int] = (1, 2),
    start: str | None = None,
    duration: str = "PT10M",
    executable_kind: str = DOCKER,
    name: str = "voexec-validate",
    schedule: bool = True,
) -> dict[str, Any]:
    """An ExecutionRequest in the newest schema's words: a container, cores, memory, when."""
    request: dict[str, Any] = {
        "executable": {
            "kind": executable_kind,
            "meta": {"name": name},
            "image": {"locations": [TEST_IMAGE], "digest": TEST_DIGEST},
            "command": ["1", "0"],
        },
        "compute": {
            "kind": COMPUTE,
            "meta": {"name": f"{name}-compute"},
            "cores": {"min": cores[0], "max": cores[1]},
            "memory": {"min": memory[0], "max": memory[1]},
        },
    }
    if schedule:
        request["schedule"] = {
            "requested": {"start": start or run.start_range(), "duration": duration}
        }
    return request


def update(phase: str, path: str = "phase") -> dict[str, Any]:
    """An enum-value update setting `path` to `phase`."""
    return {"kind": ENUM_UPDATE, "path": path, "value": phase}


# ------------------------------------------------------------------------- reading documents
def meta(document: Any) -> Mapping[str, Any]:
    """A document's `meta` block (empty when absent or not a mapping)."""
    block = document.get("meta") if isinstance(document, Mapping) else None
    return block if isinstance(block, Mapping) else {}


def uuid_of(document: Any) -> str | None:
    """A document's `meta.uuid`."""
    value = meta(document).get("uuid")
    return str(value) if value else None


def offers_of(offerset: Any) -> list[Mapping[str, Any]]:
    """The offers of an offer set (the dicts among them)."""
    offers = offerset.get("offers") if isinstance(offerset, Mapping) else None
    return [o for o in offers or [] if isinstance(o, Mapping)] if isinstance(offers, list) else []


def phase_of(document: Any) -> str | None:
    """A session's `phase`."""
    return str(document["phase"]) if isinstance(document, Mapping) and "phase" in document else None


def messages_of(document: Any) -> list[Mapping[str, Any]]:
    """The `meta.messages` of a document."""
    messages = meta(document).get("messages")
    return [m for m in messages if isinstance(m, Mapping)] if isinstance(messages, list) else []


def dig(document: Any, *path: str) -> Any:
    """`document[path[0]][path[1]]...`, or None where a step is missing."""
    for step in path:
        if not isinstance(document, Mapping):
            return None
        document = document.get(step)
    return document


def offered_slot(offer: Mapping[str, Any]) -> tuple[Any, Any]:
    """The offer's `available` start and duration: the session's schedule, else its compute's.

    The reference implementation leaves the session's schedule empty and puts the slot on the
    compute resource, so both places are read.
    """
    for where in (offer, offer.get("compute")):
        available = dig(where, "schedule", "available")
        if isinstance(available, Mapping) and available.get("start"):
            return available.get("start"), available.get("duration")
    return None, None


def slot_interval(start: Any) -> Interval | None:
    """The offered start as an interval (`<instant>/PT0S`, or an instant); None if unreadable."""
    if not isinstance(start, str):
        return None
    try:
        return Interval.parse(start)
    except InvalidTime:
        return None


def duration_of(text: Any) -> timedelta | None:
    """An ISO-8601 duration, or None if unreadable."""
    try:
        return parse_duration(text) if isinstance(text, str) else None
    except InvalidTime:
        return None


def instant_of(text: Any) -> datetime | None:
    """An ISO-8601 instant, or None if unreadable."""
    try:
        return parse_instant(text)[0] if isinstance(text, str) else None
    except InvalidTime:
        return None


def is_document(exchange: Exchange, document: Any) -> bool:
    """Whether the answer is a JSON or YAML mapping."""
    return isinstance(document, Mapping) and exchange.status is not None


def names_field(exchange: Exchange, *names: str) -> bool:
    """Whether the answer's body mentions any of `names` (a field, a kind)."""
    return any(name in exchange.body for name in names)


# ------------------------------------------------------------------------- the recorder
@dataclass
class Check:
    """The recorder of one scenario: its findings, its exchanges, and the calls it makes."""

    run: Run
    outcome: Outcome

    @property
    def wire(self) -> Wire:
        """The run's HTTP client."""
        return self.run.wire

    # findings -----------------------------------------------------------------
    def record(
        self, status: Status, level: Level, requirement: str, observed: str = "",
        at: Iterable[int] = (),
    ) -> None:  # fmt: skip
        """Add a finding."""
        self.outcome.findings.append(Finding(status, level, requirement, observed, tuple(at)))

    def require(
        self, ok: bool, level: Level, requirement: str, observed: str = "",
        at: Iterable[int] = (),
    ) -> bool:  # fmt: skip
        """Pass or fail `requirement` at `level`; return `ok`."""
        self.record("pass" if ok else "fail", level, requirement, "" if ok else observed, at)
        return ok

    def must(self, ok: bool, requirement: str, observed: str = "", at: Iterable[int] = ()) -> bool:
        """A MUST of the standard."""
        return self.require(ok, "MUST", requirement, observed, at)

    def should(
        self, ok: bool, requirement: str, observed: str = "", at: Iterable[int] = ()
    ) -> bool:
        """A SHOULD of the standard (failing it does not fail the run)."""
        return self.require(ok, "SHOULD", requirement, observed, at)

    def warn(
        self, requirement: str, observed: str, at: Iterable[int] = (), level: Level = "MAY"
    ) -> None:
        """Something worth knowing that the standard does not require."""
        self.record("warn", level, requirement, observed, at)

    def skip(self, requirement: str, reason: str, level: Level = "MUST") -> None:
        """A requirement not checked, and why."""
        self.record("skip", level, requirement, reason)

    # calls --------------------------------------------------------------------
    def call(self, method: str, path_or_url: str, **options: Any) -> tuple[int, Exchange, Any]:
        """One HTTP call (a path under the broker, or a URL beneath it), recorded here."""
        url = path_or_url if "://" in path_or_url else self.wire.url(path_or_url)
        exchange, document = self.wire.call(method, url, **options)
        self.outcome.exchanges.append(exchange)
        return len(self.outcome.exchanges) - 1, exchange, document

    def request_offers(
        self, request: Mapping[str, Any], *, media: str = JSON, accept: str | None = JSON,
        path: str = "/requests",
    ) -> tuple[int, Any]:  # fmt: skip
        """POST a request; the offer set from the answer's body, or read from its Location.

        Raises:
            Unmet: no offer set came back.
        """
        at, exchange, document = self.call(
            "POST", path, document=request, content_type=media, accept=accept
        )
        if isinstance(document, Mapping) and "result" in document:
            return at, document
        location = exchange.response_headers.get("location")
        if exchange.status == 303 and location:
            target = urljoin(exchange.url, location)  # a relative Location is allowed too
            try:
                at, _, document = self.call("GET", target, accept=accept)
            except OutsideBroker as error:
                raise Unmet(str(error)) from None
            if isinstance(document, Mapping) and "result" in document:
                return at, document
        raise Unmet(f"no offer set came back: {exchange.brief()}")

    def yes_offers(self, request: Mapping[str, Any]) -> tuple[int, Any, list[Mapping[str, Any]]]:
        """An offer set that says YES, and its offers.

        Raises:
            Unmet: no offer set, or it said NO.
        """
        at, offerset = self.request_offers(request)
        offers = offers_of(offerset)
        if offerset.get("result") != "YES" or not offers:
            self.cleanup(offerset)
            reasons = "; ".join(
                str(m.get("message") or m.get("template")) for m in messages_of(offerset)
            )
            raise Unmet(
                f"the broker answered NO to an ordinary request ({reasons or 'no reason given'})"
            )
        return at, offerset, offers

    def session(self, session_id: str) -> tuple[int, Exchange, Any]:
        """GET a session."""
        return self.call("GET", f"/sessions/{session_id}", accept=JSON)

    def set_phase(
        self, session_id: str, phase: str, *, body: Mapping[str, Any] | None = None
    ) -> tuple[int, Exchange, Any]:
        """POST one update setting the session's phase."""
        return self.call(
            "POST", f"/sessions/{session_id}", document=body or update(phase),
            content_type=JSON, accept=JSON,
        )  # fmt: skip

    def cleanup(
        self, offerset: Any, *, cancel: Iterable[str] = (), accepted: Iterable[str] = ()
    ) -> None:
        """Reject what is still OFFERED in `offerset` and cancel the `cancel` sessions.

        `offerset` is the document as it was answered; offers `accepted` since (or cancelled)
        are left to `cancel`.
        """
        cancelled = {*cancel, *accepted}
        for offer in offers_of(offerset):
            offer_id = uuid_of(offer)
            if offer_id and offer_id not in cancelled and phase_of(offer) in {"OFFERED", None}:
                self.set_phase(offer_id, "REJECTED")
        for session_id in cancel:
            self.set_phase(session_id, "CANCELLED")


def random_uuid() -> str:
    """A UUID no broker has issued."""
    return str(uuid.uuid4())


__all__ = [
    "ACCEPTED_OR_LATER",
    "COMPUTE",
    "DOCKER",
    "ENDED",
    "ENUM_OPTION",
    "JSON",
    "KINDS",
    "SESSION_KINDS",
    "YAML",
    "Check",
    "Options",
    "Run",
    "Unmet",
    "dig",
    "duration_of",
    "execution_request",
    "instant_of",
    "is_document",
    "messages_of",
    "meta",
    "names_field",
    "offered_slot",
    "offers_of",
    "phase_of",
    "random_uuid",
    "slot_interval",
    "update",
    "uuid_of",
]
