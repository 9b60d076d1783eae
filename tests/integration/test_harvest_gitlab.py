"""Harvest of a fake GitLab into the real catalogue: 33 projects in 3 groups, through python-gitlab.

The catalogue is the one `voexec.wiring.build_services` builds (SQL store, tantivy index, the
IVOA vocabularies from ../shared, the broker's executable checks), so broken files are judged
exactly as a packager's would be. Only GitLab is fake, and it speaks REST v4 on a real socket.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar.testing import TestClient

from catalogue.service import CatalogueService
from core.clock import ManualClock
from core.settings import Settings, settings_from_mapping
from harvest.gitlab import GitLabClient
from harvest.model import HarvestReport
from harvest.pipeline import HarvestPipeline
from harvest.store_sql import HarvestStore
from harvest.web import BackgroundHarvests
from tests.fakes.gitlab import FakeGitLab, FakeProject
from voexec.app import create_app
from voexec.cli import main
from voexec.wiring import Services, build_services

TOKEN = "glpat-integration"
SECRET = "hook-secret-for-tests"
FILE = "ivoa-executable.yaml"
DOCKER = "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/executable/docker-container.yaml"
GROUPS = {
    "astro-imaging": ("imaging", "galaxies"),
    "astro-radio/pulsars": ("pulsar-timing", "pulsars"),
    "astro-spectra": ("line-fitting", "spectroscopy"),
}
BROKEN = {
    "astro-imaging/broken-yaml": ("(document)", "invalid YAML at line"),
    "astro-radio/pulsars/teleporter": ("executable.kind", "unknown executable kind"),
    "astro-spectra/unicorn": ("subjects[0]", "is not a concept of the uat vocabulary"),
    "astro-imaging/no-digest": ("executable.image.digest", "digest"),
}


def document(name: str, version: str, function: str, subject: str, **changes: Any) -> str:
    """A realistic publisher file for one containerised executable."""
    digest = hashlib.sha256(f"{name}:{version}".encode()).hexdigest()
    data: dict[str, Any] = {
        "name": name,
        "title": f"{name.replace('-', ' ').title()} tool",
        "summary": f"Does {function.replace('-', ' ')} for {subject.replace('-', ' ')}.",
        "version": version,
        "authors": [{"name": "Ada Lovelace", "affiliation": "Observatory"}],
        "licence": "MIT",
        "keywords": [function, subject],
        "subjects": [subject],
        "functions": [function],
        "needs": {"cores": 2, "memory": 4},
        "executable": {
            "kind": DOCKER,
            "image": {
                "locations": [f"registry.example.org/{name}:{version}"],
                "digest": f"sha256:{digest}",
                "platform": {"architecture": "amd64", "os": "linux"},
            },
        },
    }
    data.update(changes)
    return yaml.safe_dump(data, sort_keys=False)


@dataclass
class World:
    """The fake GitLab, the real services, a harvest pipeline whose waits are recorded."""

    gitlab: FakeGitLab
    settings: Settings
    services: Services
    pipeline: HarvestPipeline
    sleeps: list[float]
    projects: dict[str, FakeProject] = field(default_factory=dict)
    expected: dict[str, set[str]] = field(default_factory=dict)
    """Project path -> the versions its entry must have."""

    @property
    def catalogue(self) -> CatalogueService:
        return self.services.components["catalogue"]

    def versions(self, path: str) -> set[str]:
        """The versions of the entry a project publishes (empty when it has none)."""
        ids = self.catalogue.entry_ids("lab", f"{self.gitlab.url}/{path}")
        assert len(ids) <= 1
        return {v.version for v in self.catalogue.get(ids[0]).versions} if ids else set()


def settings_for(
    gitlab: FakeGitLab,
    data_dir: Path,
    groups: tuple[str, ...] = ("astro-imaging", "astro-radio", "astro-spectra"),
) -> dict[str, Any]:
    return {
        "data_dir": str(data_dir),
        "vocabularies": {"offline": True},  # the snapshot shipped in the package
        "harvest": {
            "max_retries": 3,
            "sources": [
                {
                    "type": "gitlab",
                    "name": "lab",
                    "url": gitlab.url,
                    "groups": list(groups),
                    "token_env": "LAB_TOKEN",
                    "webhook_secret_env": "LAB_HOOK_SECRET",
                }
            ],
        },
    }


def populate(world: World) -> None:
    """33 projects in 3 groups (one a subgroup), all with tags but four with broken files."""
    gitlab = world.gitlab
    for group, (function, subject) in GROUPS.items():
        for i in range(9 if group == "astro-imaging" else 10):
            name = f"{group.rsplit('/', 1)[-1].removeprefix('astro-')}-tool-{i}"
            path = f"{group}/{name}"
            project = gitlab.add_project(path, {FILE: document(name, "1.0", function, subject)})
            gitlab.tag(project, "v1.0")
            world.expected[path] = {"latest", "v1.0"}
            if i % 3 == 0:
                gitlab.commit(project, {FILE: document(name, "1.1", function, subject)})
                gitlab.tag(project, "v1.1")
                world.expected[path].add("v1.1")
            world.projects[path] = project
    no_digest = yaml.safe_load(document("no-digest", "1.0", "imaging", "galaxies"))
    del no_digest["executable"]["image"]["digest"]
    unknown_kind = {"kind": "https://example.org/kinds/teleporter.yaml"}
    broken_files = {
        "astro-imaging/broken-yaml": "name: broken-yaml\ntitle: [unclosed\n",
        "astro-radio/pulsars/teleporter": document(
            "teleporter", "1.0", "pulsar-timing", "pulsars", executable=unknown_kind
        ),
        "astro-spectra/unicorn": document(
            "unicorn", "1.0", "line-fitting", "spectroscopy", subjects=["unicorn-astrophysics"]
        ),
        "astro-imaging/no-digest": yaml.safe_dump(no_digest),
    }
    for path, text in broken_files.items():
        world.projects[path] = gitlab.add_project(path, {FILE: text})


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("LAB_TOKEN", TOKEN)
    monkeypatch.setenv("LAB_HOOK_SECRET", SECRET)
    with FakeGitLab(token=TOKEN) as gitlab:
        settings = settings_from_mapping(settings_for(gitlab, tmp_path / "var"))
        services = build_services(settings, clock=ManualClock(datetime(2026, 3, 5, tzinfo=UTC)))
        sleeps: list[float] = []

        def client(source: Any) -> GitLabClient:
            return GitLabClient.for_source(
                source, {"LAB_TOKEN": TOKEN}, max_retries=3, sleep=sleeps.append
            )

        pipeline = HarvestPipeline(
            settings.harvest,
            services.components["catalogue"],
            HarvestStore(services.components["engine"]),
            client,
            services.clock,
        )
        world = World(gitlab, settings, services, pipeline, sleeps)
        populate(world)
        try:
            yield world
        finally:
            services.stop()


def problems_by_path(report: HarvestReport) -> dict[str, list[tuple[str, str]]]:
    return {
        p.path: [(x.field, x.reason) for x in p.problems]
        for p in report.project_reports
        if p.problems
    }


def test_every_good_entry_appears_with_its_versions_and_every_broken_file_is_reported(world: World):
    report = world.pipeline.run("lab")

    assert report.status == "succeeded"
    assert report.projects.found == 33
    assert len(world.expected) == 29
    for path, versions in world.expected.items():
        assert world.versions(path) == versions, path
    found = problems_by_path(report)
    assert set(found) == set(BROKEN)
    for path, (field_name, reason) in BROKEN.items():
        assert len(found[path]) == 1, found[path]
        assert found[path][0][0] == field_name
        assert reason in found[path][0][1]
        assert world.versions(path) == set()
    assert report.counts.invalid == 4
    assert report.counts.new == 29, "one new entry per good project"
    assert report.counts.updated == sum(len(v) for v in world.expected.values()) - 29


def test_a_second_run_reads_only_what_changed_and_withdraws_a_deleted_project(world: World):
    world.pipeline.run("lab")
    changed = world.projects["astro-spectra/spectra-tool-4"]
    tagged = world.projects["astro-radio/pulsars/pulsars-tool-2"]
    deleted_path = "astro-imaging/imaging-tool-5"
    deleted_ids = world.catalogue.entry_ids("lab", f"{world.gitlab.url}/{deleted_path}")
    world.gitlab.commit(
        changed, {FILE: document("spectra-tool-4", "1.0.1", "line-fitting", "spectroscopy")}
    )
    world.gitlab.commit(
        tagged, {FILE: document("pulsars-tool-2", "2.0", "pulsar-timing", "pulsars")}
    )
    world.gitlab.tag(tagged, "v2.0")
    world.gitlab.delete_project(world.projects[deleted_path])
    world.gitlab.reset_counts()

    report = world.pipeline.run("lab")

    reads = {path: world.gitlab.file_reads(p) for path, p in world.projects.items()}
    assert reads["astro-spectra/spectra-tool-4"] == 1
    assert reads["astro-radio/pulsars/pulsars-tool-2"] == 2  # main moved, and the new tag
    assert sum(reads.values()) == 3, "unchanged projects' files are not fetched again"
    # Branch and tags of the two changed projects by REST; their three files through GraphQL
    # in one batch (only changed projects make batches): sizes, then texts; nothing else.
    assert world.gitlab.count("/projects/") == 2 * 2
    assert world.gitlab.requests["/api/graphql"] == 2
    expected = world.expected["astro-radio/pulsars/pulsars-tool-2"] | {"v2.0"}
    assert world.versions("astro-radio/pulsars/pulsars-tool-2") == expected
    assert world.catalogue.get(deleted_ids[0]).withdrawn
    assert world.versions(deleted_path) == set()
    assert report.projects.deleted == 1
    assert report.projects.unchanged == 30
    assert (report.counts.new, report.counts.updated, report.counts.withdrawn) == (0, 3, 2)
    assert set(problems_by_path(report)) == set(BROKEN), "open problems are reported again"


def test_rate_limits_and_server_errors_are_retried_and_a_failing_project_does_not_stop_the_run(
    world: World,
):
    world.pipeline.run("lab")
    for path in ("astro-imaging/imaging-tool-1", "astro-spectra/spectra-tool-2"):
        name = path.rsplit("/", 1)[1]
        world.gitlab.commit(
            world.projects[path], {FILE: document(name, "1.2", "imaging", "galaxies")}
        )
    world.gitlab.fail("/groups/astro-radio/projects", status=429, times=1, retry_after=3)
    world.gitlab.fail("/repository/files/", status=500, times=1)
    stuck = world.projects["astro-spectra/spectra-tool-2"]
    world.gitlab.fail(f"/projects/{stuck.id}/", status=502, times=None)

    report = world.pipeline.run("lab")

    assert report.status == "partial"
    # The 429's Retry-After comes first; project readers run four at a time and wait out what
    # is left of it, so the 500's first backoff (0.5 s) follows, after any such waits.
    assert world.sleeps[0] == 3.0
    assert 0.5 in world.sleeps
    assert all(wait <= 3.0 for wait in world.sleeps[: world.sleeps.index(0.5)])
    outcome = {p.path: p for p in report.project_reports}
    assert outcome["astro-imaging/imaging-tool-1"].counts.updated == 1
    assert outcome["astro-spectra/spectra-tool-2"].status == "failed"
    assert "502 after 4 attempts" in outcome["astro-spectra/spectra-tool-2"].problems[0].reason
    assert report.projects.found == 33
    assert world.versions("astro-spectra/spectra-tool-2") == {"latest", "v1.0"}, "left as it was"


def test_the_webhook_with_the_right_secret_harvests_a_new_tag_and_a_wrong_one_does_nothing(
    world: World,
):
    world.pipeline.run("lab")
    project = world.projects["astro-imaging/imaging-tool-3"]
    world.gitlab.commit(project, {FILE: document("imaging-tool-3", "2.0", "imaging", "galaxies")})
    world.gitlab.tag(project, "v2.0")
    background: BackgroundHarvests = world.services.components["harvest_background"]
    event = {"object_kind": "tag_push", "ref": "refs/tags/v2.0", "project_id": project.id}
    url = "/harvest/webhooks/gitlab/lab"
    world.gitlab.reset_counts()

    with TestClient(create_app(world.settings, world.services)) as client:
        missing = client.post(url, json=event, headers={"X-Gitlab-Event": "Tag Push Hook"})
        wrong = client.post(
            url, json=event, headers={"X-Gitlab-Token": "guess", "X-Gitlab-Event": "Tag Push Hook"}
        )
        background.wait(timeout=30)
        assert (missing.status_code, wrong.status_code) == (401, 403)
        assert world.gitlab.count("/") == 0
        assert world.versions("astro-imaging/imaging-tool-3") == {"latest", "v1.0", "v1.1"}

        accepted = client.post(
            url, json=event, headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Tag Push Hook"}
        )
        background.wait(timeout=30)
        report = client.get(accepted.headers["location"]).json()

    assert accepted.status_code == 202
    assert world.versions("astro-imaging/imaging-tool-3") == {"latest", "v1.0", "v1.1", "v2.0"}
    assert report["status"] == "succeeded"
    assert world.gitlab.count("/groups/") == 0, "one project, not the whole source"


def test_voexec_harvest_prints_the_report_for_the_packager(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("LAB_TOKEN", TOKEN)
    with FakeGitLab(token=TOKEN) as gitlab:
        gitlab.add_project(
            "astro-imaging/good",
            {FILE: document("good", "1.0", "imaging", "galaxies")},
            tags=("v1.0",),
        )
        gitlab.add_project(
            "astro-imaging/bad", {FILE: document("bad", "1.0", "imaging", "nebulae-of-doom")}
        )
        config = tmp_path / "voexec.yaml"
        config.write_text(
            yaml.safe_dump(settings_for(gitlab, tmp_path / "var", groups=("astro-imaging",)))
        )

        first = main(["harvest", "--source", "lab", "--config", str(config)])
        out = capsys.readouterr().out
        second = main(["harvest", "--source", "lab", "--config", str(config)])
        again = capsys.readouterr().out

    assert first == second == 0
    assert "entries:  3 found, 1 new, 1 updated, 0 unchanged, 0 withdrawn, 1 invalid" in out
    assert "  astro-imaging/bad [harvested] (1 invalid)" in out
    assert any(
        line.startswith("    main: subjects[0]: 'nebulae-of-doom' is not a concept of the uat")
        for line in out.splitlines()
    )
    assert "projects: 2 found (2 unchanged)" in again
    assert "    main: subjects[0]:" in again, "the open problem is still shown"
