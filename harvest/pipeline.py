"""`HarvestPipeline`: harvest a GitLab source into the catalogue, incrementally, with a report.

A run lists the source's projects (its groups, subgroups included, and its topics), then for
each project:

1. skips it when its `last_activity_at`, path and the source's file settings are what the last
   run stored, and that run read it over an hour after that activity (GitLab moves the value
   at most hourly); nothing is requested beyond the listing;
2. otherwise asks for the default branch's commit and the tags (`harvest.mapping.refs_to_read`);
   a ref whose commit (or, failing that, whose file digest) is unchanged is not published again;
3. hands each new file to the catalogue (`Publisher.publish_all`) with its provenance; records
   per entry version: new, updated, unchanged; per file: the problems with field and reason;
4. withdraws entries that no ref publishes any more, and the entries of projects that are gone.

Every source type is run through the same port, `harvest.sources.port.Source`
(`HarvestPipeline.harvester` picks it): GitLab sources by this pipeline; an `oai-pmh` source (an
IVOA publishing registry) by `harvest.oaipmh.OaiPmhHarvest`, which writes its reports, one per
record, into the same store; a `regtap` source (an IVOA searchable registry) by
`harvest.sources.regtap.RegTapHarvest`, whose report also lists the Execution Brokers it found
as candidate remote platforms. All three retry through `harvest.sources.port.with_retries`.

One project's failure (GitLab kept failing, the catalogue was unavailable) is reported and the
run goes on; that project's stored state is left as it was, so the next run reads it again.
The reports and new states of a batch's projects are stored together, in one transaction
(`harvest.store_sql.HarvestStore.save_projects`).

Talks to GitLab through `harvest.model.ProjectSource` (`harvest.gitlab.GitLabClient`) and to the
catalogue through `Publisher` (`catalogue.service.CatalogueService`): it calls exactly
`publish_all([(document, provenance), ...])` (one batch per 50 projects to read, so the search
index is updated once per batch, and stores the batch in one transaction) and
`withdraw(entry_id)`. Unchanged projects are settled apart, 500 a transaction, so they add no
catalogue batch: a run with few changes makes few catalogue updates. The projects of a batch
are read from GitLab by a few threads at once (the `readers` setting), while the batch before
is published and stored (`READ_AHEAD` batches are read ahead). When the client reads many
files a request (`harvest.model.BatchFileSource`: GitLab's GraphQL API), each project's thread
asks only for its refs, and the files of the whole batch's moved refs are read together once
those are known.
Imports neither python-gitlab nor Litestar.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgspec

from catalogue.model import Provenance, PublishReport
from core.clock import Clock
from core.errors import DomainError, Invalid, NotFound, Problem, Unavailable
from core.settings import (
    GitLabSource,
    HarvestSettings,
    HarvestSource,
    OaiPmhSource,
    RegTapSource,
)
from harvest import mapping
from harvest.model import (
    MAX_FILE_BYTES,
    BatchFileSource,
    EntryOutcome,
    HarvestReport,
    ProjectInfo,
    ProjectReport,
    ProjectSource,
    ProjectState,
    ProjectStatus,
    RefInfo,
    RefState,
    ReportProblem,
    RunSummary,
    SourceError,
    SourceNotFound,
    Trigger,
    UnknownSource,
)
from harvest.oaipmh import OaiPmhHarvest, RegistryCatalogue
from harvest.runs import start_run
from harvest.sources.port import Source
from harvest.store_sql import HarvestStore, ProjectSave

if TYPE_CHECKING:
    from harvest.sources.regtap import RegTapHarvest

log = logging.getLogger(__name__)

ACTIVITY_SETTLES: Final = timedelta(hours=1, minutes=10)
"""How long after a project's `last_activity_at` GitLab is sure to move it on the next push:
it updates the value at most once an hour (since GitLab 8.12); ten minutes cover clock skew."""

BATCH_PROJECTS: Final = 50
"""Projects read before their files go to the catalogue together (one index update)."""
QUIET_BATCH: Final = 500
"""Unchanged projects whose reports are stored in one transaction."""
READ_AHEAD: Final = 2
"""Batches read while the one before them is published (their GitLab round trips overlap)."""


Progress = Callable[[int, int], None]
"""Called with (projects done, projects in all) as a run goes."""


class Publisher(Protocol):
    """The part of the catalogue a harvest needs (`catalogue.service.CatalogueService`)."""

    def publish_all(
        self, documents: Iterable[tuple[str | bytes | Mapping[str, Any], Provenance]]
    ) -> list[PublishReport]:
        """Publish each document all-or-nothing, one report each, in order."""
        ...

    def withdraw(self, entry_id: str) -> object:
        """Take an entry out of search; raises `NotFound` when there is no such entry."""
        ...


ClientFactory = Callable[[GitLabSource], ProjectSource]
_Reading = tuple[list["_ProjectRead"], list[Future[None]]]
"""A batch being read: its projects' readers, and the reads under way."""


class HarvestPipeline:
    """Runs harvests of the configured sources; see the module docstring.

    Args:
        settings: The harvest settings (sources, retries).
        publisher: The catalogue.
        store: Where harvest state and reports live.
        clients: Builds a GitLab client for a source (token, retries, sleep are its business).
        clock: Tells `harvested_at` and run times.
        keep_runs: Reports kept per source; older ones are deleted when a run ends.
        readers: Projects read from GitLab at the same time (threads); 1 reads one by one.
            None: the settings' `readers`.
    """

    def __init__(
        self,
        settings: HarvestSettings,
        publisher: Publisher,
        store: HarvestStore,
        clients: ClientFactory,
        clock: Clock,
        *,
        keep_runs: int = 100,
        readers: int | None = None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.store = store
        self.clients = clients
        self.clock = clock
        self.keep_runs = keep_runs
        self.readers = max(1, settings.readers if readers is None else readers)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ---------------------------------------------------------------------- sources
    def sources(self) -> list[HarvestSource]:
        """The configured sources, in settings order."""
        return list(self.settings.sources)

    def source_named(self, name: str) -> HarvestSource:
        """The source of that name, whatever its type.

        Raises:
            UnknownSource: no source has that name.
        """
        for source in self.settings.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.settings.sources) or "none configured"
        raise UnknownSource(f"no harvest source {name!r} (known: {known})")

    def source(self, name: str) -> GitLabSource:
        """The GitLab source of that name.

        Raises:
            UnknownSource: no source has that name.
            Invalid: the source is not a GitLab source.
        """
        for source in self.settings.sources:
            if source.name == name:
                if isinstance(source, GitLabSource):
                    return source
                raise Invalid(
                    f"source {name!r} is not a GitLab source",
                    [Problem("source", "only GitLab sources are harvested by this pipeline")],
                )
        known = ", ".join(s.name for s in self.settings.sources) or "none configured"
        raise UnknownSource(f"no harvest source {name!r} (known: {known})")

    # ---------------------------------------------------------------------- runs
    def begin(self, source_name: str, trigger: Trigger) -> RunSummary:
        """Record a new run as running and return it (its id can be shown at once)."""
        return start_run(self.store, self.clock, self.source(source_name).name, trigger)

    def run(
        self,
        source_name: str,
        progress: Progress | None = None,
        *,
        trigger: Trigger = "manual",
        full: bool = False,
    ) -> HarvestReport:
        """Harvest a source; see the module docstring.

        Args:
            source_name: A configured source.
            progress: Told (done, total) after each batch of projects (GitLab sources).
            trigger: Who asked, for the report.
            full: Read every ref and publish every file again, changed or not (after a
                catalogue change that may accept files it rejected before).

        The source's `Source` (`harvester`) runs it: this pipeline for GitLab, an
        `harvest.oaipmh.OaiPmhHarvest` for an IVOA registry over OAI-PMH (one report per
        record), a `harvest.sources.regtap.RegTapHarvest` for one over RegTAP.

        Raises:
            UnknownSource: no such source.
        """
        return self.harvester(source_name, progress).run(source_name, trigger=trigger, full=full)

    def harvester(self, source_name: str, progress: Progress | None = None) -> Source:
        """What runs the source of that name, chosen by its type.

        Raises:
            UnknownSource: no such source.
        """
        source = self.source_named(source_name)
        if isinstance(source, OaiPmhSource):
            return self._registry_harvest()
        if isinstance(source, RegTapSource):
            return self._regtap_harvest()
        return _GitLabHarvest(self, progress)

    def _run_gitlab(
        self, source_name: str, progress: Progress | None, trigger: Trigger, full: bool
    ) -> HarvestReport:
        """Harvest every project of a GitLab source; see the module docstring."""
        run = self.begin(source_name, trigger)
        source = self.source(run.source)
        reports: list[ProjectReport] = []
        with self._connected(run, source) as client:
            listed = self._list(client, source, run)
            # Without the full listing nothing is known to be gone: then do nothing.
            previous = self.store.states(source.name) if listed is not None else {}
            listed = listed or {}
            work = [(p, previous.get(p.id)) for p in listed.values()]
            gone = [state for pid, state in previous.items() if pid not in listed]
            total = len(work) + len(gone)
            if progress and total:
                progress(0, total)
            # Quiet projects are settled first, without a request, many a transaction; the
            # batches hold only projects to read, so a run costs O(changed) catalogue updates.
            readers, to_read = self._readers(client, source, work, full=full)
            quiet = [reader for reader in readers if reader.skipped]
            for start in range(0, len(quiet), QUIET_BATCH):
                reports += self._settle_batch(run, source, (quiet[start : start + QUIET_BATCH], []))
                if progress:
                    progress(len(reports), total)
            chunks = [
                to_read[start : start + BATCH_PROJECTS]
                for start in range(0, len(to_read), BATCH_PROJECTS)
            ]
            # While one batch is published and stored, the next ones are read: GitLab's round
            # trips overlap the catalogue's work instead of waiting for it.
            with ThreadPoolExecutor(self.readers, "harvest-read") as pool:
                ahead: deque[_Reading] = deque()
                started = 0
                for index in range(len(chunks)):
                    while started < len(chunks) and started <= index + READ_AHEAD:
                        ahead.append(self._start(pool, client, source, chunks[started], full))
                        started += 1
                    reports += self._settle_batch(run, source, ahead.popleft())
                    if progress:
                        progress(len(reports), total)
            for state in gone:
                reports.append(self._forget(run, state))
                if progress:
                    progress(len(reports), total)
        return self._finish(run, reports)

    def harvest_project(self, run: RunSummary, project_id: int) -> HarvestReport:
        """Harvest one project now (a webhook said it changed), into a run from `begin`.

        The project's last activity is not trusted (GitLab updates it lazily); its refs are
        compared commit by commit. A project that is gone, or no longer in the source's groups
        and topics, has its entries withdrawn.
        """
        source = self.source(run.source)
        reports: list[ProjectReport] = []
        with self._connected(run, source) as client:
            previous = self.store.state(source.name, project_id)
            try:
                project: ProjectInfo | None = client.project(project_id)
            except SourceNotFound:
                project = None
            except SourceError as error:
                run.problems.append(ReportProblem(field="project", reason=error.message))
                project = None
                previous = None  # unknown: withdraw nothing
            if project is not None and not mapping.in_scope(project, source.groups, source.topics):
                run.problems.append(
                    ReportProblem(
                        field="project",
                        reason=f"{project.path} is not in the groups or topics of source "
                        f"{source.name}; it is not harvested",
                    )
                )
                project = None
            if project is not None:
                run.projects.found = 1
                reports += self._batch(run, client, source, [(project, previous)], force=True)
            elif previous is not None:
                reports.append(self._forget(run, previous))
        return self._finish(run, reports)

    def _registry_harvest(self) -> OaiPmhHarvest:
        if not isinstance(self.publisher, RegistryCatalogue):
            raise Unavailable("this catalogue cannot list harvested entries (entry_ids)")
        return OaiPmhHarvest(
            self.settings, self.publisher, self.store, self.clock, keep_runs=self.keep_runs
        )

    def _regtap_harvest(self) -> RegTapHarvest:
        # Imported here: pyvo brings astropy, which only RegTAP sources need.
        from harvest.sources.regtap import RegTapHarvest

        if not isinstance(self.publisher, RegistryCatalogue):
            raise Unavailable("this catalogue cannot list harvested entries (entry_ids)")
        return RegTapHarvest(
            self.settings, self.publisher, self.store, self.clock, keep_runs=self.keep_runs
        )

    # ---------------------------------------------------------------------- steps
    @contextlib.contextmanager
    def _connected(self, run: RunSummary, source: GitLabSource) -> Iterator[ProjectSource]:
        """A client for the run; whatever stops the run half way is put in its report."""
        # Runs of one source in one process take turns: they share the stored state.
        with self._locks_guard:
            lock = self._locks.setdefault(source.name, threading.Lock())
        with lock:
            client = self.clients(source)
            try:
                yield client
            except Exception as error:  # the report must say why the run stopped
                log.exception("harvest %s of %s stopped", run.run_id, source.name)
                reason = getattr(error, "message", None) or type(error).__name__
                run.problems.append(ReportProblem(field="run", reason=f"stopped: {reason}"))
            finally:
                client.close()

    def _list(
        self, client: ProjectSource, source: GitLabSource, run: RunSummary
    ) -> dict[int, ProjectInfo] | None:
        if not source.groups and not source.topics:
            run.problems.append(
                ReportProblem(field="groups", reason="the source names no groups and no topics")
            )
            return None
        try:
            listed = {p.id: p for p in client.projects(source.groups, source.topics)}
        except SourceError as error:
            # Without the full listing, nothing may be withdrawn: stop here.
            run.problems.append(ReportProblem(field="source", reason=error.message))
            return None
        run.projects.found = len(listed)
        return listed

    def _batch(
        self,
        run: RunSummary,
        client: ProjectSource,
        source: GitLabSource,
        projects: Sequence[tuple[ProjectInfo, ProjectState | None]],
        *,
        full: bool = False,
        force: bool = False,
    ) -> list[ProjectReport]:
        """Harvest some projects: read them, publish their files in one batch, store each.

        One batch means one search-index update in the catalogue instead of one per file.
        A project's faults (GitLab, the catalogue, a bug) fail that project only; a failure
        of the whole batch fails the projects that had files in it.
        """
        readers, to_read = self._readers(client, source, projects, full=full, force=force)
        self._read(to_read, full=full)
        return self._settle_batch(run, source, (readers, []))

    def _readers(
        self,
        client: ProjectSource,
        source: GitLabSource,
        projects: Sequence[tuple[ProjectInfo, ProjectState | None]],
        *,
        full: bool,
        force: bool = False,
    ) -> tuple[list[_ProjectRead], list[_ProjectRead]]:
        """A reader per project, and those of them that must read GitLab (the rest skip)."""
        readers = [_ProjectRead(self, client, source, p, state) for p, state in projects]
        to_read = []
        for reader in readers:
            if not (force or full) and reader.unchanged():
                reader.skip()
            else:
                to_read.append(reader)
        return readers, to_read

    def _start(
        self,
        pool: ThreadPoolExecutor,
        client: ProjectSource,
        source: GitLabSource,
        to_read: Sequence[_ProjectRead],
        full: bool,
    ) -> _Reading:
        """Start reading a batch of projects in the pool's threads.

        With a client that reads many files a request, the threads ask for the refs only,
        and one more task then reads the files of the whole batch (it runs after the others:
        the pool takes its tasks in order).
        """
        together = isinstance(client, BatchFileSource) and client.batch_reads()
        fetches = [
            pool.submit(_guard, reader, partial(reader.fetch, full=full, defer=together))
            for reader in to_read
        ]
        if together and to_read:
            assert isinstance(client, BatchFileSource)
            fetches.append(pool.submit(_read_files, client, source, to_read, list(fetches)))
        return list(to_read), fetches

    def _settle_batch(
        self, run: RunSummary, source: GitLabSource, reading: _Reading
    ) -> list[ProjectReport]:
        """Once a batch is read: publish its files together, settle and store each project."""
        readers, fetches = reading
        for fetch in fetches:
            fetch.result()
        batch = [pending for reader in readers for pending in reader.pending]
        answers: list[PublishReport] = []
        try:
            if batch:
                answers = self.publisher.publish_all(
                    [(p.publication.document, p.publication.provenance) for p in batch]
                )
            if len(answers) != len(batch):
                raise Unavailable(f"the catalogue answered {len(answers)} of {len(batch)} files")
        except Exception as error:  # the batch's projects fail; the run goes on
            if not isinstance(error, DomainError):
                log.exception("publishing a batch of %d files failed", len(batch))
            reason = getattr(error, "message", None) or f"unexpected error ({type(error).__name__})"
            for reader in readers:
                if reader.pending:
                    reader.fail(reason)
        offset = 0
        for reader in readers:
            if reader.ok:
                mine = answers[offset : offset + len(reader.pending)]
                offset += len(reader.pending)
                _guard(reader, partial(reader.settle, mine))
        # The batch's reports and new states in one transaction.
        self.store.save_projects(
            run.run_id,
            [ProjectSave(reader.report, reader.state) for reader in readers],
            source=source.name,
        )
        return [reader.report for reader in readers]

    def _read(self, readers: Sequence[_ProjectRead], *, full: bool) -> None:
        """Fetch what each project's refs hold, several projects at a time."""
        # GitLab answers several reads at once, so the round trips overlap (the client waits out
        # a 429's Retry-After for every thread). Each reader touches only its own state.
        if len(readers) > 1 and self.readers > 1:
            with ThreadPoolExecutor(min(self.readers, len(readers)), "harvest-read") as pool:
                list(pool.map(lambda r: _guard(r, partial(r.fetch, full=full)), readers))
        else:
            for reader in readers:
                _guard(reader, partial(reader.fetch, full=full))

    def _forget(self, run: RunSummary, state: ProjectState) -> ProjectReport:
        """Withdraw every entry of a project that is gone, and forget it."""
        report = _report(state.project_id, state.path, state.web_url, "deleted")
        published = sorted(state.published())
        try:
            for entry_id in sorted({entry_id for entry_id, _ in published}):
                self._withdraw(entry_id)
        except DomainError as error:
            report = _report(state.project_id, state.path, state.web_url, "failed", error.message)
            self.store.save_project(run.run_id, report, source=run.source)
            return report
        report.entries = [
            EntryOutcome(id=i, version=v, ref="", change="withdrawn") for i, v in published
        ]
        report.counts.withdrawn = len(published)
        self.store.save_project(run.run_id, report, source=run.source, forget=True)
        return report

    def _withdraw(self, entry_id: str) -> None:
        # Already gone from the catalogue (withdrawn by hand): nothing left to undo.
        with contextlib.suppress(NotFound):
            self.publisher.withdraw(entry_id)

    def _finish(self, run: RunSummary, reports: list[ProjectReport]) -> HarvestReport:
        for report in reports:
            run.projects.count(report.status)
            run.counts.add(report.counts)
        if run.problems and not reports:
            run.status = "failed"
        elif run.projects.failed or run.problems:
            run.status = "partial"
        else:
            run.status = "succeeded"
        run.finished_at = self.clock.now()
        self.store.finish_run(run)
        self.store.prune(run.source, self.keep_runs)
        log.info(
            "harvest %s of %s: %s, %d projects, counts %s",
            run.run_id,
            run.source,
            run.status,
            run.projects.found,
            msgspec.json.encode(run.counts).decode(),
        )
        reports.sort(key=lambda r: (not r.problems, r.path))
        return HarvestReport(**msgspec.structs.asdict(run), project_reports=reports)


class _GitLabHarvest:
    """The `Source` of GitLab sources: the pipeline's own run, telling `progress` as it goes."""

    def __init__(self, pipeline: HarvestPipeline, progress: Progress | None) -> None:
        self.pipeline = pipeline
        self.progress = progress

    def run(
        self, source_name: str, *, trigger: Trigger = "manual", full: bool = False
    ) -> HarvestReport:
        return self.pipeline._run_gitlab(source_name, self.progress, trigger, full)


def _read_files(
    client: BatchFileSource,
    source: GitLabSource,
    readers: Sequence[_ProjectRead],
    fetches: Sequence[Future[None]],
) -> None:
    """Once the batch's refs are known, read the files of the moved ones together."""
    for fetch in fetches:
        fetch.result()
    waiting = [reader for reader in readers if reader.ok and reader.deferred]
    wanted = [(reader.project, d.ref.commit) for reader in waiting for d in reader.deferred]
    if not wanted:
        return
    try:
        contents = client.read_files(wanted, source.file_path, MAX_FILE_BYTES)
    except DomainError as error:
        for reader in waiting:
            reader.fail(error.message)
        return
    except Exception as error:  # the batch's projects fail; the run goes on
        log.exception("reading the files of %d projects failed", len(waiting))
        for reader in waiting:
            reader.fail(f"unexpected error ({type(error).__name__}); it was logged")
        return
    offset = 0
    for reader in waiting:
        mine = contents[offset : offset + len(reader.deferred)]
        offset += len(reader.deferred)
        _guard(reader, partial(reader.take, mine))


def _guard(reader: _ProjectRead, step: Callable[[], None]) -> None:
    """Run one step of a project's read; its failure fails that project only."""
    try:
        step()
    except DomainError as error:
        reader.fail(error.message)
    except Exception as error:  # one project must never stop the run
        log.exception("harvest of %s failed unexpectedly", reader.project.path)
        reader.fail(f"unexpected error ({type(error).__name__}); it was logged")


def _report(
    project_id: int, path: str, web_url: str, status: ProjectStatus, failure: str | None = None
) -> ProjectReport:
    problems = [ReportProblem(field="project", reason=failure)] if failure else []
    return ProjectReport(
        project_id=project_id, path=path, web_url=web_url, status=status, problems=problems
    )


@dataclass
class _Deferred:
    """A moved ref whose file is read with the batch's others (`_read_files`)."""

    slot: int
    ref: RefInfo
    old: RefState | None


@dataclass
class _Pending:
    """A ref whose file goes to the catalogue with the next batch."""

    slot: int
    ref: RefInfo
    old: RefState | None
    digest: str
    publication: mapping.Publication


class _ProjectRead:
    """One project through a run: skip or fetch (GitLab), then settle (catalogue answers).

    `refs` holds each ref's new state, None where a file waits in `pending` for the batch.
    After `fail`, `report` says why and `state` stays None: the stored state is kept.
    """

    def __init__(
        self,
        pipeline: HarvestPipeline,
        client: ProjectSource,
        source: GitLabSource,
        project: ProjectInfo,
        previous: ProjectState | None,
    ) -> None:
        self.pipeline = pipeline
        self.client = client
        self.source = source
        self.project = project
        self.previous = previous
        self.settings_key = mapping.settings_key(source)
        self.report = _report(project.id, project.path, project.web_url, "harvested")
        self.refs: list[RefState | None] = []
        self.pending: list[_Pending] = []
        self.deferred: list[_Deferred] = []
        self.state: ProjectState | None = None
        self.ok = True
        self.skipped = False
        self.began = pipeline.clock.now()  # what the refs show is at least this recent

    def unchanged(self) -> bool:
        """True when nothing the last run saw has changed, so nothing needs reading.

        GitLab moves `last_activity_at` at most once an hour, so an equal value proves
        nothing about pushes in the hour after it; only a read that began well after that
        hour lets later runs trust it.
        """
        previous = self.previous
        return (
            previous is not None
            and previous.last_activity_at == self.project.last_activity_at
            and previous.harvested_at - previous.last_activity_at >= ACTIVITY_SETTLES
            and previous.web_url == self.project.web_url
            and previous.settings_key == self.settings_key
        )

    def skip(self) -> None:
        """Report a quiet project: its entries unchanged, its open problems again."""
        assert self.previous is not None
        self.skipped = True
        has_file = any(ref.content_hash for ref in self.previous.refs)
        self.report.status = "unchanged" if has_file else "no-file"
        for ref in self.previous.refs:
            self._carry(ref)

    def fail(self, reason: str) -> None:
        """Give up on the project for this run."""
        project = self.project
        self.ok, self.state, self.pending, self.deferred = False, None, [], []
        self.report = _report(project.id, project.path, project.web_url, "failed", reason)

    def fetch(self, *, full: bool, defer: bool = False) -> None:
        """Ask GitLab for the refs, and for the files of the refs that moved.

        With `defer`, the files are not asked for here: the moved refs wait in `deferred`
        for `take`.
        """
        project, source = self.project, self.source
        default: RefInfo | None = None
        if "default" in source.refs and project.default_branch:
            with contextlib.suppress(SourceNotFound):  # emptied since the listing
                default = self.client.branch(project.id, project.default_branch)
        tags = self.client.tags(project.id) if "tags" in source.refs else []
        # After a rename the entry ids change (they include the repository URL), and other
        # file settings find other files: then nothing read before can stand in for a read.
        reusable = (
            self.previous is not None
            and self.previous.web_url == project.web_url
            and self.previous.settings_key == self.settings_key
            and not full
        )
        old = {r.key: r for r in self.previous.refs} if self.previous and reusable else {}
        for ref in mapping.refs_to_read(source.refs, default, tags):
            previous = old.get(mapping.ref_key(ref))
            if previous is not None and previous.commit == ref.commit:
                self._carry(previous)
                self.refs.append(msgspec.structs.replace(previous, name=ref.name))
            elif defer:
                self.deferred.append(_Deferred(len(self.refs), ref, previous))
                self.refs.append(None)
            else:
                content = self.client.read_file(
                    project.id, source.file_path, ref.commit, MAX_FILE_BYTES
                )
                self.refs.append(None)
                self.refs[-1] = self._with_content(len(self.refs) - 1, ref, previous, content)

    def take(self, contents: Sequence[bytes | None]) -> None:
        """The files of the `deferred` refs, in their order (None: no file at that commit)."""
        for deferred, content in zip(self.deferred, contents, strict=True):
            self.refs[deferred.slot] = self._with_content(
                deferred.slot, deferred.ref, deferred.old, content
            )
        self.deferred = []

    def _with_content(
        self, slot: int, ref: RefInfo, old: RefState | None, content: bytes | None
    ) -> RefState | None:
        """A moved ref's new state from its file; None while the file waits to be published."""
        if content is None:
            return RefState(name=ref.name, kind=ref.kind, commit=ref.commit)
        digest = mapping.file_digest(content)
        if old is not None and old.content_hash == digest:
            self._carry(old)
            return msgspec.structs.replace(old, name=ref.name, commit=ref.commit)
        record = mapping.RawRecord(
            source=self.source.name,
            project=self.project,
            ref=ref,
            file_path=self.source.file_path,
            content=content,
            harvested_at=self.began,
        )
        publication = mapping.to_publication(record)
        if isinstance(publication, ReportProblem):
            return self._apply(ref, old, digest, mapping.rejected(publication))
        self.pending.append(_Pending(slot, ref, old, digest, publication))
        return None

    def settle(self, answers: Sequence[PublishReport]) -> None:
        """Take the catalogue's answers, withdraw what disappeared, make the new state."""
        if self.skipped:
            return
        for pending, answer in zip(self.pending, answers, strict=True):
            result = mapping.publish_result(pending.ref, answer)
            self.refs[pending.slot] = self._apply(pending.ref, pending.old, pending.digest, result)
        refs = [ref for ref in self.refs if ref is not None]
        assert len(refs) == len(self.refs), "every pending ref has its answer"
        self._withdraw_gone(refs)
        if not any(ref.content_hash for ref in refs) and not self.report.entries:
            self.report.status = "no-file"
        project = self.project
        self.state = ProjectState(
            source=self.source.name,
            project_id=project.id,
            path=project.path,
            web_url=project.web_url,
            last_activity_at=project.last_activity_at,
            settings_key=self.settings_key,
            refs=tuple(refs),
            harvested_at=self.began,
        )

    def _apply(
        self, ref: RefInfo, old: RefState | None, digest: str, result: mapping.RefResult
    ) -> RefState:
        counts = self.report.counts
        counts.found += result.found
        for entry in result.entries:
            counts.count(entry.change)
        self.report.entries.extend(result.entries)
        self.report.problems.extend(result.problems)
        self.report.warnings.extend(result.warnings)
        published = result.published
        if result.problems:
            counts.invalid += 1
            if old is not None and old.published:
                # The catalogue stores nothing from a rejected file: what it had stays.
                published = old.published
                self.report.warnings.append(
                    ReportProblem(
                        field=mapping.DOCUMENT,
                        reason=f"the version published from commit {old.commit[:12]} stays in "
                        "the catalogue until this file is fixed",
                        ref=ref.name,
                    )
                )
        return RefState(
            name=ref.name,
            kind=ref.kind,
            commit=ref.commit,
            content_hash=digest,
            published=published,
            problems=result.problems,
            warnings=result.warnings,
        )

    def _carry(self, ref: RefState) -> None:
        """Count a ref that was not read again: its entries unchanged, its problems still open."""
        counts = self.report.counts
        counts.found += len(ref.published) or (1 if ref.problems else 0)
        counts.unchanged += len(ref.published)
        if ref.problems:
            counts.invalid += 1
        self.report.problems.extend(ref.problems)
        self.report.warnings.extend(ref.warnings)

    def _withdraw_gone(self, refs: Sequence[RefState]) -> None:
        """Withdraw entries no ref publishes any more (a deleted tag, an executable removed)."""
        if self.previous is None:
            return
        now = {(v.id, v.version) for ref in refs for v in ref.published}
        gone = self.previous.published() - now
        still_published = {entry_id for entry_id, _ in now}
        for entry_id, version in sorted(gone):
            if entry_id in still_published:
                # The catalogue withdraws whole entries only; say so rather than pretend.
                self.report.warnings.append(
                    ReportProblem(
                        field="version",
                        reason=f"version {version} of {entry_id} is no longer published here "
                        "(its tag or file is gone) but stays in the catalogue beside the "
                        "entry's other versions",
                    )
                )
                continue
            self.report.entries.append(
                EntryOutcome(id=entry_id, version=version, ref="", change="withdrawn")
            )
            self.report.counts.withdrawn += 1
        for entry_id in sorted({entry_id for entry_id, _ in gone} - still_published):
            self.pipeline._withdraw(entry_id)
