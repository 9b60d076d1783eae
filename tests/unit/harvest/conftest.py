"""Fixtures for harvest tests: a running fake GitLab, a SQL harvest store, a catalogue double."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalogue.model import (
    ProblemItem,
    Provenance,
    PublishOutcome,
    PublishReport,
    PublishStatus,
    entry_id,
)
from core.clock import ManualClock
from core.db import make_engine
from core.errors import NotFound
from core.settings import GitLabSource, HarvestSettings
from harvest.gitlab import GitLabClient
from harvest.pipeline import HarvestPipeline
from harvest.store_sql import HarvestStore
from tests.fakes.gitlab import FakeGitLab

TOKEN = "glpat-fake-token"


class MemoryCatalogue:
    """A catalogue double with the publishing behaviour harvest relies on.

    All or nothing per document; one entry per executable name and source location; a version
    per label (`latest` or the tag); new / updated / unchanged as the real store says them.
    Only the checks a harvest test needs are made: YAML syntax and a `name` per executable.
    """

    def __init__(self) -> None:
        self.versions: dict[str, dict[str, str]] = {}
        self.names: dict[str, str] = {}
        self.withdrawn: set[str] = set()
        self.published: list[Provenance] = []
        self.batches: list[int] = []
        """Size of each `publish_all` call."""

    def publish(
        self, document: str | bytes | Mapping[str, Any], provenance: Provenance
    ) -> PublishReport:
        assert isinstance(document, str)
        try:
            data = yaml.safe_load(document)
        except yaml.YAMLError as error:
            return PublishReport(
                problems=[ProblemItem(field="(document)", reason=f"invalid YAML: {error}")]
            )
        items = data["executables"] if isinstance(data, dict) and "executables" in data else [data]
        problems = [
            ProblemItem(
                field=f"executables[{i}].name" if len(items) > 1 else "name", reason="is required"
            )
            for i, item in enumerate(items)
            if not isinstance(item, dict) or "name" not in item
        ]
        if problems:
            return PublishReport(problems=problems)
        self.published.append(provenance)
        outcomes = []
        for item in items:
            key = entry_id(provenance.source, provenance.repository, provenance.path, item["name"])
            label = provenance.version_label(str(item.get("version", "0")))
            digest = hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()
            # As the SQL store answers: `new` for a new entry; `updated` for a new or changed
            # version of an existing one, or one published again after a withdrawal.
            versions = self.versions.setdefault(key, {})
            status: PublishStatus = (
                "new"
                if not versions
                else "unchanged"
                if versions.get(label) == digest and key not in self.withdrawn
                else "updated"
            )
            versions[label] = digest
            self.names[key] = item["name"]
            self.withdrawn.discard(key)
            outcomes.append(PublishOutcome(id=key, name=item["name"], version=label, status=status))
        return PublishReport(entries=outcomes)

    def publish_all(
        self, documents: Iterable[tuple[str | bytes | Mapping[str, Any], Provenance]]
    ) -> list[PublishReport]:
        self.batches.append(len(list(documents := list(documents))))
        return [self.publish(document, provenance) for document, provenance in documents]

    def withdraw(self, entry_id: str) -> None:
        if entry_id not in self.versions:
            raise NotFound(f"no catalogue entry {entry_id!r}")
        self.withdrawn.add(entry_id)

    def live(self) -> dict[str, set[str]]:
        """Entry name -> version labels, for entries not withdrawn."""
        found: dict[str, set[str]] = {}
        for key, versions in self.versions.items():
            if key not in self.withdrawn:
                found.setdefault(self.names[key], set()).update(versions)
        return found


def executable(name: str, version: str = "1.0", **extra: Any) -> str:
    """A small publisher file with one executable."""
    return yaml.safe_dump({"name": name, "title": name.title(), "version": version, **extra})


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with FakeGitLab(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HarvestStore]:
    engine = make_engine(f"sqlite:///{tmp_path / 'harvest.db'}")
    HarvestStore.migrate(engine)
    yield HarvestStore(engine)
    engine.dispose()


@pytest.fixture
def catalogue() -> MemoryCatalogue:
    return MemoryCatalogue()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))


class PipelineKit:
    """A pipeline over the fake GitLab with knobs tests turn."""

    def __init__(
        self,
        gitlab: FakeGitLab,
        store: HarvestStore,
        catalogue: MemoryCatalogue,
        clock: ManualClock,
    ) -> None:
        self.gitlab = gitlab
        self.store = store
        self.catalogue = catalogue
        self.clock = clock
        self.sleeps: list[float] = []
        self.max_retries = 3

    def source(self, **changes: Any) -> GitLabSource:
        fields: dict[str, Any] = {
            "name": "lab",
            "url": self.gitlab.url,
            "groups": ["astro"],
            "token_env": "LAB_TOKEN",
        }
        fields.update(changes)
        return GitLabSource(**fields)

    def pipeline(self, *sources: GitLabSource) -> HarvestPipeline:
        settings = HarvestSettings(
            sources=list(sources) or [self.source()], max_retries=self.max_retries
        )

        def client(source: GitLabSource) -> GitLabClient:
            return GitLabClient.for_source(
                source, {"LAB_TOKEN": TOKEN}, max_retries=self.max_retries, sleep=self.sleeps.append
            )

        return HarvestPipeline(settings, self.catalogue, self.store, client, self.clock)


@pytest.fixture
def kit(
    gitlab: FakeGitLab, store: HarvestStore, catalogue: MemoryCatalogue, clock: ManualClock
) -> PipelineKit:
    return PipelineKit(gitlab, store, catalogue, clock)
