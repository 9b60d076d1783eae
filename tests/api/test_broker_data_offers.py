"""Offers for requests with data: reached, sized and priced in time before anything is booked.

Platforms that stage data ask each source for its size at offer time (`data.check`): an
unreachable host, an unknown scheme or a missing object is a NO naming the data item, never a
YES that fails later; otherwise the offer's preparation covers moving the data at the
platform's bandwidth to its host, and a platform whose mirror holds a replica moves nothing
and comes first under the `nearest-data` strategy. The platforms here are simulated (they run
nothing) with `data.check: always`, so the offer path is the one a real platform takes.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from broker import model
from broker.model import codec
from broker.model.codec import Media
from core.clock import ManualClock
from core.settings import settings_from_mapping
from tests.data_support import Bucket
from voexec.app import create_app
from voexec.wiring import build_services

K = model.KINDS
NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
GIB = 1 << 30


def platform(name: str, **data: Any) -> dict[str, Any]:
    return {
        "name": name,
        "capacity": {"cores": 8, "memory": 32},
        "executables": ["python-program"],
        "preparation": "PT10S",
        "data": {"check": "always", "probe_timeout": "PT2S", **data},
    }


def client_for(tmp_path: Path, *platforms: dict[str, Any], strategies: list[str]) -> TestClient:
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True},
            "broker": {"platforms": list(platforms), "strategies": strategies},
        }
    )
    services = build_services(settings, clock=ManualClock(NOW))
    return TestClient(create_app(settings, services))


pytestmark = pytest.mark.usefixtures("fresh_probes")


def ask(client: TestClient, *data: dict[str, Any]) -> model.OfferSetResponse:
    document = {
        "executable": {
            "kind": model.PYTHON_PROGRAM_KIND,
            "location": "https://example.org/job.py",
        },
        "data": list(data),
        "schedule": {"requested": {"start": "2026-09-01T08:00:00Z/PT6H", "duration": "PT1H"}},
    }
    response = client.post(
        "/broker/requests",
        content=codec.encode(document, Media.JSON),
        headers={"content-type": Media.JSON.value, "accept": Media.JSON.value},
        follow_redirects=False,
    )
    assert response.status_code in {200, 303}, response.text
    return codec.decode_document(response.content, Media.JSON, model.OfferSetResponse).value


def simple(name: str, location: str) -> dict[str, Any]:
    return {
        "kind": K + "data/simple-data-resource.yaml",
        "meta": {"name": name},
        "location": location,
    }


def preparation(offer: model.ScheduledExecutionSession) -> timedelta:
    assert offer.schedule is not None
    assert offer.schedule.preparing is not None
    duration = offer.schedule.preparing.duration
    assert duration is not None
    return timedelta(duration.days, duration.seconds, duration.microseconds)


def messages(answer: model.OfferSetResponse) -> list[str]:
    assert answer.meta is not None
    return [item.message or "" for item in answer.meta.messages]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once it is closed


def test_two_gib_at_100_mib_per_second_take_at_least_twenty_seconds(tmp_path, http_files):
    http_files.files["/big.fits"] = 2 * GIB  # HEAD says 2 GiB; nothing is downloaded
    far = platform("far", bandwidth={"127.0.0.1:*": 100}, default_bandwidth=1)
    with client_for(tmp_path, far, strategies=["earliest"]) as client:
        answer = ask(client, simple("sky", f"{http_files.url}/big.fits"))
    assert answer.result == "YES"
    offer = answer.offers[0]
    # 2 GiB / 100 MiB/s = 20.48 s, rounded up, on top of the configured 10 s.
    assert preparation(offer) == timedelta(seconds=10 + 21)
    [note] = [text for text in messages(answer) if "moves" in text]
    assert "far: moves 2.0 GiB (2147483648 bytes)" in note
    assert "127.0.0.1" in note


def test_a_local_replica_moves_nothing_and_ranks_first_under_nearest_data(tmp_path, http_files):
    http_files.files["/archive/big.fits"] = 2 * GIB
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "big.fits").write_bytes(b"a replica")
    far = platform("far", bandwidth={"127.0.0.1*": 100})
    near = platform("near", mirrors={f"{http_files.url}/archive/": str(mirror)})
    # "far" is listed first, so it would win every tie: only the data can put "near" first.
    with client_for(tmp_path, far, near, strategies=["nearest-data"]) as client:
        answer = ask(client, simple("sky", f"{http_files.url}/archive/big.fits"))
    assert answer.result == "YES"
    first = answer.offers[0]
    assert platform_of(first) == "near"
    assert preparation(first) == timedelta(seconds=10)  # the platform's own, nothing to move
    said = messages(answer)
    assert any("far: moves 2.0 GiB" in text and "preparation of 31 s" in text for text in said)
    assert any("near: moves 0 B (0 bytes)" in text for text in messages(answer))


def platform_of(offer: model.ScheduledExecutionSession) -> str:
    assert offer.meta is not None
    for item in offer.meta.messages:
        if item.values and "platform" in item.values:
            return item.values["platform"]
    text = " ".join(item.message or "" for item in offer.meta.messages)
    raise AssertionError(f"no platform named in the offer's messages: {text}")


@pytest.mark.parametrize(
    ("location", "said"),
    [
        ("ftp://archive.example.org/sky.fits", "cannot fetch ftp: URLs"),
        ("http://127.0.0.1:{closed}/sky.fits", "cannot reach 127.0.0.1:{closed}"),
        ("{http}/missing.fits", "answers HTTP 404"),
        ("file:///nonexistent/voexec/sky.fits", "no such file on the platform"),
    ],
    ids=["unknown-scheme", "unreachable-host", "missing-file", "missing-local-file"],
)
def test_data_a_platform_cannot_reach_is_a_no_naming_the_item(tmp_path, http_files, location, said):
    closed = closed_port()
    location = location.format(closed=closed, http=http_files.url)
    with client_for(tmp_path, platform("only"), strategies=["earliest"]) as client:
        answer = ask(client, simple("sky", location))
    assert answer.result == "NO"
    expected = said.format(closed=closed)
    assert any("only: data 'sky'" in text and expected in text for text in messages(answer)), (
        messages(answer)
    )


def test_rucio_without_an_account_and_an_unresolvable_ivoid_are_refused_with_their_reason(
    tmp_path,
):
    rucio = {
        "kind": K + "data/rucio-data-resource.yaml",
        "meta": {"name": "run-42"},
        "rucio": {"endpoint": "https://rucio.example.org", "scope": "ska", "object": "run-42"},
    }
    ivoa = {
        "kind": K + "data/ivoa-data-resource.yaml",
        "meta": {"name": "obs"},
        "ivoa": {"ivoid": "ivo://example.org/obs?123"},
    }
    with client_for(tmp_path, platform("only"), strategies=["earliest"]) as client:
        answer = ask(client, rucio, ivoa)
    assert answer.result == "NO"
    said = " ".join(messages(answer))
    assert "data 'run-42': this platform has no Rucio account (data.rucio is empty)" in said
    assert (
        "data 'obs': cannot resolve ivo://example.org/obs?123: no DataLink service is "
        "configured for it (data.ivoa.datalink) and no registry (data.ivoa.regtap)"
    ) in said


@pytest.mark.s3
def test_s3_objects_are_sized_and_a_missing_one_is_a_no(tmp_path, s3_bucket: Bucket):
    s3_bucket.put("runs/a.bin", b"x" * 5000, tmp_path)
    s3_bucket.put("runs/b.bin", b"y" * 7000, tmp_path)

    def s3(name: str, key: str) -> dict[str, Any]:
        return {
            "kind": K + "data/S3-data-resource.yaml",
            "meta": {"name": name},
            "endpoint": s3_bucket.endpoint,
            "bucket": s3_bucket.name,
            "object": key,
        }

    with client_for(tmp_path, platform("only"), strategies=["earliest"]) as client:
        # one object (5000 bytes), then the whole prefix (both: 12000 bytes)
        found = ask(client, s3("one", "runs/a.bin"), s3("all", "runs/"))
        missing = ask(client, s3("gone", "runs/nope.bin"))
    assert found.result == "YES"
    assert any("moves 16.6 KiB (17000 bytes)" in text for text in messages(found))
    assert missing.result == "NO"
    said = " ".join(messages(missing))
    assert "data 'gone'" in said
    assert "no such object or bucket" in said
