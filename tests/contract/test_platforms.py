"""One suite over every platform adapter: simulated, local, and slurm (marked `slurm`).

Each test drives a session through the real `BrokerService` (SQLite store, the system clock,
the work queue ticked in a loop) from offer to its end, the way a client sees it: a Python
program that writes a file and exits 0 ends COMPLETED; one that exits 1 ends FAILED with a
reason; a cancel really stops a long-running program; the offered end really ends it; and a
request the platform cannot run is answered NO with a reason. The simulated adapter runs
nothing, so its outcomes are scripted in its settings, and the checks on files and processes
apply to the adapters that run for real.

Slurm tests use the cluster `SLURM_CONF` names (`scripts/services/slurm start`); its node is
this machine, so the program's processes are checked here too. No timed assertions: every wait
polls with a generous deadline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from broker import codec, model
from broker.platforms import build_platform
from broker.platforms.processes import is_running
from broker.ports import Platform
from broker.service import BrokerService
from broker.store_sql import SqlBrokerStore
from core.clock import SystemClock
from core.db import make_engine
from core.settings import (
    BrokerSettings,
    Capacity,
    LocalPlatformSettings,
    PlatformSettings,
    SimulatedBehaviour,
    SlurmPlatformSettings,
)
from tests.conftest import require_service

P = model.SessionPhase
K = model.KINDS
BASE = "http://broker.test/broker"
DEADLINE = 150.0
"""Seconds any one wait may take before the test fails (a loaded CI machine is slow)."""
LIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"})

PROGRAMS = {
    "ok.py": (
        "import os, pathlib\n"
        "data = pathlib.Path(os.environ['VOEXEC_DATA'], 'input').read_text()\n"
        "pathlib.Path('result.txt').write_text('read: ' + data)\n"
        "print('done')\n"
    ),
    "fail.py": "import sys\nprint('something went wrong', file=sys.stderr)\nsys.exit(1)\n",
    "sleep.py": (
        "import os, pathlib, time\n"
        "pathlib.Path('pid').write_text(str(os.getpid()))\n"
        "time.sleep(600)\n"
        "pathlib.Path('woke-up').write_text('should never happen')\n"
    ),
}


def slurm_available() -> None:
    conf = os.environ.get("SLURM_CONF", "")
    how = "start it with `scripts/services/slurm start` and `source .services/env`"
    require_service("Slurm", bool(conf) and Path(conf).is_file(), f"SLURM_CONF is not set; {how}")
    require_service("Slurm", shutil.which("sinfo") is not None, f"sinfo is not on PATH; {how}")
    answer = subprocess.run(
        ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20, check=False
    )
    states = answer.stdout.split()
    require_service(
        "Slurm",
        answer.returncode == 0 and any(s.rstrip("*") in {"idle", "mix"} for s in states),
        f"no idle node in the cluster of {conf} ({answer.stderr.strip() or states}); {how}",
    )


@dataclass
class Harness:
    """One adapter under test, with the broker around it."""

    adapter: str
    broker: BrokerService
    platform: Platform
    programs: Path

    @property
    def runs_for_real(self) -> bool:
        return self.adapter != "simulated"

    def request(self, program: str, duration: str = "PT3M", kind: str = "python") -> Any:
        now = datetime.now(UTC).replace(microsecond=0)
        executable: dict[str, Any] = {
            "kind": model.PYTHON_PROGRAM_KIND,
            "meta": {"name": program.removesuffix(".py")},
            "location": (self.programs / program).as_uri(),
        }
        if kind == "docker":
            executable = {
                "kind": K + "executable/docker-container.yaml",
                "image": {"locations": ["ghcr.io/example/job:1.0"]},
            }
        document = {
            "executable": executable,
            "compute": {
                "kind": K + "compute/simple-compute-resource.yaml",
                "cores": {"min": 1, "max": 1},
                "memory": {"min": 1, "max": 1},
            },
            "data": [
                {
                    "kind": K + "data/simple-data-resource.yaml",
                    "meta": {"name": "input"},
                    "location": (self.programs / "input.txt").as_uri(),
                }
            ],
            "schedule": {"requested": {"start": f"{now.isoformat()}/PT10M", "duration": duration}},
        }
        return codec.convert(document, model.ExecutionRequest).value

    def accepted(self, program: str, duration: str = "PT3M") -> UUID:
        offers = self.broker.request_offers(self.request(program, duration), BASE)
        assert offers.result == "YES", [m.message for m in offers.meta.messages]  # type: ignore[union-attr]
        uuid = offers.offers[0].meta.uuid  # type: ignore[union-attr]
        assert uuid is not None
        accept = model.EnumValueUpdate(path="phase", value="ACCEPTED")
        assert self.broker.update_session(uuid, accept).phase is P.ACCEPTED
        return uuid

    def run_until(self, session: UUID, *phases: P) -> model.AnySession:
        """Tick the work queue until the session is in one of `phases`."""
        deadline = time.monotonic() + DEADLINE
        while True:
            self.broker.tick()
            found = self.broker.get_session(session)
            if found.phase in phases:
                return found
            assert found.phase not in model.TERMINAL_PHASES, " / ".join(messages(found)[-3:])
            assert time.monotonic() < deadline, f"still {found.phase}: {messages(found)}"
            time.sleep(0.2)

    def folder(self, session: UUID) -> Path:
        return Path(self.platform.root) / str(session)  # type: ignore[attr-defined]


def messages(session: model.AnySession) -> list[str]:
    return [m.message or "" for m in (session.meta.messages if session.meta else [])]


def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def platform_settings(adapter: str, **simulated: Any) -> PlatformSettings:
    return PlatformSettings(
        name=f"{adapter}-platform",
        adapter=adapter,  # type: ignore[arg-type]
        capacity=Capacity(cores=2, memory=3),
        executables=["python-program", "docker-container"]
        if adapter != "simulated"
        else ["python-program"],
        preparation=timedelta(seconds=1),
        simulated=SimulatedBehaviour(
            prepare=timedelta(seconds=1), release=timedelta(seconds=1), **simulated
        ),
        local=LocalPlatformSettings(
            poll=timedelta(milliseconds=200), grace=timedelta(seconds=2), container_runtime="none"
        ),
        slurm=SlurmPlatformSettings(poll=timedelta(milliseconds=500)),
    )


@pytest.fixture(params=["simulated", "local", pytest.param("slurm", marks=pytest.mark.slurm)])
def adapter(request: pytest.FixtureRequest) -> str:
    if request.param == "slurm":
        slurm_available()
    return str(request.param)


@pytest.fixture
def harness_for(adapter: str, tmp_path: Path) -> Iterator[Any]:
    programs = tmp_path / "programs"
    programs.mkdir()
    for name, text in PROGRAMS.items():
        (programs / name).write_text(text)
    (programs / "input.txt").write_text("twelve bytes")
    engines = []

    def make(**simulated: Any) -> Harness:
        settings = platform_settings(adapter, **simulated)
        engine = make_engine(f"sqlite:///{tmp_path / f'broker-{len(engines)}.db'}")
        engines.append(engine)
        store = SqlBrokerStore(engine)
        store.migrate()
        platform = build_platform(settings, tmp_path / "var")
        broker_settings = BrokerSettings(platforms=[settings], max_offers=1)
        broker = BrokerService(broker_settings, SystemClock(), store, {settings.name: platform})
        return Harness(adapter, broker, platform, programs)

    yield make
    for engine in engines:
        engine.dispose()


def test_a_program_that_exits_0_completes_and_keeps_its_output(harness_for):
    harness = harness_for(run=timedelta(seconds=1))
    session = harness.accepted("ok.py")
    done = harness.run_until(session, P.COMPLETED)
    assert done.phase is P.COMPLETED
    if harness.runs_for_real:
        folder = harness.folder(session)
        assert (folder / "output" / "result.txt").read_text() == "read: twelve bytes"
        assert (folder / "logs" / "run.out").read_text() == "done\n"
        assert any(f"working directory {folder}" in text for text in messages(done))


def test_a_program_that_exits_1_fails_with_the_reason(harness_for):
    harness = harness_for(fail_in="RUNNING")
    session = harness.accepted("fail.py")
    failed = harness.run_until(session, P.FAILED)
    errors = [m.message or "" for m in failed.meta.messages if m.level.value == "ERROR"]  # type: ignore[union-attr]
    if harness.runs_for_real:
        assert any("exited with code 1" in text for text in errors), errors
        assert any("something went wrong" in text for text in errors), errors
    else:
        assert any("failed while running" in text for text in errors), errors


def program_pid(harness: Harness, session: UUID, *phases: P) -> int:
    """Tick until the session runs (or reaches one of `phases`) and, on a real platform, its
    program has recorded its pid."""
    harness.run_until(session, P.RUNNING, *phases)
    if not harness.runs_for_real:
        return 0
    pid_file = harness.folder(session) / "output" / "pid"

    def recorded() -> bool:
        harness.broker.tick()
        return pid_file.exists() and pid_file.read_text().strip().isdigit()

    wait_for(recorded, "the program to record its pid")
    return int(pid_file.read_text())


def job_state(harness: Harness, session: UUID) -> str:
    job = (harness.folder(session) / "state" / "job").read_text().strip()
    answer = subprocess.run(
        ["squeue", "-h", "-j", job, "--states=all", "-o", "%T"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return answer.stdout.strip()


def assert_really_stopped(harness: Harness, session: UUID, pid: int) -> None:
    wait_for(lambda: not is_running(pid, str(session)), f"program {pid} to be gone")
    if harness.adapter == "slurm":
        wait_for(lambda: job_state(harness, session) not in LIVE, "the Slurm job to end")
    assert not (harness.folder(session) / "output" / "woke-up").exists()


def test_a_cancel_really_stops_a_long_running_program(harness_for):
    harness = harness_for()
    session = harness.accepted("sleep.py")
    pid = program_pid(harness, session)
    cancel = model.EnumValueUpdate(path="phase", value="CANCELLED")
    assert harness.broker.update_session(session, cancel).phase is P.CANCELLED
    if harness.runs_for_real:
        assert_really_stopped(harness, session, pid)
    else:
        assert str(session) in harness.platform.stopped  # type: ignore[attr-defined]
    harness.broker.tick()
    assert harness.broker.get_session(session).phase is P.CANCELLED


def test_the_offered_end_really_ends_the_program(harness_for):
    harness = harness_for()
    # Long enough for a Slurm job to leave the queue and start even on a busy machine.
    session = harness.accepted("sleep.py", duration="PT30S")
    # A slow tick may deliver the start, the end and the release at once: the program's pid
    # file says it ran, whichever phase the session is in when the test looks.
    pid = program_pid(harness, session, P.RELEASING, P.COMPLETED)
    ended = harness.run_until(session, P.COMPLETED)
    assert any("RUNNING -> RELEASING (EndReached)" in text for text in messages(ended))
    if harness.runs_for_real:
        assert_really_stopped(harness, session, pid)


def test_a_request_the_platform_cannot_run_is_answered_no_with_a_reason(harness_for):
    harness = harness_for()
    offers = harness.broker.request_offers(harness.request("ok.py", kind="docker"), BASE)
    assert offers.result == "NO"
    texts = [m.message or "" for m in offers.meta.messages]  # type: ignore[union-attr]
    expected = {
        "simulated": "does not run docker containers",
        "local": "runs no containers: containers are turned off",
        "slurm": "runs no containers: no container runtime is configured for this cluster",
    }[harness.adapter]
    assert any(expected in text for text in texts), texts


def test_the_work_survives_a_restart_of_the_broker(harness_for, tmp_path):
    """A new broker (and adapter) over the same database and folders observes the same work."""
    harness = harness_for(run=timedelta(seconds=1))
    session = harness.accepted("ok.py")
    harness.run_until(session, P.PREPARING, P.AVAILABLE, P.RUNNING)
    settings = platform_settings(harness.adapter, run=timedelta(seconds=1))
    platform = build_platform(settings, tmp_path / "var")
    again = Harness(
        harness.adapter,
        BrokerService(
            BrokerSettings(platforms=[settings], max_offers=1),
            SystemClock(),
            harness.broker._store,
            {platform.name: platform},
        ),
        platform,
        harness.programs,
    )
    assert again.run_until(session, P.COMPLETED).phase is P.COMPLETED
    if harness.runs_for_real:
        assert (harness.folder(session) / "output" / "result.txt").exists()
