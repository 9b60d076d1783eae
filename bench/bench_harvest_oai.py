"""OAI-PMH harvest benchmark: records of a local publishing registry into the catalogue, per second.

A small static OAI-PMH server runs in its own process (so it does not share the harvest's GIL)
on a loopback port: `Identify`, `ListRecords` pages of `PAGE_SIZE` records with resumption
tokens (and `noRecordsMatch` for a `from` after every record's datestamp), and, beside each
record's voexec entry page (its `referenceURL`), the entry's Execution Broker description as
JSON with an `ETag` (a 304 to a matching `If-None-Match`), which the harvest reads for every
executable record. The N records are the demo
catalogue's executables recombined (`bench_search_http.variants`), each a `vr:Resource` with a
software subject, as voexec's own `/registry/oai` publishes them. Measured, through
`harvest.oaipmh.OaiPmhHarvest`:

- a first harvest into the real catalogue (SQL store, tantivy index, the vocabulary and broker
  checks of every description): records per second;
- the same source again when nothing changed (an incremental run: `from` the last start);
- a full re-run (`full=True`): every record listed and its description asked for again (a
  conditional GET: 304), none checked nor published, since the catalogue holds what each gave;
- the first harvest into a catalogue that accepts everything at once: harvesting's own cost.

Beside each run's CPU time a record (the harvest's process), the registry's (its process).

`run()` is what `python -m bench harvest_oai` calls (10,000 records); `python -m
bench.bench_harvest_oai [--records N] [--write-docs]` runs it alone. Needs ../shared/vocabularies
(or `$VOEXEC_TEST_SHARED`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import msgspec

from bench import DOCS, write_sections
from catalogue.model import Provenance, PublishOutcome, PublishReport, entry_id

HEADING = "## Harvest from OAI-PMH"
TARGET = 2_000
PAGE_SIZE = 100
DATESTAMP = "2026-01-15T10:00:00Z"
SOURCE = "bench-oai"
OAI_NS = (
    'xmlns="http://www.openarchives.org/OAI/2.0/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)


# ------------------------------------------------------------------ the static registry
def _envelope(body: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<OAI-PMH {OAI_NS}>'
        f"<responseDate>{DATESTAMP}</responseDate><request>http://bench/oai</request>"
        f"{body}</OAI-PMH>"
    ).encode()


def _record(base: str, key: str, spec: Mapping[str, Any]) -> str:
    subjects = "".join(
        f"<subject>{escape(term)}</subject>" for term in ["astronomy-software", *spec["subjects"]]
    )
    return (
        f"<record><header><identifier>ivo://bench.example/{key}</identifier>"
        f"<datestamp>{DATESTAMP}</datestamp><setSpec>ivo_managed</setSpec></header>"
        '<metadata><ri:Resource xmlns="" xmlns:ri="http://www.ivoa.net/xml/RegistryInterface/v1.0" '
        'xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0" xsi:type="vr:Resource" '
        f'created="{DATESTAMP}" updated="{DATESTAMP}" status="active">'
        f"<title>{escape(spec['title'])}</title><shortName>{escape(spec['name'][:16])}</shortName>"
        f"<identifier>ivo://bench.example/{key}</identifier>"
        "<curation><publisher>Bench</publisher><contact><name>Bench</name></contact></curation>"
        f"<content>{subjects}<description>{escape(spec['summary'])}</description>"
        f"<referenceURL>{base}/executables/{key}</referenceURL><type>Other</type></content>"
        "</ri:Resource></metadata></record>"
    )


def render(base: str, specs: Sequence[Mapping[str, Any]]) -> dict[str, bytes]:
    """Every answer of the registry by request key (`identify`, `page:<n>`, `desc:<key>`)."""
    answers: dict[str, bytes] = {
        "identify": _envelope(
            "<Identify><repositoryName>Bench</repositoryName>"
            f"<baseURL>{base}/oai</baseURL><protocolVersion>2.0</protocolVersion>"
            "<adminEmail>bench@example.org</adminEmail>"
            f"<earliestDatestamp>{DATESTAMP}</earliestDatestamp><deletedRecord>persistent"
            "</deletedRecord><granularity>YYYY-MM-DDThh:mm:ssZ</granularity></Identify>"
        ),
        "none": _envelope('<error code="noRecordsMatch">nothing changed since then</error>'),
    }
    keys = [f"tool-{number:06d}" for number in range(len(specs))]
    for start in range(0, len(specs), PAGE_SIZE):
        records = "".join(
            _record(base, keys[i], specs[i])
            for i in range(start, min(start + PAGE_SIZE, len(specs)))
        )
        following = start + PAGE_SIZE
        token = f"p{following}" if following < len(specs) else ""
        answers[f"page:{start}"] = _envelope(
            f"<ListRecords>{records}<resumptionToken>{token}</resumptionToken></ListRecords>"
        )
    for key, spec in zip(keys, specs, strict=True):
        answers[f"desc:{key}"] = msgspec.json.encode({"id": key, "spec": spec})
    return answers


def serve_static(answers_file: Path, port: int) -> None:
    """Answer OAI-PMH and entry descriptions from `render`'s answers until killed."""
    answers: dict[str, bytes] = msgspec.msgpack.decode(answers_file.read_bytes())
    etags = {
        key: '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        for key, body in answers.items()
        if key.startswith("desc:")
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real registry
        # Headers and body go out in two writes: without this, the second waits for the
        # client's delayed ACK (40 ms a request on Linux).
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            key = "missing"
            if url.path.startswith("/catalogue/executables/"):
                key = "desc:" + url.path.rsplit("/", 1)[1]
            elif url.path == "/oai":
                query = {name: values[0] for name, values in parse_qs(url.query).items()}
                if query.get("verb") == "Identify":
                    key = "identify"
                elif "resumptionToken" in query:
                    key = "page:" + query["resumptionToken"].removeprefix("p")
                elif query.get("from", "") > DATESTAMP:
                    key = "none"
                else:
                    key = "page:0"
            body = answers.get(key)
            etag = etags.get(key)
            if etag is not None and self.headers.get("If-None-Match") == etag:
                self.send_response(304)  # as a registry that validates its descriptions
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200 if body is not None else 404)
            content = "application/json" if key.startswith("desc:") else "text/xml"
            self.send_header("Content-Type", content)
            if etag is not None:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *_: object) -> None:
            """Quiet."""

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_registry(folder: Path, specs: Sequence[Mapping[str, Any]]) -> tuple[Any, str]:
    """Render and serve the registry in its own process; returns it and its OAI-PMH URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    answers = folder / "answers.msgpack"
    answers.write_bytes(msgspec.msgpack.encode(render(base, specs)))
    command = [sys.executable, "-m", "bench.bench_harvest_oai", "--serve", str(answers), str(port)]
    server = subprocess.Popen(command, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server, f"{base}/oai"
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(server.stderr.read().decode()) from None  # type: ignore[union-attr]
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the static registry did not start")


# ------------------------------------------------------------------ the harvest
class AcceptingCatalogue:
    """Stores nothing and accepts every description at once: harvesting's own cost."""

    def publish_all(
        self, documents: Iterable[tuple[str | bytes | Mapping[str, Any], Provenance]]
    ) -> list[PublishReport]:
        reports = []
        for _document, provenance in documents:
            key = entry_id(provenance.source, provenance.repository, provenance.path, "x")
            outcome = PublishOutcome(id=key, name="x", version="1", status="new")
            reports.append(PublishReport(entries=[outcome]))
        return reports

    def withdraw(self, entry_id: str) -> None:
        """Nothing to withdraw."""

    def withdraw_all(self, entry_ids: Sequence[str]) -> list[str]:
        """Nothing to withdraw."""
        return []

    def entry_ids(self, source: str, repository: str | None = None) -> list[str]:
        """Nothing stored."""
        return []

    def entry_ids_by_repository(
        self, source: str, repositories: Sequence[str]
    ) -> dict[str, list[str]]:
        """Nothing stored."""
        return {repository: [] for repository in repositories}


def process_cpu(pid: int) -> float:
    """CPU seconds a process has used (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    folder: Path, url: str, catalogue: Any, engine: Any, registry: int = 0
) -> dict[str, Any]:
    """A first harvest, an unchanged incremental run and a full re-run; seconds and reports.

    `registry`: the static registry's process id, whose CPU time is measured beside.
    """
    from core.clock import ManualClock
    from core.db import make_engine
    from core.settings import HarvestSettings, OaiPmhSource
    from harvest.oaipmh import OaiPmhHarvest
    from harvest.store_sql import HarvestStore

    if engine is None:
        engine = make_engine(f"sqlite:///{folder}/harvest-{id(catalogue)}.db")
    HarvestStore.migrate(engine)
    clock = ManualClock(datetime(2026, 3, 5, tzinfo=UTC))
    harvest = OaiPmhHarvest(
        HarvestSettings(sources=[OaiPmhSource(name=SOURCE, url=url)]),
        catalogue,
        HarvestStore(engine),
        clock,
    )
    numbers: dict[str, Any] = {}
    for name, full in (("first", False), ("quiet", False), ("full", True)):
        began, cpu = time.perf_counter(), time.process_time()
        serving = process_cpu(registry) if registry else 0.0
        report = harvest.run(SOURCE, full=full)
        numbers[f"{name}_s"] = time.perf_counter() - began
        numbers[f"{name}_cpu"] = time.process_time() - cpu  # the harvest's process only
        numbers[f"{name}_registry"] = (process_cpu(registry) - serving) if registry else 0.0
        numbers[name] = report
        clock.advance(datetime(2026, 3, 6, tzinfo=UTC) - datetime(2026, 3, 5, tzinfo=UTC))
    first = numbers["first"]
    assert first.status == "succeeded", (first.problems, first.project_reports[:2])
    assert first.counts.invalid == 0, [r.problems for r in first.project_reports[:3]]
    return numbers


def _settings(folder: Path) -> Any:
    from bench.bench_search_http import SHARED
    from core.settings import settings_from_mapping

    return settings_from_mapping(
        {"data_dir": str(folder / "var"), "vocabularies": {"path": str(SHARED), "offline": True}}
    )


def row(label: str, numbers: Mapping[str, Any], run: str, records: int, load: Any) -> str:
    """One table row: time, records/s, the harvest's and the registry's CPU a record, load."""
    loads = ", ".join(f"{value:.1f}" for value in load)
    seconds, cpu, serving = numbers[f"{run}_s"], numbers[f"{run}_cpu"], numbers[f"{run}_registry"]
    return (
        f"| {label} | {records:,} | {seconds:.2f} s | **{records / seconds:,.0f}/s** "
        f"| {cpu / records * 1000:.2f} ms | {serving / records * 1000:.2f} ms | {loads} |"
    )


def run(records: int = 10_000, label: str = "") -> str:
    """Run the benchmark, print the section and return it (markdown)."""
    from bench.bench_search_http import demo_specs, variants
    from voexec.cli import freeze_heap
    from voexec.wiring import build_services

    warnings.simplefilter("ignore", DeprecationWarning)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        services = build_services(_settings(folder))
        try:
            catalogue = services.components["catalogue"]
            specs = [msgspec.to_builtins(spec) for spec in variants(demo_specs(catalogue), records)]
            server, url = start_registry(folder, specs)
            freeze_heap()  # as the `voexec harvest` process does once its services are built
            try:
                lines: list[str] = []
                load = os.getloadavg()
                real = measure(folder, url, catalogue, services.components["engine"], server.pid)
                lines += [
                    row(f"{label}into the catalogue: first harvest", real, "first", records, load),
                    row(
                        f"{label}into the catalogue: nothing changed (incremental)",
                        real,
                        "quiet",
                        records,
                        os.getloadavg(),
                    ),
                    row(
                        f"{label}into the catalogue: full re-run, all unchanged",
                        real,
                        "full",
                        records,
                        os.getloadavg(),
                    ),
                ]
                load = os.getloadavg()
                only = measure(folder, url, AcceptingCatalogue(), None, server.pid)
                lines.append(
                    row(f"{label}harvest only: first harvest", only, "first", records, load)
                )
                print(
                    "first run:",
                    real["first"].counts,
                    "| quiet run:",
                    real["quiet"].projects,
                    "| full re-run:",
                    real["full"].counts,
                    flush=True,
                )
            finally:
                server.kill()
                server.wait(timeout=30)
        finally:
            services.stop()
    for line in lines:
        print(line, flush=True)
    return section(lines, records)


def section(lines: Sequence[str], records: int) -> str:
    return (
        "\n".join(
            [
                HEADING,
                "",
                f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs shared with other work. "
                f"A static OAI-PMH registry in its own process serves {records:,} executable",
                f"records ({PAGE_SIZE} a page) and each entry's Execution Broker description; "
                "`harvest.oaipmh.OaiPmhHarvest` lists them,",
                "reads each description and publishes them into the catalogue (SQLite, tantivy). "
                "`python -m bench.bench_harvest_oai --records N`.",
                "",
                "| run | records | time | records/s | CPU a record | registry CPU a record "
                "| load average |",
                "|---|---:|---:|---:|---:|---:|---|",
                *lines,
            ]
        )
        + "\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--label", default="")
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOCS.name}")
    parser.add_argument("--serve", nargs=2, metavar=("ANSWERS", "PORT"), help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.serve:
        serve_static(Path(arguments.serve[0]), int(arguments.serve[1]))
        return
    markdown = run(arguments.records, arguments.label)
    print(markdown)
    if arguments.write_docs:
        write_sections([markdown])


if __name__ == "__main__":
    main()
