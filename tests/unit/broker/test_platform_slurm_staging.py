"""Slurm: data needing the platform's credentials is staged on the broker's host, not in the job.

The cluster is a recording command runner; the staging step runs for real on this machine
(against an S3 endpoint nothing listens on, so it fails at once) or is stood in for by the state
files it leaves, as a restarted broker finds them.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest

from broker import model
from broker.lifecycle import Failed, PlatformCheckDue, ReleaseDone
from broker.platforms import processes, uploads
from broker.platforms.port import DataSource, SessionPlan
from broker.platforms.recipe import (
    Layout,
    Tools,
    needs_credentials,
    prepare_script,
    stage_script,
)
from broker.platforms.slurm import CommandResult, SlurmPlatform
from core.settings import (
    Capacity,
    PlatformDataSettings,
    PlatformSettings,
    S3Credentials,
    SlurmPlatformSettings,
)

NOW = datetime.now(UTC).replace(microsecond=0)  # the staging step keeps real time
SECRET = "never-in-a-file-3f9c1e"
S3_KIND = model.KINDS + "data/S3-data-resource.yaml"
SIMPLE_KIND = model.KINDS + "data/simple-data-resource.yaml"
CUBE = DataSource("cube", S3_KIND, "s3+http://127.0.0.1:1/survey/cube.fits")
TABLE = DataSource("table", SIMPLE_KIND, "https://example.org/table.csv")
LAYOUT = Layout(PurePosixPath("/work/s-1"))


@pytest.fixture(autouse=True)
def no_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def plan(*data: DataSource, session_id: str = "s-1") -> SessionPlan:
    return SessionPlan(
        session_id=session_id,
        executable=model.PythonProgram(location="https://example.org/tool.py"),
        cores=1,
        memory=1.0,
        gpus=0,
        start=NOW + timedelta(minutes=10),
        end=NOW + timedelta(minutes=70),
        data=data,
    )


class Recorder:
    """Stands in for the cluster: records each command, answers sbatch with a job id."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.commands.append(list(argv))
        if argv[0] == "sbatch":
            return CommandResult(0, "91\n", "")
        return CommandResult(0, "PENDING\n", "")

    def sbatch(self) -> list[list[str]]:
        return [command for command in self.commands if command[0] == "sbatch"]


def cluster(tmp_path: Path, recorder: Recorder, *, keys: bool = True) -> SlurmPlatform:
    s3 = S3Credentials(access_key="platform-key", secret_key=SECRET) if keys else S3Credentials()
    settings = PlatformSettings(
        name="hpc",
        adapter="slurm",
        capacity=Capacity(cores=8, memory=16),
        data=PlatformDataSettings(s3=s3),
        slurm=SlurmPlatformSettings(poll=timedelta(seconds=1)),
    )
    return SlurmPlatform(settings, tmp_path, run=recorder)


def folder(tmp_path: Path, session_id: str = "s-1") -> Path:
    return tmp_path / "platforms" / "hpc" / session_id


def secrets_in(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


# ------------------------------------------------------------------------- the scripts
def test_only_s3_data_the_platform_signs_for_needs_its_credentials():
    assert needs_credentials("s3+https://s3.example.net/b/k", s3_keys=True)
    assert needs_credentials("s3+http://127.0.0.1:9000/b/prefix/", s3_keys=True)
    assert not needs_credentials("s3+https://s3.example.net/b/k", s3_keys=False)
    assert not needs_credentials("https://example.org/t.csv", s3_keys=True)
    assert not needs_credentials("file:///srv/mirror/k", s3_keys=True)


def test_data_staged_beforehand_is_checked_by_the_preparation_not_fetched_again():
    script = prepare_script(plan(CUBE, TABLE), Tools(python="python3"), LAYOUT, {"cube"})
    assert "s3+http" not in script
    assert "[ -e data/cube ] ||" in script
    assert shlex.quote("data 'cube' was not staged on the broker's host") in script
    assert "session_fetch.py data https://example.org/table.csv data/table" in script

    staging = stage_script(
        plan(CUBE, TABLE), Tools(python="/usr/bin/python3", max_data_bytes=5), LAYOUT, {"cube"}
    )
    assert "printf '%s\\n' cube > state/stage.item" in staging
    assert (
        "/usr/bin/python3 session_fetch.py data s3+http://127.0.0.1:1/survey/cube.fits "
        "data/cube 5" in staging
    )
    assert "table" not in staging


# ------------------------------------------------------------------------- the adapter
def test_without_s3_keys_the_job_stages_s3_data_itself(tmp_path):
    recorder = Recorder()
    platform = cluster(tmp_path, recorder, keys=False)
    reports = platform.prepare(plan(CUBE), NOW)
    assert len(recorder.sbatch()) == 1
    assert "Slurm job 91" in (reports[0].note or "")
    assert "s3+http://127.0.0.1:1/survey/cube.fits" in (folder(tmp_path) / "prepare.sh").read_text()
    assert not (folder(tmp_path) / "stage.sh").exists()


def wait_until_staging_ends(root: Path) -> None:
    deadline = time.monotonic() + 60
    while not (root / "state" / "stage.exit").exists():
        assert time.monotonic() < deadline, "the staging step did not end"
        time.sleep(0.05)


def test_a_failed_host_staging_fails_the_session_naming_the_item_and_submits_nothing(tmp_path):
    recorder = Recorder()
    platform = cluster(tmp_path, recorder)
    session = plan(CUBE, TABLE)
    reports = platform.prepare(session, NOW)
    assert recorder.sbatch() == []
    assert [r.event for r in reports] == [PlatformCheckDue()]
    assert "staging data 'cube' on the broker's host" in (reports[0].note or "")
    root = folder(tmp_path)
    assert platform.prepare(session, NOW)[0].event == PlatformCheckDue()  # replayed: once
    wait_until_staging_ends(root)

    (report,) = platform.observe(session, NOW)
    assert isinstance(report.event, Failed)
    assert report.event.reason.startswith("data 'cube' could not be staged on the broker's host")
    assert "127.0.0.1:1" in report.event.reason  # what the fetch said
    assert recorder.sbatch() == []
    assert secrets_in(root) == []  # the keys were in the step's environment only

    # The failure's release: no job, nothing to upload, nothing to cancel.
    platform.release(session, NOW)
    assert [c[0] for c in recorder.commands] == []
    (report,) = platform.observe(session, NOW)
    assert isinstance(report.event, Failed)


def test_a_restarted_broker_submits_the_job_once_the_host_has_staged_the_data(
    tmp_path, monkeypatch
):
    def staged(plan: SessionPlan, layout: Layout, step: str, **_: object) -> None:
        state = Path(layout.state)
        state.mkdir(parents=True, exist_ok=True)
        (state / f"{step}.pid").write_text("999999999\n")  # no such process
        (state / "stage.item").write_text("cube\n")

    monkeypatch.setattr(uploads, "launch_step", staged)
    recorder = Recorder()
    session = plan(CUBE, TABLE)
    cluster(tmp_path, recorder).prepare(session, NOW)
    state = folder(tmp_path) / "state"
    (state / "stage.exit").write_text("0\n")

    restarted = cluster(tmp_path, recorder)  # a new process: all it knows is in the files
    (report,) = restarted.observe(session, NOW)
    assert report.event == PlatformCheckDue()
    assert "data staged; Slurm job 91" in (report.note or "")
    assert (state / "job").read_text() == "91\n"
    assert len(recorder.sbatch()) == 1
    restarted.prepare(session, NOW)  # a replayed preparation submits nothing more
    restarted.observe(session, NOW)
    assert len(recorder.sbatch()) == 1


def test_a_staging_killed_from_outside_fails_the_session(tmp_path, monkeypatch):
    def vanished(plan: SessionPlan, layout: Layout, step: str, **_: object) -> None:
        Path(layout.state).mkdir(parents=True, exist_ok=True)
        (Path(layout.state) / f"{step}.pid").write_text("999999999\n")

    monkeypatch.setattr(uploads, "launch_step", vanished)
    recorder = Recorder()
    platform = cluster(tmp_path, recorder)
    platform.prepare(plan(CUBE), NOW)
    (report,) = platform.observe(plan(CUBE), NOW)
    assert isinstance(report.event, Failed)
    assert "ended without an exit code" in report.event.reason
    assert recorder.sbatch() == []


def test_a_release_before_the_job_was_submitted_ends_without_a_job(tmp_path, monkeypatch):
    def staged(plan: SessionPlan, layout: Layout, step: str, **_: object) -> None:
        Path(layout.state).mkdir(parents=True, exist_ok=True)
        (Path(layout.state) / f"{step}.pid").write_text("999999999\n")
        (Path(layout.state) / f"{step}.exit").write_text("0\n")

    monkeypatch.setattr(uploads, "launch_step", staged)
    recorder = Recorder()
    platform = cluster(tmp_path, recorder)
    platform.prepare(plan(CUBE), NOW)
    assert platform.stop(plan(CUBE), NOW) == []
    assert [r.event for r in platform.observe(plan(CUBE), NOW)] == [ReleaseDone()]
    assert recorder.commands == []  # no sbatch, no scancel


def test_the_offered_end_during_the_staging_stops_it_and_fails_the_session(tmp_path, monkeypatch):
    started: list[subprocess.Popen[bytes]] = []

    def slow(plan: SessionPlan, layout: Layout, step: str, **_: object) -> None:
        state = Path(layout.state)
        state.mkdir(parents=True, exist_ok=True)
        environment = {processes.MARK: plan.session_id}
        started.append(subprocess.Popen(["sleep", "60"], env=environment, start_new_session=True))
        (state / f"{step}.pid").write_text(f"{started[0].pid}\n")
        (state / "stage.item").write_text("cube\n")

    monkeypatch.setattr(uploads, "launch_step", slow)
    recorder = Recorder()
    platform = cluster(tmp_path, recorder)
    session = plan(CUBE)
    platform.prepare(session, NOW)
    assert [r.event for r in platform.observe(session, NOW)] == [PlatformCheckDue()]  # staging
    platform.release(session, NOW)  # the offered end
    assert started[0].wait(timeout=30) == -signal.SIGTERM
    (report,) = platform.observe(session, NOW)
    assert report.event == Failed(
        reason="the session ended before data 'cube' was staged on the broker's host"
    )
    assert recorder.commands == []
