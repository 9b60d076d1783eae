"""The search page's whole state, read from its URL and written back into links.

The URL is the state: `/?q=clean&subject=radio-astronomy&subject=photometry&kind=docker-container
&sort=name&cursor=...&page=2`. Every link on the page (a facet value, a chip's remove button,
the sort order, the next page) is this state with one change, so a search can be shared,
bookmarked and walked back with the browser's back button, with or without JavaScript.

Facet parameters repeat for several values (OR within a facet, AND across facets), exactly as
`GET /catalogue/search` takes them. `page` is for people only ("results 21-40"): the position
comes from the opaque `cursor`. Wrong values never break the page: an unknown sort order falls
back to relevance and is reported in `problems` (field and reason), like the API does.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, get_args
from urllib.parse import unquote, urlencode

from catalogue.model import Facet, FacetBucket, SearchRequest
from catalogue.ports import FACETS, SortOrder
from core.errors import Problem

FACET_TITLES: Final = {
    "subject": "Subject",
    "kind": "Executable kind",
    "function": "Function",
    "gpu": "GPU",
    "licence": "Licence",
    "platform": "Runs on",
    "messenger": "Messenger",
}
SHOWN_FACETS: Final = tuple(FACET_TITLES)
"""The facets the page shows, so the only ones it asks the search to count."""
FIELD_TITLES: Final = {**FACET_TITLES, "q": "Text", "sort": "Sort", "cursor": "Page"}
"""Names of the URL's parameters in problems shown to people."""
SORT_TITLES: Final[dict[SortOrder, str]] = {
    "relevance": "Best match",
    "name": "Name (A to Z)",
    "newest": "Recently updated",
}
SORT_ORDERS: Final[tuple[SortOrder, ...]] = get_args(SortOrder)
MAX_VALUES: Final = 20
"""Most values kept per facet (the API refuses more)."""
MAX_PAGE: Final = 10_000


def _first(params: Mapping[str, Sequence[str]], name: str) -> str:
    values = params.get(name) or ()
    return values[0].strip() if values else ""


@dataclass(frozen=True)
class SearchState:
    """What is searched, filtered, sorted and which page is shown."""

    text: str = ""
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Facet name -> selected values, in the order they were chosen; no empty tuples."""
    sort: SortOrder = "relevance"
    cursor: str | None = None
    page: int = 1
    problems: tuple[Problem, ...] = ()
    """What was wrong in the URL and how it was read instead."""

    @classmethod
    def from_params(cls, params: Mapping[str, Sequence[str]]) -> SearchState:
        """Read the state from query parameters (each name -> its values, in order)."""
        problems: list[Problem] = []
        filters: dict[str, tuple[str, ...]] = {}
        for facet in FACETS:
            values = tuple(dict.fromkeys(v.strip() for v in params.get(facet, ()) if v.strip()))
            if len(values) > MAX_VALUES:
                problems.append(
                    Problem(facet, f"at most {MAX_VALUES} values; the rest are left out")
                )
                values = values[:MAX_VALUES]
            if values:
                filters[facet] = values
        sort_text = _first(params, "sort") or "relevance"
        sort: SortOrder = "relevance"
        for order in SORT_ORDERS:
            if order == sort_text:
                sort = order
        if sort_text != sort:
            problems.append(
                Problem("sort", f"{sort_text!r} is not a sort order; showing the best matches")
            )
        cursor = _first(params, "cursor") or None
        page_text = _first(params, "page")
        page = int(page_text) if page_text.isdigit() and 1 <= int(page_text) <= MAX_PAGE else 1
        return cls(
            text=_first(params, "q"),
            filters=filters,
            sort=sort,
            cursor=cursor,
            page=page if cursor else 1,
            problems=tuple(problems),
        )

    # ------------------------------------------------------------------ reading
    @property
    def active(self) -> bool:
        """True when anything narrows the search (text or a facet value)."""
        return bool(self.text or self.filters)

    def selected(self, facet: str, value: str) -> bool:
        """True when `value` of `facet` is chosen."""
        return value in self.filters.get(facet, ())

    def request(self, limit: int | None = None) -> SearchRequest:
        """The catalogue search this state asks for."""
        return SearchRequest(
            text=self.text,
            filters=dict(self.filters),
            sort=self.sort,
            cursor=self.cursor,
            limit=limit,
            facets=SHOWN_FACETS,
        )

    def params(self) -> list[tuple[str, str]]:
        """The query parameters, in a stable order (text, facets, sort, page)."""
        pairs: list[tuple[str, str]] = [("q", self.text)] if self.text else []
        for facet in FACETS:
            pairs.extend((facet, value) for value in self.filters.get(facet, ()))
        if self.sort != "relevance":
            pairs.append(("sort", self.sort))
        if self.cursor:
            pairs.extend([("cursor", self.cursor), ("page", str(self.page))])
        return pairs

    @property
    def href(self) -> str:
        """The URL of this state on the search page."""
        query = urlencode(self.params())
        return f"/?{query}" if query else "/"

    # ------------------------------------------------------------------ changing
    def _refined(self, **changes: object) -> SearchState:
        """A new search from the first page (any change but paging restarts the results)."""
        return replace(self, cursor=None, page=1, problems=(), **changes)  # type: ignore[arg-type]

    def with_value(self, facet: str, value: str, *, chosen: bool) -> SearchState:
        """This state with `value` of `facet` chosen or not."""
        values = tuple(v for v in self.filters.get(facet, ()) if v != value)
        if chosen:
            values = (*values, value)
        filters = {name: vals for name, vals in self.filters.items() if name != facet}
        if values:
            filters[facet] = values
        ordered = {name: filters[name] for name in FACETS if name in filters}
        return self._refined(filters=ordered)

    def toggled(self, facet: str, value: str) -> SearchState:
        """This state with `value` of `facet` switched."""
        return self.with_value(facet, value, chosen=not self.selected(facet, value))

    def without_text(self) -> SearchState:
        """This state without its text."""
        return self._refined(text="")

    def without_filters(self) -> SearchState:
        """This state with its text only."""
        return self._refined(filters={})

    def sorted_by(self, sort: SortOrder) -> SearchState:
        """This state in another order."""
        return self._refined(sort=sort)

    def next_page(self, cursor: str) -> SearchState:
        """The page after this one."""
        return replace(self, cursor=cursor, page=self.page + 1, problems=())

    def first_page(self) -> SearchState:
        """The first page of the same search."""
        return self._refined()

    def without_refused(self, problems: Sequence[Problem]) -> SearchState | None:
        """This state without the facets and the cursor that `problems` name.

        None when a problem is about something else (the text, say), which cannot be left out.
        """
        if not problems or any(p.field not in FACETS and p.field != "cursor" for p in problems):
            return None
        refused = {p.field for p in problems}
        filters = {f: v for f, v in self.filters.items() if f not in refused}
        kept = replace(self, filters=filters, problems=())
        return kept.first_page() if "cursor" in refused else kept

    def first_result(self, page_size: int) -> int:
        """The 1-based position of this page's first result."""
        return (self.page - 1) * page_size + 1


# ---------------------------------------------------------------------- what the page shows
@dataclass(frozen=True)
class Chip:
    """An active filter shown above the results, with the link that removes it."""

    facet: str
    facet_title: str
    label: str
    href: str


def walk(buckets: Sequence[FacetBucket]) -> Iterator[FacetBucket]:
    """Every bucket of a facet tree, depth first."""
    for bucket in buckets:
        yield bucket
        yield from walk(bucket.children)


MAX_OPENED: Final = 100


def open_branches(facets: Sequence[Facet]) -> set[str]:
    """`facet:value` of every tree branch holding a chosen value: shown open."""
    found: set[str] = set()

    def visit(name: str, bucket: FacetBucket) -> bool:
        below = [visit(name, child) for child in bucket.children]  # visit every child
        if any(below):
            found.add(f"{name}:{bucket.value}")
        return bucket.selected or any(below)

    for facet in facets:
        for bucket in facet.buckets:
            visit(facet.name, bucket)
    return found


def opened(header: str) -> set[str]:
    """The branches a reader opened: a comma-separated list of `facet:value`, values URL-encoded.

    Unknown facets are ignored and the list is bounded: it only decides what is shown open.
    """
    found: set[str] = set()
    for key in header.split(",")[:MAX_OPENED]:
        facet, _, value = key.strip().partition(":")
        if facet in FACETS and value:
            found.add(f"{facet}:{unquote(value)}")
    return found


def canonical(state: SearchState, facets: Sequence[Facet]) -> SearchState:
    """The state with each facet's values as the terms the search resolved them to.

    A URL may name a subject by its label or URI (`subject=Radio%20astronomy`); the search
    answers with the term selected (`radio-astronomy`). Writing the terms back keeps checkboxes,
    chips and links consistent.
    """
    filters = dict(state.filters)
    for facet in facets:
        chosen = tuple(b.value for b in walk(facet.buckets) if b.selected)
        if facet.name in filters and chosen and set(chosen) != set(filters[facet.name]):
            filters[facet.name] = chosen
    return replace(state, filters=filters)


def chips(state: SearchState, facets: Sequence[Facet]) -> list[Chip]:
    """The active text and filters, each with the link that removes it."""
    labels = {(f.name, b.value): b.label for f in facets for b in walk(f.buckets)}
    shown: list[Chip] = []
    if state.text:
        shown.append(Chip("q", "Text", f"“{state.text}”", state.without_text().href))
    for facet, values in state.filters.items():
        for value in values:
            shown.append(
                Chip(
                    facet=facet,
                    facet_title=FACET_TITLES.get(facet, facet),
                    label=labels.get((facet, value), value),
                    href=state.with_value(facet, value, chosen=False).href,
                )
            )
    return shown
