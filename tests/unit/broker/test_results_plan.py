"""Results destinations read from a request and checked against a platform's settings (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import PurePosixPath

import pytest

from broker import model
from broker.platforms.port import ResultsTarget, SessionPlan
from broker.platforms.recipe import Layout, Tools, upload_script
from broker.platforms.results_plan import (
    checked_targets,
    results_items,
    results_refusals,
    results_targets,
)
from core.settings import PlatformResultsSettings

ALLOWED = PlatformResultsSettings(
    s3=["https://S3.example.net/"],
    http=["https://store.example.org/upload/"],
    files=["/srv/results"],
)


def s3(endpoint: str = "https://s3.example.net", prefix: str = "runs/") -> model.S3ResultsStorage:
    return model.S3ResultsStorage(endpoint=endpoint, bucket="survey", prefix=prefix)


def test_each_kind_becomes_a_destination_and_plain_storage_is_left_out():
    storage = [
        model.SimpleStorageResource(),
        s3(),
        model.HttpResultsStorage(location="https://store.example.org/upload/run-1"),
        model.FileResultsStorage(path="/srv/results/./run-1/"),
    ]
    assert [(t.name, t.kind, t.destination) for t in results_targets(storage)] == [
        ("results-1", "s3-results-storage", "s3+https://s3.example.net/survey/runs/"),
        (
            "results-2",
            "http-results-storage",
            "https://store.example.org/upload/run-1",
        ),
        ("results-3", "file-results-storage", "file:///srv/results/run-1"),
    ]
    assert results_refusals(results_items(storage), ALLOWED) == []


@pytest.mark.parametrize(
    ("storage", "why"),
    [
        (s3(endpoint="https://other.example.net"), "does not write to the S3 endpoint"),
        (s3(endpoint="s3.example.net"), "is not an http(s) URL of a host"),
        (s3(prefix="../other/"), "climbs out of the bucket"),
        (model.S3ResultsStorage(endpoint="https://s3.example.net"), "gives no S3 bucket"),
        (
            model.HttpResultsStorage(location="https://store.example.org/elsewhere/"),
            "does not PUT results under",
        ),
        (
            model.HttpResultsStorage(location="https://store.example.org/upload/../admin"),
            "is not a plain URL prefix",
        ),
        (
            model.HttpResultsStorage(location="https://store.example.org/upload/a b"),
            "is not a plain URL prefix",
        ),
        (model.HttpResultsStorage(location="sftp://store.example.org/x"), "http and https only"),
        (model.FileResultsStorage(path="/srv/results-other/x"), "does not write results to"),
        (model.FileResultsStorage(path="results/x"), "is not an absolute path"),
        (model.FileResultsStorage(path="/srv/results/../../etc"), "climbs with '..'"),
    ],
)
def test_a_destination_outside_the_settings_is_refused_naming_it(storage, why):
    (refusal,) = results_refusals(results_items([storage]), ALLOWED)
    assert why in refusal
    assert refusal.startswith("results 'results-0' (")


def test_nothing_is_allowed_by_default():
    storage = [s3(), model.FileResultsStorage(path="/srv/results/x")]
    assert len(results_refusals(results_items(storage), PlatformResultsSettings())) == 2


def test_a_folder_target_carries_its_allowed_root_into_the_upload_script():
    targets, why = checked_targets(
        results_targets([model.FileResultsStorage(path="/srv/results/a")]), ALLOWED
    )
    assert why == []
    assert targets == (
        ResultsTarget("results-0", "file-results-storage", "file:///srv/results/a", "/srv/results"),
    )
    when = datetime(2026, 1, 1, tzinfo=UTC)
    plan = SessionPlan(
        session_id="s-1",
        executable=model.PythonProgram(location="/p.py"),
        cores=1,
        memory=1,
        gpus=0,
        start=when,
        end=when,
        results=targets,
    )
    script = upload_script(plan, Tools(python="python3"), Layout(PurePosixPath("/w/s-1")))
    assert "cd /w/s-1\n" in script
    assert "python3 session_fetch.py results output file:///srv/results/a /srv/results\n" in script
