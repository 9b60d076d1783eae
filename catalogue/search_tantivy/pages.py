"""One page of hits after a cursor (`search_after`), in each sort order.

tantivy has neither `search_after` nor a range filter on strings, so:

- **relevance** (score descending, ties by id): read a window of ranked hits from where the
  cursor was last found (its hint), sort each tie group by id, and start after the cursor's
  `(score, id)`; a window that may cut a tie group, or that no longer starts before the
  cursor (the index changed), is widened and read again;
- **keyed sorts** (name, newest, relevance without text): order by the unique string key,
  filter on its coarse number (`schema.KeyedSort`), and skip the keys up to the cursor's.

Either way a page is "the first hits ordered after the cursor's key", so a walk sees every hit
once, ties included, and a hint that went stale only costs time.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, Final

import tantivy
from tantivy import Order, Query

from catalogue.facets import Cursor
from catalogue.search_tantivy.queries import conjunction
from catalogue.search_tantivy.schema import SCHEMA, KeyedSort

RANKED_WINDOW_FACTOR: Final = 3
RANKED_WINDOW_SLACK: Final = 10
"""A relevance page reads `3 * limit + 10` ranked hits: a tie group cut by the window costs a
second search, a larger top-k almost nothing."""


@dataclass(frozen=True, slots=True)
class Page:
    """The hits of one page and what the next cursor needs."""

    hits: list[tuple[float, str]]
    """(score, id) of each hit."""
    last: tuple[Any, str] | None
    """The last hit's cursor key: `(value, id)` as `facets.Cursor` describes it."""
    hint: int
    """Where to find `last` again: its rank (relevance), or its rank in its coarse group."""
    more: bool
    """Whether hits follow the page."""


def ranked_page(
    searcher: tantivy.Searcher, query: Query, cursor: Cursor | None, limit: int
) -> Page:
    """The page by score descending, ties by id ascending, after the cursor's (score, id)."""
    after_score = float(cursor.value) if cursor else math.inf
    after_id = cursor.id if cursor else ""
    start = max(0, cursor.hint - 1) if cursor else 0
    size = RANKED_WINDOW_FACTOR * limit + RANKED_WINDOW_SLACK
    total: int | None = None
    while True:
        found: Any = searcher.search(query, size, count=total is None, offset=start)
        total = int(found.count) if total is None else total  # the type stub lacks `count`
        ranked = found.hits
        if start > 0 and (not ranked or ranked[0][0] <= after_score):
            # The cursor's tie group may begin before the window (the index changed).
            start, size = 0, min(start + size, total + 1)
            continue
        complete = len(ranked) < size
        groups: list[tuple[float, list[Any]]] = []
        for score, address in ranked:
            if groups and groups[-1][0] == score:
                groups[-1][1].append(address)
            else:
                groups.append((score, [address]))
        page: list[tuple[float, str]] = []
        position = start  # hits ranked before the first hit of the page
        for number, (score, addresses) in enumerate(groups):
            if score > after_score:
                position += len(addresses)
                continue
            if not complete and number == len(groups) - 1:
                break  # this tie group may go on past the window
            ids = sorted(str(searcher.doc(address).get_first("id")) for address in addresses)
            first = bisect.bisect_right(ids, after_id) if score == after_score else 0
            position += first
            page += [(score, doc_id) for doc_id in ids[first:]]
            if len(page) > limit:
                break
        if len(page) > limit or complete:
            shown = page[:limit]
            last = shown[-1] if shown else None
            return Page(shown, last, position + len(shown), len(page) > limit)
        # A tie group runs past the window (fuzzy matches all score alike): read to the end.
        size = total - start + 1


def keyed_page(
    searcher: tantivy.Searcher, query: Query, sort: KeyedSort, cursor: Cursor | None, limit: int
) -> Page:
    """The page ordered by `sort`'s unique key, after the cursor's key."""
    after = sort.to_key(cursor.value, cursor.id) if cursor else None
    if after is not None:
        coarse = Query.range_query(
            SCHEMA, sort.coarse_field, tantivy.FieldType.Unsigned, lower_bound=sort.coarse(after)
        )
        query = conjunction([query, coarse])
    size = limit + 1 + (cursor.hint if cursor else 0)
    while True:
        found = searcher.search(
            query, size, count=False, order_by_field=sort.key_field, order=Order.Asc
        )
        keys: list[str] = [key for key, _ in found.hits]
        first = bisect.bisect_right(keys, after) if after is not None else 0
        if len(keys) < size or len(keys) > first + limit:
            break
        size *= 2
    page = keys[first : first + limit]
    hint = 0
    if page:
        group = sort.coarse(page[-1])
        hint = sum(1 for key in keys[: first + len(page)] if sort.coarse(key) == group)
    hits = [(sort.score, sort.split(key)[1]) for key in page]
    last = sort.split(page[-1]) if page else None
    return Page(hits, last, hint, len(keys) > first + limit)
