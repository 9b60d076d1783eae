"""The harvest pipeline over the fake GitLab and a catalogue double: incremental, reported."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from core.errors import Unavailable
from core.settings import HarvestSettings, OaiPmhSource, RegTapSource
from harvest.model import UnknownSource
from harvest.pipeline import HarvestPipeline
from harvest.sources.port import Source
from tests.unit.harvest.conftest import MemoryCatalogue, PipelineKit, executable

FILE = "ivoa-executable.yaml"


def test_first_run_publishes_default_branch_as_latest_and_each_tag_as_a_version(kit: PipelineKit):
    tool = kit.gitlab.add_project("astro/imaging/tool", {FILE: executable("tool")}, tags=("v1.0",))
    kit.gitlab.commit(tool, {FILE: executable("tool", "2.0")})
    kit.gitlab.tag(tool, "v2.0")
    kit.gitlab.add_project("astro/no-metadata", {"README.md": "hello"})

    report = kit.pipeline().run("lab")

    assert report.status == "succeeded"
    assert kit.catalogue.live() == {"tool": {"latest", "v1.0", "v2.0"}}
    assert report.projects.found == 2
    assert report.projects.harvested == 1
    assert report.projects.no_file == 1
    # One new entry; its other versions update it.
    assert (report.counts.found, report.counts.new, report.counts.updated) == (3, 1, 2)
    provenance = {p.ref: p for p in kit.catalogue.published}
    assert provenance["v1.0"].commit == tool.tags["v1.0"]
    assert provenance["main"].ref_kind == "default-branch"
    assert provenance["v2.0"].repository == f"{kit.gitlab.url}/astro/imaging/tool"
    assert provenance["v2.0"].harvested_at == kit.clock.now()


def test_a_second_run_reads_nothing_of_unchanged_projects(kit: PipelineKit):
    tools = [
        kit.gitlab.add_project(f"astro/t{i}", {FILE: executable(f"t{i}")}, tags=("v1",))
        for i in range(4)
    ]
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.reset_counts()

    report = pipeline.run("lab")

    assert report.projects.unchanged == 4
    assert report.counts.unchanged == 8
    assert report.counts.new == report.counts.updated == 0
    assert all(kit.gitlab.file_reads(t) == 0 for t in tools)
    assert kit.gitlab.count("/projects/") == 0, "only the group listing is asked for"


def test_only_the_changed_project_and_ref_are_read_again(kit: PipelineKit):
    quiet = kit.gitlab.add_project("astro/quiet", {FILE: executable("quiet")})
    busy = kit.gitlab.add_project("astro/busy", {FILE: executable("busy")}, tags=("v1",))
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.reset_counts()
    kit.gitlab.commit(busy, {FILE: executable("busy", "1.1", summary="better")})

    report = pipeline.run("lab")

    assert kit.gitlab.file_reads(quiet) == 0
    assert kit.gitlab.file_reads(busy) == 1, "the tag's commit did not move: only main is read"
    busy_report = next(p for p in report.project_reports if p.path == "astro/busy")
    assert {(e.version, e.change) for e in busy_report.entries} == {("latest", "updated")}
    assert busy_report.counts.unchanged == 1


def test_a_commit_that_leaves_the_file_alone_publishes_nothing(kit: PipelineKit):
    tool = kit.gitlab.add_project("astro/tool", {FILE: executable("tool")})
    pipeline = kit.pipeline()
    pipeline.run("lab")
    published = len(kit.catalogue.published)
    kit.gitlab.commit(tool, {"src/main.py": "print('hi')"})

    report = pipeline.run("lab")

    assert len(kit.catalogue.published) == published
    assert report.counts.unchanged == 1
    state = kit.store.state("lab", tool.id)
    assert state is not None
    assert state.refs[0].commit == tool.branches["main"]


def test_a_new_tag_becomes_a_new_version(kit: PipelineKit):
    tool = kit.gitlab.add_project("astro/tool", {FILE: executable("tool")}, tags=("v1",))
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.commit(tool, {FILE: executable("tool", "2")})
    kit.gitlab.tag(tool, "v2")

    report = pipeline.run("lab")

    assert kit.catalogue.live() == {"tool": {"latest", "v1", "v2"}}
    changes = {(e.version, e.change) for e in report.project_reports[0].entries}
    assert changes == {("latest", "updated"), ("v2", "updated")}


def test_broken_files_are_reported_with_field_and_reason_and_the_run_goes_on(kit: PipelineKit):
    kit.gitlab.add_project("astro/good", {FILE: executable("good")})
    kit.gitlab.add_project("astro/bad-yaml", {FILE: "name: [unclosed\n"})
    kit.gitlab.add_project("astro/nameless", {FILE: executable("x").replace("name: x\n", "")})
    kit.gitlab.add_project("astro/binary", {FILE: b"\xff\xfe name: x"})
    kit.gitlab.add_project("astro/huge", {FILE: b"name: x\n" + b"#" * 1_100_000})

    report = kit.pipeline().run("lab")

    assert report.status == "succeeded"
    assert kit.catalogue.live() == {"good": {"latest"}}
    problems = {p.path: p.problems for p in report.project_reports}
    assert problems["astro/bad-yaml"][0].field == "(document)"
    assert "invalid YAML" in problems["astro/bad-yaml"][0].reason
    assert (problems["astro/nameless"][0].field, problems["astro/nameless"][0].reason) == (
        "name",
        "is required",
    )
    assert "not UTF-8" in problems["astro/binary"][0].reason
    assert "larger than" in problems["astro/huge"][0].reason
    assert all(p.ref == "main" for path in problems for p in problems[path])
    assert report.counts.invalid == 4
    # Projects with problems come first in the report, each group by path.
    assert [p.path for p in report.project_reports] == [
        "astro/bad-yaml",
        "astro/binary",
        "astro/huge",
        "astro/nameless",
        "astro/good",
    ]


def test_unchanged_broken_files_keep_their_problems_in_later_reports(kit: PipelineKit):
    kit.gitlab.add_project("astro/bad", {FILE: "a: [\n"})
    pipeline = kit.pipeline()
    pipeline.run("lab")

    again = pipeline.run("lab")

    assert again.project_reports[0].status == "unchanged"
    assert again.project_reports[0].problems[0].field == "(document)"
    assert again.counts.invalid == 1


def test_a_rejected_change_keeps_the_published_version_and_says_so(kit: PipelineKit):
    tool = kit.gitlab.add_project("astro/tool", {FILE: executable("tool")})
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.commit(tool, {FILE: "name: [oops\n"})

    report = pipeline.run("lab")

    assert kit.catalogue.live() == {"tool": {"latest"}}
    warnings = report.project_reports[0].warnings
    assert any("stays in the catalogue until this file is fixed" in w.reason for w in warnings)
    kit.gitlab.commit(tool, {FILE: None})
    pipeline.run("lab")
    assert kit.catalogue.live() == {}, "the file is gone: what it published is withdrawn"


def test_a_project_deleted_since_the_last_run_has_its_entries_withdrawn(kit: PipelineKit):
    keep = kit.gitlab.add_project("astro/keep", {FILE: executable("keep")})
    gone = kit.gitlab.add_project("astro/gone", {FILE: executable("gone")}, tags=("v1",))
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.delete_project(gone)

    report = pipeline.run("lab")

    assert kit.catalogue.live() == {"keep": {"latest"}}
    deleted = next(p for p in report.project_reports if p.path == "astro/gone")
    assert deleted.status == "deleted"
    assert deleted.counts.withdrawn == 2
    assert report.projects.deleted == 1
    assert kit.store.state("lab", gone.id) is None
    assert kit.store.state("lab", keep.id) is not None


def test_an_executable_removed_from_a_file_is_withdrawn(kit: PipelineKit):
    both = yaml.safe_dump({"executables": [{"name": "one"}, {"name": "two"}]})
    tool = kit.gitlab.add_project("astro/pair", {FILE: both})
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.commit(tool, {FILE: yaml.safe_dump({"executables": [{"name": "one"}]})})

    report = pipeline.run("lab")

    assert kit.catalogue.live() == {"one": {"latest"}}
    assert [
        (e.version, e.change) for e in report.project_reports[0].entries if e.change == "withdrawn"
    ] == [("latest", "withdrawn")]


def test_a_deleted_tag_is_reported_since_the_catalogue_keeps_other_versions(kit: PipelineKit):
    tool = kit.gitlab.add_project("astro/tool", {FILE: executable("tool")}, tags=("v1",))
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.delete_tag(tool, "v1")

    report = pipeline.run("lab")

    warnings = report.project_reports[0].warnings
    assert any("version v1" in w.reason and "no longer published" in w.reason for w in warnings)


def test_a_project_that_keeps_failing_is_reported_and_the_run_goes_on(kit: PipelineKit):
    kit.gitlab.add_project("astro/a", {FILE: executable("a")})
    broken = kit.gitlab.add_project("astro/b", {FILE: executable("b")})
    kit.gitlab.add_project("astro/c", {FILE: executable("c")})
    kit.gitlab.fail(f"/projects/{broken.id}/", status=500, times=None)

    report = kit.pipeline().run("lab")

    assert report.status == "partial"
    assert kit.catalogue.live() == {"a": {"latest"}, "c": {"latest"}}
    failed = next(p for p in report.project_reports if p.path == "astro/b")
    assert failed.status == "failed"
    assert failed.problems[0].field == "project"
    assert "500 after 4 attempts" in failed.problems[0].reason
    assert kit.store.state("lab", broken.id) is None, "nothing stored: the next run tries again"


@pytest.mark.parametrize("graphql", [True, False], ids=["graphql", "rest"])
def test_rate_limits_and_server_errors_are_retried_and_the_run_succeeds(
    kit: PipelineKit, graphql: bool
):
    tool = kit.gitlab.add_project("astro/tool", {FILE: executable("tool")}, tags=("v1",))
    kit.gitlab.graphql = graphql  # off: 404, as an instance without it; files read by REST
    kit.gitlab.fail("/repository/tags", status=429, times=1, retry_after=2)
    kit.gitlab.fail("/api/graphql" if graphql else "/repository/files/", status=500, times=1)

    report = kit.pipeline().run("lab")

    assert report.status == "succeeded"
    assert kit.catalogue.live() == {"tool": {"latest", "v1"}}
    assert kit.sleeps[0] == 2.0, "the 429's Retry-After"
    assert kit.sleeps[-1] == 0.5, "the 500's first backoff"
    # The files are read in the pool after the refs (GraphQL first; REST once it is refused):
    # in another thread than the 429's, they wait out what is left of its pause first.
    assert len(kit.sleeps) in (2, 3)
    assert all(0 < pause <= 2.0 for pause in kit.sleeps[1:-1])
    # The failed GraphQL request sent no file; the failed REST read is one of three.
    assert kit.gitlab.file_reads(tool) == (2 if graphql else 3)


def test_a_failed_listing_withdraws_nothing(kit: PipelineKit):
    kit.gitlab.add_project("astro/tool", {FILE: executable("tool")})
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.fail("/groups/astro/projects", status=502, times=None)

    report = pipeline.run("lab")

    assert report.status == "failed"
    assert report.problems[0].field == "source"
    assert kit.catalogue.live() == {"tool": {"latest"}}


def test_a_renamed_project_republishes_under_its_new_url_and_withdraws_the_old(kit: PipelineKit):
    tool = kit.gitlab.add_project("astro/old-name", {FILE: executable("tool")})
    pipeline = kit.pipeline()
    pipeline.run("lab")
    old_ids = set(kit.catalogue.versions)
    tool.path = "astro/new-name"

    pipeline.run("lab")

    assert kit.catalogue.live() == {"tool": {"latest"}}
    assert old_ids <= kit.catalogue.withdrawn
    assert kit.catalogue.published[-1].repository == f"{kit.gitlab.url}/astro/new-name"


def test_changing_the_file_path_setting_reads_every_project_again(kit: PipelineKit):
    tool = kit.gitlab.add_project(
        "astro/tool", {FILE: executable("tool"), "meta/exec.yaml": executable("other")}
    )
    kit.pipeline().run("lab")
    kit.gitlab.reset_counts()

    kit.pipeline(kit.source(file_path="meta/exec.yaml")).run("lab")

    assert kit.gitlab.file_reads(tool) == 1
    assert kit.catalogue.live() == {"other": {"latest"}}


def test_full_reads_and_publishes_every_file_again(kit: PipelineKit):
    tool = kit.gitlab.add_project("astro/tool", {FILE: executable("tool")}, tags=("v1",))
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.reset_counts()

    report = pipeline.run("lab", full=True)

    assert kit.gitlab.file_reads(tool) == 2
    assert report.counts.unchanged == 2  # the catalogue said so: same content


def test_topics_select_projects_outside_the_groups(kit: PipelineKit):
    kit.gitlab.add_project(
        "people/alice/fitter", {FILE: executable("fitter")}, topics=("ivoa-executable",)
    )
    kit.gitlab.add_project("people/bob/other", {FILE: executable("other")})

    kit.pipeline(kit.source(groups=[], topics=["ivoa-executable"])).run("lab")

    assert kit.catalogue.live() == {"fitter": {"latest"}}


def test_only_tags_when_the_source_asks_for_tags_only(kit: PipelineKit):
    kit.gitlab.add_project("astro/tool", {FILE: executable("tool")}, tags=("v1",))

    kit.pipeline(kit.source(refs=["tags"])).run("lab")

    assert kit.catalogue.live() == {"tool": {"v1"}}


def test_progress_is_told_after_each_batch_and_files_are_published_in_batches(kit: PipelineKit):
    projects = [
        kit.gitlab.add_project(f"astro/p{i:02d}", {FILE: executable(f"p{i}")}, tags=("v1",))
        for i in range(60)
    ]
    seen: list[tuple[int, int]] = []
    pipeline = kit.pipeline()

    pipeline.run("lab", lambda done, total: seen.append((done, total)))

    assert seen == [(0, 60), (50, 60), (60, 60)]
    assert kit.catalogue.batches == [100, 20], "one catalogue call per 50 projects"
    assert len(kit.catalogue.live()) == 60

    for project in projects[::20]:
        kit.gitlab.commit(project, {FILE: executable(project.name, "2.0")})
    seen.clear()

    report = pipeline.run("lab", lambda done, total: seen.append((done, total)))

    assert report.projects.harvested == 3
    assert seen == [(0, 60), (57, 60), (60, 60)], "the quiet ones first, without a request"
    assert kit.catalogue.batches[2:] == [3], "the three changed projects make one batch"


def test_a_catalogue_failure_fails_the_projects_of_its_batch_only(kit: PipelineKit):
    kit.gitlab.add_project("astro/fine", {FILE: executable("fine")})
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.add_project("astro/new", {FILE: executable("new")})

    def unavailable(documents):
        raise Unavailable("the 'uat' vocabulary is not loaded on this server")

    kit.catalogue.publish_all = unavailable  # type: ignore[method-assign]
    report = pipeline.run("lab")

    outcome = {p.path: p for p in report.project_reports}
    assert outcome["astro/new"].status == "failed"
    assert "vocabulary is not loaded" in outcome["astro/new"].problems[0].reason
    assert outcome["astro/fine"].status == "unchanged", "nothing to publish: not in the batch"
    assert report.status == "partial"


def test_reports_are_stored_and_read_back_per_project(kit: PipelineKit):
    kit.gitlab.add_project("astro/good", {FILE: executable("good")})
    kit.gitlab.add_project("astro/bad", {FILE: "x: [\n"})
    pipeline = kit.pipeline()
    report = pipeline.run("lab")
    kit.clock.advance(timedelta(minutes=5))
    later = pipeline.run("lab")

    stored = kit.store.report(report.run_id)
    runs = kit.store.runs("lab")

    assert [r.run_id for r in runs] == [later.run_id, report.run_id]
    assert stored.counts == report.counts
    assert [p.path for p in stored.project_reports] == ["astro/bad", "astro/good"]
    assert [
        p.path for p in kit.store.report(report.run_id, problems_only=True).project_reports
    ] == ["astro/bad"]


def test_webhook_harvest_of_one_project_picks_up_a_new_tag(kit: PipelineKit):
    tool = kit.gitlab.add_project("astro/tool", {FILE: executable("tool")})
    other = kit.gitlab.add_project("astro/other", {FILE: executable("other")})
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.reset_counts()
    kit.gitlab.tag(tool, "v1")

    report = pipeline.harvest_project(pipeline.begin("lab", "webhook"), tool.id)

    assert kit.catalogue.live()["tool"] == {"latest", "v1"}
    assert report.trigger == "webhook"
    assert kit.gitlab.file_reads(tool) == 1, "the tag only: main did not move"
    assert kit.gitlab.count(f"/projects/{other.id}") == 0
    assert kit.gitlab.count("/groups/") == 0


def test_webhook_for_a_project_outside_the_source_harvests_nothing(kit: PipelineKit):
    stranger = kit.gitlab.add_project("elsewhere/tool", {FILE: executable("tool")})
    pipeline = kit.pipeline()

    report = pipeline.harvest_project(pipeline.begin("lab", "webhook"), stranger.id)

    assert kit.catalogue.live() == {}
    assert "not in the groups or topics" in report.problems[0].reason


def test_webhook_for_a_deleted_project_withdraws_it(kit: PipelineKit):
    tool = kit.gitlab.add_project("astro/tool", {FILE: executable("tool")})
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.delete_project(tool)

    report = pipeline.harvest_project(pipeline.begin("lab", "webhook"), tool.id)

    assert kit.catalogue.live() == {}
    assert report.project_reports[0].status == "deleted"


def test_a_push_gitlab_does_not_record_as_activity_is_still_found(kit: PipelineKit):
    """GitLab moves last_activity_at at most hourly: a read soon after it proves little."""
    tool = kit.gitlab.add_project("astro/tool", {FILE: executable("tool")})
    kit.clock.set(tool.last_activity_at + timedelta(minutes=5))
    pipeline = kit.pipeline()
    pipeline.run("lab")
    kit.gitlab.commit(tool, {FILE: executable("tool", "1.1")}, activity=False)
    kit.clock.advance(timedelta(minutes=10))

    report = pipeline.run("lab")

    assert [(e.version, e.change) for e in report.project_reports[0].entries] == [
        ("latest", "updated")
    ]
    # Read again well after the hour, the project is trusted to be quiet and skipped.
    kit.clock.advance(timedelta(hours=2))
    pipeline.run("lab")
    kit.gitlab.reset_counts()
    assert pipeline.run("lab").projects.unchanged == 1
    assert kit.gitlab.count(f"/projects/{tool.id}") == 0


# ----------------------------------------------------------------------------- one port
class ListingCatalogue(MemoryCatalogue):
    """A catalogue registry harvests can use: it lists harvested entries (none here)."""

    def entry_ids(self, source: str, repository: str | None = None) -> list[str]:
        return []

    def entry_ids_by_repository(self, source: str, repositories: list[str]) -> dict:
        return {repository: [] for repository in repositories}

    def withdraw_all(self, entry_ids: list[str]) -> list[str]:
        return []


def test_every_source_type_is_run_through_the_source_port(kit: PipelineKit):
    from harvest.oaipmh import OaiPmhHarvest
    from harvest.sources.regtap import RegTapHarvest

    sources = [
        kit.source(),
        OaiPmhSource(name="oai", url="https://registry.example/oai"),
        RegTapSource(name="rr", url="https://registry.example/tap"),
    ]
    pipeline = HarvestPipeline(
        HarvestSettings(sources=sources),
        ListingCatalogue(),
        kit.store,
        kit.pipeline().clients,
        kit.clock,
    )
    harvesters = {name: pipeline.harvester(name) for name in ("lab", "oai", "rr")}
    assert all(isinstance(h, Source) for h in harvesters.values())
    assert type(harvesters["oai"]) is OaiPmhHarvest
    assert type(harvesters["rr"]) is RegTapHarvest
    # the GitLab one is the pipeline's own run: driven through the port, it harvests
    kit.gitlab.add_project("astro/tool", {FILE: executable("tool")})
    report = harvesters["lab"].run("lab", trigger="schedule")
    assert report.status == "succeeded", report.problems
    assert report.trigger == "schedule"
    assert report.counts.new == 1
    with pytest.raises(UnknownSource):
        pipeline.harvester("nope")


@pytest.mark.parametrize("graphql", [True, False], ids=["graphql", "rest"])
def test_files_come_through_graphql_by_batch_or_by_rest_when_the_instance_refuses_it(
    kit: PipelineKit, graphql: bool
):
    kit.gitlab.graphql = graphql  # off: 404, as an instance with its GraphQL API switched off
    tools = [
        kit.gitlab.add_project(f"astro/tool{i:02d}", {FILE: executable(f"tool{i}")}, tags=("v1",))
        for i in range(30)
    ]
    kit.gitlab.add_project("astro/no-metadata", {"README.md": "hello"})
    big = kit.gitlab.add_project("astro/big", {FILE: "name: big\n" + "#" * 1_100_000})

    report = kit.pipeline().run("lab")

    assert len(kit.catalogue.live()) == 30
    assert all(versions == {"latest", "v1"} for versions in kit.catalogue.live().values())
    assert report.projects.no_file == 1
    by_path = {p.path: p for p in report.project_reports}
    assert [p.reason for p in by_path["astro/big"].problems] == ["is larger than 1048576 bytes"]
    assert all(kit.gitlab.file_reads(tool) == 2 for tool in tools)
    # By GraphQL, sizes then texts, 25 commits a request: 62 commits in one batch of projects
    # make 2 * 3 requests; the big file is read by REST, up to the limit.
    rest_reads = kit.gitlab.count("/projects/") - 2 * 32  # each project's branch and tags
    assert rest_reads == (1 if graphql else 2 * 30 + 2)  # REST: and a 404 for no-metadata
    assert kit.gitlab.requests["/api/graphql"] == (6 if graphql else 1)
    assert kit.gitlab.blob_reads[big.id] == 0
