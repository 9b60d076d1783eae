"""Vocabulary benchmark: loading the full UAT, and the per-call cost of what search and harvest do.

Loading: the UAT's desise (what the registry prefers and caches) and RDF/XML (rdflib), in this
process and cold in a fresh interpreter through `load_registry`, as start-up pays it. Per call:
`resolve` (term, label, deprecated, misspelt), `suggest` (autocomplete), `with_ancestors` over
a catalogue-sized batch, and `rollup` of counts over the whole UAT.

`run()` is what `python -m bench` calls; `python -m bench.bench_vocabularies [--write-docs]`
runs it alone, and `--write-docs` replaces the `## Vocabularies` section of docs/benchmarks.md.
Reads ../shared/vocabularies (or `$VOEXEC_TEST_SHARED/vocabularies`).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import DOCS, write_sections
from vocabularies import expand
from vocabularies.desise import decode_desise, encode_desise
from vocabularies.model import Vocabulary
from vocabularies.resolve import resolve, suggest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VOEXEC_TEST_SHARED", ROOT.parent / "shared")) / "vocabularies"
HEADING = "## Vocabularies"
TARGET_LOAD_S = 2.0

COLD_LOAD = """
import sys, time
began = time.perf_counter()
from core.settings import VocabularySettings
from vocabularies.registry import load_registry
registry = load_registry(VocabularySettings(path=sys.argv[1], names=["uat"]), sys.argv[2])
assert len(registry.get("uat").concepts) > 2400
print(time.perf_counter() - began)
"""


def _ms(action: Callable[[], object], repeat: int) -> float:
    """Median wall time of `action`, in milliseconds."""
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


def _cold_load_s(folder: Path, repeat: int = 3) -> float:
    """Median seconds for a fresh interpreter to import and `load_registry` the UAT."""
    samples = []
    with tempfile.TemporaryDirectory() as data_dir:
        for _ in range(repeat):
            done = subprocess.run(
                [sys.executable, "-c", COLD_LOAD, str(folder), data_dir],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            samples.append(float(done.stdout.strip()))
    return statistics.median(samples)


def measure() -> list[tuple[str, str]]:
    """Every measurement as (what, how long)."""
    desise_bytes = (SHARED / "uat.desise").read_bytes()
    rdf_bytes = (SHARED / "uat.rdf").read_bytes()
    rows: list[tuple[str, str]] = []

    uat = decode_desise(desise_bytes, "uat")
    rows.append(
        (
            f"UAT ({len(uat.concepts)} concepts) from desise, in process",
            f"{_ms(lambda: decode_desise(desise_bytes, 'uat'), 10):.0f} ms",
        )
    )
    began = time.perf_counter()
    from vocabularies.skos import parse_rdf

    import_ms = (time.perf_counter() - began) * 1000
    rdf_ms = _ms(lambda: parse_rdf(rdf_bytes, "uat", "xml"), 3)
    rows.append(("UAT from RDF/XML with rdflib, in process", f"{rdf_ms:.0f} ms"))
    rows.append(("importing rdflib (once per process)", f"{import_ms:.0f} ms"))
    rows.append(
        (
            "cache write + read (desise)",
            f"{_ms(lambda: decode_desise(encode_desise(uat), 'u'), 5):.0f} ms",
        )
    )
    rows.append(
        (
            "start-up: fresh interpreter, imports + `load_registry` (UAT + our 3)",
            f"{_cold_load_s(SHARED):.2f} s (target < {TARGET_LOAD_S:.0f} s)",
        )
    )
    rows.extend(_per_call(uat))
    return rows


def _per_call(uat: Vocabulary) -> list[tuple[str, str]]:
    rng = random.Random(7)
    terms = sorted(uat.concepts)
    current = [t for t in terms if not uat.concepts[t].deprecated]
    labels = [uat.concepts[t].label for t in rng.sample(current, 200)]
    deprecated = [c.term for c in uat.concepts.values() if c.use_instead]
    misspelt = [
        label[:3] + label[4] + label[3] + label[5:] for label in labels[:50] if len(label) > 6
    ]
    prefixes = [label[: rng.randint(2, 6)] for label in labels]
    entries = [rng.sample(terms, 3) for _ in range(100_000)]

    def per_call_us(action: Callable[[str], object], inputs: list[str]) -> str:
        began = time.perf_counter()
        for text in inputs:
            action(text)
        return f"{(time.perf_counter() - began) / len(inputs) * 1e6:.0f} µs"

    counts: dict[str, int] = {}
    began = time.perf_counter()
    for chosen in entries:
        for term in expand.with_ancestors(uat, chosen):
            counts[term] = counts.get(term, 0) + 1
    closure_ms = (time.perf_counter() - began) * 1000
    return [
        ("`resolve` by term", per_call_us(lambda t: resolve(uat, t), current)),
        ("`resolve` by label, any case", per_call_us(lambda t: resolve(uat, t.upper()), labels)),
        (
            "`resolve` a deprecated term (replaced)",
            per_call_us(lambda t: resolve(uat, t), deprecated),
        ),
        (
            "`resolve` a misspelt label (suggestions)",
            per_call_us(lambda t: resolve(uat, t), misspelt),
        ),
        ("`suggest` (autocomplete), 2-6 letters", per_call_us(lambda t: suggest(uat, t), prefixes)),
        ("`with_ancestors` for 100,000 entries x 3 terms", f"{closure_ms:.0f} ms"),
        (
            f"`rollup` of counts over {len(counts)} UAT concepts",
            f"{_ms(lambda: expand.rollup(uat, counts, max_depth=3), 5):.0f} ms (3 levels)",
        ),
    ]


def section(rows: list[tuple[str, str]]) -> str:
    """The markdown section for docs/benchmarks.md."""
    lines = [
        HEADING,
        "",
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; the IVOA UAT of",
        "`../shared/vocabularies`. Medians of repeated runs.",
        "",
        "| measurement | time |",
        "|---|---|",
        *(f"| {what} | {how} |" for what, how in rows),
    ]
    return "\n".join(lines) + "\n"


def run() -> str:
    """Run the benchmark, print the section and return it (markdown)."""
    if not (SHARED / "uat.desise").is_file():
        message = f"{HEADING}\n\nSkipped: {SHARED} not found (set VOEXEC_TEST_SHARED).\n"
        print(message)
        return message
    markdown = section(measure())
    print(markdown)
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOCS.name}")
    arguments = parser.parse_args()
    markdown = run()
    if arguments.write_docs:
        write_sections([markdown])


if __name__ == "__main__":
    main()
