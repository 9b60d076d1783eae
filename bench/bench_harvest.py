"""Harvest benchmark: GitLab projects into the catalogue, entries per second.

A fake GitLab (`tests/fakes/gitlab.py`, REST v4 and GraphQL over a loopback socket, read by
`harvest.gitlab.GitLabClient` for real: listings through python-gitlab, branches and tags
through `harvest.http_get.KeepAlive`, files through GraphQL over urllib3) serves N projects in
four groups, each with a default branch and two tags, so 3 entry versions per project.
`VOEXEC_BENCH_GRAPHQL=0` reads the files by REST instead (as from an instance that refuses
GraphQL). Measured:

- a first, full harvest into the real catalogue (SQL store, tantivy index, the vocabulary and
  broker checks of every file): entry versions per second;
- the same into a catalogue that accepts everything at once, to show what harvesting itself
  costs (GitLab requests, state and reports in SQLite);
- a second run when nothing changed (only the listing is asked for): projects per second;
- a run after 10% of the projects pushed a new commit.

The fake GitLab runs in a process of its own (`--serve-gitlab`, driven over a pipe), so that
it does not share the harvest's GIL; on a machine of two CPUs it still competes for them. CPU
time per entry is given beside each figure: the harvest's process, and the fake's apart.
`run()` is what `python -m bench` calls; `python -m bench.bench_harvest [--projects N]
[--write-docs]` runs it alone, and
`--write-docs` replaces the `## Harvest` section of docs/benchmarks.md. The real-catalogue
measurement needs ../shared/vocabularies (or `$VOEXEC_TEST_SHARED`); without it, it is skipped.
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
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench import DOCS, write_sections
from catalogue.model import Provenance, PublishOutcome, PublishReport, entry_id
from core.clock import ManualClock
from core.db import make_engine
from core.settings import GitLabSource, HarvestSettings, settings_from_mapping
from harvest.gitlab import GitLabClient
from harvest.model import HarvestReport
from harvest.pipeline import HarvestPipeline, Publisher
from harvest.store_sql import HarvestStore
from tests.fakes.gitlab import FakeGitLab

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VOEXEC_TEST_SHARED", ROOT.parent / "shared")) / "vocabularies"
HEADING = "## Harvest"
TOKEN = "glpat-bench"
FILE = "ivoa-executable.yaml"
GROUPS = ("imaging", "radio/pulsars", "spectra", "cubes")
DOCKER = (
    "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/executable/"
    "docker-container.yaml"
)


def document(name: str, version: str) -> str:
    """A realistic publisher file (the shape of the demo catalogue's)."""
    return yaml.safe_dump(
        {
            "name": name,
            "title": f"{name.replace('-', ' ').title()}",
            "summary": "Finds and measures sources in astronomical images.",
            "description": "Detects sources above a threshold, deblends them, measures them.\n" * 5,
            "version": version,
            "authors": [{"name": "Ada Lovelace", "affiliation": "Observatory"}],
            "licence": "GPL-3.0-or-later",
            "keywords": ["photometry", "detection", "catalogue"],
            "subjects": ["galaxies", "radio-astronomy"],
            "functions": ["imaging", "photometry"],
            "messengers": ["Optical"],
            "needs": {"cores": 4, "memory": 8, "duration": "PT1H"},
            "links": {"documentation": f"https://docs.example.org/{name}"},
            "executable": {
                "kind": DOCKER,
                "image": {
                    "locations": [f"registry.example.org/{name}:{version}"],
                    "digest": "sha256:" + hashlib.sha256(f"{name}{version}".encode()).hexdigest(),
                    "platform": {"architecture": "amd64", "os": "linux"},
                },
            },
        },
        sort_keys=False,
    )


class AcceptingCatalogue:
    """A catalogue that stores nothing and accepts every file: harvest's own cost."""

    def publish_all(
        self, documents: Iterable[tuple[str | bytes | Mapping[str, Any], Provenance]]
    ) -> list[PublishReport]:
        reports = []
        for _document, provenance in documents:
            key = entry_id(provenance.source, provenance.repository, provenance.path, "x")
            label = provenance.version_label("1")
            reports.append(
                PublishReport(
                    entries=[PublishOutcome(id=key, name="x", version=label, status="new")]
                )
            )
        return reports

    def withdraw(self, entry_id: str) -> None:
        """Nothing to withdraw."""


def populate(gitlab: FakeGitLab, projects: int) -> list[Any]:
    made = []
    for i in range(projects):
        name = f"tool-{i:05d}"
        project = gitlab.add_project(
            f"astro/{GROUPS[i % len(GROUPS)]}/{name}", {FILE: document(name, "1.0")}
        )
        gitlab.tag(project, "v1.0")
        gitlab.commit(project, {FILE: document(name, "1.1")})
        gitlab.tag(project, "v1.1")
        made.append(project)
    return made


def push(gitlab: FakeGitLab, made: list[Any]) -> None:
    """A new commit on the default branch of every tenth project."""
    for project in made[::10]:
        gitlab.commit(project, {FILE: document(project.path.rsplit("/", 1)[1], "1.2")})


def serve_gitlab(projects: int, port: int) -> None:
    """Serve the fake GitLab of `measure` from this process until stdin ends.

    Says `ready` once it serves; each `push` line on stdin pushes (`push`) and answers `ok`.
    """
    gitlab = FakeGitLab(token=TOKEN).start(port)
    try:
        made = populate(gitlab, projects)
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() == "push":
                push(gitlab, made)
                print("ok", flush=True)
    finally:
        gitlab.stop()


class GitLabProcess:
    """The fake GitLab in a process of its own, so that it does not share the harvest's GIL."""

    def __init__(self, projects: int) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "bench.bench_harvest", "--serve-gitlab", str(projects)]
        self.process = subprocess.Popen(
            [*command, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._expect("ready")

    def _expect(self, word: str) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != word:
            self.close()
            raise RuntimeError(f"the fake GitLab said {line!r}, not {word!r}")

    def push(self) -> None:
        """A new commit on the default branch of every tenth project."""
        assert self.process.stdin is not None
        self.process.stdin.write("push\n")
        self.process.stdin.flush()
        self._expect("ok")

    def cpu_seconds(self) -> float:
        """CPU time the fake has used so far (Linux: /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def timed(step: Callable[[], HarvestReport]) -> tuple[float, float, HarvestReport]:
    """Wall seconds, this process's CPU seconds, and the report of a run."""
    began, cpu = time.perf_counter(), time.process_time()
    report = step()
    return time.perf_counter() - began, time.process_time() - cpu, report


Catalogue = tuple[Publisher, Any, Callable[[], None]]
"""A publisher, the engine harvest state goes to (None: a file of its own), and a closer."""


READERS = int(os.environ.get("VOEXEC_BENCH_READERS", "4"))
"""Projects read at once (`HarvestPipeline(readers=...)`, the `harvest.readers` setting)."""
GRAPHQL = os.environ.get("VOEXEC_BENCH_GRAPHQL", "1") != "0"
"""Files read through GitLab's GraphQL API (else by REST, one request a file)."""


def measure(catalogue: Callable[[Path], Catalogue], projects: int) -> dict[str, float]:
    """Three runs over one fake GitLab; returns the numbers of the section."""
    gitlab = GitLabProcess(projects)
    with tempfile.TemporaryDirectory() as folder:
        publisher, engine, close = catalogue(Path(folder))
        if engine is None:
            engine = make_engine(f"sqlite:///{folder}/harvest.db")
        HarvestStore.migrate(engine)
        source = GitLabSource(name="bench", url=gitlab.url, groups=["astro"], token_env="T")
        pipeline = HarvestPipeline(
            HarvestSettings(sources=[source]),
            publisher,
            HarvestStore(engine),
            lambda s: GitLabClient(s.url, TOKEN, max_retries=3, graphql=GRAPHQL),
            ManualClock(datetime(2026, 3, 5, tzinfo=UTC)),
            readers=READERS,
        )
        load = os.getloadavg()
        fake_cpu = gitlab.cpu_seconds()
        first_s, first_cpu, first = timed(lambda: pipeline.run("bench"))
        fake_cpu = gitlab.cpu_seconds() - fake_cpu
        quiet_s, quiet_cpu, _ = timed(lambda: pipeline.run("bench"))
        gitlab.push()
        changed_s, changed_cpu, changed = timed(lambda: pipeline.run("bench"))
        close()
        gitlab.close()
        assert first.status == "succeeded", first.problems
        assert first.counts.invalid == 0, [p.problems for p in first.project_reports][:3]
        return {
            "entries": first.counts.found,
            "first_s": first_s,
            "first_cpu": first_cpu,
            "fake_cpu": fake_cpu,
            "quiet_s": quiet_s,
            "quiet_cpu": quiet_cpu,
            "changed_s": changed_s,
            "changed_cpu": changed_cpu,
            "changed_entries": changed.counts.updated + changed.counts.new,
            "load": load,
        }


def accepting(_folder: Path) -> Catalogue:
    return AcceptingCatalogue(), None, lambda: None


def real_catalogue(folder: Path) -> Catalogue:
    from voexec.wiring import build_services

    settings = settings_from_mapping(
        {"data_dir": str(folder / "var"), "vocabularies": {"path": str(SHARED), "offline": True}}
    )
    services = build_services(settings)
    return services.components["catalogue"], services.components["engine"], services.stop


def rows(label: str, numbers: dict[str, Any], projects: int) -> list[str]:
    entries = numbers["entries"]
    load = ", ".join(f"{value:.1f}" for value in numbers["load"])
    return [
        f"| {label}: first harvest, {projects} projects, {entries:.0f} entry versions "
        f"| {numbers['first_s']:.2f} s | **{entries / numbers['first_s']:.0f} entries/s** "
        f"| {numbers['first_cpu'] / entries * 1000:.2f} ms an entry "
        f"(fake GitLab: {numbers['fake_cpu'] / entries * 1000:.2f} ms) | {load} |",
        f"| {label}: nothing changed | {numbers['quiet_s']:.2f} s "
        f"| {projects / numbers['quiet_s']:.0f} projects/s "
        f"| {numbers['quiet_cpu'] / projects * 1000:.2f} ms a project | |",
        f"| {label}: 10% of projects pushed ({numbers['changed_entries']:.0f} entries) "
        f"| {numbers['changed_s']:.2f} s | {projects / numbers['changed_s']:.0f} projects/s "
        f"| {numbers['changed_cpu'] / projects * 1000:.2f} ms a project | |",
    ]


def section(table: list[str], projects: int) -> str:
    lines = [
        HEADING,
        "",
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs. A fake GitLab in a process of "
        f"its own serves {projects} projects",
        "in four groups (one a subgroup), each with a default branch and two tags: 3 entry "
        "versions a project.",
        f"Read over a loopback socket by {READERS} thread(s), files "
        f"{'through GraphQL' if GRAPHQL else 'by REST'}; state and reports in SQLite. "
        "CPU: the harvest's process.",
        "",
        "| run | time | throughput | CPU | load average |",
        "|---|---|---|---|---|",
        *table,
    ]
    return "\n".join(lines) + "\n"


def run(projects: int = 200) -> str:
    """Run the benchmark, print the section and return it (markdown)."""
    warnings.simplefilter("ignore", DeprecationWarning)  # third-party noise is not measured
    table = rows("harvest only", measure(accepting, projects), projects)
    if (SHARED / "uat.desise").is_file() or (SHARED / "uat.ttl").is_file():
        table = rows("into the catalogue", measure(real_catalogue, projects), projects) + table
    else:
        table.append(f"| into the catalogue | skipped: {SHARED} not found | |")
    markdown = section(table, projects)
    print(markdown)
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--projects", type=int, default=200, help="projects served (default 200)")
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOCS.name}")
    parser.add_argument("--serve-gitlab", nargs=2, type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_gitlab:
        serve_gitlab(*arguments.serve_gitlab)
        return
    markdown = run(arguments.projects)
    if arguments.write_docs:
        write_sections([markdown])


if __name__ == "__main__":
    main()
