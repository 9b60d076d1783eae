"""The catalogue's ports: the search index it feeds and the broker it hands requests to.

Adapters live in their own modules (`search_tantivy.py`, `search_opensearch.py`, the broker
gateway in `voexec/wire_catalogue.py`). The catalogue never imports the broker: it speaks to it
through `BrokerGateway`, with ExecutionRequest documents as plain mappings (the wire format).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime
from typing import Any, Literal, Protocol

import msgspec

from core.errors import Problem

FACETS: tuple[str, ...] = ("subject", "kind", "function", "gpu", "licence", "platform", "messenger")
"""Facet names in display order; vocabulary facets (subject, function) hold terms + ancestors."""

SortOrder = Literal["relevance", "name", "newest"]


class IndexDocument(msgspec.Struct, frozen=True, kw_only=True):
    """What the search index stores for one catalogue entry (its latest version)."""

    id: str
    """The entry's stable id."""
    name: str
    """Short name; an exact match on it ranks first."""
    title: str
    summary: str = ""
    description: str = ""
    keywords: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    kind: str
    """Executable kind, short term of the `executable-kind` vocabulary (`docker-container`)."""
    subjects: tuple[str, ...] = ()
    """UAT terms of the entry WITH all their ancestors, so a broad subject finds narrower ones."""
    functions: tuple[str, ...] = ()
    """`software-function` terms WITH ancestors."""
    messengers: tuple[str, ...] = ()
    licence: str = ""
    """SPDX identifier."""
    gpu: Literal["required", "optional", "none"] = "none"
    platforms: tuple[str, ...] = ()
    """Names of the registered platforms that can run it (kind and declared needs)."""
    version: str = ""
    """Latest version label."""
    updated: datetime
    """When the latest version was published or harvested (aware UTC)."""

    def facet_values(self, facet: str) -> tuple[str, ...]:
        """The values this document has for one facet name of `FACETS`."""
        single = {"kind": self.kind, "licence": self.licence, "gpu": self.gpu}
        if facet in single:
            return (single[facet],) if single[facet] else ()
        many = {
            "subject": self.subjects,
            "function": self.functions,
            "messenger": self.messengers,
            "platform": self.platforms,
        }
        return many[facet]


class SearchQuery(msgspec.Struct, frozen=True, kw_only=True):
    """A faceted search: text, selected facet values, sort and page."""

    text: str = ""
    filters: dict[str, tuple[str, ...]] = {}
    """Facet name -> selected values: OR within a facet, AND across facets."""
    sort: SortOrder = "relevance"
    cursor: str | None = None
    """Opaque token from the previous page's `next_cursor`."""
    limit: int = 20
    facets: tuple[str, ...] | None = None
    """The facets to count (None: all of `FACETS`); a page asks only for those it shows, since
    counting is most of a search's cost."""


class SearchHit(msgspec.Struct, frozen=True):
    """One matching entry."""

    id: str
    score: float


class SearchResult(msgspec.Struct, frozen=True, kw_only=True):
    """Hits of one page, the total, facet counts and the cursor of the next page."""

    total: int
    hits: list[SearchHit]
    facets: dict[str, dict[str, int]]
    """Facet -> value -> count, for the facets the query asked for, in `FACETS` order. Counts of
    a facet ignore that facet's own selection (multi-select), but apply every other facet's
    selection and the text."""
    next_cursor: str | None = None


class IndexChanges(msgspec.Struct, frozen=True, kw_only=True):
    """What changed in the store since an instant, as the index needs it."""

    documents: list[IndexDocument] = []
    """Documents of the entries stored (new or changed) since then and still searchable."""
    removed: list[str] = []
    """Ids of the entries withdrawn since then."""


ChangesSince = Callable[[datetime], IndexChanges]
"""Reads the store's changes since an instant (the service's, for a rebuild to catch up)."""


class SearchIndex(Protocol):
    """A derived, rebuildable search index over the catalogue (the SQL store is the truth)."""

    def upsert(self, documents: Iterable[IndexDocument]) -> None:
        """Add or replace documents by id; visible to the next search."""
        ...

    def delete(self, ids: Iterable[str]) -> None:
        """Remove documents by id (unknown ids are ignored)."""
        ...

    def search(self, query: SearchQuery) -> SearchResult:
        """Run a faceted query. Raises `core.errors.Invalid` for a bad cursor or facet."""
        ...

    def rebuild(
        self,
        documents: Iterable[IndexDocument],
        *,
        started: datetime | None = None,
        changes: ChangesSince | None = None,
    ) -> int:
        """Replace the whole index with `documents`, with no downtime; returns how many it holds.

        `started` is when reading `documents` from the store began: entries stored after it may
        be missing from them. With `changes`, the adapter applies `changes(started)` where no
        write can slip between (tantivy: into the new index before it serves; OpenSearch: through
        the alias right after it moved), and processes serving the same index learn of the
        rebuild through `follow`.
        """
        ...

    def follow(self) -> datetime | None:
        """Serve the index another process has rebuilt since this one last looked, if any.

        Cheap enough to call before every search and write. Returns the rebuild's `started`
        when this process has just switched (the caller applies the store's changes since then
        again), or None when nothing changed (and always for a backend that needs no switch).
        """
        ...

    def count(self) -> int:
        """How many documents the index holds."""
        ...

    def generation(self) -> Hashable:
        """A value that changes whenever searches may answer differently (a write, a switch).

        Callers key cached answers by it: equal values mean the same query gets the same answer.
        Cheap enough to call before every search.
        """
        ...


class Needs(msgspec.Struct, frozen=True, kw_only=True):
    """What an executable declares it needs to run."""

    cores: int = 1
    memory: float = 1.0
    """GiB."""
    gpus: int = 0
    gpu_memory: float | None = None
    """GiB per GPU, when it matters."""
    duration: str | None = None
    """Typical duration, ISO-8601 (`PT2H`)."""


class OfferAnswer(msgspec.Struct, frozen=True):
    """The broker's answer to a hand-off: where the offer set lives, and the offer set."""

    location: str
    offer_set: dict[str, Any]


class BrokerGateway(Protocol):
    """The broker as the catalogue sees it (in-process or remote)."""

    def runnable_on(self, kind: str, needs: Needs) -> list[str]:
        """Names of the platforms that can run this kind with these needs (ignoring time)."""
        ...

    def validate_executable(self, block: Mapping[str, Any]) -> list[Problem]:
        """Problems with an Execution Broker `executable` block (empty when it is valid)."""
        ...

    def normalise_executable(self, block: Mapping[str, Any]) -> dict[str, Any]:
        """The block in the broker's newest form (older forms rewritten; as given if unreadable)."""
        ...

    def request_offers(
        self, request: Mapping[str, Any], base_url: str, *, requester: str | None = None
    ) -> OfferAnswer:
        """Send an ExecutionRequest document; return the offer set and its URL.

        `requester` is who asks (an identity's key), recorded by the broker as the owner.
        """
        ...
