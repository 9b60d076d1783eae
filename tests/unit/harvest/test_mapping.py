"""The pure mapping: which refs, what provenance, what the report says."""

from __future__ import annotations

from datetime import UTC, datetime

from catalogue.model import ProblemItem, PublishOutcome, PublishReport
from core.settings import GitLabSource
from harvest import mapping
from harvest.model import MAX_FILE_BYTES, ProjectInfo, RefInfo, ReportProblem

WHEN = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
PROJECT = ProjectInfo(
    id=7,
    path="astro/radio/imager",
    web_url="https://gitlab.example.org/astro/radio/imager",
    default_branch="main",
    last_activity_at=WHEN,
    topics=("ivoa-executable",),
    namespace="astro/radio",
)
MAIN = RefInfo(name="main", kind="default", commit="a" * 40)
V1 = RefInfo(name="v1.0", kind="tag", commit="b" * 40)
V2 = RefInfo(name="v2.0", kind="tag", commit="c" * 40)


def record(content: bytes, ref: RefInfo = MAIN) -> mapping.RawRecord:
    return mapping.RawRecord(
        source="lab",
        project=PROJECT,
        ref=ref,
        file_path="ivoa-executable.yaml",
        content=content,
        harvested_at=WHEN,
    )


def test_the_default_branch_is_latest_and_each_tag_is_filed_under_its_name():
    assert mapping.version_label(MAIN) == "latest"
    assert mapping.version_label(V1) == "v1.0"
    assert mapping.refs_to_read(["default", "tags"], MAIN, [V2, V1]) == [MAIN, V1, V2]
    assert mapping.refs_to_read(["tags"], MAIN, [V1]) == [V1]
    assert mapping.refs_to_read(["default"], MAIN, [V1]) == [MAIN]
    assert mapping.refs_to_read(["default", "tags"], None, []) == []


def test_a_renamed_default_branch_is_still_the_same_ref():
    trunk = RefInfo(name="trunk", kind="default", commit="d" * 40)
    assert mapping.ref_key(trunk) == mapping.ref_key(MAIN) == "default"
    assert mapping.ref_key(V1) != mapping.ref_key(V2)


def test_a_record_becomes_the_document_and_its_provenance():
    publication = mapping.to_publication(record("\ufeffname: imager\n".encode(), V1))

    assert isinstance(publication, mapping.Publication)
    assert publication.document == "name: imager\n", "a byte order mark is dropped"
    provenance = publication.provenance
    assert provenance.source == "lab"
    assert provenance.repository == PROJECT.web_url
    assert provenance.path == "ivoa-executable.yaml"
    assert (provenance.ref, provenance.ref_kind, provenance.commit) == ("v1.0", "tag", V1.commit)
    assert provenance.harvested_at == WHEN
    assert provenance.version_label("1.0.0") == "v1.0"
    assert mapping.provenance(record(b"x")).version_label("1.0.0") == "latest"


def test_files_the_catalogue_cannot_read_are_stopped_here_with_a_reason():
    too_big = mapping.to_publication(record(b"#" * (MAX_FILE_BYTES + 1)))
    not_utf8 = mapping.to_publication(record(b"name: caf\xe9"))

    assert too_big == ReportProblem(
        field="(document)", reason=f"is larger than {MAX_FILE_BYTES} bytes", ref="main"
    )
    assert isinstance(not_utf8, ReportProblem)
    assert not_utf8.reason == "is not UTF-8 text (byte 9)"
    assert mapping.rejected(not_utf8).found == 1


def test_the_catalogue_answer_becomes_report_lines_for_the_ref():
    answer = PublishReport(
        entries=[
            PublishOutcome(id="imager-1", name="imager", version="v1.0", status="new"),
            PublishOutcome(id="cleaner-2", name="cleaner", version="v1.0", status="unchanged"),
        ],
        warnings=[ProblemItem(field="subjects[0]", reason="deprecated", suggestions=["radio"])],
    )

    result = mapping.publish_result(V1, answer)

    assert [(e.id, e.version, e.ref, e.change) for e in result.entries] == [
        ("imager-1", "v1.0", "v1.0", "new"),
        ("cleaner-2", "v1.0", "v1.0", "unchanged"),
    ]
    assert {(p.id, p.version) for p in result.published} == {
        ("imager-1", "v1.0"),
        ("cleaner-2", "v1.0"),
    }
    assert result.warnings == (
        ReportProblem(field="subjects[0]", reason="deprecated", ref="v1.0", suggestions=["radio"]),
    )
    assert result.found == 2


def test_a_rejected_document_counts_as_one_invalid_file_with_its_problems():
    answer = PublishReport(
        problems=[
            ProblemItem(
                field="executable.kind", reason="unknown kind", suggestions=["docker-container"]
            ),
            ProblemItem(field="subjects[1]", reason="not a UAT concept"),
        ]
    )

    result = mapping.publish_result(MAIN, answer)

    assert result.entries == []
    assert result.published == ()
    assert [(p.field, p.ref) for p in result.problems] == [
        ("executable.kind", "main"),
        ("subjects[1]", "main"),
    ]
    assert result.problems[0].suggestions == ["docker-container"]
    assert result.found == 1


def test_scope_is_the_groups_with_their_subgroups_or_the_topics():
    assert mapping.in_scope(PROJECT, ["astro"], [])
    assert mapping.in_scope(PROJECT, ["astro/radio"], [])
    assert not mapping.in_scope(PROJECT, ["astro/rad"], []), "a prefix of a name is not a parent"
    assert not mapping.in_scope(PROJECT, ["optical"], [])
    assert mapping.in_scope(PROJECT, [], ["ivoa-executable"])
    assert not mapping.in_scope(PROJECT, [], ["other"])


def test_the_settings_key_changes_with_the_file_path_and_refs_only():
    base = GitLabSource(name="lab", url="https://gitlab.example.org", groups=["astro"])
    same = GitLabSource(name="lab", url="https://gitlab.example.org", groups=["other"])
    moved = GitLabSource(name="lab", url="https://gitlab.example.org", file_path="meta/x.yaml")
    tags = GitLabSource(name="lab", url="https://gitlab.example.org", refs=["tags"])

    assert mapping.settings_key(base) == mapping.settings_key(same)
    assert mapping.settings_key(base) != mapping.settings_key(moved)
    assert mapping.settings_key(base) != mapping.settings_key(tags)
