"""The Slurm adapter against a real cluster: a job asks for exactly what was offered, and its
results are uploaded where the request says.

Uses the cluster `SLURM_CONF` names (`scripts/services/slurm start`); skipped without one, and
failed under `VOEXEC_REQUIRE_SERVICES=1`. The results tests drive a broker service whose one
platform is the cluster: a Python program reads an HTTP file the job staged and writes its
checksum; during RELEASING the broker's host copies the job's output folder (on the file system
it shares with the node) to an S3 prefix (moto, marked `s3`) or a folder, and the session lists
each object with its size and SHA-256. A destination that cannot be written fails the session
with the reason and keeps the output.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker import model
from broker.model import codec
from broker.platforms import build_platform
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
    SlurmPlatformSettings,
)
from tests.broker_support import accept_first, tick_until
from tests.contract.test_platforms import slurm_available
from tests.data_support import said

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
PROGRAM = """\
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
TABLE = b"ra,dec\n10.5,-3.2\n"


class ClusterBroker:
    """A broker service whose one platform is the cluster, writing results where allowed."""

    def __init__(self, tmp_path: Path, results: PlatformResultsSettings) -> None:
        slurm_available()
        self.settings = PlatformSettings(
            name="cluster",
            adapter="slurm",
            capacity=Capacity(cores=2, memory=3),
            executables=["python-program"],
            preparation=timedelta(seconds=1),
            data=PlatformDataSettings(results=results),
            slurm=SlurmPlatformSettings(partition="main", poll=timedelta(milliseconds=500)),
        )
        engine = make_engine(f"sqlite:///{tmp_path / 'broker.db'}")
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
        self.program.write_text(PROGRAM)

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

    def output(self, session: model.AnySession) -> Path:
        assert session.meta is not None
        return Path(self.platform.root) / str(session.meta.uuid) / "output"  # type: ignore[attr-defined]


def table_data(http_files: Any) -> list[dict[str, Any]]:
    http_files.files["/table.csv"] = TABLE
    return [
        {
            "kind": model.KINDS + "data/simple-data-resource.yaml",
            "meta": {"name": "table"},
            "location": f"{http_files.url}/table.csv",
        }
    ]


def listed(session: model.AnySession) -> dict[str, dict[str, str]]:
    messages = session.meta.messages if session.meta else []
    return {m.values["name"]: m.values for m in messages if m.kind == "urn:voexec:results"}


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.mark.s3
@pytest.mark.slow
def test_a_jobs_output_is_uploaded_under_the_s3_prefix_with_its_checksums(
    tmp_path, http_files, s3_bucket, fresh_probes
):
    cluster = ClusterBroker(tmp_path, PlatformResultsSettings(s3=[s3_bucket.endpoint]))
    storage = {
        "kind": model.S3_RESULTS_KIND,
        "meta": {"name": "results"},
        "endpoint": s3_bucket.endpoint,
        "bucket": s3_bucket.name,
        "prefix": "cluster/run-1/",
    }
    session = cluster.run(storage=[storage], data=table_data(http_files))
    assert session.phase is model.SessionPhase.COMPLETED, said(session)
    stored = s3_bucket.keys("cluster/run-1/")
    assert set(stored) == {"cluster/run-1/checksums.txt", "cluster/run-1/plots/sky map.txt"}
    checksums = s3_bucket.get("cluster/run-1/checksums.txt").decode()
    assert f"table {len(TABLE)} {sha256(TABLE)}" in checksums.splitlines()
    written = listed(session)
    assert set(written) == {"checksums.txt", "plots/sky map.txt"}
    for name, values in written.items():
        body = s3_bucket.get(f"cluster/run-1/{name}")
        assert values["bytes"] == str(len(body))
        assert values["sha256"] == sha256(body)
        assert values["etag"] == stored[f"cluster/run-1/{name}"].etag
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
    assert f"table {len(TABLE)} {sha256(TABLE)}" in copied.read_text().splitlines()
    values = listed(session)["checksums.txt"]
    assert values["location"] == copied.as_uri()
    assert values["sha256"] == sha256(copied.read_bytes())

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
