"""Finding a source of one type by name, and recording a run: shared by every harvest source."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.clock import ManualClock
from core.settings import GitLabSource, HarvestSource, OaiPmhSource, RegTapSource
from harvest.model import RunSummary, UnknownSource
from harvest.runs import source_named, start_run

SOURCES: list[HarvestSource] = [
    GitLabSource(name="lab", url="https://gitlab.example"),
    RegTapSource(name="euro", url="https://reg.example/tap"),
    OaiPmhSource(name="lab-oai", url="https://oai.example/oai"),
]


def test_a_source_is_found_by_name_among_those_of_its_type() -> None:
    assert source_named(SOURCES, "euro", RegTapSource, "RegTAP") is SOURCES[1]


def test_a_source_of_another_type_is_unknown_and_the_error_lists_those_of_the_type() -> None:
    with pytest.raises(UnknownSource, match=r"no RegTAP source 'lab' \(known: euro\)"):
        source_named(SOURCES, "lab", RegTapSource, "RegTAP")
    with pytest.raises(UnknownSource, match=r"\(known: none configured\)"):
        source_named(SOURCES[:1], "x", OaiPmhSource, "OAI-PMH")


class Runs:
    def __init__(self) -> None:
        self.started: list[RunSummary] = []

    def start_run(self, run: RunSummary) -> None:
        self.started.append(run)


def test_a_started_run_is_recorded_as_running_at_the_clock() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    store = Runs()
    run = start_run(store, ManualClock(now), "euro", "schedule")  # type: ignore[arg-type]
    assert store.started == [run]
    assert (run.source, run.trigger, run.status, run.started_at) == (
        "euro",
        "schedule",
        "running",
        now,
    )
    assert run.run_id != start_run(store, ManualClock(now), "euro", "manual").run_id  # type: ignore[arg-type]
