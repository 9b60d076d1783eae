"""`voexec harvest`: run a harvest from a terminal, or print a stored report.

- `voexec harvest --source NAME [--full] [--progress] [--json] [--all]`: harvest one source,
  with a progress bar on stderr (when it is a terminal, or with `--progress`), then print the
  report: totals, and per project each problem as `ref: field: reason`;
- `voexec harvest --report RUN_ID [--json] [--all]`: print a stored report again;
- `voexec harvest --list`: the configured sources and their last run.

A `regtap` source's report also lists the Execution Brokers the registry knows, each with the
`broker.platforms` block that would add it as a remote platform.

Exit status: 0 when the run succeeded, 2 when some projects failed (partial), 1 when the
source itself failed. Problems in packagers' files do not change it: they are the report's
content, not a failure of the harvest. The pipeline comes from a factory passed in by
`voexec/wire_harvest.py` (this package never imports the composition root).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TextIO

from harvest.model import (
    CandidatePlatform,
    Counts,
    HarvestReport,
    ProjectReport,
    ProjectTotals,
    ReportProblem,
)

if TYPE_CHECKING:
    # The pipeline and the settings are imported when the command runs, not when the `voexec`
    # parser is built (the pipeline brings SQLAlchemy and httpx).
    from core.settings import Settings
    from harvest.pipeline import HarvestPipeline

PipelineFactory = Callable[["Settings"], AbstractContextManager["HarvestPipeline"]]
"""Opens the pipeline for some settings, and closes what it needed when the command ends."""
EXIT_STATUS = {"succeeded": 0, "running": 0, "failed": 1, "partial": 2}
BAR_WIDTH = 30


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], pipeline: PipelineFactory
) -> None:
    """Mount `harvest` on the root parser; `pipeline` opens the pipeline for the settings."""
    harvest = commands.add_parser(
        "harvest",
        help="harvest a source (GitLab, OAI-PMH, RegTAP) into the catalogue; print its report",
        description="Harvest a configured source: ivoa-executable.yaml files from GitLab, or an "
        "IVOA registry over OAI-PMH or RegTAP (whose report also lists the Execution Brokers "
        "it found as candidate remote platforms).",
    )
    harvest.add_argument("--config", help="YAML settings file (default: $VOEXEC_CONFIG)")
    what = harvest.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", metavar="NAME", help="the source to harvest (harvest.sources)")
    what.add_argument("--report", metavar="RUN_ID", help="print a stored report instead")
    what.add_argument("--list", action="store_true", help="list the sources and their last run")
    harvest.add_argument(
        "--full", action="store_true", help="read and publish every file, changed or not"
    )
    harvest.add_argument(
        "--progress", action="store_true", help="show the progress bar even when not on a TTY"
    )
    harvest.add_argument("--json", action="store_true", help="print the report as JSON")
    harvest.add_argument(
        "--all", action="store_true", help="list unchanged projects too, not only what changed"
    )
    harvest.set_defaults(func=lambda args: _run(args, pipeline))


def _run(args: argparse.Namespace, factory: PipelineFactory) -> int:
    import msgspec

    from core.settings import load_settings

    with factory(load_settings(args.config)) as pipeline:
        if args.list:
            for source in pipeline.sources():
                runs = pipeline.store.runs(source.name, 1)
                last = (
                    f"last run {runs[0].started_at:%Y-%m-%d %H:%M} {runs[0].status}" if runs else ""
                )
                print(f"{source.name:<24} {source.url:<40} {last}")
            return 0
        if args.report:
            report = pipeline.store.report(args.report)
        else:
            bar = ProgressBar(sys.stderr) if args.progress or sys.stderr.isatty() else None
            report = pipeline.run(args.source, bar, full=args.full)
            if bar:
                bar.close()
    if args.json:
        print(msgspec.json.encode(report).decode())
    else:
        print(format_report(report, everything=args.all), end="")
    return EXIT_STATUS[report.status]


class ProgressBar:
    """`[#####-----] 12/33 projects` redrawn in place on a terminal stream."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        """Draw the bar for `done` of `total` projects."""
        filled = BAR_WIDTH * done // total if total else BAR_WIDTH
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} projects")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _projects_line(totals: ProjectTotals) -> str:
    parts = [
        f"{count} {name}"
        for name, count in (
            ("harvested", totals.harvested),
            ("unchanged", totals.unchanged),
            ("without the file", totals.no_file),
            ("failed", totals.failed),
            ("deleted", totals.deleted),
            ("skipped", totals.skipped),
        )
        if count
    ]
    return f"projects: {totals.found} found" + (f" ({', '.join(parts)})" if parts else "")


def _counts_line(counts: Counts) -> str:
    return (
        f"entries:  {counts.found} found, {counts.new} new, {counts.updated} updated, "
        f"{counts.unchanged} unchanged, {counts.withdrawn} withdrawn, {counts.invalid} invalid"
    )


def _problem_line(problem: ReportProblem, warning: bool = False) -> str:
    where = f"{problem.ref}: " if problem.ref else ""
    hint = f" (did you mean: {', '.join(problem.suggestions)}?)" if problem.suggestions else ""
    prefix = "warning: " if warning else ""
    # A reason may span lines (a parser's excerpt): keep it inside its project's block.
    reason = problem.reason.strip().replace("\n", "\n      ")
    return f"    {prefix}{where}{problem.field}: {reason}{hint}"


def _project_block(project: ProjectReport) -> list[str]:
    counts = project.counts
    changes = [
        f"{n} {name}"
        for name, n in (
            ("new", counts.new),
            ("updated", counts.updated),
            ("withdrawn", counts.withdrawn),
            ("invalid", counts.invalid),
        )
        if n
    ]
    summary = f" ({', '.join(changes)})" if changes else ""
    lines = [f"  {project.path} [{project.status}]{summary}  {project.web_url}".rstrip()]
    lines += [_problem_line(problem) for problem in project.problems]
    lines += [_problem_line(warning, warning=True) for warning in project.warnings]
    return lines


def _platforms_block(platforms: list[CandidatePlatform]) -> list[str]:
    """Brokers a registry lists, each with the settings that would add it as a platform."""
    if not platforms:
        return []
    lines = ["", f"candidate remote platforms: {len(platforms)} (add one with its settings):"]
    for platform in platforms:
        lines.append(f"  {platform.title} <{platform.ivoid}>  {platform.url}")
        lines += [f"    {line}" for line in platform.settings.rstrip().splitlines()]
    return lines


def format_report(report: HarvestReport, *, everything: bool = False) -> str:
    """The report as a packager reads it: totals, then each project with its problems.

    Projects with nothing to say (unchanged, no file, no problem) are left out unless
    `everything` is set.
    """
    finished = (
        f" in {(report.finished_at - report.started_at).total_seconds():.1f} s"
        if (report.finished_at)
        else ""
    )
    lines = [
        f"harvest of {report.source}: {report.status}{finished} (run {report.run_id})",
        _projects_line(report.projects),
        _counts_line(report.counts),
    ]
    lines += [_problem_line(problem) for problem in report.problems]
    lines += _platforms_block(report.platforms)
    shown = [
        project
        for project in report.project_reports
        if everything
        or project.problems
        or project.warnings
        or project.status in {"failed", "deleted"}
        or project.counts.new
        or project.counts.updated
        or project.counts.withdrawn
    ]
    if shown:
        lines.append("")
    for project in shown:
        lines += _project_block(project)
    return "\n".join(lines) + "\n"
