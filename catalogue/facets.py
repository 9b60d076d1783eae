"""Pure search logic shared by every `SearchIndex` adapter (tantivy, OpenSearch).

Owns the parts of a faceted search that do not depend on the engine, so that both backends
behave the same:

- **query checks**: unknown facets, page sizes, over-long text -> `core.errors.Invalid`;
- **multi-select count plans**: which filters apply to which facet's counts (a facet's counts
  apply every selected filter except its own, so a user can add a second value to it);
- **facet count assembly**: buckets -> `{value: count}` in display order, selected values kept;
- **sort keys and cursors**: the total order of each sort (ties broken by id), and opaque,
  URL-safe `search_after` tokens that carry the sort key of the last hit;
- **text matching rules**: how far a term may be misspelt, how many query terms must match,
  and name normalisation for the exact-name match and the name sort.

Building facet *trees* from counts belongs to `vocabularies.expand.rollup`, not here.
Must not import any search library, database or web framework: this module does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, get_args

import msgspec

from catalogue.ports import FACETS, SearchQuery, SortOrder
from core.errors import Invalid, Problem

SORT_ORDERS: Final[tuple[str, ...]] = get_args(SortOrder)
"""The sort orders every adapter supports."""

MAX_PAGE_SIZE: Final = 100
"""Largest `limit` accepted; deeper walks use cursors, never huge pages."""
MAX_TEXT_LENGTH: Final = 1000
"""Longest free text accepted (PyPI answers longer queries with 413; we say which field)."""
MAX_VALUES_PER_FACET: Final = 100
"""Most values one facet filter may select."""
MAX_CURSOR_LENGTH: Final = 4096
"""Longest cursor token accepted before decoding it."""
MAX_CURSOR_HINT: Final = 1_000_000
"""Largest position hint a cursor may carry: adapters size their reads by it."""
MAX_QUERY_TERMS: Final = 16
"""Terms of the free text that take part in matching; the rest are ignored (cost is per term)."""

CURSOR_VERSION: Final = 1
"""Bumped when the cursor layout changes, so old tokens are refused with a clear reason."""

_EPOCH: Final = datetime(1, 1, 1, tzinfo=UTC)
_NAME_SEPARATORS: Final = re.compile(r"[\s\-_.]+")
_CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x1f\x7f]")
_WHITESPACE: Final = re.compile(r"\s+")


# ----------------------------------------------------------------------- query checks
def active_filters(filters: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """The filters that select something: empty values and facets dropped, values deduplicated.

    Args:
        filters: Facet name -> selected values, as given by the caller.

    Returns:
        Facet name -> distinct non-empty values (first occurrence order), facets in `FACETS` order
        first and unknown names after them (so `check_query` can report them).
    """
    ordered = [name for name in FACETS if name in filters]
    ordered += [name for name in filters if name not in FACETS]
    active: dict[str, tuple[str, ...]] = {}
    for name in ordered:
        values = tuple(dict.fromkeys(value for value in filters[name] if value))
        if values:
            active[name] = values
    return active


def requested_facets(facets: Iterable[str] | None) -> tuple[str, ...]:
    """The facets to count, in `FACETS` order: all of them for None, known names only otherwise.

    Args:
        facets: `SearchQuery.facets` (checked by `check_query`).
    """
    if facets is None:
        return FACETS
    wanted = set(facets)
    return tuple(name for name in FACETS if name in wanted)


def facet_problems(facets: Iterable[str] | None, field: str = "facets") -> list[Problem]:
    """One problem naming `field` per unknown name in a list of facets to count."""
    return [
        Problem(
            field,
            f"unknown facet {name!r}; facets are: {', '.join(FACETS)}",
            tuple(difflib.get_close_matches(name, FACETS, n=3)),
        )
        for name in facets or ()
        if name not in FACETS
    ]


def check_query(query: SearchQuery) -> None:
    """Refuse a query an adapter cannot run, naming every wrong field.

    Args:
        query: The query as the caller built it.

    Raises:
        Invalid: One problem per wrong field: an unknown facet (`filters.<name>` or `facets`,
            with the closest facet names as suggestions), too many values, `limit`, `sort` or
            `text`.
    """
    problems: list[Problem] = []
    for name, values in query.filters.items():
        given: object = values  # callers outside msgspec's decoding may pass a bare string
        if name not in FACETS:
            problems.append(
                Problem(
                    f"filters.{name}",
                    f"unknown facet {name!r}; facets are: {', '.join(FACETS)}",
                    tuple(difflib.get_close_matches(name, FACETS, n=3)),
                )
            )
        elif isinstance(given, str):
            problems.append(Problem(f"filters.{name}", "expected a list of values, got a string"))
        elif len(values) > MAX_VALUES_PER_FACET:
            problems.append(
                Problem(f"filters.{name}", f"at most {MAX_VALUES_PER_FACET} values per facet")
            )
    problems += facet_problems(query.facets)
    if isinstance(query.limit, bool) or not 1 <= query.limit <= MAX_PAGE_SIZE:
        problems.append(Problem("limit", f"must be between 1 and {MAX_PAGE_SIZE}"))
    if query.sort not in SORT_ORDERS:
        problems.append(
            Problem("sort", f"unknown sort {query.sort!r}; use one of: {', '.join(SORT_ORDERS)}")
        )
    if len(query.text) > MAX_TEXT_LENGTH:
        problems.append(Problem("text", f"longer than {MAX_TEXT_LENGTH} characters"))
    if problems:
        raise Invalid("the search query is not valid", problems)


# ------------------------------------------------------------------ multi-select counts
@dataclass(frozen=True, slots=True)
class CountPlan:
    """Facets whose counts share one filter set: one aggregation request per plan."""

    facets: tuple[str, ...]
    """Facets counted under `filters`, in `FACETS` order."""
    filters: dict[str, tuple[str, ...]]
    """The selections that apply to these counts (never a facet's own selection)."""


def count_plans(
    filters: Mapping[str, tuple[str, ...]], facets: Iterable[str] = FACETS
) -> list[CountPlan]:
    """Group facets by the filters their counts apply, so each group is counted once.

    Unselected facets all see every filter; a selected facet sees every filter but its own. So a
    query with two facets selected needs three count requests, whatever the number of facets.

    Args:
        filters: Active filters (see `active_filters`).
        facets: The facets to count, in display order.

    Returns:
        One plan per distinct filter set, in the order of the first facet of each.
    """
    groups: dict[tuple[str, ...], list[str]] = {}
    for facet in facets:
        applied = tuple(name for name in filters if name != facet)
        groups.setdefault(applied, []).append(facet)
    return [
        CountPlan(tuple(members), {name: filters[name] for name in applied})
        for applied, members in groups.items()
    ]


def facet_counts(buckets: Mapping[str, int], selected: Iterable[str] = ()) -> dict[str, int]:
    """One facet's counts in display order: most hits first, then by value.

    Selected values stay listed with 0 when nothing matches them any more, so the user can see
    (and clear) a selection that the other filters emptied.

    Args:
        buckets: Value -> number of hits, as counted by the engine.
        selected: This facet's selected values.

    Returns:
        Value -> count, ordered by descending count, then ascending value.
    """
    counts = {value: count for value, count in buckets.items() if count > 0}
    for value in selected:
        counts.setdefault(value, 0)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


# --------------------------------------------------------------------- matching rules
def typo_distance(term: str) -> int:
    """How many edits a query term may be off by and still match (Elasticsearch's `AUTO`).

    0 for terms of up to 2 characters, 1 up to 5, 2 beyond: `sextractr` finds `sextractor`,
    while `fit` does not find `fix`.
    """
    if len(term) <= 2:
        return 0
    return 1 if len(term) <= 5 else 2


NEAR_NAME_MAX_WORDS: Final = 2
"""Most words (name parts) a query may have to be tried as a misspelt name."""
NEAR_NAME_MAX_LENGTH: Final = 64
"""Longest query tried as a misspelt name (names are at most 64 characters)."""


def near_name_distance(name: str) -> int:
    """How many edits `name` (the query through `normalise_name`) may be off an entry's name.

    0 (not tried as a misspelt name) beyond two words or 64 characters: `sextractr` and `source
    extractr` are names, while "spectrum wcs fitting" is looked up word by word, each word with
    its own typo tolerance. A fuzzy automaton over a whole sentence finds nothing those words do
    not, and building it was a third of the time of a three-word search on OpenSearch.
    """
    if len(name) > NEAR_NAME_MAX_LENGTH or name.count("-") >= NEAR_NAME_MAX_WORDS:
        return 0
    return typo_distance(name)


def required_terms(count: int) -> int:
    """How many of `count` query terms a hit must match.

    All of one or two terms; beyond that all but a quarter (at least one may be missing), so a
    stray word does not empty the results while hits matching every term still rank first.
    """
    if count <= 2:
        return count
    return count - max(1, count // 4)


# ---------------------------------------------------------------------- names and keys
def normalise_name(name: str) -> str:
    """The form two names must share to be "the same name" (the exact-name match).

    Case, Unicode compatibility forms and runs of spaces, hyphens, underscores and dots do not
    matter: `SExtractor`, `sextractor`, `Source_Extractor` and `source-extractor` compare as
    `sextractor` / `source-extractor` (PEP 503 does the same for package names).
    """
    folded = unicodedata.normalize("NFKC", name).casefold()
    return _NAME_SEPARATORS.sub("-", folded).strip("-")


def name_sort_value(name: str) -> str:
    r"""The value the `name` sort orders by: case- and accent-insensitive, spaces collapsed.

    Control characters are removed, so an adapter may append a separator below space
    (`\\x1f`) and an id to make a unique key that sorts like the tuple `(value, id)`.
    """
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    cleaned = _CONTROL_CHARACTERS.sub(" ", stripped.casefold())
    return _WHITESPACE.sub(" ", cleaned).strip()


def updated_micros(updated: datetime) -> int:
    """Microseconds since 0001-01-01 UTC: the `newest` sort value (naive times are UTC)."""
    aware = updated if updated.tzinfo is not None else updated.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


SortValue = float | int | str
"""The first element of a sort key: a score, an updated time (µs) or a name sort value."""


def order_key(sort: SortOrder, key: tuple[SortValue, str]) -> tuple[SortValue, str]:
    """A tuple that orders hits of `sort` ascending, given their sort key `(value, id)`.

    relevance: score descending; newest: updated descending; name: name ascending; then id.
    """
    value, doc_id = key
    if sort == "name":
        return (str(value), doc_id)
    assert isinstance(value, int | float)
    return (-value, doc_id)


# ------------------------------------------------------------------------------- cursors
class Cursor(msgspec.Struct, frozen=True, array_like=True):
    """What a cursor token carries: the sort key of the last hit returned, and a hint.

    The key is backend-neutral (`(score, id)`, `(name_sort_value, id)` or `(updated_micros,
    id)`), so a page is "the first hits whose key orders after this one" on any adapter.
    """

    version: int
    sort: str
    query: str
    """Fingerprint of the text and filters the cursor was made for."""
    value: SortValue
    id: str
    hint: int = 0
    """Where the adapter found the key last time (a position); a speed-up, never trusted."""


_CURSOR_DECODER: Final = msgspec.json.Decoder(Cursor)
_CURSOR_ENCODER: Final = msgspec.json.Encoder()


def query_fingerprint(query: SearchQuery) -> str:
    """A short digest of what a cursor depends on: the text and the active filters."""
    filters = sorted(
        (name, sorted(values)) for name, values in active_filters(query.filters).items()
    )
    payload = _CURSOR_ENCODER.encode([_WHITESPACE.sub(" ", query.text).strip(), filters])
    return hashlib.blake2b(payload, digest_size=6).hexdigest()


def encode_cursor(query: SearchQuery, key: tuple[SortValue, str], hint: int = 0) -> str:
    """An opaque, URL-safe token for the page after the hit whose sort key is `key`.

    Args:
        query: The query of the page being returned.
        key: The last hit's sort key, `(value, id)` as described on `Cursor`.
        hint: An adapter's hint for finding the key again quickly.

    Returns:
        Unpadded base64url text.
    """
    cursor = Cursor(CURSOR_VERSION, query.sort, query_fingerprint(query), key[0], key[1], hint)
    return base64.urlsafe_b64encode(_CURSOR_ENCODER.encode(cursor)).rstrip(b"=").decode("ascii")


def decode_cursor(query: SearchQuery) -> Cursor | None:
    """The cursor of `query`, checked against it; None on a first page.

    Raises:
        Invalid: naming `cursor` when the token is malformed, from another cursor version, or was
            made for another sort, text or filter selection.
    """
    token = query.cursor
    if token is None or token == "":
        return None
    try:
        if len(token) > MAX_CURSOR_LENGTH or not token.isascii():
            raise ValueError(token)
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = _CURSOR_DECODER.decode(raw)
    except (ValueError, binascii.Error, msgspec.DecodeError):
        raise _bad_cursor("not a cursor this service issued") from None
    if cursor.version != CURSOR_VERSION:
        raise _bad_cursor("the cursor is from an older version; start again from the first page")
    if cursor.sort != query.sort or cursor.query != query_fingerprint(query):
        raise _bad_cursor("the cursor belongs to a different search (text, filters or sort)")
    if not _key_type_fits(query.sort, cursor.value) or not 0 <= cursor.hint <= MAX_CURSOR_HINT:
        raise _bad_cursor("not a cursor this service issued")
    return cursor


def _key_type_fits(sort: str, value: Any) -> bool:
    if sort == "name":
        return isinstance(value, str)
    if sort == "newest":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bad_cursor(reason: str) -> Invalid:
    return Invalid("the cursor is not valid for this search", [Problem("cursor", reason)])
