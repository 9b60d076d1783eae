"""The Slurm adapter against a real cluster: a job asks for exactly what was offered.

Uses the cluster `SLURM_CONF` names (`scripts/services/slurm start`); skipped without one, and
failed under `VOEXEC_REQUIRE_SERVICES=1`.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker import model
from broker.platforms.port import SessionPlan
from broker.platforms.slurm import SlurmPlatform
from core.settings import Capacity, PlatformSettings, SlurmPlatformSettings
from tests.contract.test_platforms import slurm_available

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
