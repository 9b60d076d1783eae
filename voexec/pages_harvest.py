"""The harvest web page: `GET /harvest?run=`, the sources, recent runs, and one run's report.

A RegTAP run's report also lists the Execution Brokers the registry knows (candidate remote
platforms), each with the settings block that would add it.

A run's report lists the projects with problems first (failed, or with problems or warnings),
then the others. Imports Litestar, `core.settings` and `voexec.pages` (the pipeline comes in as
the dependency `harvest`); not the other page modules.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Final

from litestar import Request, Response, get
from litestar.params import FromQuery

from core.settings import CONFIG_ENV, GitLabSource, OaiPmhSource, RegTapSource
from voexec.pages import Harvest, PagesDependency

__all__ = ["harvest_page"]

SOURCE_TYPES: Final[dict[type, str]] = {
    GitLabSource: "GitLab",
    OaiPmhSource: "OAI-PMH",
    RegTapSource: "RegTAP",
}
"""How the page names each kind of source."""
RUN_TONES: Final = {"succeeded": "success", "partial": "warning", "failed": "danger"}
"""The badge colour of a run's outcome."""


def _config_path() -> str:
    """The settings file named by `$VOEXEC_CONFIG`, as an absolute path; empty when unset.

    The page shows it where it says how to add a source. `voexec serve --config FILE` does not
    reach the app, so then the page names the option instead of a path.
    """
    named = os.environ.get(CONFIG_ENV, "").strip()
    return str(Path(named).absolute()) if named else ""


@get("/harvest", sync_to_thread=True, name="page-harvest")
def harvest_page(
    request: Request[Any, Any, Any],
    harvest: Harvest,
    pages: PagesDependency,
    run: FromQuery[str | None] = None,
) -> Response[str]:
    """Harvest sources with their last run, recent runs, and one run's report per project."""
    started = time.perf_counter()
    sources = [(source, harvest.store.runs(source.name, 1)) for source in harvest.sources()]
    runs = harvest.store.runs(None, 20)
    chosen = run or (runs[0].run_id if runs else None)
    report = harvest.store.report(chosen) if chosen else None
    projects = report.project_reports if report else []
    with_problems = [p for p in projects if p.problems or p.warnings or p.status == "failed"]
    return pages.html(
        request,
        started,
        "harvest.html",
        page="harvest",
        nav="harvest",
        sources=[
            (
                source,
                SOURCE_TYPES.get(type(source), "registry"),
                last[0] if last else None,
            )
            for source, last in sources
        ],
        runs=runs,
        report=report,
        with_problems=with_problems,
        others=[p for p in projects if p not in with_problems],
        run_tones=RUN_TONES,
        config_path="" if sources else _config_path(),
    )
