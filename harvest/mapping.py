"""Pure: from what a GitLab project holds to what the catalogue publishes, and back to a report.

- which refs of a project to read (`refs_to_read`): the default branch, filed as version
  `latest`, and each tag, filed under its own name;
- a raw record (file bytes at a commit of a project) to a `Publication`: the document text and
  its `catalogue.model.Provenance` (source, repository, path, ref, commit, when), or the problem
  that stops it before the catalogue sees it (not UTF-8, too large);
- the catalogue's `PublishReport` to report lines (`EntryOutcome`, `ReportProblem`);
- whether a project belongs to a source (its groups or topics), for webhooks.

The catalogue checks the document itself (YAML syntax, kinds, subjects, digests...), so a
problem's field is the catalogue's (`executables[0].executable.digest`) and `(document)` for the
file as a whole. No I/O here, and no import of python-gitlab, SQLAlchemy or Litestar.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec

from catalogue.model import LATEST, ProblemItem, Provenance, PublishReport
from core.settings import GitLabSource
from harvest.model import (
    MAX_FILE_BYTES,
    EntryOutcome,
    ProjectInfo,
    PublishedVersion,
    RefInfo,
    RefState,
    ReportProblem,
)

DOCUMENT = "(document)"
"""Field name of problems about the file as a whole (the catalogue uses the same)."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A metadata file as read from one ref of one project."""

    source: str
    project: ProjectInfo
    ref: RefInfo
    file_path: str
    content: bytes
    harvested_at: datetime


@dataclass(frozen=True, slots=True)
class Publication:
    """What `CatalogueService.publish` takes for one record."""

    document: str
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class RefResult:
    """What publishing one ref's file did, as the report and the harvest state record it."""

    entries: list[EntryOutcome]
    published: tuple[PublishedVersion, ...]
    problems: tuple[ReportProblem, ...]
    warnings: tuple[ReportProblem, ...]
    found: int
    """Executables the file declared (1 for a file rejected as a whole)."""


def version_label(ref: RefInfo) -> str:
    """The catalogue version a ref's file is filed under: `latest` or the tag's name."""
    return LATEST if ref.kind == "default" else ref.name


def ref_key(ref: RefInfo | RefState) -> str:
    """Identity of a ref across runs: the default branch stays one ref when it is renamed."""
    return "default" if ref.kind == "default" else f"tag:{ref.name}"


def refs_to_read(
    wanted: Iterable[str], default: RefInfo | None, tags: Sequence[RefInfo]
) -> list[RefInfo]:
    """The refs a source's `refs` setting asks for, default branch first, tags by name."""
    chosen = set(wanted)
    refs: list[RefInfo] = []
    if "default" in chosen and default is not None:
        refs.append(default)
    if "tags" in chosen:
        refs.extend(sorted(tags, key=lambda tag: tag.name))
    return refs


def file_digest(content: bytes) -> str:
    """Digest of a file's bytes: equal bytes at another commit need no new publication."""
    return hashlib.sha256(content).hexdigest()


def settings_key(source: GitLabSource) -> str:
    """Digest of the settings that shape what a project's read finds (file path and refs)."""
    shape = msgspec.json.encode({"file_path": source.file_path, "refs": sorted(source.refs)})
    return hashlib.sha256(shape).hexdigest()[:16]


def provenance(record: RawRecord) -> Provenance:
    """Where a record came from, as the catalogue files it."""
    return Provenance(
        source=record.source,
        repository=record.project.web_url,
        path=record.file_path,
        ref=record.ref.name,
        ref_kind="default-branch" if record.ref.kind == "default" else "tag",
        commit=record.ref.commit,
        harvested_at=record.harvested_at,
    )


def to_publication(record: RawRecord) -> Publication | ReportProblem:
    """The catalogue's input for a record, or the problem that stops it here."""
    ref = record.ref.name
    if len(record.content) > MAX_FILE_BYTES:
        return ReportProblem(
            field=DOCUMENT, reason=f"is larger than {MAX_FILE_BYTES} bytes", ref=ref
        )
    try:
        text = record.content.decode("utf-8")
    except UnicodeDecodeError as error:
        return ReportProblem(
            field=DOCUMENT, reason=f"is not UTF-8 text (byte {error.start})", ref=ref
        )
    return Publication(document=text.removeprefix("\ufeff"), provenance=provenance(record))


def rejected(problem: ReportProblem) -> RefResult:
    """The result of a file stopped before the catalogue saw it."""
    return RefResult(entries=[], published=(), problems=(problem,), warnings=(), found=1)


def publish_result(ref: RefInfo, report: PublishReport) -> RefResult:
    """Report lines for one ref from the catalogue's answer."""
    entries = [
        EntryOutcome(id=entry.id, version=entry.version, ref=ref.name, change=entry.status)
        for entry in report.entries
    ]
    return RefResult(
        entries=entries,
        published=tuple(PublishedVersion(id=e.id, version=e.version) for e in report.entries),
        problems=_problems(report.problems, ref.name),
        warnings=_problems(report.warnings, ref.name),
        found=len(report.entries) or (1 if report.problems else 0),
    )


def _problems(items: Iterable[ProblemItem], ref: str) -> tuple[ReportProblem, ...]:
    return tuple(
        ReportProblem(field=p.field, reason=p.reason, ref=ref, suggestions=list(p.suggestions))
        for p in items
    )


def in_scope(project: ProjectInfo, groups: Iterable[str], topics: Iterable[str]) -> bool:
    """True when a project is in one of the groups (or their subgroups) or has a topic."""
    namespace = project.namespace.strip("/")
    for group in (g.strip("/") for g in groups):
        if namespace == group or namespace.startswith(group + "/"):
            return True
    return bool(set(project.topics) & set(topics))
