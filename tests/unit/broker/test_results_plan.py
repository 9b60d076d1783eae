"""Results destinations read from a request and checked against a platform's settings (pure)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import PurePosixPath

import pytest

from broker import model
from broker.platforms.port import ResultsTarget, SessionPlan
from broker.platforms.recipe import Layout, Tools, upload_script
from broker.platforms.results_plan import (
    checked_targets,
    http_authorization,
    results_items,
    results_refusals,
    results_targets,
)
from core.errors import ConfigError
from core.settings import HttpCredentials, PlatformResultsSettings, settings_from_mapping

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
    assert "python3 session_results.py output file:///srv/results/a --root /srv/results\n" in script


def test_an_http_target_names_the_variable_of_its_authorization_not_the_secret():
    destination = "https://store.example.org/upload/run-1"
    when = datetime(2026, 1, 1, tzinfo=UTC)
    plan = SessionPlan(
        session_id="s-1",
        executable=model.PythonProgram(location="/p.py"),
        cores=1,
        memory=1,
        gpus=0,
        start=when,
        end=when,
        results=(ResultsTarget("r", "http-results-storage", destination),),
    )
    script = upload_script(
        plan, Tools(python="python3"), Layout(PurePosixPath("/w/s-1")), {destination: "AUTH_0"}
    )
    assert f"python3 session_results.py output {destination} --authorization-env AUTH_0\n" in (
        script
    )


CREDENTIALS = PlatformResultsSettings(
    http=["https://store.example.org/upload/", "https://dav.example.org/"],
    http_credentials=[
        HttpCredentials(prefix="https://store.example.org/", bearer="general"),
        HttpCredentials(prefix="https://store.example.org/upload/", bearer_env="STORE_TOKEN"),
        HttpCredentials(
            prefix="https://dav.example.org/", username="voexec", password_env="DAV_PASSWORD"
        ),
    ],
)


def test_the_longest_matching_prefix_gives_the_credentials_from_the_environment():
    header, why = http_authorization(
        "https://store.example.org/upload/run-1", CREDENTIALS, {"STORE_TOKEN": "s3cret"}
    )
    assert (header, why) == ("Bearer s3cret", "")
    header, _ = http_authorization("https://store.example.org/other/", CREDENTIALS, {})
    assert header == "Bearer general"
    header, _ = http_authorization("https://dav.example.org/x", CREDENTIALS, {"DAV_PASSWORD": "pw"})
    assert header == "Basic " + base64.b64encode(b"voexec:pw").decode()
    assert http_authorization("https://elsewhere.example/x", CREDENTIALS, {}) == (None, "")


def test_credentials_from_a_variable_that_is_not_set_refuse_the_destination():
    items = results_items([model.HttpResultsStorage(location="https://dav.example.org/run-1")])
    why = results_refusals(items, CREDENTIALS, {})
    assert len(why) == 1
    assert "https://dav.example.org/run-1" in why[0]
    assert "data.results.http_credentials[2].password_env" in why[0]
    assert "DAV_PASSWORD, which is not set" in why[0]
    assert results_refusals(items, CREDENTIALS, {"DAV_PASSWORD": "pw"}) == []


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"prefix": "https://a.example/", "bearer": "t", "username": "u"}, "not both"),
        ({"prefix": "https://a.example/", "username": "u"}, "give bearer"),
        ({"prefix": "https://a.example/", "bearer": "t", "bearer_env": "T"}, "bearer_env"),
        ({"prefix": "ftp://a.example/", "bearer": "t"}, "http(s) URL prefix"),
    ],
)
def test_broken_credentials_settings_are_refused_naming_the_entry(entry, why):
    document = {
        "broker": {
            "platforms": [
                {
                    "name": "p",
                    "capacity": {"cores": 1, "memory": 1},
                    "data": {"results": {"http_credentials": [entry]}},
                }
            ]
        }
    }
    with pytest.raises(ConfigError, match=r"data\.results\.http_credentials\[0\]") as error:
        settings_from_mapping(document)
    assert why in str(error.value)


def test_credentials_never_show_their_secrets():
    shown = repr(CREDENTIALS) + repr(HttpCredentials(prefix="https://a/", bearer="s3cret"))
    assert "s3cret" not in shown
    assert "$STORE_TOKEN" in shown


BARE_HOST = PlatformResultsSettings(
    http=["https://store.example.org"],
    http_credentials=[HttpCredentials(prefix="https://store.example.org", bearer="SECRET")],
)


@pytest.mark.parametrize(
    "destination",
    [
        "https://store.example.org.evil.net/x/",
        "https://store.example.orgevil.net/x/",
        "http://store.example.org/x/",
        "https://store.example.org:8443/x/",
    ],
)
def test_a_host_that_only_begins_like_the_allowed_one_is_refused_and_gets_no_credentials(
    destination,
):
    items = results_items([model.HttpResultsStorage(location=destination)])
    (refusal,) = results_refusals(items, BARE_HOST)
    assert "does not PUT results under" in refusal
    assert http_authorization(destination, BARE_HOST) == (None, "")


@pytest.mark.parametrize(
    "destination",
    [
        "https://store.example.org@evil.net/x/",
        "https://store.example.org:1@evil.net/x/",
        "https://user:hunter2@store.example.org/x/",
    ],
)
def test_a_user_name_or_password_in_a_destination_is_refused_naming_the_field(destination):
    items = results_items([model.HttpResultsStorage(location=destination)])
    assert items[0].destination is None
    (refusal,) = results_refusals(items, BARE_HOST)
    assert "location" in refusal
    assert "user name or password" in refusal
    assert "hunter2" not in refusal
    assert "SECRET" not in refusal


@pytest.mark.parametrize(
    "destination",
    [
        "https://store.example.org/x/",
        "https://STORE.Example.org/x/",
        "https://store.example.org:443/x/",
        "https://store.example.org",
    ],
)
def test_the_same_host_in_another_spelling_is_allowed_with_its_credentials(destination):
    items = results_items([model.HttpResultsStorage(location=destination)])
    assert results_refusals(items, BARE_HOST) == []
    assert http_authorization(destination, BARE_HOST) == ("Bearer SECRET", "")


def test_a_path_prefix_matches_whole_segments_only():
    settings = PlatformResultsSettings(
        http=["https://store.example.org/upload"],
        http_credentials=[
            HttpCredentials(prefix="https://store.example.org/upload", bearer="SECRET")
        ],
    )
    for destination in (
        "https://store.example.org/upload/run-1",
        "https://store.example.org/upload",
    ):
        assert (
            results_refusals(
                results_items([model.HttpResultsStorage(location=destination)]), settings
            )
            == []
        )
        assert http_authorization(destination, settings) == ("Bearer SECRET", "")
    outside = "https://store.example.org/uploads-of-others/run-1"
    (refusal,) = results_refusals(
        results_items([model.HttpResultsStorage(location=outside)]), settings
    )
    assert "does not PUT results under" in refusal
    assert http_authorization(outside, settings) == (None, "")


def test_a_destination_with_a_port_that_is_not_a_number_is_refused_naming_the_field():
    items = results_items([model.HttpResultsStorage(location="https://store.example.org:x/a/")])
    (refusal,) = results_refusals(items, BARE_HOST)
    assert "location" in refusal
    assert "port" in refusal
