"""One suite over every platform adapter: simulated, local, slurm (marked `slurm`), and local
running OCI containers with podman (`containers`, marked `containers`).

Each test drives a session through the real `BrokerService` (SQLite store, the system clock,
the work queue ticked in a loop) from offer to its end, the way a client sees it: a Python
program that writes a file and exits 0 ends COMPLETED; one that exits 1 ends FAILED with a
reason; a cancel really stops a long-running program; the offered end really ends it; and a
request the platform cannot run is answered NO with a reason. The simulated adapter runs
nothing, so its outcomes are scripted in its settings, and the checks on files and processes
apply to the adapters that run for real.

Slurm tests use the cluster `SLURM_CONF` names (`scripts/services/slurm start`); its node is
this machine, so the program's processes are checked here too. Container tests use podman and
the loopback registry of `scripts/services/containers start` (`VOEXEC_TEST_REGISTRY`,
`VOEXEC_TEST_IMAGE`, `VOEXEC_TEST_IMAGE_DIGEST`, and the `CONTAINERS_*` configuration): the
same programs are shell scripts run in its busybox image, pinned by digest.

No timed assertions: every wait polls with a generous deadline. Slurm starts a job on its next
scheduling pass, which may come many seconds after the offered start: where a test needs the
program to run before the offered end, the broker's clock stops short of that end until the
program runs, then moves past it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest

from broker import model
from broker.model import codec
from broker.platforms import build_platform
from broker.platforms.containers import container_name
from broker.platforms.port import Platform
from broker.platforms.processes import is_running, session_processes
from broker.service import BrokerService
from broker.store.sql import SqlBrokerStore
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
from tests.broker_support import accept_first, messages, tick_until, wait_for
from tests.conftest import require_service

P = model.SessionPhase
K = model.KINDS
BASE = "http://broker.test/broker"
LIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"})

REGISTRY = os.environ.get("VOEXEC_TEST_REGISTRY", "")
IMAGE = os.environ.get("VOEXEC_TEST_IMAGE", "")
IMAGE_DIGEST = os.environ.get("VOEXEC_TEST_IMAGE_DIGEST", "")
IMAGE_TAG = "1"
GIB = 2**30

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


CONTAINER_SCRIPTS = {
    "ok.py": (
        'printf "read: %s" "$(cat "$VOEXEC_DATA/input")" > result.txt\n'
        "{ touch /voexec/data/probe 2>/dev/null && echo data-writable || echo data-read-only\n"
        "  ls /sys/class/net | tr '\\n' ' '; echo\n"
        "  cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
        " || cat /sys/fs/cgroup/memory.max\n"
        "  cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max\n"
        "} > checks.txt\n"
        "echo done\n"
    ),
    "fail.py": "echo 'something went wrong' >&2\nexit 1\n",
    "sleep.py": "echo started > pid\nsleep 600\necho 'should never happen' > woke-up\n",
    "hog.py": "kept=$(head -c 1600000000 /dev/zero | tr '\\0' x)\necho 'still here' > woke-up\n",
}
"""The programs as shell scripts for the test image (`hog.py` outgrows the offered memory)."""


def containers_available() -> None:
    how = "start them with `scripts/services/containers start` and `source .services/env`"
    require_service("podman", shutil.which("podman") is not None, f"podman is not on PATH; {how}")
    present = bool(REGISTRY and IMAGE and IMAGE_DIGEST and os.environ.get("CONTAINERS_CONF"))
    require_service(
        "the test image registry",
        present,
        f"VOEXEC_TEST_REGISTRY, VOEXEC_TEST_IMAGE(_DIGEST) or CONTAINERS_CONF are not set; {how}",
    )
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5).close()
        answers = True
    except OSError:
        answers = False
    require_service("the test image registry", answers, f"{REGISTRY} does not answer; {how}")


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""  # gone meanwhile


def container_exists(session: UUID) -> bool:
    name = container_name(str(session))
    answer = subprocess.run(
        ["podman", "ps", "--all", "--quiet", "--filter", f"name=^{name}$"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return bool(answer.stdout.strip())


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


class CappedClock:
    """The wall clock, which a test can keep from passing an instant, then run on from a later one.

    While capped, no timer of the broker falls due after the cap, so the broker waits for the
    test there; the programs, Slurm and the runner's own deadline keep real time.
    """

    def __init__(self) -> None:
        self._offset = timedelta()
        self._cap: datetime | None = None

    def now(self) -> datetime:
        now = datetime.now(UTC) + self._offset
        return now if self._cap is None else min(now, self._cap)

    def cap(self, instant: datetime) -> None:
        self._cap = instant

    def run_from(self, instant: datetime) -> None:
        """Lift the cap and run on from `instant`, which must not be before the instant now."""
        assert instant >= self.now()
        self._offset = instant - datetime.now(UTC)
        self._cap = None


@dataclass
class Harness:
    """One adapter under test, with the broker around it."""

    adapter: str
    broker: BrokerService
    platform: Platform
    programs: Path
    clock: CappedClock = field(default_factory=CappedClock)

    @property
    def runs_for_real(self) -> bool:
        return self.adapter != "simulated"

    def request(
        self,
        program: str,
        duration: str = "PT3M",
        kind: str = "python",
        image: dict[str, Any] | None = None,
    ) -> Any:
        now = datetime.now(UTC).replace(microsecond=0)
        executable: dict[str, Any] = {
            "kind": model.PYTHON_PROGRAM_KIND,
            "meta": {"name": program.removesuffix(".py")},
            "location": (self.programs / program).as_uri(),
        }
        if self.adapter == "containers" and kind == "python":
            executable = {
                "kind": K + "executable/docker-container.yaml",
                "meta": {"name": program.removesuffix(".py")},
                "image": image or {"locations": [f"{IMAGE}:{IMAGE_TAG}"]},
                "entrypoint": "/bin/sh",
                "command": ["-c", CONTAINER_SCRIPTS[program]],
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

    def accepted(
        self, program: str, duration: str = "PT3M", image: dict[str, Any] | None = None
    ) -> UUID:
        offers = self.broker.request_offers(self.request(program, duration, image=image), BASE)
        return accept_first(self.broker, offers)

    def run_until(self, session: UUID, *phases: P) -> model.AnySession:
        """Tick the work queue until the session is in one of `phases`."""
        return tick_until(self.broker, session, *phases)

    def folder(self, session: UUID) -> Path:
        return Path(self.platform.root) / str(session)  # type: ignore[attr-defined]


def platform_settings(adapter: str, **simulated: Any) -> PlatformSettings:
    containers = adapter == "containers"
    return PlatformSettings(
        name=f"{adapter}-platform",
        adapter="local" if containers else adapter,  # type: ignore[arg-type]
        capacity=Capacity(cores=2, memory=3),
        executables=["python-program", "docker-container", "singularity-container"]
        if adapter != "simulated"
        else ["python-program"],
        preparation=timedelta(seconds=1),
        simulated=SimulatedBehaviour(
            prepare=timedelta(seconds=1), release=timedelta(seconds=1), **simulated
        ),
        local=LocalPlatformSettings(
            poll=timedelta(milliseconds=200),
            grace=timedelta(seconds=2),
            container_runtime="none",
            container_engine="podman" if containers else "none",
            registries=[REGISTRY] if containers else [],
            container_pids=64,
        ),
        slurm=SlurmPlatformSettings(poll=timedelta(milliseconds=500)),
    )


@pytest.fixture(
    params=[
        "simulated",
        "local",
        pytest.param("slurm", marks=pytest.mark.slurm),
        pytest.param("containers", marks=pytest.mark.containers),
    ]
)
def adapter(request: pytest.FixtureRequest) -> str:
    if request.param == "slurm":
        slurm_available()
    if request.param == "containers":
        containers_available()
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
        clock = CappedClock()
        broker = BrokerService(broker_settings, clock, store, {settings.name: platform})
        return Harness(adapter, broker, platform, programs, clock)

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
    if harness.adapter == "containers":
        # Pulled by the digest the tag names; the offered memory and the pids setting are the
        # container's limits; the data is read-only; no network but loopback.
        pinned = (folder / "program" / "image.ref").read_text().strip()
        assert pinned == f"{IMAGE}@{IMAGE_DIGEST}"
        read_only, interfaces, memory, pids = (
            (folder / "output" / "checks.txt").read_text().splitlines()
        )
        assert read_only == "data-read-only"
        assert interfaces.split() == ["lo"]
        assert int(memory) == 1 * GIB
        assert pids == "64"
        assert not container_exists(session)


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


def recorded_pid(harness: Harness, session: UUID) -> int:
    """Tick until the session's program has recorded its pid, whatever the session's phase."""
    pid_file = harness.folder(session) / "output" / "pid"

    def recorded() -> bool:
        harness.broker.tick()
        found = harness.broker.get_session(session)
        assert found.phase not in model.TERMINAL_PHASES, " / ".join(messages(found)[-3:])
        return pid_file.exists() and pid_file.read_text().strip().isdigit()

    if harness.adapter == "containers":  # the pid inside is the container's: find it here
        found: list[int] = []

        def sleeping() -> bool:
            harness.broker.tick()
            found[:] = [
                pid for pid in session_processes(str(session)) if command_of(pid) == "sleep"
            ]
            return pid_file.exists() and bool(found)

        wait_for(sleeping, "the container's program to start")
        return found[0]
    wait_for(recorded, "the program to record its pid")
    return int(pid_file.read_text())


def program_pid(harness: Harness, session: UUID) -> int:
    """Tick until the session runs and, on a real platform, its program has recorded its pid."""
    harness.run_until(session, P.RUNNING)
    return recorded_pid(harness, session) if harness.runs_for_real else 0


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
    if harness.adapter == "containers":
        wait_for(lambda: not container_exists(session), "the container to be removed")
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
    offered = timedelta(minutes=2)
    asked = harness.clock.now()
    # The offered start is at or after the requested one (`asked`, to the second), so the end is
    # after this cap: however long a Slurm job queues, the end cannot come before the program
    # runs. Short, because the broker replays every poll of the platform up to the end.
    harness.clock.cap(asked + offered - timedelta(seconds=10))
    session = harness.accepted("sleep.py", duration="PT2M")
    if harness.runs_for_real:
        pid = recorded_pid(harness, session)
        assert is_running(pid, str(session)), "the program ended before its offered end"
    else:
        pid = 0
    # The broker sees the session running before its end: after a pause, missed polls of the
    # platform collapse into one at the current instant, later than the end.
    harness.run_until(session, P.RUNNING)
    harness.clock.run_from(asked + offered + timedelta(seconds=30))
    ended = harness.run_until(session, P.COMPLETED)
    assert any("RUNNING -> RELEASING (EndReached)" in text for text in messages(ended)), messages(
        ended
    )
    if harness.runs_for_real:
        assert_really_stopped(harness, session, pid)
        # Stopped by the broker at the end, not by a backstop of the platform's own: the
        # runner's deadline or Slurm's time limit, both later than the offered end.
        assert not (harness.folder(session) / "state" / "run.deadline").exists()
    if harness.adapter == "slurm":
        assert job_state(harness, session) != "TIMEOUT"


def test_a_request_the_platform_cannot_run_is_answered_no_with_a_reason(harness_for):
    harness = harness_for()
    offers = harness.broker.request_offers(harness.request("ok.py", kind="docker"), BASE)
    assert offers.result == "NO"
    texts = [m.message or "" for m in offers.meta.messages]  # type: ignore[union-attr]
    expected = {
        "simulated": "does not run docker containers",
        "local": "runs no docker-container images: containers are turned off",
        "slurm": "runs no containers: no container runtime is configured for this cluster",
        "containers": f"does not pull images from ghcr.io; allowed registries: {REGISTRY}",
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


# ------------------------------------------------------------------------- containers only
@pytest.fixture
def containers(tmp_path: Path) -> Iterator[Any]:
    """The `containers` harness maker, for what only a container engine does."""
    containers_available()
    yield from harness_for.__wrapped__("containers", tmp_path)  # type: ignore[attr-defined]


@pytest.mark.containers
def test_a_digest_that_is_not_the_tags_fails_naming_both(containers):
    harness = containers()
    wrong = "sha256:" + "0" * 64
    image = {"locations": [f"{IMAGE}:{IMAGE_TAG}"], "digest": wrong}
    session = harness.accepted("ok.py", image=image)
    failed = harness.run_until(session, P.FAILED)
    errors = [m.message or "" for m in failed.meta.messages if m.level.value == "ERROR"]  # type: ignore[union-attr]
    assert any(wrong in text and IMAGE_DIGEST in text for text in errors), errors
    assert not (harness.folder(session) / "output" / "result.txt").exists()


@pytest.mark.containers
def test_an_image_given_by_its_digest_runs_by_that_digest(containers):
    harness = containers()
    image = {"locations": [f"{IMAGE}:{IMAGE_TAG}"], "digest": IMAGE_DIGEST}
    session = harness.accepted("ok.py", image=image)
    harness.run_until(session, P.COMPLETED)
    pinned = (harness.folder(session) / "program" / "image.ref").read_text().strip()
    assert pinned == f"{IMAGE}@{IMAGE_DIGEST}"


@pytest.mark.containers
def test_a_container_outgrowing_the_offered_memory_is_killed(containers):
    harness = containers()
    session = harness.accepted("hog.py")
    failed = harness.run_until(session, P.FAILED)
    errors = [m.message or "" for m in failed.meta.messages if m.level.value == "ERROR"]  # type: ignore[union-attr]
    assert any("exited with code 137" in text and "1024 MiB" in text for text in errors), errors
    assert not (harness.folder(session) / "output" / "woke-up").exists()
    assert not container_exists(session)


@pytest.mark.containers
def test_singularity_images_are_refused_without_apptainer(containers):
    harness = containers()
    request = harness.request("ok.py")
    singularity = model.SingularityContainer(location="library://example/tool:1")
    offers = harness.broker.request_offers(
        msgspec.structs.replace(request, executable=singularity), BASE
    )
    assert offers.result == "NO"
    texts = [m.message or "" for m in offers.meta.messages]  # type: ignore[union-attr]
    assert any("runs no Singularity images" in text for text in texts), texts
