"""GPUs on the local platform, on a machine without any: the settings, the offer-time check,
the allocation of device ids, and the exact arguments the engine gets.

The engine is a fake `podman` (a shell script) that records the arguments of each `run`, keeps
running like a container until `stop` or `rm --force` ends it, and does nothing else; the
sessions' runners, pid files and the ledger are real.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from broker import model
from broker.lifecycle import Failed, PlatformCheckDue
from broker.model import codec
from broker.platforms import build_platform
from broker.platforms.gpus import GpuLedger, GpuPassing, cdi_devices, gpu_passing
from broker.platforms.local import LocalPlatform
from broker.platforms.port import SessionPlan
from broker.platforms.recipe import Layout, Tools, run_script
from broker.service import BrokerService
from broker.store.memory import MemorySessionStore
from core.clock import SystemClock
from core.errors import ConfigError
from core.settings import (
    BrokerSettings,
    Capacity,
    GpuModel,
    LocalGpuSettings,
    LocalPlatformSettings,
    PlatformSettings,
)

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"127.0.0.1:5000/tools/cuda@{DIGEST}"
NVIDIA_SPEC = """\
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
  - name: "0"
    containerEdits: {deviceNodes: [{path: /dev/nvidia0}]}
  - name: "1"
    containerEdits: {deviceNodes: [{path: /dev/nvidia1}]}
  - name: all
    containerEdits: {deviceNodes: [{path: /dev/nvidia0}, {path: /dev/nvidia1}]}
containerEdits:
  deviceNodes: [{path: /dev/nvidiactl}]
"""
FAKE_ENGINE = """\
#!/bin/sh
# A fake podman: `run` records its arguments and waits like a container until stopped.
calls={calls}
case "$1" in
  run)
    name=""; previous=""
    for argument in "$@"; do
      [ "$previous" = "--name" ] && name="$argument"
      previous="$argument"
    done
    python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" > "$calls/$name.tmp"
    mv "$calls/$name.tmp" "$calls/$name.json"
    echo $$ > "$calls/$name.pid"
    exec sleep 600
    ;;
  stop|rm)
    for argument in "$@"; do
      [ -f "$calls/$argument.pid" ] && kill "$(cat "$calls/$argument.pid")" 2>/dev/null
    done
    exit 0
    ;;
  *) exit 0 ;;
esac
"""


def settings(
    tmp_path: Path,
    gpus: list[GpuModel],
    local_gpus: LocalGpuSettings | None = None,
    engine: str = "none",
) -> PlatformSettings:
    return PlatformSettings(
        name="gpubox",
        adapter="local",
        capacity=Capacity(cores=8, memory=16, gpus=gpus),
        executables=["docker-container", "python-program"],
        preparation=timedelta(seconds=1),
        local=LocalPlatformSettings(
            workdir=str(tmp_path / "sessions"),
            poll=timedelta(milliseconds=100),
            grace=timedelta(seconds=1),
            container_runtime="none",
            container_engine=engine,
            registries=["127.0.0.1:5000"],
            gpus=local_gpus or LocalGpuSettings(cdi_spec_dirs=[str(tmp_path / "cdi")]),
            startup_timeout=timedelta(seconds=30),
        ),
    )


def a100(count: int) -> list[GpuModel]:
    return [GpuModel(model="A100", memory=40, count=count)]


def container(**fields: Any) -> model.DockerContainer:
    return model.DockerContainer(
        image=model.DockerImageSpec(locations=[IMAGE]),
        entrypoint="/bin/sh",
        command=["-c", "nvidia-smi"],
        **fields,
    )


def plan(session: str, gpus: int, executable: model.AnyExecutable | None = None) -> SessionPlan:
    now = datetime.now(UTC)
    return SessionPlan(
        session_id=session,
        executable=executable or container(),
        cores=1,
        memory=1,
        gpus=gpus,
        start=now,
        end=now + timedelta(minutes=10),
    )


@pytest.fixture
def fake_engine(tmp_path: Path) -> Iterator[Path]:
    """The fake engine's path; its "containers" still running are ended after the test."""
    calls = tmp_path / "calls"
    calls.mkdir()
    engine = tmp_path / "bin" / "podman"
    engine.parent.mkdir()
    engine.write_text(FAKE_ENGINE.format(calls=calls))
    engine.chmod(0o755)
    yield engine
    for pid in calls.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pid.read_text()), signal.SIGKILL)


def write_spec(tmp_path: Path, text: str = NVIDIA_SPEC) -> None:
    folder = tmp_path / "cdi"
    folder.mkdir(exist_ok=True)
    (folder / "nvidia.yaml").write_text(text)


def until(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def prepared(platform: LocalPlatform, session: SessionPlan) -> Path:
    """Prepare the session and wait for its preparation to end well; its state folder."""
    platform.prepare(session, datetime.now(UTC))
    state = platform.root / session.session_id / "state"
    until((state / "prepare.exit").exists, "the preparation")
    assert (state / "prepare.exit").read_text().strip() == "0"
    return state


def run_arguments(tmp_path: Path, session: str) -> list[str]:
    path = tmp_path / "calls" / f"voexec-{session}.json"
    until(path.exists, f"the container of {session}")
    [line] = path.read_text().splitlines()
    arguments: list[str] = json.loads(line)
    return arguments


def devices_of(arguments: list[str]) -> list[str]:
    return [arguments[i + 1] for i, a in enumerate(arguments) if a == "--device"]


# ------------------------------------------------------------------------- settings
def test_gpu_ids_default_to_0_to_n_and_must_match_the_capacity(tmp_path):
    passing = gpu_passing(settings(tmp_path, a100(3)), "local")
    assert passing is not None
    assert passing.ids == ("0", "1", "2")
    assert gpu_passing(settings(tmp_path, []), "local") is None
    wrong = LocalGpuSettings(ids=["GPU-a", "GPU-b"])
    with pytest.raises(ConfigError, match=r"local\.gpus\.ids: names 2 GPU\(s\), but capacity"):
        gpu_passing(settings(tmp_path, a100(3), wrong), "local")
    twice = LocalGpuSettings(ids=["0", "0"])
    with pytest.raises(ConfigError, match="names a GPU twice"):
        gpu_passing(settings(tmp_path, a100(2), twice), "local")
    stranger = LocalGpuSettings(cdi="", devices={"7": ["/dev/nvidia7"]})
    with pytest.raises(ConfigError, match=r"gpus\.devices: 7 are not GPU ids"):
        gpu_passing(settings(tmp_path, a100(2), stranger), "local")


def test_the_engine_gets_one_cdi_device_per_gpu_or_each_device_file_once():
    cdi = GpuPassing(ids=("0", "1", "2"), cdi="nvidia.com/gpu")
    assert cdi.engine_options(["2", "0"]) == ["nvidia.com/gpu=2", "nvidia.com/gpu=0"]
    files = GpuPassing(
        ids=("0", "1"),
        devices=(
            ("0", ("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm")),
            ("1", ("/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm")),
        ),
    )
    assert files.engine_options(["1", "0"]) == [
        "/dev/nvidia1",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia0",
    ]


# ------------------------------------------------------------------------- offer time
def test_cdi_specs_are_read_for_their_kind_and_device_names(tmp_path):
    assert cdi_devices("nvidia.com/gpu", [str(tmp_path / "cdi")]) is None
    write_spec(tmp_path)
    (tmp_path / "cdi" / "broken.yaml").write_text("kind: [unclosed")
    (tmp_path / "cdi" / "other.json").write_text('{"kind": "vendor.com/fpga", "devices": []}')
    assert cdi_devices("nvidia.com/gpu", [str(tmp_path / "nowhere"), str(tmp_path / "cdi")]) == {
        "0",
        "1",
        "all",
    }


def test_a_platform_without_a_cdi_spec_says_no_to_containers_with_gpus(tmp_path, fake_engine):
    platform = LocalPlatform(settings(tmp_path, a100(2), engine=str(fake_engine)), tmp_path)
    [reason] = platform.accepts(container(), gpus=1)
    assert reason.startswith("cannot give GPUs to containers: no CDI spec for nvidia.com/gpu in ")
    assert str(tmp_path / "cdi") in reason
    assert "broker.platforms[gpubox].local.gpus.cdi_spec_dirs" in reason
    assert "nvidia-ctk cdi generate" in reason
    # Without GPUs, or for a program that runs as a process, nothing is missing.
    assert platform.accepts(container()) == []
    program = model.PythonProgram(location="https://example.org/p.py")
    assert platform.accepts(program, gpus=1) == []

    write_spec(tmp_path)
    assert platform.accepts(container(), gpus=2) == []


def test_a_cdi_spec_without_the_platforms_ids_says_which_are_missing(tmp_path, fake_engine):
    write_spec(tmp_path)
    ids = LocalGpuSettings(ids=["1", "GPU-77"], cdi_spec_dirs=[str(tmp_path / "cdi")])
    platform = LocalPlatform(settings(tmp_path, a100(2), ids, str(fake_engine)), tmp_path)
    [reason] = platform.accepts(container(), gpus=1)
    assert "names no device GPU-77 (broker.platforms[gpubox].local.gpus.ids)" in reason
    assert reason.endswith("it names 0, 1, all")


def test_device_files_must_be_listed_for_every_gpu_and_exist(tmp_path, fake_engine):
    present = tmp_path / "dev-nvidia0"
    present.touch()
    listed = LocalGpuSettings(cdi="", devices={"0": [str(present)]})
    platform = LocalPlatform(settings(tmp_path, a100(2), listed, str(fake_engine)), tmp_path)
    [reason] = platform.accepts(container(), gpus=1)
    assert "gpus.cdi is empty" in reason
    assert "lists no device files for GPU 1" in reason

    missing = str(tmp_path / "dev-nvidia1")
    both = LocalGpuSettings(cdi="", devices={"0": [str(present)], "1": [missing]})
    platform = LocalPlatform(settings(tmp_path, a100(2), both, str(fake_engine)), tmp_path)
    [reason] = platform.accepts(container(), gpus=1)
    assert f"the device files {missing} (broker.platforms[gpubox].local.gpus.devices)" in reason


def test_gpus_of_two_models_are_not_handed_to_containers(tmp_path, fake_engine):
    write_spec(tmp_path)
    models = [GpuModel(model="A100", memory=40), GpuModel(model="T4", memory=16)]
    platform = LocalPlatform(settings(tmp_path, models, engine=str(fake_engine)), tmp_path)
    assert platform.accepts(container(), gpus=1) == [
        "hands GPUs to containers of one GPU model only, and capacity.gpus lists A100, T4"
    ]


def test_the_broker_answers_no_naming_the_missing_cdi_spec(tmp_path, fake_engine):
    configured = settings(tmp_path, a100(2), engine=str(fake_engine))
    service = BrokerService(
        BrokerSettings(platforms=[configured], max_offers=1),
        SystemClock(),
        MemorySessionStore(),
        {configured.name: build_platform(configured, tmp_path / "var")},
    )
    now = datetime.now(UTC).replace(microsecond=0)

    def ask(count: int) -> model.OfferSetResponse:
        document = {
            "executable": {
                "kind": model.KINDS + "executable/docker-container.yaml",
                "image": {"locations": [IMAGE]},
            },
            "compute": {
                "kind": model.ACCELERATED_COMPUTE_KIND,
                "cores": {"min": 1},
                "memory": {"min": 1},
                **({"accelerators": {"count": {"min": count}}} if count else {}),
            },
            "schedule": {"requested": {"start": f"{now.isoformat()}/PT1H", "duration": "PT10M"}},
        }
        request = codec.convert(document, model.ExecutionRequest).value
        return service.request_offers(request, "http://broker.test/broker")

    refused = ask(1)
    assert refused.result == "NO"
    said = [m.message or "" for m in refused.meta.messages]  # type: ignore[union-attr]
    assert any("gpubox: cannot give GPUs to containers: no CDI spec" in text for text in said)
    write_spec(tmp_path)
    assert ask(1).result == "YES"


# ------------------------------------------------------------------------- allocation
def test_the_ledger_hands_out_free_ids_and_takes_back_those_of_ended_work(tmp_path):
    ledger = GpuLedger(tmp_path, ["0", "1", "2"])
    running = {"a", "b"}

    def live(session: str) -> bool:
        return session in running

    with ledger.held() as holders:
        assert ledger.take(holders, "a", 2, live) == ("0", "1")
        assert ledger.take(holders, "a", 2, live) == ("0", "1")  # asked again: the same
        assert ledger.take(holders, "b", 2, live) is None  # one is free, two are asked
        assert ledger.take(holders, "b", 1, live) == ("2",)
    running.discard("a")  # a's work ended without giving its GPUs back
    with ledger.held() as holders:
        assert ledger.take(holders, "c", 2, live) == ("0", "1")
        assert ledger.holders_of(holders, live) == ["b"]
    ledger.give_back("b")
    with ledger.held() as holders:
        assert holders == {"0": "c", "1": "c"}


def _holds(root: Path, session: str, ids: str, when: float) -> None:
    """`session`'s folder says it got the GPUs `ids` at `when` (its `state/gpus`)."""
    state = root / session / "state"
    state.mkdir(parents=True)
    (state / "gpus").write_text(ids, encoding="utf-8")
    os.utime(state / "gpus", (when, when))


@pytest.mark.parametrize("ledger_text", ['{"0": "a", "1"', "", "[1, 2]", None])
def test_an_unreadable_ledger_is_rebuilt_from_the_sessions_never_freeing_held_gpus(
    tmp_path, ledger_text
):
    _holds(tmp_path, "old", "0\n1\n", 1_000)  # ended; its GPU 0 went to `a` since
    _holds(tmp_path, "a", "0\n", 2_000)
    _holds(tmp_path, "b", "1\n", 3_000)
    (tmp_path / "other" / "state").mkdir(parents=True)  # a session without GPUs
    if ledger_text is not None:
        (tmp_path / "gpus.json").write_text(ledger_text, encoding="utf-8")
    ledger = GpuLedger(tmp_path, ["0", "1", "2"])
    running = {"a", "b"}
    with ledger.held() as holders:
        assert holders == {"0": "a", "1": "b"}
        assert ledger.take(holders, "c", 2, running.__contains__) is None
        assert ledger.take(holders, "c", 1, running.__contains__) == ("2",)
    assert json.loads((tmp_path / "gpus.json").read_text()) == {"0": "a", "1": "b", "2": "c"}


def test_the_ledger_is_flushed_to_disk_with_its_folder(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    ledger = GpuLedger(tmp_path, ["0"])
    with ledger.held() as holders:
        ledger.take(holders, "a", 1, lambda _: True)
    assert str(tmp_path / "gpus.tmp") in synced  # the new content, before it replaces the old
    assert str(tmp_path) in synced  # the rename
    assert json.loads((tmp_path / "gpus.json").read_text()) == {"0": "a"}


def test_concurrent_containers_get_distinct_gpus_and_the_exact_device_arguments(
    tmp_path, fake_engine
):
    write_spec(tmp_path)
    platform = LocalPlatform(settings(tmp_path, a100(2), engine=str(fake_engine)), tmp_path)
    first, second, third = plan("s-first", 1), plan("s-second", 1), plan("s-third", 1)
    for session in (first, second, third):
        prepared(platform, session)

    platform.start(first, datetime.now(UTC))
    platform.start(second, datetime.now(UTC))
    arguments = run_arguments(tmp_path, "s-first")
    assert devices_of(arguments) == ["nvidia.com/gpu=0"]
    assert devices_of(run_arguments(tmp_path, "s-second")) == ["nvidia.com/gpu=1"]
    # The device comes with the other limits, before the image; the ids are noted.
    assert arguments[: arguments.index("--volume")] == [
        "run",
        "--name",
        "voexec-s-first",
        "--network=none",
        "--cpus",
        "1",
        "--memory",
        "1024m",
        "--memory-swap",
        "1024m",
        "--pids-limit",
        "4096",
        "--security-opt",
        "no-new-privileges",
        "--device",
        "nvidia.com/gpu=0",
    ]
    assert "VOEXEC_GPUS=0" in arguments
    assert not any(a.startswith("CUDA_VISIBLE_DEVICES") for a in arguments)
    assert (platform.root / "s-first" / "state" / "gpus").read_text() == "0\n"

    # Both GPUs are held: the third waits, and starts with the first's once it has ended.
    now = datetime.now(UTC)
    platform.start(third, now)
    third_state = platform.root / "s-third" / "state"
    assert not (third_state / "run.pid").exists()
    assert (third_state / "run.wanted").exists()
    waiting = platform.observe(third, now)
    assert [type(r.event).__name__ for r in waiting] == ["PlatformCheckDue"]

    platform.release(first, datetime.now(UTC))
    until(
        lambda: not platform._holds_gpus("s-first"),
        "the first session's work to end",
    )
    platform.observe(third, datetime.now(UTC))
    assert devices_of(run_arguments(tmp_path, "s-third")) == ["nvidia.com/gpu=0"]
    for session in (second, third):
        platform.stop(session, datetime.now(UTC))


def test_work_that_waits_too_long_for_its_gpus_fails_naming_the_holder(tmp_path, fake_engine):
    write_spec(tmp_path)
    platform = LocalPlatform(settings(tmp_path, a100(1), engine=str(fake_engine)), tmp_path)
    holder, waiting = plan("s-holder", 1), plan("s-waiting", 1)
    prepared(platform, holder)
    prepared(platform, waiting)
    platform.start(holder, datetime.now(UTC))
    run_arguments(tmp_path, "s-holder")
    started = datetime.now(UTC)
    platform.start(waiting, started)
    assert [type(r.event) for r in platform.observe(waiting, started)] == [PlatformCheckDue]
    [report] = platform.observe(waiting, started + timedelta(seconds=31))
    assert isinstance(report.event, Failed)
    assert report.event.reason == (
        "1 GPU(s) of this platform were not free within 30 s "
        "(broker.platforms[gpubox].local.startup_timeout); held by session(s) s-holder"
    )
    assert not (platform.root / "s-waiting" / "state" / "run.pid").exists()
    platform.stop(holder, datetime.now(UTC))


def test_an_interactive_session_ready_early_waits_for_its_gpus_until_its_start(
    tmp_path, fake_engine
):
    write_spec(tmp_path)
    platform = LocalPlatform(settings(tmp_path, a100(1), engine=str(fake_engine)), tmp_path)
    holder = plan("s-holder", 1)
    prepared(platform, holder)
    platform.start(holder, datetime.now(UTC))
    run_arguments(tmp_path, "s-holder")
    port = model.DockerNetworkPort(
        access=True, internal=model.DockerInternalPort(port=8888), protocol="HTTP"
    )
    served = container(network=model.DockerNetworkSpec(ports=[port]))
    now = datetime.now(UTC)
    early = dataclasses.replace(
        plan("s-early", 1, served), start=now + timedelta(minutes=5), end=now + timedelta(hours=1)
    )
    prepared(platform, early)
    # Ready five minutes before its start, it waits for the GPU the session before it holds:
    # past the start-up timeout, but before its own start, that is no failure.
    for later in (timedelta(0), timedelta(minutes=4)):
        reports = platform.observe(early, now + later)
        assert [type(r.event) for r in reports] == [PlatformCheckDue]
    [failed] = platform.observe(early, now + timedelta(minutes=5, seconds=31))
    assert isinstance(failed.event, Failed)
    assert "held by session(s) s-holder" in failed.event.reason
    platform.stop(holder, datetime.now(UTC))


def test_a_program_gets_its_gpus_as_cuda_visible_devices():
    program = model.PythonProgram(location="https://example.org/p.py", entry_point="p")
    layout = Layout(PurePosixPath("/work/s-1"))
    script = run_script(plan("s-1", 2, program), Tools(python="python3"), layout, ["1", "3"])
    assert "export VOEXEC_GPUS=1,3" in script
    assert "export CUDA_VISIBLE_DEVICES=1,3" in script
    assert "CUDA_VISIBLE_DEVICES" not in run_script(
        plan("s-1", 0, program), Tools(python="python3"), layout
    )
