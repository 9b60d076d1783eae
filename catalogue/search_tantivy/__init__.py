"""The embedded search index: tantivy, in-process (the default `SearchIndex` adapter).

The only package that imports `tantivy`. Its parts:

- `schema`: the fields, the analysers, the sort keys, and `IndexDocument` -> tantivy document;
- `queries`: a `SearchQuery`'s text and filters as tantivy queries, and the facet counts as
  tantivy aggregations (multi-select);
- `pages`: one page of hits after a cursor, for relevance and for the keyed sorts;
- `index`: `TantivySearchIndex` itself: writes, the searcher, the index directory.

The engine-neutral rules (checks, count plans, cursor tokens, sort keys, typo distances) live in
`catalogue.facets`, which the OpenSearch adapter shares, so both backends answer alike.

Must not import: the broker, web frameworks, SQL.
"""

from catalogue.search_tantivy.index import TantivySearchIndex

__all__ = ["TantivySearchIndex"]
