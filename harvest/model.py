"""What a harvest knows and reports: GitLab projects and refs, run and project reports, errors.

These are plain msgspec Structs shared by the GitLab adapter (`harvest.gitlab`), the pure
mapping (`harvest.mapping`), the pipeline, its store and the web and CLI views. This module does
no I/O and imports neither python-gitlab nor SQLAlchemy nor Litestar.

```text
HarvestReport                 one run over one source
 ├── counts: Counts           entries (one per executable per ref) found, new, updated, ...
 └── projects: [ProjectReport]
      ├── status              harvested | unchanged | no-file | failed | deleted
      ├── counts: Counts
      ├── entries: [EntryOutcome]   what happened to each entry version
      └── problems: [ReportProblem] field + reason (+ ref), for the packager to fix
```

`ProjectSource` is the port a run reads a source through (`harvest.gitlab.GitLabClient`).
Errors raised by a source adapter are `SourceError`s, each also one of the `core.errors`
classes, so the web layer answers them with the right status without knowing GitLab.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Final, Literal, Protocol, runtime_checkable

import msgspec

from core.errors import DomainError, Forbidden, NotFound, Unavailable

MAX_FILE_BYTES: Final = 1_048_576
"""Largest metadata file harvested (the catalogue's own limit); larger files are reported."""

RefKind = Literal["default", "tag"]
"""`default`: the project's default branch (catalogue version "latest"); `tag`: a release."""

ProjectStatus = Literal["harvested", "unchanged", "no-file", "failed", "deleted", "skipped"]
"""What a run did with one project (or, harvesting an IVOA registry, with one record).

- `harvested`: it changed since the last run (or is new) and its refs were read;
- `unchanged`: nothing changed since the last run, nothing was read;
- `no-file`: none of its refs holds the metadata file (not an error: not every project is an
  executable);
- `failed`: the source kept failing for it; its catalogue entries are left as they were and the
  next run tries again;
- `deleted`: it is gone from the source (or out of the source's groups and topics); its entries
  were withdrawn;
- `skipped`: an IVOA registry record that is not an executable (a service, a registry, software
  without an Execution Broker description); the reason is among its warnings.
"""

EntryChange = Literal["new", "updated", "unchanged", "withdrawn"]
RunStatus = Literal["running", "succeeded", "partial", "failed"]
"""`partial`: the run finished but some projects failed; `failed`: the source itself failed."""
Trigger = Literal["manual", "webhook", "schedule"]


# ------------------------------------------------------------------------------ source side
class ProjectInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One repository as the source lists it (enough to decide whether to read it again)."""

    id: int
    path: str
    """Full path with namespace, e.g. `astro/imaging/sextractor-ng`."""
    web_url: str
    default_branch: str | None = None
    """None for an empty repository."""
    last_activity_at: datetime
    topics: tuple[str, ...] = ()
    namespace: str = ""
    """Full path of the owning group (or user namespace)."""


class RefInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A branch or tag and the commit it points at."""

    name: str
    kind: RefKind
    commit: str


# ------------------------------------------------------------------------------ reports
class ReportProblem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One thing the packager must fix (or one warning), named by field."""

    field: str
    """Where: a path into the metadata file (`executables[1].executable.digest`), the file
    itself (`ivoa-executable.yaml`), or `project` for source-level failures."""
    reason: str
    ref: str | None = None
    """The branch or tag whose file has the problem (None: the whole project)."""
    suggestions: list[str] = []


class EntryOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one version of one catalogue entry."""

    id: str
    version: str
    ref: str
    change: EntryChange


class Counts(msgspec.Struct, kw_only=True):
    """Entry versions by outcome; `found` counts every executable read, valid or not."""

    found: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    withdrawn: int = 0
    invalid: int = 0
    """Files (or entries in them) that could not be published because of problems."""

    def add(self, other: Counts) -> None:
        """Add `other` into these counts."""
        self.found += other.found
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.withdrawn += other.withdrawn
        self.invalid += other.invalid

    def count(self, change: EntryChange) -> None:
        """Count one entry version with this change."""
        setattr(self, change, getattr(self, change) + 1)


class ProjectReport(msgspec.Struct, kw_only=True):
    """What one run did with one project, for the packager who owns it."""

    project_id: int
    path: str
    web_url: str = ""
    status: ProjectStatus
    counts: Counts = msgspec.field(default_factory=Counts)
    entries: list[EntryOutcome] = []
    problems: list[ReportProblem] = []
    warnings: list[ReportProblem] = []


class ProjectTotals(msgspec.Struct, kw_only=True):
    """Projects of a run by status."""

    found: int = 0
    harvested: int = 0
    unchanged: int = 0
    no_file: int = 0
    failed: int = 0
    deleted: int = 0
    skipped: int = 0

    def count(self, status: ProjectStatus) -> None:
        """Count one project with this status (`found` is counted separately)."""
        name = status.replace("-", "_")
        setattr(self, name, getattr(self, name) + 1)


class CandidatePlatform(msgspec.Struct, frozen=True, kw_only=True):
    """An Execution Broker an IVOA registry lists: a platform the operator may add.

    Nothing is configured by itself: `settings` is the block to paste into the settings file
    (`broker.platforms`) to offer that broker's platforms here (docs/federation.md).
    """

    ivoid: str
    title: str
    url: str
    """The broker capability's access URL (the `remote.url` of the platform)."""
    name: str
    """A platform name derived from the ivoid."""
    settings: str
    """YAML for `broker.platforms`, with `adapter: remote` and `remote.url`."""


class RunSummary(msgspec.Struct, kw_only=True):
    """One harvest run over one source, without its per-project detail."""

    run_id: str
    source: str
    trigger: Trigger
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None = None
    projects: ProjectTotals = msgspec.field(default_factory=ProjectTotals)
    counts: Counts = msgspec.field(default_factory=Counts)
    problems: list[ReportProblem] = []
    """Source-level problems (the project listing failed, the token was refused...)."""
    platforms: list[CandidatePlatform] = []
    """Execution Brokers a registry (a `regtap` source) lists: candidate remote platforms."""


class HarvestReport(RunSummary, kw_only=True):
    """One run with its per-project reports (projects with problems first, then by path)."""

    project_reports: list[ProjectReport] = []


# ------------------------------------------------------------------------------ state
class PublishedVersion(msgspec.Struct, frozen=True, kw_only=True):
    """A catalogue entry version that a ref's file put in the catalogue."""

    id: str
    version: str


class RefState(msgspec.Struct, frozen=True, kw_only=True):
    """What the last successful read of one ref found, so the next run can skip it."""

    name: str
    kind: RefKind
    commit: str
    content_hash: str | None = None
    """Digest of the file's bytes; None when the ref has no metadata file."""
    published: tuple[PublishedVersion, ...] = ()
    """What the catalogue holds from this ref (kept while a later file is rejected)."""
    problems: tuple[ReportProblem, ...] = ()
    warnings: tuple[ReportProblem, ...] = ()

    @property
    def key(self) -> str:
        """Identity across runs: the default branch is one ref even when it is renamed."""
        return "default" if self.kind == "default" else f"tag:{self.name}"


class ProjectState(msgspec.Struct, frozen=True, kw_only=True):
    """One project as the last successful harvest left it."""

    source: str
    project_id: int
    path: str
    web_url: str
    last_activity_at: datetime
    settings_key: str
    """Digest of the source settings that shape a read (file path, refs); when they change,
    every project is read again."""
    refs: tuple[RefState, ...] = ()
    harvested_at: datetime

    def published(self) -> set[tuple[str, str]]:
        """Every (entry id, version) this project has in the catalogue."""
        return {(v.id, v.version) for ref in self.refs for v in ref.published}


# ------------------------------------------------------------------------------ the port
class ProjectSource(Protocol):
    """What a run asks of GitLab (`harvest.gitlab.GitLabClient`)."""

    def projects(self, groups: Sequence[str], topics: Sequence[str]) -> Iterator[ProjectInfo]:
        """Projects of the groups (with subgroups) or with one of the topics, each once."""
        ...

    def project(self, project: int | str) -> ProjectInfo:
        """One project by id or path; `SourceNotFound` when it does not exist."""
        ...

    def branch(self, project_id: int, branch: str) -> RefInfo:
        """The commit a branch points at."""
        ...

    def tags(self, project_id: int) -> list[RefInfo]:
        """Every tag with its commit."""
        ...

    def read_file(self, project_id: int, path: str, commit: str, max_bytes: int) -> bytes | None:
        """A file's bytes at a commit (at most `max_bytes + 1`), or None when absent."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class BatchFileSource(Protocol):
    """A source that reads many files a request (`harvest.gitlab.GitLabClient`, by GraphQL)."""

    def batch_reads(self) -> bool:
        """True while `read_files` reads many files a request (else a run reads one by one)."""
        ...

    def read_files(
        self, wanted: Sequence[tuple[ProjectInfo, str]], path: str, max_bytes: int
    ) -> list[bytes | None]:
        """The file at `path` in each (project, commit): at most `max_bytes + 1` bytes, or None."""
        ...


# ------------------------------------------------------------------------------ errors
class SourceError(DomainError):
    """A harvest source could not answer; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SourceNotFound(SourceError, NotFound):
    """The project, group, ref or file does not exist (or is hidden from our token)."""


class SourceDenied(SourceError, Forbidden):
    """The source refused our token (401/403)."""


class SourceUnavailable(SourceError, Unavailable):
    """The source kept failing (5xx, 429, network) after every retry, or answered nonsense."""


class UnknownSource(NotFound):
    """No harvest source of that name is configured."""


class RunNotFound(NotFound):
    """No harvest run has that id."""
