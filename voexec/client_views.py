"""What the Python client answers: typed results, the errors it raises, and their HTML.

The data half of `voexec.client` (which holds the HTTP half): search hits with facet counts,
catalogue entries, offers and sessions, server messages, and the exception tree

    ClientError                      anything the client raises
    ├── InvalidInput (ValueError)    a value given to the client is wrong (names the field)
    ├── AmbiguousName                an entry name that several entries share ("did you mean")
    ├── ConnectionFailed             the server could not be reached
    ├── UnreadableAnswer             the server answered something the client cannot read
    ├── WatchTimeout (TimeoutError)  a watched session did not end in time
    └── ServerError                  the server refused: status, title and its messages
        ├── BadRequest (400, 413, 415, 422)
        ├── Unauthorized (401)
        ├── Forbidden (403)
        ├── NotFound (404)
        ├── Conflict (409)
        └── Unavailable (503)

Every result has `_repr_html_`, so a notebook shows it as a table; every value shown is
HTML-escaped (names and messages come from publishers and remote servers).

Reads the broker's documents leniently (unknown fields are ignored, so a broker with a newer
schema still reads); imports msgspec and `broker.model` (pure data) only: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any, Final, Generic, TypeVar

import msgspec

from broker.model import TERMINAL_PHASES, SessionPhase

OFFER_PLATFORM: Final = "urn:voexec:offer-platform"
"""The message that names an offer's platform and the strategy that chose it."""


# ------------------------------------------------------------------------- messages
class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One message from the server: a broker `MessageItem` or one problem of a problem details."""

    text: str
    """The message as the server rendered it."""
    field: str | None = None
    """The input field it is about (a JSON path on the broker), when it is about one."""
    kind: str | None = None
    level: str | None = None
    values: dict[str, str] = {}
    suggestions: tuple[str, ...] = ()

    def __str__(self) -> str:
        hint = f" (did you mean: {', '.join(self.suggestions)}?)" if self.suggestions else ""
        return self.text + hint


# ------------------------------------------------------------------------- errors
class ClientError(Exception):
    """Anything the client raises; `messages` holds what the server (or the client) said."""

    def __init__(self, summary: str, messages: Sequence[Message] = ()) -> None:
        self.summary = summary
        self.messages = list(messages)
        super().__init__(self._text())

    def _text(self) -> str:
        details = [str(m) for m in self.messages if str(m) not in self.summary]
        return f"{self.summary}: {'; '.join(details)}" if details else self.summary


class InvalidInput(ClientError, ValueError):
    """A value given to the client is wrong; each message names the field."""


class AmbiguousName(ClientError):
    """Several catalogue entries have this name; `candidates` holds their ids."""

    def __init__(self, name: str, candidates: Sequence[str]) -> None:
        self.name = name
        self.candidates = list(candidates)
        super().__init__(
            f"{len(self.candidates)} catalogue entries are named {name!r}; "
            f"did you mean: {', '.join(self.candidates)}?"
        )


class ConnectionFailed(ClientError):
    """The server could not be reached (refused, timed out, name not found)."""


class UnreadableAnswer(ClientError):
    """The server answered something this client cannot read."""


class WatchTimeout(ClientError, TimeoutError):
    """A watched session had not reached a terminal phase when the time ran out."""


class ServerError(ClientError):
    """The server refused the request; `status`, `title` and its `messages` say why."""

    def __init__(
        self, status: int, title: str, messages: Sequence[Message] = (), *, url: str = ""
    ) -> None:
        self.status = status
        self.title = title
        self.url = url
        super().__init__(f"HTTP {status} {title}", messages)


class BadRequest(ServerError):
    """400 (and 413, 415, 422): the request is wrong; the messages name the fields."""


class Unauthorized(ServerError):
    """401: a bearer token is needed (give `token=` to the client)."""


class Forbidden(ServerError):
    """403: the token given may not do this."""


class NotFound(ServerError):
    """404: no such entry, offer set or session."""


class Conflict(ServerError):
    """409: the state does not allow it (an offer already accepted, a withdrawn entry)."""


class Unavailable(ServerError):
    """503: the server cannot serve this now."""


ERROR_OF_STATUS: Final[Mapping[int, type[ServerError]]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    415: BadRequest,
    422: BadRequest,
    503: Unavailable,
}


# ------------------------------------------------------------------------- HTML
def _cell(value: object) -> str:
    if value is None or value == "":
        return "<td>—</td>"
    if isinstance(value, datetime):
        value = value.isoformat(timespec="seconds").replace("+00:00", "Z")
    return f"<td>{escape(str(value))}</td>"


def html_table(headings: Sequence[str], rows: Sequence[Sequence[object]], caption: str) -> str:
    """A small HTML table with every value escaped."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return (
        f"<table><caption style='text-align:left'>{escape(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


# ------------------------------------------------------------------------- catalogue
class Concept(msgspec.Struct, frozen=True):
    """A vocabulary term with its label."""

    term: str
    label: str


class SearchHit(msgspec.Struct, frozen=True, kw_only=True):
    """One catalogue entry found by a search."""

    id: str
    name: str
    title: str
    summary: str
    version: str
    kind: str
    licence: str
    gpu: str
    subjects: list[Concept] = []
    functions: list[Concept] = []
    authors: list[str] = []
    score: float = 0.0


class FacetValue(msgspec.Struct, frozen=True, kw_only=True):
    """One value of a facet, how many hits choosing it would give, and narrower values."""

    value: str
    label: str
    count: int
    selected: bool = False
    children: list[FacetValue] = []


class _Facet(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    buckets: list[FacetValue] = []


class _SearchPage(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    hits: list[SearchHit] = []
    facets: list[_Facet] = []
    next_cursor: str | None = None


class SearchResults:
    """One page of search hits, with the facet counts (`facets["kind"]`) and the next cursor."""

    def __init__(self, page: _SearchPage) -> None:
        self.total = page.total
        self.hits = list(page.hits)
        self.facets: dict[str, list[FacetValue]] = {f.name: list(f.buckets) for f in page.facets}
        self.next_cursor = page.next_cursor

    def __iter__(self) -> Iterator[SearchHit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, index: int) -> SearchHit:
        return self.hits[index]

    def __repr__(self) -> str:
        return f"<SearchResults total={self.total} hits={[h.name for h in self.hits]}>"

    def _repr_html_(self) -> str:
        rows = [(h.name, h.title, h.kind, h.gpu, h.licence, h.version) for h in self.hits]
        table = html_table(
            ("name", "title", "kind", "GPU", "licence", "version"),
            rows,
            f"{self.total} entries",
        )
        facets = "".join(
            f"<li><b>{escape(name)}</b>: "
            + ", ".join(f"{escape(v.label)} ({v.count})" for v in values)
            + "</li>"
            for name, values in self.facets.items()
            if values
        )
        return table + (f"<ul>{facets}</ul>" if facets else "")


class _EntryDocument(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    version: str
    current_version: str
    withdrawn: bool = False
    kind: str
    gpu: str
    platforms: list[str] = []
    subjects: list[Concept] = []
    functions: list[Concept] = []
    spec: dict[str, Any]


class Entry:
    """A catalogue entry, in the version asked for (its current one by default)."""

    def __init__(self, document: _EntryDocument) -> None:
        self.id = document.id
        self.name = document.name
        self.version = document.version
        self.current_version = document.current_version
        self.withdrawn = document.withdrawn
        self.kind = document.kind
        self.gpu = document.gpu
        self.platforms = list(document.platforms)
        """Platforms of this server that can run it (kind and declared needs, time aside)."""
        self.subjects = list(document.subjects)
        self.functions = list(document.functions)
        self.spec: dict[str, Any] = document.spec
        """The publisher's document, normalised (`title`, `needs`, `executable`...)."""

    @property
    def title(self) -> str:
        """The entry's one-line title."""
        return str(self.spec.get("title", self.name))

    @property
    def summary(self) -> str:
        """One sentence about it."""
        return str(self.spec.get("summary", ""))

    @property
    def needs(self) -> dict[str, Any]:
        """What it declares it needs: cores, memory (GiB), GPUs, typical duration."""
        needs = self.spec.get("needs", {})
        return dict(needs) if isinstance(needs, Mapping) else {}

    def __repr__(self) -> str:
        return f"<Entry {self.id} {self.version} ({self.kind})>"

    def _repr_html_(self) -> str:
        needs = ", ".join(f"{k}: {v}" for k, v in self.needs.items() if v is not None)
        rows = [
            ("id", self.id),
            ("version", self.version),
            ("kind", self.kind),
            ("summary", self.summary),
            ("needs", needs),
            ("subjects", ", ".join(c.label for c in self.subjects)),
            ("runs on", ", ".join(self.platforms)),
        ]
        if self.withdrawn:
            rows.append(("withdrawn", "yes"))
        return html_table(("", ""), rows, f"{self.name}: {self.title}")


# ------------------------------------------------------------------------- broker
class _WireMessage(msgspec.Struct, frozen=True, kw_only=True):
    kind: str | None = None
    level: str | None = None
    template: str | None = None
    values: dict[str, str] = {}
    message: str | None = None


def broker_message(item: _WireMessage) -> Message:
    """A broker `MessageItem` as a client `Message` (its `path` value is the field)."""
    text = item.message or item.template or item.kind or "(no message)"
    return Message(
        text=text,
        field=item.values.get("path"),
        kind=item.kind,
        level=item.level,
        values=dict(item.values),
    )


class _Meta(msgspec.Struct, frozen=True, kw_only=True):
    uuid: str | None = None
    name: str | None = None
    url: str | None = None
    messages: list[_WireMessage] = []


class _MinMax(msgspec.Struct, frozen=True, kw_only=True):
    min: float | None = None
    max: float | None = None


class _Accelerators(msgspec.Struct, frozen=True, kw_only=True):
    count: _MinMax | None = None
    models: list[str] = []


class _Compute(msgspec.Struct, frozen=True, kw_only=True):
    cores: _MinMax | None = None
    memory: _MinMax | None = None
    accelerators: _Accelerators | None = None


class _Cost(msgspec.Struct, frozen=True, kw_only=True):
    type: str | None = None
    description: str | None = None
    min: float | None = None
    max: float | None = None


class _Step(msgspec.Struct, frozen=True, kw_only=True):
    start: str | None = None
    duration: str | None = None


class _Schedule(msgspec.Struct, frozen=True, kw_only=True):
    preparing: _Step | None = None
    available: _Step | None = None
    releasing: _Step | None = None


class Connector(msgspec.Struct, frozen=True, kw_only=True):
    """A way in to a running session: a notebook URL, a port."""

    kind: str | None = None
    status: str | None = None
    protocol: str | None = None
    location: str | None = None


class _SessionDocument(msgspec.Struct, frozen=True, kw_only=True):
    meta: _Meta = _Meta()
    phase: SessionPhase
    expires: datetime | None = None
    compute: _Compute | None = None
    costs: list[_Cost] = []
    schedule: _Schedule | None = None
    connectors: list[Connector] = []


class _OfferSetDocument(msgspec.Struct, frozen=True, kw_only=True):
    meta: _Meta = _Meta()
    result: str
    offers: list[dict[str, Any]] = []


class Cost(msgspec.Struct, frozen=True, kw_only=True):
    """What an offer costs: a range (`low` = `high` when exact) in `unit`."""

    low: float | None
    high: float | None
    unit: str

    def __str__(self) -> str:
        low, high = (f"{v:g}" if v is not None else "?" for v in (self.low, self.high))
        return f"{low if low == high else f'{low} to {high}'} {self.unit}".strip()


class Resources(msgspec.Struct, frozen=True, kw_only=True):
    """The resources of an offer or session: cores, memory in GiB, GPUs and their model."""

    cores: int | None = None
    memory: float | None = None
    gpus: int = 0
    gpu_model: str | None = None

    def __str__(self) -> str:
        parts = [
            f"{self.cores} core{'s' if self.cores > 1 else ''}" if self.cores else "",
            f"{self.memory:g} GiB" if self.memory else "",
        ]
        if self.gpus:
            parts.append(f"{self.gpus} x {self.gpu_model or 'GPU'}")
        return ", ".join(p for p in parts if p)


def _instant(text: str | None) -> datetime | None:
    """The start of an ISO interval (`2026-09-01T10:00:00Z/PT0S`) or an instant."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.split("/", 1)[0])
    except ValueError:
        return None


def _number(value: _MinMax | None) -> float | None:
    if value is None:
        return None
    return value.min if value.min is not None else value.max


class SessionData:
    """What an offer or a session says; `Session` and `AsyncSession` add what can be done."""

    _data: _SessionDocument
    document: dict[str, Any]
    """The session as the broker sent it (every field, for what this class does not show)."""

    def _load(self, document: dict[str, Any]) -> None:
        try:
            self._data = msgspec.convert(document, _SessionDocument)
        except msgspec.ValidationError as error:
            raise UnreadableAnswer(f"the broker's session is not readable: {error}") from None
        self.document = document

    @property
    def uuid(self) -> str:
        """The session's identifier."""
        return self._data.meta.uuid or ""

    @property
    def url(self) -> str | None:
        """The session's URL, as the broker gives it."""
        return self._data.meta.url

    @property
    def name(self) -> str | None:
        """The session's name (`<entry>-<version>-offer-1`)."""
        return self._data.meta.name

    @property
    def phase(self) -> SessionPhase:
        """OFFERED, ACCEPTED, ..., RUNNING, COMPLETED: where the session is now."""
        return self._data.phase

    @property
    def finished(self) -> bool:
        """True in a phase nothing happens after (COMPLETED, FAILED, CANCELLED, ...)."""
        return self.phase in TERMINAL_PHASES

    @property
    def expires(self) -> datetime | None:
        """When an offer stops holding its capacity (meaningful while OFFERED)."""
        return self._data.expires

    @property
    def messages(self) -> list[Message]:
        """Everything the broker said about the session, its phase changes included."""
        return [broker_message(m) for m in self._data.meta.messages]

    def _platform_values(self) -> dict[str, str]:
        for item in self._data.meta.messages:
            if item.kind == OFFER_PLATFORM:
                return item.values
        return {}

    @property
    def platform(self) -> str | None:
        """The platform the offer is on (from the broker's `urn:voexec:offer-platform`)."""
        return self._platform_values().get("platform")

    @property
    def strategy(self) -> str | None:
        """The ranking that chose this offer: earliest, largest, longest or cheapest."""
        return self._platform_values().get("strategy")

    @property
    def start(self) -> datetime | None:
        """When the session's resources become available."""
        schedule = self._data.schedule
        return _instant(schedule.available.start if schedule and schedule.available else None)

    @property
    def duration(self) -> str | None:
        """How long the resources are available (ISO-8601, `PT1H`)."""
        schedule = self._data.schedule
        return schedule.available.duration if schedule and schedule.available else None

    @property
    def cost(self) -> Cost | None:
        """The offer's cost, when the platform has a cost model."""
        for cost in self._data.costs:
            return Cost(low=cost.min, high=cost.max, unit=cost.description or cost.type or "")
        return None

    @property
    def resources(self) -> Resources:
        """The cores, memory and GPUs offered."""
        compute = self._data.compute
        if compute is None:
            return Resources()
        cores = _number(compute.cores)
        gpus = _number(compute.accelerators.count) if compute.accelerators else None
        models = compute.accelerators.models if compute.accelerators else []
        return Resources(
            cores=int(cores) if cores is not None else None,
            memory=_number(compute.memory),
            gpus=int(gpus or 0),
            gpu_model=models[0] if models else None,
        )

    @property
    def connectors(self) -> list[Connector]:
        """Ways in to the running session (empty for batch work and simulated platforms)."""
        return list(self._data.connectors)

    def __repr__(self) -> str:
        where = f" on {self.platform}" if self.platform else ""
        return f"<{type(self).__name__} {self.uuid} {self.phase.value}{where}>"

    def _repr_html_(self) -> str:
        rows: list[tuple[str, object]] = [
            ("phase", self.phase.value),
            ("platform", self.platform),
            ("strategy", self.strategy),
            ("start", self.start),
            ("duration", self.duration),
            ("resources", str(self.resources)),
            ("cost", self.cost),
        ]
        if self.phase is SessionPhase.OFFERED:
            rows.append(("expires", self.expires))
        rows += [(f"connector {c.protocol or ''}", c.location) for c in self.connectors]
        return html_table(("", ""), rows, f"session {self.name or self.uuid}")


S = TypeVar("S", bound=SessionData)


class OfferSet(Generic[S]):
    """The broker's answer to a request: YES with offers, or NO with `messages` saying why."""

    def __init__(self, document: dict[str, Any], offers: Sequence[S]) -> None:
        data = read_offer_set(document)
        self.document = document
        self.uuid = data.meta.uuid or ""
        self.url = data.meta.url
        self.result = data.result
        self.offers = list(offers)
        self.messages = [broker_message(m) for m in data.meta.messages]

    def __iter__(self) -> Iterator[S]:
        return iter(self.offers)

    def __len__(self) -> int:
        return len(self.offers)

    def __getitem__(self, index: int) -> S:
        return self.offers[index]

    def __repr__(self) -> str:
        return f"<OfferSet {self.uuid} {self.result}, {len(self.offers)} offers>"

    def _repr_html_(self) -> str:
        rows = [
            (
                i,
                o.platform,
                o.strategy,
                o.start,
                o.duration,
                str(o.resources),
                o.cost,
                o.phase.value,
            )
            for i, o in enumerate(self.offers)
        ]
        headings = ("#", "platform", "strategy", "start", "duration", "resources", "cost", "phase")
        reasons = "".join(f"<li>{escape(str(m))}</li>" for m in self.messages)
        caption = f"{self.result}: {len(self.offers)} offers"
        return html_table(headings, rows, caption) + (f"<ul>{reasons}</ul>" if reasons else "")


def read_offer_set(document: dict[str, Any]) -> _OfferSetDocument:
    """The parts of an offer set the client reads.

    Raises:
        UnreadableAnswer: it is not an offer set.
    """
    try:
        return msgspec.convert(document, _OfferSetDocument)
    except msgspec.ValidationError as error:
        raise UnreadableAnswer(f"the broker's offer set is not readable: {error}") from None
