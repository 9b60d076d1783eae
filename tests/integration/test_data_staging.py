"""Data staged for real by the local platform: HTTP, files and S3, with checksums and limits.

A Python program reads an S3 object and an HTTP file from `$VOEXEC_DATA`, computes their MD5
and writes them to its output; the session's preparation staged both, checking the MD5 each
source announces (an S3 ETag, an HTTP `Content-MD5`). A corrupted download, or data larger
than the platform's `data.max_size`, fails the preparation with the reason.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from broker import model
from broker.model import SessionPhase as P
from broker.model import codec
from broker.platforms import build_platform
from broker.platforms.data_reach import clear_probe_cache
from broker.service import BrokerService
from broker.store.sql import SqlBrokerStore
from core.clock import SystemClock
from core.db import make_engine
from core.settings import (
    BrokerSettings,
    Capacity,
    LocalPlatformSettings,
    PlatformDataSettings,
    PlatformSettings,
)
from tests.data_support import Bucket, HttpFiles, make_bucket, serve_files

K = model.KINDS
BASE = "http://broker.test/broker"
DEADLINE = 120.0
PROGRAM = """\
import hashlib, os, pathlib
data = pathlib.Path(os.environ["VOEXEC_DATA"])
lines = []
for name in sorted(p.name for p in data.iterdir()):
    body = (data / name).read_bytes()
    lines.append(f"{name} {len(body)} {hashlib.md5(body).hexdigest()}")
pathlib.Path("checksums.txt").write_text("\\n".join(lines) + "\\n")
"""


@pytest.fixture
def http_files() -> Iterator[HttpFiles]:
    yield from serve_files()


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Bucket:
    return make_bucket(monkeypatch)


@pytest.fixture(autouse=True)
def _fresh_probes() -> Iterator[None]:
    clear_probe_cache()
    yield
    clear_probe_cache()


class Broker:
    def __init__(self, tmp_path: Path, data: PlatformDataSettings) -> None:
        settings = PlatformSettings(
            name="workstation",
            adapter="local",
            capacity=Capacity(cores=2, memory=3),
            executables=["python-program"],
            preparation=timedelta(seconds=1),
            local=LocalPlatformSettings(
                poll=timedelta(milliseconds=200),
                container_runtime="none",
                container_engine="none",
            ),
            data=data,
        )
        self.engine = make_engine(f"sqlite:///{tmp_path / 'broker.db'}")
        store = SqlBrokerStore(self.engine)
        store.migrate()
        self.platform = build_platform(settings, tmp_path / "var")
        self.service = BrokerService(
            BrokerSettings(platforms=[settings], max_offers=1),
            SystemClock(),
            store,
            {settings.name: self.platform},
        )
        self.program = tmp_path / "checksums.py"
        self.program.write_text(PROGRAM)

    def run(self, *data: dict[str, Any]) -> model.AnySession:
        now = datetime.now(UTC).replace(microsecond=0)
        document = {
            "executable": {"kind": model.PYTHON_PROGRAM_KIND, "location": self.program.as_uri()},
            "data": list(data),
            "schedule": {"requested": {"start": f"{now.isoformat()}/PT10M", "duration": "PT2M"}},
        }
        request = codec.convert(document, model.ExecutionRequest).value
        offers = self.service.request_offers(request, BASE)
        said = [m.message for m in offers.meta.messages] if offers.meta else []
        assert offers.result == "YES", said
        uuid = offers.offers[0].meta.uuid  # type: ignore[union-attr]
        assert uuid is not None
        accept = model.EnumValueUpdate(path="phase", value="ACCEPTED")
        self.service.update_session(uuid, accept)
        return self.until_done(uuid)

    def until_done(self, uuid: UUID) -> model.AnySession:
        deadline = time.monotonic() + DEADLINE
        while True:
            self.service.tick()
            found = self.service.get_session(uuid)
            if found.phase in model.TERMINAL_PHASES:
                return found
            assert time.monotonic() < deadline, f"still {found.phase}"
            time.sleep(0.2)

    def output(self, session: model.AnySession) -> Path:
        assert session.meta is not None
        return Path(self.platform.root) / str(session.meta.uuid) / "output"  # type: ignore[attr-defined]


def said(session: model.AnySession) -> str:
    return " | ".join(m.message or "" for m in (session.meta.messages if session.meta else []))


def simple(name: str, location: str) -> dict[str, Any]:
    return {
        "kind": K + "data/simple-data-resource.yaml",
        "meta": {"name": name},
        "location": location,
    }


def s3(name: str, bucket: Bucket, key: str) -> dict[str, Any]:
    return {
        "kind": K + "data/S3-data-resource.yaml",
        "meta": {"name": name},
        "endpoint": bucket.endpoint,
        "bucket": bucket.name,
        "object": key,
    }


@pytest.mark.s3
@pytest.mark.slow
def test_a_program_reads_an_s3_object_and_an_http_file_staged_with_checksums(
    tmp_path, http_files, s3_bucket
):
    cube, table = b"cube " * 2000, b"ra,dec\n10.5,-3.2\n"
    s3_bucket.put("obs/cube.fits", cube, tmp_path)
    http_files.files["/table.csv"] = table
    broker = Broker(tmp_path, PlatformDataSettings())
    session = broker.run(
        s3("cube", s3_bucket, "obs/cube.fits"), simple("table", f"{http_files.url}/table.csv")
    )
    assert session.phase is P.COMPLETED, said(session)
    written = (broker.output(session) / "checksums.txt").read_text().split("\n")
    assert f"cube {len(cube)} {hashlib.md5(cube).hexdigest()}" in written
    assert f"table {len(table)} {hashlib.md5(table).hexdigest()}" in written


def test_a_download_that_does_not_match_its_announced_md5_fails_the_preparation(
    tmp_path, http_files
):
    http_files.files["/table.csv"] = b"the bytes sent"
    http_files.announce["/table.csv"] = b"the bytes meant"
    broker = Broker(tmp_path, PlatformDataSettings())
    session = broker.run(simple("table", f"{http_files.url}/table.csv"))
    assert session.phase is P.FAILED
    assert "the download's md5 is" in said(session)
    assert not (broker.output(session).parent / "data" / "table").exists()


def test_data_larger_than_the_platform_stages_is_a_no_at_offer_time(tmp_path, http_files):
    http_files.files["/big.bin"] = b"x" * 4096
    broker = Broker(tmp_path, PlatformDataSettings(max_size=1 / (1 << 20)))  # 1 KiB
    now = datetime.now(UTC).replace(microsecond=0)
    document = {
        "executable": {"kind": model.PYTHON_PROGRAM_KIND, "location": broker.program.as_uri()},
        "data": [simple("big", f"{http_files.url}/big.bin")],
        "schedule": {"requested": {"start": f"{now.isoformat()}/PT10M", "duration": "PT2M"}},
    }
    request = codec.convert(document, model.ExecutionRequest).value
    offers = broker.service.request_offers(request, BASE)
    assert offers.result == "NO"
    text = " ".join(m.message or "" for m in offers.meta.messages)  # type: ignore[union-attr]
    assert "data 'big' is 4096 bytes, more than this platform stages" in text
