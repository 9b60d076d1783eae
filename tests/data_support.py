"""Data sources for the staging tests: a small HTTP server and buckets on the S3 service.

`serve_files` serves files from a dict (path -> bytes, or an int: a size announced by HEAD
without any body, for offers about data too large to hold), records PUTs (results uploads),
can insist on an `Authorization` header for them (401 without), can act as a WebDAV server
that PUTs only into folders made with MKCOL (409 otherwise) and can send `Content-MD5`.
`make_bucket` makes a fresh bucket on the S3 server of `scripts/services/s3`
(`VOEXEC_TEST_S3_URL`), skipping without it, failing under `VOEXEC_REQUIRE_SERVICES=1`.

The fixtures `http_files`, `s3_bucket` and `fresh_probes` (registered for every test by
`tests/conftest.py`) wrap them; `LocalBroker` is a broker service with one local platform that
runs a Python program without containers, as the staging and results tests drive it, and
`ContainerBroker` one whose local platform runs docker-container images with podman.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from broker import model
from broker.model import codec
from broker.platforms import build_platform, session_s3
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
from tests.broker_support import accept_first, local_broker, tick_until
from tests.conftest import require_service

S3_ENV = "VOEXEC_TEST_S3_URL"
S3_KEYS = session_s3.Credentials("testing", "testing", region="us-east-1")
"""moto accepts any key pair; the tests sign with this one."""


@dataclass
class HttpFiles:
    """What the HTTP server serves and what it was sent."""

    url: str
    files: dict[str, bytes | int] = field(default_factory=dict)
    put: dict[str, bytes] = field(default_factory=dict)
    send_md5: bool = True
    refuse_put: bool = False
    announce: dict[str, bytes] = field(default_factory=dict)
    """Path -> other bytes whose MD5 the server announces instead (a corrupted transfer)."""
    put_authorization: str | None = None
    """The `Authorization` header a PUT must carry (401 without it, 403 with another)."""
    put_headers: dict[str, str] = field(default_factory=dict)
    """Path -> the `Authorization` header each PUT came with ("" for none)."""
    collections: set[str] | None = None
    """WebDAV-like: the folders (`/dav/`) that exist; a PUT into another is 409 Conflict and
    MKCOL makes one (405 when it exists, 409 when its parent does not). None: any folder."""
    mkcol: list[str] = field(default_factory=list)
    """The paths MKCOL was sent to, in order."""


def _handler(state: HttpFiles) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet tests
            pass

        def _head(self) -> bytes | None:
            found = state.files.get(self.path)
            if found is None:
                self.send_error(404, "no such file")
                return None
            self.send_response(200)
            size = found if isinstance(found, int) else len(found)
            self.send_header("Content-Length", str(size))
            if isinstance(found, bytes) and state.send_md5:
                claimed = state.announce.get(self.path, found)
                digest = base64.b64encode(hashlib.md5(claimed).digest()).decode()
                self.send_header("Content-MD5", digest)
            self.end_headers()
            return found if isinstance(found, bytes) else b""

        def do_HEAD(self) -> None:
            self._head()

        def do_GET(self) -> None:
            body = self._head()
            if body:
                self.wfile.write(body)

        def _status(self, code: int, message: str) -> None:
            self.send_response(code, message)
            if code == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="results"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _authorized(self) -> bool:
            given = self.headers.get("Authorization", "")
            if state.put_authorization is None or given == state.put_authorization:
                return True
            self._status(*((401, "Unauthorized") if not given else (403, "Forbidden")))
            return False

        def _parent(self) -> str:
            return self.path.rstrip("/").rsplit("/", 1)[0] + "/"

        def do_MKCOL(self) -> None:
            state.mkcol.append(self.path)
            if not self._authorized():
                return
            if state.collections is None or self.path in state.collections:
                self._status(405, "Method Not Allowed")
            elif self._parent() not in state.collections:
                self._status(409, "Conflict")
            else:
                state.collections.add(self.path)
                self._status(201, "Created")

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            state.put_headers[self.path] = self.headers.get("Authorization", "")
            if not self._authorized():
                return
            if state.collections is not None and self._parent() not in state.collections:
                self._status(409, "Conflict")
                return
            if state.refuse_put:
                self.send_error(403, "read only")
                return
            state.put[self.path] = body
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def serve_files() -> Iterator[HttpFiles]:
    """Run the HTTP server while the caller (a fixture) is suspended."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(HttpFiles("")))
    state = HttpFiles(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Bucket:
    endpoint: str
    name: str

    def put(self, key: str, body: bytes, tmp: Path) -> None:
        source = tmp / f"put-{uuid.uuid4().hex}"
        source.write_bytes(body)
        session_s3.put_object(self.endpoint, self.name, key, source, S3_KEYS)

    def get(self, key: str) -> bytes:
        url = session_s3.object_url(self.endpoint, self.name, key)
        headers = session_s3._signed_headers("GET", url, S3_KEYS, session_s3._EMPTY_SHA256, {})
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as answer:
            return bytes(answer.read())

    def keys(self, prefix: str = "") -> dict[str, session_s3.S3Object]:
        found = session_s3.list_objects(self.endpoint, self.name, prefix, S3_KEYS)
        return {item.key: item for item in found}


def s3_endpoint() -> str:
    url = os.environ.get(S3_ENV, "")
    require_service("S3", bool(url), f"set {S3_ENV} (scripts/services/s3 start)")
    return url


def make_bucket(monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A fresh bucket, and the test's key pair in the environment."""
    endpoint = s3_endpoint()
    name = f"voexec-{uuid.uuid4().hex[:12]}"
    url = session_s3.object_url(endpoint, name)
    headers = session_s3._signed_headers("PUT", url, S3_KEYS, session_s3._EMPTY_SHA256, {})
    request = urllib.request.Request(url, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=10):
        pass
    # The platform's credentials come from the environment when its settings give none.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEYS.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_KEYS.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", S3_KEYS.region)
    return Bucket(endpoint, name)


@pytest.fixture
def http_files() -> Iterator[HttpFiles]:
    yield from serve_files()


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Bucket:
    return make_bucket(monkeypatch)


@pytest.fixture
def fresh_probes() -> Iterator[None]:
    """Each test's servers are new: no probe answer of another test may linger."""
    clear_probe_cache()
    yield
    clear_probe_cache()


BROKER_BASE = "http://broker.test/broker"
RUN_DEADLINE = 120.0


def said(document: Any) -> str:
    """The messages of a session or an offer set, joined."""
    return " | ".join(m.message or "" for m in (document.meta.messages if document.meta else []))


class LocalBroker:
    """A broker service whose one local platform runs `program` (Python, no containers)."""

    def __init__(self, tmp_path: Path, data: PlatformDataSettings, program: str) -> None:
        parts = local_broker(tmp_path, ["python-program"], data)
        self.engine = parts.engine
        self.platform = parts.platform
        self.service = parts.service
        self.program = tmp_path / "program.py"
        self.program.write_text(program)

    def offers(self, **parts: list[dict[str, Any]]) -> model.OfferSetResponse:
        """Offers for running the program now; `parts` are the request's `data`, `storage`..."""
        now = datetime.now(UTC).replace(microsecond=0)
        document = {
            "executable": {"kind": model.PYTHON_PROGRAM_KIND, "location": self.program.as_uri()},
            **parts,
            "schedule": {"requested": {"start": f"{now.isoformat()}/PT10M", "duration": "PT2M"}},
        }
        request = codec.convert(document, model.ExecutionRequest).value
        return self.service.request_offers(request, BROKER_BASE)

    def run(self, **parts: list[dict[str, Any]]) -> model.AnySession:
        """Accept the first offer and drive the session until it ends."""
        uuid = accept_first(self.service, self.offers(**parts))
        return tick_until(self.service, uuid, *model.TERMINAL_PHASES, seconds=RUN_DEADLINE)

    def output(self, session: model.AnySession) -> Path:
        assert session.meta is not None
        return Path(self.platform.root) / str(session.meta.uuid) / "output"  # type: ignore[attr-defined]


class ContainerBroker:
    """A broker service whose one local platform runs docker-container images with podman.

    Images come from `registry` only (the loopback registry of `scripts/services/containers`).
    """

    def __init__(self, tmp_path: Path, data: PlatformDataSettings, registry: str) -> None:
        settings = PlatformSettings(
            name="workstation",
            adapter="local",
            capacity=Capacity(cores=2, memory=3),
            executables=["docker-container"],
            preparation=timedelta(seconds=1),
            data=data,
            local=LocalPlatformSettings(
                poll=timedelta(milliseconds=200),
                grace=timedelta(seconds=2),
                container_runtime="none",
                container_engine="podman",
                registries=[registry],
                container_pids=64,
            ),
        )
        store = SqlBrokerStore(make_engine(f"sqlite:///{tmp_path / 'broker.db'}"))
        store.migrate()
        self.platform = build_platform(settings, tmp_path / "var")
        self.service = BrokerService(
            BrokerSettings(platforms=[settings], max_offers=1),
            SystemClock(),
            store,
            {settings.name: self.platform},
        )

    def offers(
        self, image: str, script: str, **parts: list[dict[str, Any]]
    ) -> model.OfferSetResponse:
        """Offers for running `script` with the image's `/bin/sh` now."""
        now = datetime.now(UTC).replace(microsecond=0)
        document = {
            "executable": {
                "kind": model.KINDS + "executable/docker-container.yaml",
                "image": {"locations": [image]},
                "entrypoint": "/bin/sh",
                "command": ["-c", script],
            },
            **parts,
            "schedule": {"requested": {"start": f"{now.isoformat()}/PT10M", "duration": "PT3M"}},
        }
        request = codec.convert(document, model.ExecutionRequest).value
        return self.service.request_offers(request, BROKER_BASE)

    def run(self, image: str, script: str, **parts: list[dict[str, Any]]) -> model.AnySession:
        """Accept the first offer and drive the session until it ends."""
        uuid = accept_first(self.service, self.offers(image, script, **parts))
        return tick_until(self.service, uuid, *model.TERMINAL_PHASES, seconds=RUN_DEADLINE)

    def output(self, session: model.AnySession) -> Path:
        assert session.meta is not None
        return Path(self.platform.root) / str(session.meta.uuid) / "output"  # type: ignore[attr-defined]


# ------------------------------------------------------------------ data items and results
CHECKSUM_PROGRAM = """\
import hashlib, os, pathlib
data = pathlib.Path(os.environ["VOEXEC_DATA"])
lines = []
for name in sorted(p.name for p in data.iterdir()):
    body = (data / name).read_bytes()
    lines.append(f"{name} {len(body)} {hashlib.sha256(body).hexdigest()}")
pathlib.Path("checksums.txt").write_text("\\n".join(lines) + "\\n")
pathlib.Path("plots").mkdir()
pathlib.Path("plots/sky map.txt").write_text("a map of the sky\\n")
"""
"""A Python program writing a line `name bytes sha256` per staged data file to its output's
`checksums.txt`, and a file in a subfolder of its output (`plots/sky map.txt`)."""


def s3_item(endpoint: str, bucket: str, key: str, name: str = "cube") -> dict[str, Any]:
    """A request's S3 data item."""
    return {
        "kind": model.KINDS + "data/S3-data-resource.yaml",
        "meta": {"name": name},
        "endpoint": endpoint,
        "bucket": bucket,
        "object": key,
    }


def simple_item(location: str, name: str = "table") -> dict[str, Any]:
    """A request's simple (http, https, file) data item."""
    return {
        "kind": model.KINDS + "data/simple-data-resource.yaml",
        "meta": {"name": name},
        "location": location,
    }


def s3_results(bucket: Bucket, prefix: str, name: str = "results") -> dict[str, Any]:
    """A results destination: a prefix of an S3 bucket."""
    return {
        "kind": model.S3_RESULTS_KIND,
        "meta": {"name": name},
        "endpoint": bucket.endpoint,
        "bucket": bucket.name,
        "prefix": prefix,
    }


def http_results(location: str) -> dict[str, Any]:
    """A results destination: an http(s) URL prefix files are PUT under."""
    return {"kind": model.HTTP_RESULTS_KIND, "meta": {"name": "results"}, "location": location}


def file_results(path: Path | str) -> dict[str, Any]:
    """A results destination: a folder on the platform."""
    return {"kind": model.FILE_RESULTS_KIND, "meta": {"name": "results"}, "path": str(path)}


def listed_results(session: model.AnySession) -> dict[str, dict[str, str]]:
    """The objects the session says were written (`urn:voexec:results`), by name."""
    messages = session.meta.messages if session.meta else []
    return {m.values["name"]: m.values for m in messages if m.kind == "urn:voexec:results"}


def sha256_hex(body: bytes) -> str:
    """The SHA-256 of `body`, as the results listing writes it."""
    return hashlib.sha256(body).hexdigest()


def uploaded_checksums(bucket: Bucket, prefix: str, session: model.AnySession) -> list[str]:
    """Check the output landed under `prefix` as the session lists it; the checksums' lines.

    The output is `CHECKSUM_PROGRAM`'s (or a program writing the same files): `checksums.txt`
    and `plots/sky map.txt`, each listed with its bytes, SHA-256 and the store's ETag, which
    must match the objects read back.
    """
    stored = bucket.keys(prefix)
    assert set(stored) == {f"{prefix}checksums.txt", f"{prefix}plots/sky map.txt"}
    written = listed_results(session)
    assert set(written) == {"checksums.txt", "plots/sky map.txt"}
    for name, values in written.items():
        body = bucket.get(f"{prefix}{name}")
        assert values["bytes"] == str(len(body))
        assert values["sha256"] == sha256_hex(body)
        assert values["etag"] == stored[f"{prefix}{name}"].etag
    return bucket.get(f"{prefix}checksums.txt").decode().splitlines()
