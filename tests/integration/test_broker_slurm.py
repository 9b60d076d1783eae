"""The Slurm adapter against a real cluster: a job asks for exactly what was offered, its S3
data is staged by the broker's host, and its results are uploaded where the request says.

Uses the cluster `SLURM_CONF` names (`scripts/services/slurm start`); skipped without one, and
failed under `VOEXEC_REQUIRE_SERVICES=1`. The results tests drive a broker service whose one
platform is the cluster: a Python program reads an HTTP file the job staged and writes its
checksum; during RELEASING the broker's host copies the job's output folder (on the file system
it shares with the node) to an S3 prefix (moto, marked `s3`) or a folder, and the session lists
each object with its size and SHA-256. A destination that cannot be written fails the session
with the reason and keeps the output.

The S3 data tests give the platform its own key pair: the broker's host stages the object of a
private bucket before the job is submitted, and neither the job's environment nor any file of
the session's folder holds the secret key. A missing object is a NO at offer time, one removed
after the offer fails the session before any job exists, and a cancel stops a staging under
way (an S3 endpoint whose object comes slowly, `SlowS3`), as a restarted broker finds it.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from broker import model
from broker.model import codec
from broker.platforms import build_platform, session_s3
from broker.platforms.port import SessionPlan
from broker.platforms.slurm import SlurmPlatform
from broker.service import BrokerService
from broker.store.sql import SqlBrokerStore
from core.clock import SystemClock
from core.db import make_engine
from core.settings import (
    BrokerSettings,
    Capacity,
    PlatformDataSettings,
    PlatformResultsSettings,
    PlatformSettings,
    S3Credentials,
    SlurmPlatformSettings,
)
from tests.broker_support import accept_first, tick_until, wait_for
from tests.contract.test_platforms import slurm_available
from tests.data_support import (
    CHECKSUM_PROGRAM,
    S3_KEYS,
    Bucket,
    listed_results,
    s3_item,
    s3_results,
    said,
    sha256_hex,
    simple_item,
    uploaded_checksums,
)

pytestmark = pytest.mark.slurm


def show_job(job: str) -> dict[str, str]:
    answer = subprocess.run(
        ["scontrol", "-o", "show", "job", job],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return dict(item.split("=", 1) for item in answer.stdout.split() if "=" in item)


def mebibytes(text: str) -> float:
    """Slurm's memory notation (`1536M`, `1.50G`) in MiB."""
    factors = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    return float(text[:-1]) * factors[text[-1]]


def test_a_job_asks_for_the_offered_cores_memory_start_and_end_and_a_cancel_ends_it(tmp_path):
    slurm_available()
    settings = PlatformSettings(
        name="cluster",
        adapter="slurm",
        capacity=Capacity(cores=2, memory=3),
        slurm=SlurmPlatformSettings(partition="main"),
    )
    platform = SlurmPlatform(settings, tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    plan = SessionPlan(
        session_id="integration-1",
        executable=model.PythonProgram(location=str(tmp_path / "never-run.py")),
        cores=2,
        memory=1.5,
        gpus=0,
        start=now + timedelta(minutes=30),
        end=now + timedelta(minutes=90),
    )
    platform.prepare(plan, now)
    job = (tmp_path / "platforms" / "cluster" / "integration-1" / "state" / "job").read_text()
    shown = show_job(job.strip())
    try:
        assert shown["JobState"] == "PENDING"
        assert shown["NumCPUs"] == "2"
        assert mebibytes(shown["MinMemoryNode"]) == 1536
        assert shown["TimeLimit"] == "01:00:00"  # from the offered start to the offered end
        assert shown["Partition"] == "main"
        begins = datetime.fromisoformat(shown["EligibleTime"]).astimezone(UTC)
        assert begins == plan.start.astimezone(UTC)
        assert shown["JobName"] == "voexec-integration-1"
    finally:
        platform.stop(plan, now)
    deadline = time.monotonic() + 60
    while show_job(job.strip())["JobState"] != "CANCELLED":
        assert time.monotonic() < deadline, "the job was not cancelled"
        time.sleep(0.2)
    assert Path(shown["WorkDir"]) == tmp_path / "platforms" / "cluster" / "integration-1"


# ------------------------------------------------------------------ results
TABLE = b"ra,dec\n10.5,-3.2\n"


class ClusterBroker:
    """A broker service whose one platform is the cluster, writing results where allowed.

    Another one made on the same `tmp_path` is the same broker restarted: the same database,
    the same sessions' folders.
    """

    def __init__(
        self,
        tmp_path: Path,
        results: PlatformResultsSettings = PlatformResultsSettings(),  # noqa: B008 - frozen
        s3: S3Credentials = S3Credentials(),  # noqa: B008 - frozen
        program: str = CHECKSUM_PROGRAM,
    ) -> None:
        slurm_available()
        self.settings = PlatformSettings(
            name="cluster",
            adapter="slurm",
            capacity=Capacity(cores=2, memory=3),
            executables=["python-program"],
            preparation=timedelta(seconds=1),
            data=PlatformDataSettings(results=results, s3=s3),
            slurm=SlurmPlatformSettings(partition="main", poll=timedelta(milliseconds=500)),
        )
        self.engine = engine = make_engine(f"sqlite:///{tmp_path / 'broker.db'}")
        store = SqlBrokerStore(engine)
        store.migrate()
        self.platform = build_platform(self.settings, tmp_path / "var")
        self.service = BrokerService(
            BrokerSettings(platforms=[self.settings], max_offers=1),
            SystemClock(),
            store,
            {"cluster": self.platform},
        )
        self.program = tmp_path / "program.py"
        self.program.write_text(program)

    def offers(self, **parts: list[dict[str, Any]]) -> model.OfferSetResponse:
        now = datetime.now(UTC).replace(microsecond=0)
        document = {
            "executable": {"kind": model.PYTHON_PROGRAM_KIND, "location": self.program.as_uri()},
            **parts,
            "compute": {
                "kind": model.KINDS + "compute/simple-compute-resource.yaml",
                "cores": {"min": 1, "max": 1},
                "memory": {"min": 1, "max": 1},
            },
            "schedule": {"requested": {"start": f"{now.isoformat()}/PT10M", "duration": "PT5M"}},
        }
        request = codec.convert(document, model.ExecutionRequest).value
        return self.service.request_offers(request, "http://broker.test/broker")

    def run(self, **parts: list[dict[str, Any]]) -> model.AnySession:
        uuid = accept_first(self.service, self.offers(**parts))
        return tick_until(self.service, uuid, *model.TERMINAL_PHASES, seconds=240)

    def folder(self, session: model.AnySession | UUID) -> Path:
        """The session's working directory, on the file system the job shares."""
        uuid = session if isinstance(session, UUID) else session.meta.uuid  # type: ignore[union-attr]
        return Path(self.platform.root) / str(uuid)  # type: ignore[attr-defined]

    def output(self, session: model.AnySession) -> Path:
        return self.folder(session) / "output"

    def cancel(self, session: UUID) -> model.AnySession:
        cancel = model.EnumValueUpdate(path="phase", value="CANCELLED")
        return self.service.update_session(session, cancel)

    def close(self) -> None:
        self.engine.dispose()


def table_data(http_files: Any) -> list[dict[str, Any]]:
    http_files.files["/table.csv"] = TABLE
    return [simple_item(f"{http_files.url}/table.csv")]


@pytest.mark.s3
@pytest.mark.slow
def test_a_jobs_output_is_uploaded_under_the_s3_prefix_with_its_checksums(
    tmp_path, http_files, s3_bucket, fresh_probes
):
    cluster = ClusterBroker(tmp_path, PlatformResultsSettings(s3=[s3_bucket.endpoint]))
    storage = s3_results(s3_bucket, "cluster/run-1/")
    session = cluster.run(storage=[storage], data=table_data(http_files))
    assert session.phase is model.SessionPhase.COMPLETED, said(session)
    checksums = uploaded_checksums(s3_bucket, "cluster/run-1/", session)
    assert f"table {len(TABLE)} {sha256_hex(TABLE)}" in checksums
    assert "2 file(s)" in said(session)


@pytest.mark.slow
def test_a_jobs_output_is_copied_to_a_folder_and_a_failed_upload_keeps_it(
    tmp_path, http_files, fresh_probes
):
    root = tmp_path / "results"
    cluster = ClusterBroker(tmp_path, PlatformResultsSettings(files=[str(root)]))
    target = {"kind": model.FILE_RESULTS_KIND, "meta": {"name": "results"}}
    session = cluster.run(
        storage=[target | {"path": str(root / "run-1")}], data=table_data(http_files)
    )
    assert session.phase is model.SessionPhase.COMPLETED, said(session)
    copied = root / "run-1" / "checksums.txt"
    assert f"table {len(TABLE)} {sha256_hex(TABLE)}" in copied.read_text().splitlines()
    values = listed_results(session)["checksums.txt"]
    assert values["location"] == copied.as_uri()
    assert values["sha256"] == sha256_hex(copied.read_bytes())

    # A file where the folder should be: the copy fails, the session says why, the output stays.
    (root / "blocked").write_text("not a folder\n")
    session = cluster.run(
        storage=[target | {"path": str(root / "blocked")}], data=table_data(http_files)
    )
    assert session.phase is model.SessionPhase.FAILED
    text = said(session)
    assert "the upload of the results exited with code 1" in text
    assert str(root / "blocked") in text
    assert f"the output is kept in {cluster.output(session)}" in text
    assert (cluster.output(session) / "checksums.txt").is_file()


def test_a_destination_the_cluster_may_not_write_is_a_no_at_offer_time(tmp_path):
    cluster = ClusterBroker(tmp_path, PlatformResultsSettings(files=["/srv/results"]))
    offers = cluster.offers(storage=[{"kind": model.FILE_RESULTS_KIND, "path": "/etc/cron.d"}])
    assert offers.result == "NO"
    assert "does not write results to /etc/cron.d" in said(offers)


# ------------------------------------------------------------------ S3 data, staged by the host
SECRET = "cluster-secret-9b41d7e2"
"""The platform's secret key: it must reach no job and no file."""
PLATFORM_KEYS = S3Credentials(access_key="cluster-key", secret_key=SECRET, region="us-east-1")
ENVIRONMENT_PROGRAM = (
    CHECKSUM_PROGRAM
    + """\
pathlib.Path("environ.txt").write_text(
    "".join(f"{name}={value}\\n" for name, value in sorted(os.environ.items()))
)
"""
)
CUBE = b"SIMPLE  =                    T / a private cube\n" * 40


def s3_data(endpoint: str, bucket: str, key: str) -> list[dict[str, Any]]:
    return [s3_item(endpoint, bucket, key)]


def unsigned_get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def delete_object(bucket: Bucket, key: str) -> None:
    url = session_s3.object_url(bucket.endpoint, bucket.name, key)
    headers = session_s3._signed_headers("DELETE", url, S3_KEYS, session_s3._EMPTY_SHA256, {})
    request = urllib.request.Request(url, method="DELETE", headers=headers)
    with urllib.request.urlopen(request, timeout=10):
        pass


def files_holding(folder: Path, secret: str) -> list[Path]:
    return [f for f in folder.rglob("*") if f.is_file() and secret.encode() in f.read_bytes()]


def jobs_named(session: UUID) -> list[str]:
    answer = subprocess.run(
        ["squeue", "-h", "--states=all", "-n", f"voexec-{session}", "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return answer.stdout.split()


@pytest.mark.s3
@pytest.mark.slow
def test_a_job_reads_a_private_s3_object_the_brokers_host_staged_and_never_sees_the_keys(
    tmp_path, s3_bucket, fresh_probes
):
    s3_bucket.put("survey/cube.fits", CUBE, tmp_path)
    url = session_s3.object_url(s3_bucket.endpoint, s3_bucket.name, "survey/cube.fits")
    assert unsigned_get(url) == 403  # a private bucket: only the keys read it
    cluster = ClusterBroker(tmp_path, s3=PLATFORM_KEYS, program=ENVIRONMENT_PROGRAM)
    session = cluster.run(data=s3_data(s3_bucket.endpoint, s3_bucket.name, "survey/cube.fits"))
    assert session.phase is model.SessionPhase.COMPLETED, said(session)
    checksums = (cluster.output(session) / "checksums.txt").read_text().splitlines()
    assert f"cube {len(CUBE)} {sha256_hex(CUBE)}" in checksums
    text = said(session)
    assert "staging data 'cube' on the broker's host" in text
    assert "data staged; Slurm job" in text

    folder = cluster.folder(session)
    environment = (cluster.output(session) / "environ.txt").read_text().splitlines()
    assert any(line.startswith("SLURM_JOB_ID=") for line in environment)  # it ran in the job
    assert [line for line in environment if line.startswith("AWS_")] == []
    assert files_holding(folder, SECRET) == []  # scripts, logs, state, data, output
    assert "s3+http" not in (folder / "prepare.sh").read_text()  # the job fetched nothing
    assert "s3+http" in (folder / "stage.sh").read_text()
    staged = (folder / "logs" / "stage.out").read_text()  # what the host staged, checked
    assert f"staged cube: {len(CUBE)} bytes, md5 {hashlib.md5(CUBE).hexdigest()}" in staged


@pytest.mark.s3
@pytest.mark.slow
def test_a_missing_s3_object_is_a_no_and_one_gone_after_the_offer_fails_before_any_job(
    tmp_path, s3_bucket, fresh_probes
):
    cluster = ClusterBroker(tmp_path, s3=PLATFORM_KEYS)
    offers = cluster.offers(data=s3_data(s3_bucket.endpoint, s3_bucket.name, "survey/none.fits"))
    assert offers.result == "NO"
    assert "cube" in said(offers)
    assert "no such object or bucket" in said(offers)

    s3_bucket.put("survey/cube.fits", CUBE, tmp_path)
    offers = cluster.offers(data=s3_data(s3_bucket.endpoint, s3_bucket.name, "survey/cube.fits"))
    assert f"cluster: moves 1.9 KiB ({len(CUBE)} bytes) of data from" in said(offers)  # priced
    delete_object(s3_bucket, "survey/cube.fits")  # gone between the offer and the staging
    uuid = accept_first(cluster.service, offers)
    session = tick_until(cluster.service, uuid, *model.TERMINAL_PHASES, seconds=120)
    assert session.phase is model.SessionPhase.FAILED
    text = said(session)
    assert "data 'cube' could not be staged on the broker's host" in text
    assert "404" in text
    assert not (cluster.folder(uuid) / "state" / "job").exists()
    assert jobs_named(uuid) == []


class SlowS3:
    """An S3 endpoint whose one object comes slowly: HEAD answers at once (size, ETag); GET
    sends the first bytes, then the rest only once `go` is set."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.go = threading.Event()
        self.gets = threading.Event()
        self.url = ""

    def serve(self) -> Iterator[SlowS3]:
        slow = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _head(self) -> bool:
                if self.path.split("?")[0] != "/slow/cube.fits":
                    self.send_error(404, "NoSuchKey")
                    return False
                self.send_response(200)
                self.send_header("Content-Length", str(len(slow.body)))
                self.send_header("ETag", f'"{hashlib.md5(slow.body).hexdigest()}"')
                self.end_headers()
                return True

            def do_HEAD(self) -> None:
                self._head()

            def do_GET(self) -> None:
                if not self._head():
                    return
                try:
                    self.wfile.write(slow.body[:100])
                    self.wfile.flush()
                    slow.gets.set()
                    while not slow.go.wait(0.1):
                        pass
                    self.wfile.write(slow.body[100:])
                except OSError:
                    pass  # the reader went away (a cancel)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.go.set()
            server.shutdown()
            server.server_close()


@pytest.fixture
def slow_s3() -> Iterator[SlowS3]:
    yield from SlowS3(CUBE).serve()


def staging_under_way(cluster: ClusterBroker, slow: SlowS3) -> UUID:
    offers = cluster.offers(data=s3_data(slow.url, "slow", "cube.fits"))
    uuid = accept_first(cluster.service, offers)

    def reading() -> bool:
        cluster.service.tick()
        return slow.gets.is_set()

    wait_for(reading, "the broker's host to start reading the object", seconds=60)
    state = cluster.folder(uuid) / "state"
    assert (state / "stage.pid").is_file()
    assert not (state / "job").exists()  # no job while the data is being staged
    assert cluster.service.get_session(uuid).phase is model.SessionPhase.PREPARING
    return uuid


@pytest.mark.slow
def test_a_cancel_during_the_staging_stops_it_and_no_job_is_ever_submitted(
    tmp_path, slow_s3, fresh_probes
):
    cluster = ClusterBroker(tmp_path, s3=PLATFORM_KEYS)
    uuid = staging_under_way(cluster, slow_s3)
    state = cluster.folder(uuid) / "state"
    pid = int((state / "stage.pid").read_text())
    assert cluster.cancel(uuid).phase is model.SessionPhase.CANCELLED
    wait_for((state / "stage.exit").exists, "the staging to stop", seconds=60)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the staging's runner to be gone")
    slow_s3.go.set()  # too late: nobody reads it any more
    for _ in range(4):
        cluster.service.tick()
        time.sleep(0.5)
    assert cluster.service.get_session(uuid).phase is model.SessionPhase.CANCELLED
    assert not (state / "job").exists()
    assert jobs_named(uuid) == []
    assert (state / "stage.exit").read_text().strip() != "0"  # stopped, not staged


@pytest.mark.slow
def test_a_restarted_broker_finds_the_staging_where_it_is_and_the_session_completes(
    tmp_path, slow_s3, fresh_probes
):
    first = ClusterBroker(tmp_path, s3=PLATFORM_KEYS)
    uuid = staging_under_way(first, slow_s3)
    first.close()  # the broker stops; the staging goes on without it

    restarted = ClusterBroker(tmp_path, s3=PLATFORM_KEYS)
    restarted.service.tick()
    assert restarted.service.get_session(uuid).phase is model.SessionPhase.PREPARING
    assert not (restarted.folder(uuid) / "state" / "job").exists()
    slow_s3.go.set()
    session = tick_until(restarted.service, uuid, *model.TERMINAL_PHASES, seconds=240)
    assert session.phase is model.SessionPhase.COMPLETED, said(session)
    checksums = (restarted.output(session) / "checksums.txt").read_text().splitlines()
    assert f"cube {len(CUBE)} {sha256_hex(CUBE)}" in checksums
    assert files_holding(restarted.folder(uuid), SECRET) == []
