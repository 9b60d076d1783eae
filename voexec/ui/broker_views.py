"""Offer sets and sessions as the pages show them, read from the broker's wire format.

The pages read the same documents a client of `/broker` gets (the IVOA ExecutionBroker
schema, as plain JSON-like data), not the broker's internal types: the wire format is the
broker's stable contract, and the browser's scripts read it too. Reading is lenient: a missing
or odd field shows as blank, never as an error page.

What the schema does not say, voexec's broker says in messages: the platform of an offer
(`urn:voexec:offer-platform`, `values.platform`), and why a platform said NO (error messages
whose `values.platform` names it), which `refusals` groups per platform.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from voexec.ui.formats import interval_length, number_text, parse_duration, parse_instant

PLATFORM_MESSAGE: Final = "urn:voexec:offer-platform"
PHASE_MESSAGE: Final = "urn:voexec:phase"
STRATEGY_TITLES: Final = {
    "earliest": "Earliest start",
    "largest": "Most resources",
    "longest": "Longest run",
    "cheapest": "Lowest cost",
}
LIFECYCLE: Final = ("ACCEPTED", "WAITING", "PREPARING", "AVAILABLE", "RUNNING", "RELEASING")
"""The phases an accepted session walks through, in order, before it ends."""
TERMINAL: Final = frozenset({"REJECTED", "EXPIRED", "COMPLETED", "FAILED", "CANCELLED"})
PHASE_HELP: Final = {
    "OFFERED": "An offer: its resources are held for you until it expires.",
    "ACCEPTED": "Accepted: the resources are booked.",
    "REJECTED": "Rejected: the held resources were released.",
    "EXPIRED": "Expired: the offer was not accepted in time and its resources were released.",
    "WAITING": "Waiting for its preparation time.",
    "PREPARING": "Preparing: staging data and pulling the executable.",
    "AVAILABLE": "Ready: everything is in place; the work starts at the offered start.",
    "RUNNING": "Running: the work is under way until it finishes or the offered time ends.",
    "RELEASING": "Releasing: the work is over and the platform is cleaning up.",
    "COMPLETED": "Completed.",
    "FAILED": "Failed: see the messages below for why.",
    "CANCELLED": "Cancelled: the work was stopped and the resources released.",
}
TONE: Final = {
    "OFFERED": "info",
    "COMPLETED": "success",
    "FAILED": "danger",
    "CANCELLED": "neutral",
    "REJECTED": "neutral",
    "EXPIRED": "neutral",
}


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Message:
    """A broker message, rendered."""

    text: str
    level: str = "INFO"
    time: datetime | None = None
    kind: str = ""
    platform: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)
    """The message's values, as text (`phase`, `platform`, `strategy`...)."""

    @property
    def phase(self) -> str | None:
        """The phase a phase-change message announces."""
        return self.values.get("phase") if self.kind == PHASE_MESSAGE else None

    @property
    def tone(self) -> str:
        """A CSS tone for the phase it announces."""
        return TONE.get(self.phase or "", "info")


@dataclass(frozen=True)
class Schedule:
    """When a session prepares, is available, and releases."""

    preparing: datetime | None
    start: datetime | None
    """The offered start (the first instant of the `available` interval)."""
    start_range: timedelta
    """How far the start may move (zero for a precise start)."""
    duration: timedelta | None
    releasing: datetime | None
    releasing_for: timedelta | None

    @property
    def end(self) -> datetime | None:
        """When the available time ends."""
        if self.start is None or self.duration is None:
            return None
        return self.start + self.start_range + self.duration


@dataclass(frozen=True)
class Component:
    """One part of a session (executable, compute, data, storage) and its own phase."""

    role: str
    name: str
    phase: str


@dataclass(frozen=True)
class Connector:
    """How to reach a running session (a notebook URL, an SSH endpoint...)."""

    protocol: str
    location: str
    status: str


@dataclass(frozen=True)
class SessionView:
    """A session (an offer is a session in phase OFFERED), ready to show."""

    uuid: str
    name: str
    phase: str
    platform: str | None
    created: datetime | None
    modified: datetime | None
    expires: datetime | None
    schedule: Schedule | None
    cores: float | None
    memory: float | None
    gpus: int
    gpu_models: tuple[str, ...]
    cost: str
    options: tuple[str, ...]
    """Phases the client may move the session to now (`meta.options` of path `phase`)."""
    messages: tuple[Message, ...]
    connectors: tuple[Connector, ...]
    components: tuple[Component, ...]
    executable: str
    """The executable's name, image or location."""
    strategy: str | None = None
    """Why the broker made this offer (`earliest`, `largest`, `longest`, `cheapest`)."""

    @property
    def strategy_title(self) -> str:
        """The strategy in words."""
        return STRATEGY_TITLES.get(self.strategy or "", (self.strategy or "").title())

    @property
    def help(self) -> str:
        """What the phase means, in a sentence."""
        return PHASE_HELP.get(self.phase, self.phase.title())

    @property
    def tone(self) -> str:
        """A CSS tone for the phase badge."""
        return TONE.get(self.phase, "active")

    @property
    def terminal(self) -> bool:
        """True when nothing more will happen to it."""
        return self.phase in TERMINAL

    @property
    def can_accept(self) -> bool:
        """True when the offer may be accepted now."""
        return "ACCEPTED" in self.options

    @property
    def can_reject(self) -> bool:
        """True when the offer may be rejected now."""
        return "REJECTED" in self.options

    @property
    def can_cancel(self) -> bool:
        """True when the session may be cancelled now."""
        return "CANCELLED" in self.options

    def steps(self) -> list[tuple[str, str]]:
        """The accepted lifecycle as (phase, state) with state `done`, `current` or `todo`.

        A session that ended before COMPLETED shows no step as current: how far it got is in
        its messages.
        """
        if self.phase == "COMPLETED":
            return [(phase, "done") for phase in (*LIFECYCLE, "COMPLETED")]
        if self.phase not in LIFECYCLE:
            return [(phase, "todo") for phase in (*LIFECYCLE, "COMPLETED")]
        current = LIFECYCLE.index(self.phase)
        return [
            (phase, "done" if i < current else "current" if i == current else "todo")
            for i, phase in enumerate((*LIFECYCLE, "COMPLETED"))
        ]


@dataclass(frozen=True)
class Refusal:
    """Why one platform (or the broker as a whole, when `platform` is None) said NO."""

    platform: str | None
    reasons: list[str] = field(default_factory=list)


GENERIC_ADVICE: Final = (
    "fewer cores or less memory, a shorter run, or a later or wider start window"
)
_ASK_LESS: Final = {
    "cores": "fewer cores",
    "memory": "less memory",
    "GiB of memory": "less memory",
    "storage": "less storage",
    "GiB of storage": "less storage",
    "gpus": "fewer GPUs or another GPU model",
    "GPUs": "fewer GPUs or another GPU model",
}
_WINDOW_ADVICE: Final = {
    "no-capacity": "a later or wider start window",
    "start-too-early": "a later start window",
    "start-in-the-past": "a start window in the future",
    "start-beyond-horizon": "an earlier start window",
}


def no_offer_advice(refusals: Iterable[Message]) -> str:
    """What to ask differently, naming the resources that were short (GPUs, not cores).

    Read from the reasons' codes and values (`short` of a no-capacity reason, `resource` of a
    limit); the generic advice when no reason says.
    """
    less: list[str] = []
    other: list[str] = []
    for item in refusals:
        code = item.kind.rpartition(":")[2]
        names = item.values.get("short", "").split(",") if code == "no-capacity" else []
        if code in {"over-capacity", "over-limit"}:
            names = [item.values.get("resource", "")]
            if "duration" in item.values:
                other.append("a shorter run")
        if code in {"gpu-none", "gpu-mismatch"}:
            names = ["gpus"]
        less += [_ASK_LESS[name] for name in names if name in _ASK_LESS]
        if code in _WINDOW_ADVICE:
            other.append(_WINDOW_ADVICE[code])
    phrases = list(dict.fromkeys([*less, *other]))
    if not phrases:
        return GENERIC_ADVICE
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + ", or " + phrases[-1]


@dataclass(frozen=True)
class OfferSetView:
    """An offer set, ready to show."""

    uuid: str
    result: str
    created: datetime | None
    offers: list[SessionView]
    refusals: list[Refusal]
    notes: list[Message]
    """Messages that are not refusals (warnings, assumptions the broker made)."""
    advice: str = GENERIC_ADVICE
    """What to change in the request when nothing is offered, from the refusals' reasons."""

    @property
    def open_offers(self) -> list[SessionView]:
        """Offers that can still be accepted."""
        return [offer for offer in self.offers if offer.can_accept]


def message(item: Mapping[str, Any]) -> Message:
    """One wire message: its rendered text (or its template with the values filled in)."""
    values = _map(item.get("values"))
    text = item.get("message")
    if not isinstance(text, str) or not text:
        template = str(item.get("template") or "")
        try:
            text = template.format_map({k: values[k] for k in values})
        except (KeyError, ValueError, IndexError):
            text = template
    platform = values.get("platform")
    return Message(
        text=text,
        level=str(item.get("level") or "INFO").upper(),
        time=parse_instant(item.get("time")),
        kind=str(item.get("kind") or item.get("type") or ""),
        platform=str(platform) if platform is not None else None,
        values={str(key): str(value) for key, value in values.items()},
    )


def _schedule(block: object) -> Schedule | None:
    schedule = _map(block)
    if not schedule:
        return None
    preparing = _map(schedule.get("preparing"))
    available = _map(schedule.get("available"))
    releasing = _map(schedule.get("releasing"))
    return Schedule(
        preparing=parse_instant(preparing.get("start")),
        start=parse_instant(available.get("start")),
        start_range=interval_length(available.get("start")),
        duration=parse_duration(available.get("duration")),
        releasing=parse_instant(releasing.get("start")),
        releasing_for=parse_duration(releasing.get("duration")),
    )


def _minimum(block: object) -> float | None:
    data = _map(block)
    return _number(data.get("min")) if data else None


def _cost(costs: Sequence[Any]) -> str:
    parts = []
    for cost in costs:
        data = _map(cost)
        amount = _number(data.get("min"))
        if amount is None:
            continue
        unit = str(data.get("description") or "").split(" for ")[0].strip()
        parts.append(f"{number_text(amount, digits=4)} {unit}".strip())
    return ", ".join(parts)


def _executable(block: Mapping[str, Any]) -> str:
    meta = _map(block.get("meta"))
    image = _map(block.get("image"))
    locations = _list(image.get("locations"))
    if locations:
        return str(locations[0])
    location = block.get("location")
    if isinstance(location, str):
        return location
    return str(meta.get("name") or "")


def _components(document: Mapping[str, Any]) -> tuple[Component, ...]:
    parts: list[Component] = []
    for role in ("executable", "compute"):
        block = _map(document.get(role))
        if block:
            meta = _map(block.get("meta"))
            parts.append(
                Component(role, str(meta.get("name") or role), str(block.get("phase", "")))
            )
    for role in ("data", "storage"):
        for item in _list(document.get(role)):
            block = _map(item)
            meta = _map(block.get("meta"))
            description = meta.get("description") or meta.get("name") or role
            parts.append(Component(role, str(description), str(block.get("phase", ""))))
    return tuple(parts)


def session_view(document: Mapping[str, Any]) -> SessionView:
    """A session (or offer) document from the broker, ready to show."""
    meta = _map(document.get("meta"))
    messages = tuple(message(_map(m)) for m in _list(meta.get("messages")))
    placed = next((m for m in messages if m.kind == PLATFORM_MESSAGE), None)
    options: list[str] = []
    for option in _list(meta.get("options")):
        data = _map(option)
        if str(data.get("path", "")).lstrip("/") == "phase":
            options.extend(str(v) for v in _list(data.get("values")))
    compute = _map(document.get("compute"))
    accelerators = _map(compute.get("accelerators"))
    gpu_count = _minimum(accelerators.get("count"))
    connectors = tuple(
        Connector(
            protocol=str(_map(c).get("protocol") or ""),
            location=str(_map(c).get("location") or ""),
            status=str(_map(c).get("status") or ""),
        )
        for c in _list(document.get("connectors"))
    )
    return SessionView(
        uuid=str(meta.get("uuid") or ""),
        name=str(meta.get("name") or ""),
        phase=str(document.get("phase") or "UNKNOWN"),
        platform=placed.platform if placed else None,
        strategy=placed.values.get("strategy") if placed else None,
        created=parse_instant(meta.get("created")),
        modified=parse_instant(meta.get("modified")),
        expires=parse_instant(document.get("expires")),
        schedule=_schedule(document.get("schedule") or compute.get("schedule")),
        cores=_minimum(compute.get("cores")),
        memory=_minimum(compute.get("memory")),
        gpus=int(gpu_count or 0),
        gpu_models=tuple(str(m) for m in _list(accelerators.get("models"))),
        cost=_cost(_list(document.get("costs"))),
        options=tuple(options),
        messages=tuple(sorted(messages, key=_message_order)),
        connectors=connectors,
        components=_components(document),
        executable=_executable(_map(document.get("executable"))),
    )


def _message_order(item: Message) -> tuple[bool, datetime]:
    return (item.time is None, item.time or datetime.min.replace(tzinfo=UTC))


def offer_set_view(document: Mapping[str, Any]) -> OfferSetView:
    """An offer set document from the broker, ready to show."""
    meta = _map(document.get("meta"))
    refusals: dict[str | None, Refusal] = {}
    notes: list[Message] = []
    errors: list[Message] = []
    for item in _list(meta.get("messages")):
        note = message(_map(item))
        if note.level in {"ERROR", "FATAL"}:
            errors.append(note)
            # Shown under the platform's name: "alpha: needs 2 GPUs" reads "needs 2 GPUs".
            reason = note.text.removeprefix(f"{note.platform}: ") if note.platform else note.text
            refusals.setdefault(note.platform, Refusal(note.platform)).reasons.append(reason)
        else:
            notes.append(note)
    return OfferSetView(
        uuid=str(meta.get("uuid") or ""),
        result=str(document.get("result") or "NO"),
        created=parse_instant(meta.get("created")),
        offers=[session_view(_map(offer)) for offer in _list(document.get("offers"))],
        # The broker-wide reasons (no platform) first, then platforms by name.
        refusals=sorted(
            refusals.values(), key=lambda r: (r.platform is not None, r.platform or "")
        ),
        notes=notes,
        advice=no_offer_advice(errors),
    )
