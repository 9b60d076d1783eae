"""SQL persistence of harvests: what each project looked like last time, and every run's report.

Three tables (migrations in `harvest/migrations/`, version table `alembic_version_harvest`):

- `harvest_projects`: one row per (source, project) holding its `ProjectState` (last activity,
  ref commits, file digests, what it has in the catalogue), so the next run skips what did not
  change and withdraws what disappeared;
- `harvest_runs`: one row per run with its totals and source-level problems;
- `harvest_project_reports`: one row per project of a run, with its problems.

A project's report and its new state are written in one transaction, so a run that dies half
way leaves every finished project consistent and the rest to be read again. Structs are stored
as msgspec JSON in text columns; the columns beside them exist for lookups and ordering.

Imports SQLAlchemy; must not import python-gitlab, Litestar or the catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple, cast

import msgspec
from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from core.db import Base, migrate, read_transaction, session_factory, write_transaction
from harvest.model import (
    CandidatePlatform,
    Counts,
    HarvestReport,
    ProjectReport,
    ProjectState,
    ProjectTotals,
    ReportProblem,
    RunNotFound,
    RunSummary,
)

MIGRATIONS: Final = Path(__file__).with_name("migrations")
VERSION_TABLE: Final = "alembic_version_harvest"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite forgets the zone; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC; a naive datetime is a bug, not something to guess about."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("harvest times must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read back aware UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ProjectStateRow(Base):
    """The last successful harvest of one project of one source."""

    __tablename__ = "harvest_projects"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    path: Mapped[str] = mapped_column(String(500))
    last_activity_at: Mapped[datetime] = mapped_column(UtcDateTime)
    harvested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    body: Mapped[str] = mapped_column(Text)


class RunRow(Base):
    """One harvest run."""

    __tablename__ = "harvest_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), index=True)
    trigger: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    summary: Mapped[str] = mapped_column(Text)
    """JSON: project totals, entry counts and source-level problems."""


class ProjectReportRow(Base):
    """What one run did with one project."""

    __tablename__ = "harvest_project_reports"

    run_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("harvest_runs.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    path: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20))
    has_problems: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[str] = mapped_column(Text)


class ProjectSave(NamedTuple):
    """One project's report and what becomes of its stored state (`HarvestStore.save_projects`)."""

    report: ProjectReport
    state: ProjectState | None = None
    """The project's new state; None keeps the stored one (unchanged or failed)."""
    forget: bool = False
    """Delete the stored state (the project is gone and its entries withdrawn)."""


class _Summary(msgspec.Struct, kw_only=True):
    """The JSON of `harvest_runs.summary`."""

    projects: ProjectTotals
    counts: Counts
    problems: list[ReportProblem] = []
    platforms: list[CandidatePlatform] = []


_encode = msgspec.json.encode


def _decode_state(text: str) -> ProjectState:
    return msgspec.json.decode(text, type=ProjectState)


class HarvestStore:
    """Reads and writes harvest state and reports through one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = session_factory(engine)

    @staticmethod
    def migrate(engine: Engine) -> None:
        """Create or upgrade the harvest tables."""
        migrate(engine, MIGRATIONS, VERSION_TABLE)

    # ---------------------------------------------------------------------- state
    def states(self, source: str) -> dict[int, ProjectState]:
        """Every project the last runs of `source` left, by project id."""
        with read_transaction(self._sessions) as session:
            rows = session.scalars(select(ProjectStateRow).where(ProjectStateRow.source == source))
            return {row.project_id: _decode_state(row.body) for row in rows}

    def state(self, source: str, project_id: int) -> ProjectState | None:
        """One project's state, or None when it was never harvested (or was deleted)."""
        with read_transaction(self._sessions) as session:
            row = session.get(ProjectStateRow, (source, project_id))
            return _decode_state(row.body) if row else None

    # ---------------------------------------------------------------------- runs
    def start_run(self, run: RunSummary) -> None:
        """Record a run that has just started."""
        with write_transaction(self._sessions) as session:
            session.add(
                RunRow(
                    id=run.run_id,
                    source=run.source,
                    trigger=run.trigger,
                    status=run.status,
                    started_at=run.started_at,
                    finished_at=run.finished_at,
                    summary=self._summary(run),
                )
            )

    def save_project(
        self,
        run_id: str,
        report: ProjectReport,
        *,
        source: str,
        state: ProjectState | None = None,
        forget: bool = False,
    ) -> None:
        """Record a project's report and, in the same transaction, its new state.

        Args:
            run_id: The run the report belongs to.
            report: What the run did with the project.
            source: The source the project belongs to.
            state: The project's new state; None keeps the stored one (unchanged or failed).
            forget: Delete the stored state (the project is gone and its entries withdrawn).
        """
        self.save_projects(run_id, [ProjectSave(report, state, forget)], source=source)

    def save_projects(self, run_id: str, saves: Sequence[ProjectSave], *, source: str) -> None:
        """`save_project` for several projects of a run, in one transaction.

        A few statements whatever their number (Core `executemany`, no ORM objects): a report
        or state stored before for the same project is replaced.
        """
        if not saves:
            return
        reports = [
            {
                "run_id": run_id,
                "project_id": save.report.project_id,
                "path": save.report.path,
                "status": save.report.status,
                "has_problems": bool(save.report.problems),
                "body": _encode(save.report).decode(),
            }
            for save in saves
        ]
        replaced = [
            {"k_source": source, "k_id": save.report.project_id}
            for save in saves
            if save.forget or save.state is not None
        ]
        states = [
            {
                "source": save.state.source,
                "project_id": save.state.project_id,
                "path": save.state.path,
                "last_activity_at": save.state.last_activity_at,
                "harvested_at": save.state.harvested_at,
                "body": _encode(save.state).decode(),
            }
            for save in saves
            if save.state is not None and not save.forget
        ]
        reports_table = cast("Table", ProjectReportRow.__table__)
        states_table = cast("Table", ProjectStateRow.__table__)
        with write_transaction(self._sessions) as session:
            connection = session.connection()
            connection.execute(
                delete(reports_table).where(
                    reports_table.c.run_id == bindparam("k_run"),
                    reports_table.c.project_id == bindparam("k_id"),
                ),
                [{"k_run": run_id, "k_id": row["project_id"]} for row in reports],
            )
            connection.execute(insert(reports_table), reports)
            if replaced:
                connection.execute(
                    delete(states_table).where(
                        states_table.c.source == bindparam("k_source"),
                        states_table.c.project_id == bindparam("k_id"),
                    ),
                    replaced,
                )
            if states:
                connection.execute(insert(states_table), states)

    def save_reports(self, run_id: str, reports: Sequence[ProjectReport]) -> None:
        """Record many new reports of a run (no stored state) in one transaction.

        What a registry harvest does once per page: one commit instead of one per record. Each
        (run, project number) must be new to the run; `save_project` replaces one instead.
        """
        if not reports:
            return
        rows = [
            {
                "run_id": run_id,
                "project_id": report.project_id,
                "path": report.path,
                "status": report.status,
                "has_problems": bool(report.problems),
                "body": _encode(report).decode(),
            }
            for report in reports
        ]
        with write_transaction(self._sessions) as session:
            session.execute(insert(ProjectReportRow), rows)

    def finish_run(self, run: RunSummary) -> None:
        """Record a run's end: status, time, totals."""
        with write_transaction(self._sessions) as session:
            row = session.get(RunRow, run.run_id)
            if row is None:
                raise RunNotFound(f"no harvest run {run.run_id}")
            row.status = run.status
            row.finished_at = run.finished_at
            row.summary = self._summary(run)

    def runs(self, source: str | None = None, limit: int = 20) -> list[RunSummary]:
        """The newest runs first, of one source or of all."""
        query = select(RunRow).order_by(RunRow.started_at.desc(), RunRow.id).limit(limit)
        if source is not None:
            query = query.where(RunRow.source == source)
        with read_transaction(self._sessions) as session:
            return [self._run(row) for row in session.scalars(query)]

    def report(
        self, run_id: str, *, project: str | None = None, problems_only: bool = False
    ) -> HarvestReport:
        """One run with its project reports: problems first, then by path.

        Args:
            run_id: The run.
            project: Only the project with this full path.
            problems_only: Only projects with problems.

        Raises:
            RunNotFound: no such run.
        """
        with read_transaction(self._sessions) as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise RunNotFound(f"no harvest run {run_id}")
            query = (
                select(ProjectReportRow.body)
                .where(ProjectReportRow.run_id == run_id)
                .order_by(ProjectReportRow.has_problems.desc(), ProjectReportRow.path)
            )
            if project is not None:
                query = query.where(ProjectReportRow.path == project)
            if problems_only:
                query = query.where(ProjectReportRow.has_problems.is_(True))
            bodies = list(session.scalars(query))
            summary = self._run(row)
        reports = [msgspec.json.decode(body, type=ProjectReport) for body in bodies]
        return HarvestReport(**msgspec.structs.asdict(summary), project_reports=reports)

    def prune(self, source: str, keep: int) -> int:
        """Delete all but the newest `keep` finished runs of a source; returns how many went."""
        with write_transaction(self._sessions) as session:
            kept = (
                select(RunRow.id)
                .where(RunRow.source == source)
                .order_by(RunRow.started_at.desc())
                .limit(keep)
            )
            old = list(
                session.scalars(
                    select(RunRow.id).where(
                        RunRow.source == source,
                        RunRow.finished_at.is_not(None),
                        RunRow.id.not_in(kept),
                    )
                )
            )
            if old:
                # Delete children explicitly: SQLite only cascades with foreign keys on, and a
                # PostgreSQL role may lack the cascade too; this works everywhere.
                session.execute(delete(ProjectReportRow).where(ProjectReportRow.run_id.in_(old)))
                session.execute(delete(RunRow).where(RunRow.id.in_(old)))
            return len(old)

    # ---------------------------------------------------------------------- plumbing
    @staticmethod
    def _summary(run: RunSummary) -> str:
        summary = _Summary(
            projects=run.projects,
            counts=run.counts,
            problems=run.problems,
            platforms=run.platforms,
        )
        return _encode(summary).decode()

    @staticmethod
    def _run(row: RunRow) -> RunSummary:
        summary = msgspec.json.decode(row.summary, type=_Summary)
        fields: dict[str, Any] = {
            "run_id": row.id,
            "source": row.source,
            "trigger": row.trigger,
            "status": row.status,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "projects": summary.projects,
            "counts": summary.counts,
            "problems": summary.problems,
            "platforms": summary.platforms,
        }
        return msgspec.convert(fields, RunSummary, from_attributes=True)
