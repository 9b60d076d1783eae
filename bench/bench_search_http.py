"""End-to-end search benchmark: HTTP searches against a live `voexec serve` with N entries.

The catalogue is filled with N entries made from the demo catalogue's 31 validated documents
(names, titles, summaries, subjects, functions, messengers and licences recombined, so the
facets have realistic spreads), stored through the SQL store and indexed by `reindex`. Then
`voexec serve` runs in its own process on a loopback port, and client threads in this process
send `GET /catalogue/search` over keep-alive connections for a fixed time: text and facet
filters drawn from the demo's own values, counts of all facets, the first page of 20.

Reported: requests per second, latency p50/p99 as the clients saw it, the server's CPU time
per request (from /proc), and the load average before and after (the machine is shared).
The server and the clients share the machine's CPUs, so req/s is a floor.

`run()` is what `python -m bench search_http` calls (10,000 entries); `python -m
bench.bench_search_http --entries 100000 [--clients 4] [--seconds 15] [--write-docs]` runs
other sizes. Needs ../shared/vocabularies (or `$VOEXEC_TEST_SHARED`).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import msgspec
import yaml

from bench import DOCS, percentile, write_sections
from catalogue.model import EntryVersion, ExecutableSpec, Provenance, VersionWrite, entry_id

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VOEXEC_TEST_SHARED", ROOT.parent / "shared")) / "vocabularies"
DEMO = ROOT / "catalogue" / "demo"
HEADING = "## Catalogue search over HTTP"
TARGET_RPS = 1_000
SOURCE = "bench"
STORE_BATCH = 1_000
WARM_ROUNDS = 3
"""Times each of the repeating mode's queries is sent before the run (workers cache apart)."""
_TEXT = """
galaxy spectra imaging photometry calibration radio catalogue source extraction deconvolution
mosaic redshift cluster transient light curve period pulsar timing visibility gridding wavelet
segmentation classification neural bayesian fitting morphology dust flux polarisation emission
simulation cosmology survey pipeline
"""
WORDS = tuple(_TEXT.split())


@dataclass
class Run:
    """One load run's numbers."""

    entries: int
    clients: int
    seconds: float
    requests: int
    errors: int
    latencies_ms: list[float]
    server_cpu_s: float
    load_before: tuple[float, ...]
    load_after: tuple[float, ...]
    mean_total: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


# ------------------------------------------------------------------ the catalogue
def _settings(folder: Path) -> dict[str, object]:
    return {
        "data_dir": str(folder / "var"),
        "vocabularies": {"path": str(SHARED), "offline": True},
        "server": {"host": "127.0.0.1"},
    }


def demo_specs(catalogue: object) -> list[ExecutableSpec]:
    """The demo catalogue's executables, validated by the catalogue itself."""
    specs: list[ExecutableSpec] = []
    for path in sorted(DEMO.glob("*.yaml")):
        checked = catalogue.check(path.read_text(), require_vocabularies=False)  # type: ignore[attr-defined]
        specs.extend(item.spec for item in checked.executables)
    return specs


def variants(
    specs: Sequence[ExecutableSpec], count: int, seed: int = 7
) -> Iterator[ExecutableSpec]:
    """`count` entries recombined from the demo's: the same ones for the same seed."""
    rng = random.Random(seed)
    subjects = sorted({s for spec in specs for s in spec.subjects})
    functions = sorted({f for spec in specs for f in spec.functions})
    messengers = sorted({m for spec in specs for m in spec.messengers})
    licences = sorted({spec.licence for spec in specs})
    for number in range(count):
        base = specs[number % len(specs)]
        words = " ".join(rng.sample(WORDS, 6))
        yield msgspec.structs.replace(
            base,
            name=f"{base.name}-{number}",
            title=f"{base.title} {words.split()[0]}",
            summary=f"{base.summary.rstrip('.')} for {words}.",
            subjects=rng.sample(subjects, rng.randint(1, 3)),
            functions=rng.sample(functions, rng.randint(1, 2)),
            messengers=rng.sample(messengers, rng.randint(0, 2)),
            licence=rng.choice(licences),
        )


def populate(folder: Path, count: int) -> float:
    """Fill a catalogue under `folder` with `count` entries and index them; returns seconds."""
    from core.settings import settings_from_mapping
    from voexec.wiring import build_services

    began = time.perf_counter()
    services = build_services(settings_from_mapping(_settings(folder)))
    try:
        catalogue = services.components["catalogue"]
        now = datetime(2026, 3, 1, tzinfo=UTC)
        batch: list[VersionWrite] = []
        for spec in variants(demo_specs(catalogue), count):
            provenance = Provenance(
                source=SOURCE, repository=f"https://git.example.org/{spec.name}"
            )
            key = entry_id(SOURCE, provenance.repository, None, spec.name)
            version = EntryVersion(
                version=spec.version,
                spec=spec,
                content_hash=msgspec.json.encode(spec).hex()[:64],
                provenance=provenance,
                published_at=now,
                updated_at=now,
            )
            batch.append(VersionWrite(entry_id=key, version=version))
            if len(batch) == STORE_BATCH:
                catalogue.store.save(batch, now=now)
                batch = []
        if batch:
            catalogue.store.save(batch, now=now)
        catalogue.reindex()
    finally:
        services.stop()
    return time.perf_counter() - began


# ------------------------------------------------------------------ the server
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(folder: Path, extra: Sequence[str] = ()) -> tuple[subprocess.Popen[bytes], int]:
    """Start `voexec serve` on the catalogue under `folder`; returns it once it answers."""
    config = folder / "voexec.yaml"
    config.write_text(yaml.safe_dump(_settings(folder)))
    port = _free_port()
    command = [sys.executable, "-m", "voexec", "serve", "--config", str(config), *extra]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"voexec serve stopped: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/catalogue/search?limit=1")
            if connection.getresponse().status == 200:
                connection.close()
                return server, port
        except OSError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("voexec serve did not answer within 300 s")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its finished children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        found = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return []
    return [int(line) for line in found.stdout.split()]


def queries(
    count: int, specs_seed: int = 11, *, distinct: bool = False, facets: str | None = None
) -> list[str]:
    """Search paths: a word, two words or none, with zero to two facet filters.

    With `distinct`, no path repeats (so no answer can come from a cache); `facets` is sent as
    the `facets` parameter (the facets to count; all when None).
    """
    rng = random.Random(specs_seed)
    demo = [yaml.safe_load(p.read_text()) for p in sorted(DEMO.glob("*.yaml"))]
    subjects = sorted({s for d in demo for s in d.get("subjects", [])})
    licences = sorted({d["licence"] for d in demo if "licence" in d})
    kinds = ["docker-container", "jupyter-notebook", "python-program", "singularity-container"]
    paths: list[str] = []
    seen: set[str] = set()
    while len(paths) < count:
        parameters: list[tuple[str, str]] = []
        shape = rng.random()
        if shape < 0.6:
            parameters.append(("q", " ".join(rng.sample(WORDS, rng.choice((1, 1, 2))))))
        if rng.random() < 0.6:
            parameters.append(("subject", rng.choice(subjects)))
        if rng.random() < 0.4:
            parameters.append(("kind", rng.choice(kinds)))
        if rng.random() < 0.2:
            parameters.append(("licence", rng.choice(licences)))
        parameters.append(("limit", "20"))
        if facets is not None:
            parameters.append(("facets", facets))
        path = "/catalogue/search?" + urlencode(parameters)
        if distinct and path in seen:
            continue
        seen.add(path)
        paths.append(path)
    return paths


def send_all(port: int, paths: Sequence[str], clients: int) -> None:
    """Send each of `paths` once, spread over `clients` threads (a warm-up)."""

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for path in paths[number::clients]:
            connection.request("GET", path)
            connection.getresponse().read()
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def load(
    port: int, paths: Sequence[str], clients: int, seconds: float
) -> tuple[int, int, list[float], float]:
    """Send searches from `clients` threads for `seconds`; (requests, errors, latencies, total)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    totals = [0] * clients
    stop = time.perf_counter() + seconds
    decoder = msgspec.json.Decoder()

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        position = number * 7919
        while time.perf_counter() < stop:
            path = paths[position % len(paths)]
            position += 1
            began = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            latencies[number].append((time.perf_counter() - began) * 1000)
            if response.status != 200:
                errors[number] += 1
            else:
                totals[number] += decoder.decode(body)["total"]
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [value for mine in latencies for value in mine]
    return len(flat), sum(errors), flat, sum(totals) / max(len(flat), 1)


def measure(
    entries: int,
    clients: int,
    seconds: float,
    extra: Sequence[str] = (),
    *,
    distinct: bool = False,
    keep: Path | None = None,
    facets: str | None = None,
) -> Run:
    """Populate, serve, warm up, then load the server; returns the numbers.

    `distinct`: every request of the run asks something no earlier request asked (warm-up
    included), so the server's caches never answer. `keep`: the catalogue's folder, filled on
    the first run and reused by later ones (with the same `entries`).
    """
    with tempfile.TemporaryDirectory() as name:
        folder = keep or Path(name)
        if not (folder / "var").exists():
            folder.mkdir(parents=True, exist_ok=True)
            took = populate(folder, entries)
            print(f"populated {entries} entries in {took:.0f} s", flush=True)
        server, port = serve(folder, extra)
        try:
            if distinct:
                many = queries(40_000, distinct=True, facets=facets)
                warm, paths = many[:2_000], many[2_000:]
                load(port, warm, clients, min(3.0, seconds))  # warm-up: connections, reads
            else:
                paths = queries(500, facets=facets)
                # Every query a few times, so that each worker has answered (and kept) most:
                # the run then measures repeated searches, not the first answers.
                send_all(port, paths * WARM_ROUNDS, clients)
            pids = [server.pid, *_children(server.pid)]
            cpu_before = sum(_cpu_seconds(pid) for pid in pids)
            load_before = os.getloadavg()
            began = time.perf_counter()
            requests, errors, latencies, mean_total = load(port, paths, clients, seconds)
            elapsed = time.perf_counter() - began
            cpu = sum(_cpu_seconds(pid) for pid in pids) - cpu_before
            return Run(
                entries=entries,
                clients=clients,
                seconds=elapsed,
                requests=requests,
                errors=errors,
                latencies_ms=latencies,
                server_cpu_s=cpu,
                load_before=load_before,
                load_after=os.getloadavg(),
                mean_total=mean_total,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


def _loads(values: tuple[float, ...]) -> str:
    return ", ".join(f"{value:.1f}" for value in values)


def row(run: Run, label: str) -> str:
    cpu_ms = run.server_cpu_s / max(run.requests, 1) * 1000
    return (
        f"| {label} | {run.entries:,} | {run.clients} | {run.requests:,} | {run.errors} "
        f"| **{run.rate:.0f}** | {percentile(run.latencies_ms, 0.5):.1f} ms "
        f"| {percentile(run.latencies_ms, 0.99):.1f} ms | {cpu_ms:.2f} ms "
        f"| {_loads(run.load_before)} / {_loads(run.load_after)} |"
    )


def section(rows: Sequence[str]) -> str:
    lines = [
        HEADING,
        "",
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs shared with other work (load "
        "average before / after each run in the table).",
        "`voexec serve` (SQLite store, tantivy index) in its own process on a loopback port;",
        "client threads in the benchmark's process send `GET /catalogue/search` over keep-alive",
        "connections: text (60%), a subject (60%), a kind (40%) or a licence (20%) filter, all",
        "facet counts, 20 hits. Latency is what the clients saw; server CPU is the server",
        "process's user + system time divided by the requests. The clients share the CPUs with",
        "the server, so req/s is a floor. `python -m bench.bench_search_http --entries N`.",
        "",
        "| run | entries | clients | requests | errors | req/s | p50 | p99 | server CPU / req "
        "| load before / after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
    ]
    return "\n".join(lines) + "\n"


def run(
    entries: int = 10_000,
    clients: int = 4,
    seconds: float = 10.0,
    label: str = "",
    *,
    distinct: bool = False,
    keep: Path | None = None,
    extra: Sequence[str] = (),
    facets: str | None = None,
) -> str:
    """Run the benchmark, print the section and return it (markdown)."""
    warnings.simplefilter("ignore", DeprecationWarning)
    result = measure(entries, clients, seconds, extra, distinct=distinct, keep=keep, facets=facets)
    line = row(result, label or "one worker")
    print(line, flush=True)
    markdown = section([line])
    print(markdown)
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--label", default="")
    parser.add_argument(
        "--distinct", action="store_true", help="no query repeats: the caches never answer"
    )
    parser.add_argument("--keep", type=Path, help="fill this folder once and reuse it")
    parser.add_argument("--workers", type=int, help="voexec serve --workers N")
    parser.add_argument("--facets", help="facets to count, comma-separated (default: all)")
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOCS.name}")
    arguments = parser.parse_args()
    extra = ["--workers", str(arguments.workers)] if arguments.workers else []
    markdown = run(
        arguments.entries,
        arguments.clients,
        arguments.seconds,
        arguments.label,
        distinct=arguments.distinct,
        keep=arguments.keep,
        extra=extra,
        facets=arguments.facets,
    )
    if arguments.write_docs:
        write_sections([markdown])


if __name__ == "__main__":
    main()
