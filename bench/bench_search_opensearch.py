"""Catalogue search benchmark on OpenSearch: the same entries and queries as `bench_search`.

Indexes the entries `bench.bench_search.generate` makes (a full `rebuild`: bulk load and alias
swap), times upserts in batches of 200 (each refreshed, as the catalogue writes them), then
the search page's faceted query, p50/p99, through `OpenSearchIndex.search`: query building,
the HTTP round trip to the cluster, facet aggregations and cursor encoding included. Also the
filter-only query, a misspelt name, newest first, and deep cursor pages.

Needs a running cluster: `bash scripts/services/opensearch start` and
`export VOEXEC_TEST_OPENSEARCH_URL=<the printed URL>` (or `source .services/env`).
`run()` is what `python -m bench search_opensearch` calls; `python -m
bench.bench_search_opensearch [--entries N] [--million] [--write-docs]` runs it alone. The
benchmark's indices are deleted afterwards.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import percentile, write_sections
from bench.bench_search import faceted_queries, generate
from catalogue.ports import IndexDocument, SearchQuery
from catalogue.search_opensearch import OpenSearchIndex
from core.settings import OpenSearchSearch

HEADING = "## Catalogue search (OpenSearch)"
URL_ENV = "VOEXEC_TEST_OPENSEARCH_URL"
TARGET_P99_MS = 20.0
"""Faceted query p99 asked at up to `TARGET_ENTRIES` entries."""
TARGET_ENTRIES = 100_000
TARGET_P99_MS_AT_1M = 50.0
"""Faceted query p99 asked at 1,000,000 entries."""
UPSERTS = 2000
UPSERT_BATCH = 200


@dataclass
class Latency:
    label: str
    samples_ms: list[float]
    took_ms: list[float] = field(default_factory=list)
    """The cluster's own `took` of each search request (its query and fetch phases, without
    HTTP, JSON and the client): what the query costs the cluster, less the machine's noise."""

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.samples_ms, 0.99)

    @property
    def took_p50(self) -> float:
        return percentile(self.took_ms, 0.5) if self.took_ms else math.nan

    @property
    def took_p99(self) -> float:
        return percentile(self.took_ms, 0.99) if self.took_ms else math.nan


@dataclass
class Measured:
    entries: int
    """Entries generated (the latency rows are keyed by it, as in `bench_search`)."""
    distinct: int
    """Distinct ids among them: the generator repeats a few, and a repeat replaces the entry."""
    rebuild_seconds: float
    upsert_per_second: float
    index_bytes: int
    latencies: list[Latency]
    mean_hits: float
    load: tuple[float, float, float]
    """The machine's load average (1, 5, 15 min) when the searches were timed (at the end)."""
    load_before: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    """The load average when the timed searches began."""

    @property
    def faceted(self) -> Latency:
        return self.latencies[0]


class TookRecorder:
    """Wraps the adapter's client so that each search also answers, and records, its `took`."""

    def __init__(self, index: OpenSearchIndex) -> None:
        self.took: list[float] = []
        client = index._client
        search = client.search

        def recorded(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("filter_path"):
                kwargs["filter_path"] = f"{kwargs['filter_path']},took"
            answer = search(*args, **kwargs)
            if isinstance(answer, dict) and "took" in answer:
                self.took.append(float(answer["took"]))
            return answer

        client.search = recorded

    def since(self, start: int) -> list[float]:
        return self.took[start:]


def _timed(
    index: OpenSearchIndex, queries: list[SearchQuery], recorder: TookRecorder | None = None
) -> tuple[list[float], list[int], list[float]]:
    samples, totals = [], []
    start = len(recorder.took) if recorder else 0
    for query in queries:
        began = time.perf_counter()
        result = index.search(query)
        samples.append((time.perf_counter() - began) * 1000)
        totals.append(result.total)
    return samples, totals, recorder.since(start) if recorder else []


def _latency(
    label: str,
    index: OpenSearchIndex,
    queries: list[SearchQuery],
    recorder: TookRecorder,
) -> Latency:
    samples, _, took = _timed(index, queries, recorder)
    return Latency(label, samples, took)


def _deep_pages(
    label: str,
    index: OpenSearchIndex,
    recorder: TookRecorder,
    *,
    sort: str,
    pages: int = 50,
    text: str = "",
) -> Latency:
    """Time each page of a walk; the last ten (pages 41-50) are the deep ones."""
    samples = []
    start = len(recorder.took)
    cursor = None
    for _ in range(pages):
        query = SearchQuery(text=text, sort=sort, limit=20, cursor=cursor)  # type: ignore[arg-type]
        began = time.perf_counter()
        result = index.search(query)
        samples.append((time.perf_counter() - began) * 1000)
        cursor = result.next_cursor
        if cursor is None:
            break
    return Latency(label, samples[-10:], recorder.since(start)[-10:])


def _store_bytes(url: str, alias: str) -> int:
    stats = httpx.get(f"{url}/{alias}/_stats/store", timeout=30).json()
    return int(stats["_all"]["primaries"]["store"]["size_in_bytes"])


def measure(url: str, entries: int, queries: int = 200, keep: str | None = None) -> Measured:
    """Index `entries` generated entries under a fresh alias and time the searches.

    `keep`: an alias prefix; the index is built under `<keep>-<entries>` once, kept, and reused
    by later runs (whose rebuild and upsert rates are then not measured: NaN).
    """
    alias = f"{keep}-{entries}" if keep else f"voexec-bench-{uuid.uuid4().hex[:8]}"
    index = OpenSearchIndex(OpenSearchSearch(url=url), alias=alias, timeout=120)
    names: list[str] = []
    reuse = keep is not None and index.count() >= entries // 2

    def remember(documents: Iterator[IndexDocument]) -> Iterator[IndexDocument]:
        for doc in documents:
            if len(names) < 5000:
                names.append(doc.name)
            yield doc

    try:
        if reuse:
            names = [doc.name for doc in generate(min(entries, 5000))]
            indexed = index.count()
            rebuild_seconds = upsert_per_second = math.nan
        else:
            began = time.perf_counter()
            indexed = index.rebuild(remember(generate(entries)))
            rebuild_seconds = time.perf_counter() - began
            batch = list(generate(UPSERTS, seed=99))
            began = time.perf_counter()
            for start in range(0, UPSERTS, UPSERT_BATCH):
                index.upsert(batch[start : start + UPSERT_BATCH])
            upsert_per_second = UPSERTS / (time.perf_counter() - began)
        index_bytes = _store_bytes(url, alias)

        workload = faceted_queries(queries, names)
        # A kept index may still hold an earlier run's answers in the shard request cache:
        # clear it, so that the first rows time the queries and not the cache.
        cleared = httpx.post(f"{url}/{alias}/_cache/clear", params={"request": "true"}, timeout=30)
        cleared.raise_for_status()
        recorder = TookRecorder(index)
        _timed(index, workload[:20])  # warm the caches, as a running cluster would be
        load_before = os.getloadavg()
        faceted, hits, faceted_took = _timed(index, workload, recorder)
        misspelt = [q for number, q in enumerate(workload) if number % 4 == 3]
        latencies = [
            Latency("text + 2 filters + all facet counts, relevance", faceted, faceted_took),
            _latency(
                "2 filters + all facet counts, no text",
                index,
                [SearchQuery(filters=q.filters) for q in workload],
                recorder,
            ),
            _latency("misspelt name + 2 filters + facets", index, misspelt, recorder),
            _latency(
                "text + 2 filters + facets, newest first",
                index,
                [SearchQuery(text=q.text, filters=q.filters, sort="newest") for q in workload],
                recorder,
            ),
            _latency(
                "text + 2 filters + 2 facet counts (subject, kind)",
                index,
                [
                    SearchQuery(text=q.text, filters=q.filters, facets=("subject", "kind"))
                    for q in workload
                ],
                recorder,
            ),
            _latency("the faceted queries again (shard request cache)", index, workload, recorder),
            _deep_pages(
                "pages 41-50 by cursor (name sort, all entries)", index, recorder, sort="name"
            ),
            _deep_pages(
                'pages 41-50 by cursor (relevance sort, "galaxy")',
                index,
                recorder,
                sort="relevance",
                text="galaxy",
            ),
        ]
        load = os.getloadavg()
    finally:
        index.close()
        if keep is None:
            httpx.delete(f"{url}/{alias}-*", params={"expand_wildcards": "all"}, timeout=120)
    return Measured(
        entries=entries,
        distinct=indexed,
        rebuild_seconds=rebuild_seconds,
        upsert_per_second=upsert_per_second,
        index_bytes=index_bytes,
        latencies=latencies,
        mean_hits=statistics.fmean(hits),
        load=load,
        load_before=load_before,
    )


def _cluster(url: str) -> str:
    """`OpenSearch <version>, <heap> heap`, as the cluster reports itself."""
    version = httpx.get(url, timeout=10).json()["version"]["number"]
    nodes = httpx.get(f"{url}/_nodes/stats/jvm", timeout=10).json()["nodes"]
    heap = sum(n["jvm"]["mem"]["heap_max_in_bytes"] for n in nodes.values()) / 2**20
    return f"OpenSearch {version}, {len(nodes)} node(s), {heap:.0f} MiB heap in all"


def section(results: list[Measured], cluster: str) -> str:
    """The Markdown section for docs/benchmarks.md."""
    load = ", ".join(f"{value:.1f}" for value in results[-1].load)
    before = ", ".join(f"{value:.1f}" for value in results[0].load_before)
    lines = [
        HEADING,
        "",
        f"Machine: as above; load average {before} when the searches began, {load} when they",
        "ended (other work shares the CPUs).",
        f"Cluster: {cluster}, on the same machine (loopback HTTP);",
        "one shard, refreshed every second.",
        "",
        "Measured in-process through `OpenSearchIndex.search`: query building, the HTTP round",
        "trip, the facet aggregations and the cursor encoding. The entries and the queries are",
        "`bench_search`'s (the tantivy section), so the rows compare. The generator repeats some",
        "ids, more often at 1,000,000, and a repeat replaces the entry, as in the catalogue.",
        "Every page counts all seven facets over all the hits of the text (multi-select through",
        "`post_filter`), so a filter-only or broad query pays for aggregating most of the index.",
        "A text's words are first looked up in the index (`_mtermvectors`, kept per generation);",
        "only unknown ones are also looked up misspelt. A rebuild merges the index into one",
        "segment; the upserts after it add small ones, as in a serving catalogue.",
        "`python -m bench search_opensearch` regenerates this section; it needs a running",
        "cluster (`bash scripts/services/opensearch start`, then `source .services/env`).",
        "",
        "| entries | distinct ids | rebuild (bulk load + alias swap) | rebuild rate "
        f"| upserts (batches of {UPSERT_BATCH}, refreshed) | index size |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.entries:,} | {result.distinct:,} | {result.rebuild_seconds:.1f} s "
            f"| {result.entries / result.rebuild_seconds:,.0f} entries/s "
            f"| {result.upsert_per_second:,.0f} entries/s | {result.index_bytes / 2**20:.0f} MiB |"
        )
    lines += [
        "",
        "Wall: in the client, around `OpenSearchIndex.search`; took: the cluster's own time for",
        "the search request (without HTTP, JSON, the client, or the term lookup before it).",
        "",
        "| entries | query | samples | wall p50 | wall p99 | took p50 | took p99 |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for latency in result.latencies:
            lines.append(
                f"| {result.entries:,} | {latency.label} | {len(latency.samples_ms)} "
                f"| {latency.p50:.2f} ms | {latency.p99:.2f} ms "
                f"| {latency.took_p50:.0f} ms | {latency.took_p99:.0f} ms |"
            )
    lines.append("")
    for result in results:  # the issue sets one target per size
        target = TARGET_P99_MS if result.entries <= TARGET_ENTRIES else TARGET_P99_MS_AT_1M
        verdict = "meets" if result.faceted.p99 < target else "misses"
        lines.append(
            f"Target: faceted query p99 under {target:.0f} ms at {result.entries:,} entries; "
            f"measured {result.faceted.p99:.1f} ms ({verdict} it). The faceted queries matched "
            f"{result.mean_hits:,.0f} entries on average."
        )
    lines.append("")
    return "\n".join(lines)


def cluster_url() -> str:
    """The cluster to measure, from `VOEXEC_TEST_OPENSEARCH_URL`."""
    url = os.environ.get(URL_ENV, "").strip().rstrip("/")
    if not url:
        raise RuntimeError(
            f"{URL_ENV} is not set: start a cluster with `bash scripts/services/opensearch "
            f"start` and export {URL_ENV}=<the URL it prints> (or `source .services/env`)"
        )
    return url


def run(
    entries: int = 100_000,
    *,
    million: bool = False,
    queries: int = 200,
    progress: Callable[[str], None] = print,
    keep: str | None = None,
) -> str:
    """Run the benchmark, print the section and return it (Markdown)."""
    url = cluster_url()
    results = [measure(url, entries, queries, keep)]
    if million:
        progress("indexing 1,000,000 entries: this takes a while...")
        results.append(measure(url, 1_000_000, queries, keep))
    markdown = section(results, _cluster(url))
    print(markdown)
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--million", action="store_true", help="also 1,000,000 entries (slow)")
    parser.add_argument("--keep", help="alias prefix: build the index once, keep and reuse it")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    arguments = parser.parse_args()
    markdown = run(
        arguments.entries,
        million=arguments.million,
        queries=arguments.queries,
        keep=arguments.keep,
    )
    if arguments.write_docs:
        write_sections([markdown])


if __name__ == "__main__":
    main()
