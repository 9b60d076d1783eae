"""Real platforms without running anything: offer-time refusals, scripts, Slurm's states and
command lines (through a recording command runner instead of the cluster)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest

from broker import model
from broker.lifecycle import (
    ComponentCancelled,
    Failed,
    PlatformCheckDue,
    ReleaseDone,
    ResourcesReady,
    WorkFinished,
)
from broker.platforms.port import DataSource, PlatformError, SessionPlan
from broker.platforms.recipe import Layout, Tools, prepare_script, refusals, run_script
from broker.platforms.slurm import CommandResult, JobFiles, SlurmPlatform, job_reports
from core.settings import Capacity, PlatformSettings, SlurmPlatformSettings

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
TOOLS = Tools(python="python3", python_version="3.11.7")
LAYOUT = Layout(PurePosixPath("/work/s-1"))


def program(**fields: object) -> model.PythonProgram:
    return model.PythonProgram(location="https://example.org/tool.py", **fields)  # type: ignore[arg-type]


def plan(executable: model.AnyExecutable, *data: DataSource, **more: object) -> SessionPlan:
    fields: dict[str, object] = {
        "session_id": "s-1",
        "executable": executable,
        "cores": 2,
        "memory": 1.5,
        "gpus": 0,
        "start": NOW + timedelta(minutes=10),
        "end": NOW + timedelta(minutes=70),
        "data": data,
    }
    return SessionPlan(**(fields | more))  # type: ignore[arg-type]


# ------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("executable", "tools", "expected"),
    [
        (program(python_version="3.11"), TOOLS, []),
        (program(python_version="3.9"), TOOLS, ["runs Python 3.11.7, not Python 3.9"]),
        (program(entry_point="pkg.cli:main"), TOOLS, []),
        (program(entry_point="pkg.cli"), TOOLS, []),
        (program(entry_point="bin/run.py"), TOOLS, []),
        (program(entry_point="../../etc/x.py"), TOOLS, ["cannot run entry_point '../../etc/x.py'"]),
        (program(entry_point="rm -rf /"), TOOLS, ["cannot run entry_point 'rm -rf /'"]),
        (model.JupyterNotebook(location="https://e.org/n.ipynb"), TOOLS, ["runs no Jupyter"]),
        (
            model.DockerContainer(image=model.DockerImageSpec(locations=["docker.io/a/b:1"])),
            TOOLS,
            ["runs no containers: no container runtime"],
        ),
        (
            model.SingularityContainer(location="library://a/b"),
            Tools(python="python3", container_runtime="podman"),
            ["runs Singularity images with apptainer or singularity only"],
        ),
        (
            program(),
            Tools(python="python3", sources=("https://trusted.org/",)),
            ["does not run code from https://example.org/tool.py; allowed: https://trusted.org/"],
        ),
    ],
)
def test_refusals_say_why_a_platform_cannot_run_an_executable(executable, tools, expected):
    found = refusals(executable, tools)
    assert len(found) == len(expected), found
    for text, start in zip(found, expected, strict=True):
        assert text.startswith(start), text


# ------------------------------------------------------------------------- scripts
def test_a_python_program_is_fetched_into_a_fresh_environment_with_its_requirements():
    script = prepare_script(
        plan(
            program(requirements=["numpy>=1.26", "astropy"]),
            DataSource("in put", "k", "https://d.org/x"),
        ),
        TOOLS,
        LAYOUT,
    )
    assert "set -eu" in script
    assert "python3 session_fetch.py program https://example.org/tool.py program" in script
    assert "python3 -m venv venv" in script
    assert "pip install --disable-pip-version-check --no-input --quiet 'numpy>=1.26' astropy" in (
        script
    )
    assert "python3 session_fetch.py data https://d.org/x data/in_put 0" in script
    # The data is staged first, and the S3 keys are gone before anything of the request runs.
    assert script.index("data/in_put") < script.index("unset AWS_ACCESS_KEY_ID")
    assert script.index("unset AWS_ACCESS_KEY_ID") < script.index("session_fetch.py program")


def test_data_under_a_mirror_is_copied_from_the_replica_and_sizes_are_bounded():
    tools = dataclasses.replace(
        TOOLS, mirrors=(("https://archive.org/sky/", "/srv/mirror"),), max_data_bytes=1024
    )
    items = (
        DataSource("a", "k", "https://archive.org/sky/deep/a.fits"),
        DataSource("b", "k", "s3+http://127.0.0.1:9000/bucket/runs/"),
    )
    script = prepare_script(plan(program(), *items), tools, LAYOUT)
    assert "session_fetch.py data file:///srv/mirror/deep/a.fits data/a 1024" in script
    assert "session_fetch.py data s3+http://127.0.0.1:9000/bucket/runs/ data/b 1024" in script


def test_data_without_a_url_cannot_be_prepared():
    with pytest.raises(PlatformError, match=r"data 'cube' \(S3-data-resource\.yaml\) has no URL"):
        prepare_script(
            plan(program(), DataSource("cube", model.KINDS + "data/S3-data-resource.yaml", None)),
            TOOLS,
            LAYOUT,
        )


@pytest.mark.parametrize(
    ("entry", "command"),
    [
        ("pkg.cli:main", "sys.exit(getattr(importlib.import_module(module), name)())"),
        ("pkg.cli", "exec /work/s-1/venv/bin/python -m pkg.cli"),
        ("bin/run.py", "exec /work/s-1/venv/bin/python /work/s-1/program/bin/run.py"),
        (None, "if [ -f /work/s-1/program/__main__.py ]"),
    ],
)
def test_the_run_script_calls_the_entry_point_in_the_output_folder(entry, command):
    script = run_script(plan(program(entry_point=entry)), TOOLS, LAYOUT)
    assert "cd /work/s-1/output" in script
    assert "export VOEXEC_DATA=/work/s-1/data" in script
    assert "export OMP_NUM_THREADS=2" in script
    assert command in script


def test_a_container_runs_with_the_data_read_only_and_its_own_command():
    container = model.DockerContainer(
        image=model.DockerImageSpec(locations=["docker.io/a/b:1"]),
        command=["--fast", "x y"],
        environment={"MODE": "test"},
    )
    tools = Tools(python="python3", container_runtime="apptainer")
    assert "apptainer pull --force program/image.sif docker://docker.io/a/b:1" in prepare_script(
        plan(container), tools, LAYOUT
    )
    run = run_script(plan(container), tools, LAYOUT)
    assert "exec apptainer run --cleanenv --bind /work/s-1/data:/voexec/data:ro" in run
    assert "--env MODE=test /work/s-1/program/image.sif --fast 'x y'" in run


# ------------------------------------------------------------------------- Slurm
@pytest.mark.parametrize(
    ("state", "files", "events"),
    [
        ("PENDING", JobFiles(), []),
        ("RUNNING", JobFiles(), []),
        ("RUNNING", JobFiles(prepare_exit="0"), [ResourcesReady()]),
        ("COMPLETED", JobFiles(prepare_exit="0", run_exit="0"), [ResourcesReady(), WorkFinished()]),
        (None, JobFiles(prepare_exit="0", run_exit="0"), [ResourcesReady(), WorkFinished()]),
        (
            "FAILED",
            JobFiles(prepare_exit="0", run_exit="3"),
            [Failed(reason="the program exited with code 3")],
        ),
        (
            "FAILED",
            JobFiles(prepare_exit="1"),
            [Failed(reason="the preparation exited with code 1")],
        ),
        (
            "TIMEOUT",
            JobFiles(prepare_exit="0"),
            [Failed(reason="Slurm job 7 reached its time limit")],
        ),
        ("OUT_OF_MEMORY", JobFiles(), [Failed(reason="Slurm job 7 ran out of memory")]),
        ("NODE_FAIL", JobFiles(), [Failed(reason="Slurm job 7 failed because its node failed")]),
        (
            "CANCELLED",
            JobFiles(),
            [
                ComponentCancelled(
                    components=("job",), reason="Slurm job 7 was cancelled outside the broker"
                )
            ],
        ),
        ("CANCELLED", JobFiles(released=True), [ReleaseDone()]),
        ("RUNNING", JobFiles(released=True), []),
        (None, JobFiles(), [Failed(reason="Slurm no longer knows job 7 and it left no exit code")]),
    ],
)
def test_slurm_job_states_map_to_lifecycle_events(state, files, events):
    assert job_reports("7", state, files) == events


class Recorder:
    """Stands in for the cluster: records each command and answers from a table."""

    def __init__(self, answers: dict[str, CommandResult]) -> None:
        self.answers = answers
        self.commands: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.commands.append(list(argv))
        return self.answers.get(argv[0], CommandResult(0, "", ""))


def slurm(tmp_path: Path, recorder: Recorder, **settings: object) -> SlurmPlatform:
    platform = PlatformSettings(
        name="hpc",
        adapter="slurm",
        capacity=Capacity(cores=8, memory=16),
        slurm=SlurmPlatformSettings(**settings),  # type: ignore[arg-type]
    )
    return SlurmPlatform(platform, tmp_path, run=recorder)


def test_a_session_is_submitted_with_its_resources_start_and_time_limit(tmp_path):
    recorder = Recorder({"sbatch": CommandResult(0, "4242;cluster\n", "")})
    platform = slurm(tmp_path, recorder, partition="short", account="astro", extra_args=["--qos=x"])
    reports = platform.prepare(plan(program(), gpus=1), NOW)
    (sbatch,) = recorder.commands
    begin = (NOW + timedelta(minutes=10)).astimezone().strftime("%Y-%m-%dT%H:%M:%S")
    for option in [
        "--parsable",
        "--cpus-per-task=2",
        "--mem=1536M",
        "--time=60",
        f"--begin={begin}",
        "--gres=gpu:1",
        "--partition=short",
        "--account=astro",
        "--qos=x",
    ]:
        assert option in sbatch
    folder = tmp_path / "platforms" / "hpc" / "s-1"
    assert sbatch[-1] == str(folder / "job.sh")
    assert (folder / "state" / "job").read_text() == "4242\n"
    assert reports[0].event == PlatformCheckDue()
    assert "Slurm job 4242" in (reports[0].note or "")
    platform.prepare(plan(program()), NOW)  # a second call (a replayed event) submits nothing
    assert len(recorder.commands) == 1


def test_a_refused_submission_says_what_sbatch_said(tmp_path):
    refused = CommandResult(1, "", "sbatch: error: invalid partition specified: nope\n")
    platform = slurm(tmp_path, Recorder({"sbatch": refused}), partition="nope")
    with pytest.raises(PlatformError, match=r"sbatch refused the job: .*invalid partition"):
        platform.prepare(plan(program()), NOW)


def test_a_cancel_runs_scancel_and_the_release_waits_for_the_job_to_leave(tmp_path):
    recorder = Recorder(
        {"sbatch": CommandResult(0, "77\n", ""), "squeue": CommandResult(0, "RUNNING\n", "")}
    )
    platform = slurm(tmp_path, recorder)
    session = plan(program())
    platform.prepare(session, NOW)
    assert platform.stop(session, NOW) == []
    assert ["scancel", "77"] in recorder.commands
    reports = platform.observe(session, NOW)
    assert [type(r.event) for r in reports] == [PlatformCheckDue]  # still on the node
    recorder.answers["squeue"] = CommandResult(0, "CANCELLED\n", "")
    assert [r.event for r in platform.observe(session, NOW)] == [ReleaseDone()]
