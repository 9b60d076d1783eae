"""The SQL harvest store: migrations, project state, runs and their reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import inspect

from core.db import make_engine
from harvest.model import (
    Counts,
    ProjectReport,
    ProjectState,
    PublishedVersion,
    RefState,
    ReportProblem,
    RunNotFound,
    RunSummary,
)
from harvest.store_sql import VERSION_TABLE, HarvestStore, ProjectSave

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def run(run_id: str, started: datetime, status: str = "running") -> RunSummary:
    return RunSummary(
        run_id=run_id, source="lab", trigger="manual", status=status, started_at=started
    )  # type: ignore[arg-type]


def state(project_id: int, *, commit: str = "c1") -> ProjectState:
    return ProjectState(
        source="lab",
        project_id=project_id,
        path=f"astro/p{project_id}",
        web_url=f"https://gitlab.example.org/astro/p{project_id}",
        last_activity_at=T0,
        settings_key="k",
        refs=(
            RefState(
                name="main",
                kind="default",
                commit=commit,
                content_hash="h",
                published=(PublishedVersion(id=f"p{project_id}-x", version="latest"),),
                problems=(ReportProblem(field="licence", reason="unknown", ref="main"),),
            ),
        ),
        harvested_at=T0,
    )


def test_migrations_create_the_tables_with_their_own_version_table_and_can_run_twice(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    HarvestStore.migrate(engine)
    HarvestStore.migrate(engine)

    tables = set(inspect(engine).get_table_names())

    assert {"harvest_projects", "harvest_runs", "harvest_project_reports", VERSION_TABLE} <= tables
    assert VERSION_TABLE == "alembic_version_harvest"


def test_project_state_round_trips_and_is_replaced_then_forgotten(store):
    store.start_run(run("r1", T0))
    report = ProjectReport(project_id=1, path="astro/p1", status="harvested")

    store.save_project("r1", report, source="lab", state=state(1))
    store.save_project("r1", report, source="lab", state=state(1, commit="c2"))

    assert store.state("lab", 1) == state(1, commit="c2")
    assert store.states("lab") == {1: state(1, commit="c2")}
    assert store.states("other") == {}
    store.save_project("r1", report, source="lab", forget=True)
    assert store.state("lab", 1) is None


def test_a_batch_of_projects_is_saved_as_one_by_one_would_be(store):
    store.start_run(run("r1", T0))
    store.save_project(
        "r1",
        ProjectReport(project_id=3, path="astro/p3", status="harvested"),
        source="lab",
        state=state(3),
    )
    saves = [
        ProjectSave(ProjectReport(project_id=1, path="astro/p1", status="harvested"), state(1)),
        ProjectSave(ProjectReport(project_id=2, path="astro/p2", status="failed")),
        ProjectSave(ProjectReport(project_id=3, path="astro/p3", status="deleted"), forget=True),
    ]
    store.save_projects("r1", saves, source="lab")
    # saved again (a webhook's run of the same project): replaced, not doubled
    store.save_projects("r1", [ProjectSave(saves[0].report, state(1, commit="c2"))], source="lab")
    store.save_projects("r1", [], source="lab")

    assert store.states("lab") == {1: state(1, commit="c2")}
    store.finish_run(msgspec.structs.replace(run("r1", T0), status="partial", finished_at=T0))
    reports = store.report("r1").project_reports
    assert sorted((r.project_id, r.status) for r in reports) == [
        (1, "harvested"),
        (2, "failed"),
        (3, "deleted"),
    ]


def test_a_report_without_state_keeps_the_stored_state(store):
    store.start_run(run("r1", T0))
    store.save_project(
        "r1",
        ProjectReport(project_id=1, path="astro/p1", status="harvested"),
        source="lab",
        state=state(1),
    )
    store.start_run(run("r2", T0 + timedelta(hours=1)))

    store.save_project(
        "r2", ProjectReport(project_id=1, path="astro/p1", status="failed"), source="lab"
    )

    assert store.state("lab", 1) == state(1)


def test_runs_are_listed_newest_first_and_reports_put_problems_first(store):
    first, second = run("r1", T0), run("r2", T0 + timedelta(hours=1))
    store.start_run(first)
    store.start_run(second)
    store.save_project(
        "r2", ProjectReport(project_id=1, path="astro/a", status="unchanged"), source="lab"
    )
    store.save_project(
        "r2",
        ProjectReport(
            project_id=2,
            path="astro/z",
            status="harvested",
            problems=[ReportProblem(field="name", reason="is required", ref="v1")],
        ),
        source="lab",
    )
    second.status = "succeeded"
    second.finished_at = T0 + timedelta(hours=1, minutes=2)
    second.counts = Counts(found=2, unchanged=1, invalid=1)
    store.finish_run(second)

    report = store.report("r2")

    assert [r.run_id for r in store.runs("lab")] == ["r2", "r1"]
    assert [r.run_id for r in store.runs(limit=1)] == ["r2"]
    assert report.status == "succeeded"
    assert report.finished_at == second.finished_at
    assert report.counts == Counts(found=2, unchanged=1, invalid=1)
    assert [p.path for p in report.project_reports] == ["astro/z", "astro/a"]
    assert report.project_reports[0].problems[0].ref == "v1"
    assert [p.path for p in store.report("r2", project="astro/a").project_reports] == ["astro/a"]
    assert [p.path for p in store.report("r2", problems_only=True).project_reports] == ["astro/z"]


def test_a_page_of_reports_is_saved_at_once_and_read_back_as_saved(store):
    store.start_run(run("r1", T0))
    reports = [
        ProjectReport(project_id=n, path=f"ivo://registry.test/r{n}", status="harvested")
        for n in range(1, 4)
    ]
    reports[1].problems.append(ReportProblem(field="licence", reason="unknown"))
    store.save_reports("r1", reports)
    store.save_reports("r1", [])

    read = store.report("r1").project_reports
    assert [r.path for r in read] == [
        "ivo://registry.test/r2",
        "ivo://registry.test/r1",
        "ivo://registry.test/r3",
    ]
    assert read[0].problems[0].field == "licence"
    assert store.states("lab") == {}


def test_an_unknown_run_is_not_found(store):
    with pytest.raises(RunNotFound):
        store.report("nope")


def test_pruning_keeps_the_newest_runs_and_never_a_running_one(store):
    for i in range(5):
        summary = run(f"r{i}", T0 + timedelta(hours=i), status="succeeded")
        summary.finished_at = summary.started_at
        store.start_run(summary)
        store.finish_run(summary)
        store.save_project(
            summary.run_id, ProjectReport(project_id=1, path="p", status="unchanged"), source="lab"
        )
    store.start_run(run("old-but-running", T0 - timedelta(days=1)))

    removed = store.prune("lab", keep=2)

    assert removed == 3
    assert [r.run_id for r in store.runs("lab")] == ["r4", "r3", "old-but-running"]
    with pytest.raises(RunNotFound):
        store.report("r0")
