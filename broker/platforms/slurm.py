"""The Slurm platform: each session is one batch job on a Slurm cluster.

The only module that runs Slurm's commands, all through `run_command` (swap it for tests):
`sbatch --parsable` submits the session's job when its preparation is due, asking for the
offered cores and memory, `--begin` at the offered start and a `--time` limit reaching the
offered end; `squeue` (then `sacct`, when the cluster keeps accounting) tells how the job goes;
`scancel` stops it for a cancel, or at the offered end.

The job runs the same two steps as the local platform (`recipe.job_script`): the preparation,
then the work, each writing its exit code to the session's `state/` folder. That folder is in
the session's working directory `<workdir>/<session id>/`, which voexec and the compute nodes
must see at the same path (a shared file system); with the job id in `state/job`, it is all the
adapter knows, so a restarted voexec observes its jobs where they are.

Job states and what the session makes of them (`job_reports`): PENDING, CONFIGURING and the
like: still preparing; RUNNING: ready once the preparation step has succeeded; COMPLETED: the
work finished; FAILED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY and the like: failed, with the reason;
CANCELLED by someone else: cancelled, with the reason; anything, once voexec released the
session: released when the job has left the cluster's queue.

Data: the job stages the session's data itself (its preparation step), except the items that
need the platform's credentials (S3 objects, when the platform has S3 keys): the job's clean
environment never gets them. Those the broker's host stages first (`uploads.DataStager`:
`stage.sh` under `session_runner.py`, with the keys in its environment only), into the
session's `data/` on the shared file system; the job is submitted once they are all there, and
its preparation only checks they are. A staging that fails fails the session naming the item,
and no job is submitted; a cancel (or the offered end) stops it. Staging before `sbatch`
rather than holding a submitted job keeps the cluster out of it: nothing waits in the queue,
nothing needs releasing or cancelling when the data cannot be had, and the time limit is
computed when the job is submitted.

Results: when the request names results destinations, the release (the work finished, or the
offered end) asks for an upload; once the job has left the queue, the broker's host copies the
job's output folder to them (`uploads`: `upload.sh` under `session_runner.py`, with the
platform's S3 keys and http credentials, which never reach the job), reading it through the
shared file system. The session then lists each object written; a failed upload fails it with
the reason and keeps the output. A cancel uploads nothing.

Imports `core`, the broker's lifecycle, model, ports and the platform recipe; runs processes.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from broker.lifecycle import (
    AnyEvent,
    ComponentCancelled,
    Failed,
    PlatformCheckDue,
    ReleaseDone,
    ResourcesReady,
    WorkFinished,
)
from broker.model import AnyExecutable
from broker.platforms.port import PlatformError, PlatformReport, SessionPlan
from broker.platforms.recipe import (
    FETCHER,
    S3_CLIENT,
    Layout,
    Tools,
    job_script,
    prepare_script,
    refusals,
    run_script,
)
from broker.platforms.uploads import DataStager, ResultsUploader, log_tail
from core.settings import PlatformSettings

__all__ = ["CommandResult", "SlurmPlatform", "job_reports", "run_command"]

FETCH_HELPER: Final = Path(__file__).resolve().with_name("session_fetch.py")
_KEPT_ENVIRONMENT: Final = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "USER", "LOGNAME")

ACTIVE: Final = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "RESV_DEL_HOLD",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
    }
)
"""Job states in which the job is still on the cluster."""
FAILURES: Final = {
    "FAILED": "failed",
    "TIMEOUT": "reached its time limit",
    "NODE_FAIL": "failed because its node failed",
    "OUT_OF_MEMORY": "ran out of memory",
    "BOOT_FAIL": "failed because its node did not boot",
    "DEADLINE": "missed its deadline",
    "PREEMPTED": "was preempted",
    "REVOKED": "was revoked",
    "SPECIAL_EXIT": "ended in a special exit state",
}
"""Job states that fail the session, with how the reason says it."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a Slurm command answered."""

    returncode: int
    stdout: str
    stderr: str


CommandRunner = Callable[[Sequence[str], float], CommandResult]


def run_command(argv: Sequence[str], timeout: float) -> CommandResult:
    """Run one Slurm command with a clean environment (voexec's settings stay out of jobs).

    Raises:
        PlatformError: the command is missing or did not answer within `timeout` seconds.
    """
    environment = {name: os.environ[name] for name in _KEPT_ENVIRONMENT if name in os.environ}
    environment |= {k: v for k, v in os.environ.items() if k.startswith(("SLURM_", "MUNGE"))}
    try:
        done = subprocess.run(  # noqa: S603 - Slurm's own commands, from the settings
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
            check=False,
        )
    except FileNotFoundError as error:
        raise PlatformError(f"{argv[0]} was not found: is Slurm installed here?") from error
    except subprocess.TimeoutExpired as error:
        raise PlatformError(f"{argv[0]} did not answer within {timeout:g} s") from error
    return CommandResult(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True, slots=True)
class JobFiles:
    """What the job left in the session's `state/` folder: each step's exit code, if any."""

    prepare_exit: str | None = None
    run_exit: str | None = None
    released: bool = False


def job_reports(job: str, state: str | None, files: JobFiles) -> list[AnyEvent]:  # noqa: PLR0911 - one return per row of the table
    """What the session makes of the job's Slurm state and the files it left (pure).

    Returns:
        The events to report now; empty when nothing changed (the caller polls again unless
        one of the events ends the work).
    """
    if files.released:
        return [ReleaseDone()] if state not in ACTIVE else []
    if state in ACTIVE:
        ready = state in {"RUNNING", "COMPLETING"} and files.prepare_exit == "0"
        return [ResourcesReady()] if ready else []
    if files.prepare_exit not in {None, "0"}:
        return [Failed(reason=f"the preparation exited with code {files.prepare_exit}")]
    if files.run_exit not in {None, "0"}:
        return [Failed(reason=f"the program exited with code {files.run_exit}")]
    if state == "COMPLETED" or (state is None and files.run_exit == "0"):
        return [ResourcesReady(), WorkFinished()]
    if state is not None and state.startswith("CANCELLED"):
        reason = f"Slurm job {job} was cancelled outside the broker"
        return [ComponentCancelled(components=("job",), reason=reason)]
    if state in FAILURES:
        return [Failed(reason=f"Slurm job {job} {FAILURES[state]}")]
    if state is None:
        return [Failed(reason=f"Slurm no longer knows job {job} and it left no exit code")]
    return [Failed(reason=f"Slurm job {job} ended {state}")]


class SlurmPlatform:
    """A `Platform` submitting each session as a batch job to a Slurm cluster."""

    def __init__(
        self,
        settings: PlatformSettings,
        data_dir: str | Path,
        *,
        run: CommandRunner = run_command,
    ) -> None:
        self.name = settings.name
        self._settings = slurm = settings.slurm
        self.root = Path(slurm.workdir or Path(data_dir) / "platforms" / settings.name).resolve()
        self._run = run
        self.tools = Tools(
            python=slurm.python,
            jupyter=slurm.jupyter,
            container_runtime=slurm.container_runtime,
            sources=tuple(slurm.sources),
            no_containers="no container runtime is configured for this cluster",
            mirrors=tuple(settings.data.mirrors.items()),
            max_data_bytes=int(settings.data.max_size * 2**30),
        )
        self._uploads = ResultsUploader(self.name, settings.data, slurm.poll)
        self._staging = DataStager(settings.data, slurm.poll)

    # ----------------------------------------------------------------- the port
    def accepts(self, executable: AnyExecutable, gpus: int = 0) -> Sequence[str]:
        """Why the cluster cannot run `executable` (no notebook runner, no container engine).

        GPUs are Slurm's to hand out (`--gres=gpu:N`).
        """
        return refusals(executable, self.tools)

    def prepare(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Write the session's scripts and submit its job (once); observed from now on.

        Data needing the platform's credentials is staged on this host first: the job is
        submitted when `observe` finds it staged.
        """
        layout, state = self._layout(plan)
        job = _read(state / "job")
        if job is None and self._staging.started(state):
            return [PlatformReport(now + self._settings.poll, PlatformCheckDue())]
        if job is None:
            staged = self._staging.needed(plan, self.tools)
            root = Path(layout.root)
            for folder in (root, Path(layout.logs), state):
                folder.mkdir(parents=True, exist_ok=True)
            names = {item.name for item in staged}
            (root / "prepare.sh").write_text(prepare_script(plan, self.tools, layout, names))
            (root / "run.sh").write_text(run_script(plan, self.tools, layout))
            (root / "job.sh").write_text(job_script(layout))
            shutil.copyfile(FETCH_HELPER, root / FETCHER)
            shutil.copyfile(FETCH_HELPER.with_name(S3_CLIENT), root / S3_CLIENT)
            if staged:
                return [self._staging.start(plan, layout, staged, self.tools, now)]
            job = self._submit_once(plan, layout, state, now)
        note = f"Slurm job {job}; working directory {layout.root}"
        return [PlatformReport(now + self._settings.poll, PlatformCheckDue(), note)]

    def start(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Nothing to do: the job starts its work itself once prepared."""
        return []

    def observe(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """How the job is doing, from Slurm and from the files it left."""
        layout, state = self._layout(plan)
        if self._uploads.started(state):
            return self._uploads.observe(plan, layout, now)
        if _read(state / "job") is None and self._staging.started(state):
            return self._observe_staging(plan, layout, state, now)
        job = self._job(state)
        status = self._job_state(job)
        files = JobFiles(
            prepare_exit=_read(state / "prepare.exit"),
            run_exit=_read(state / "run.exit"),
            released=(state / "released").exists(),
        )
        if files.released and status in ACTIVE:
            self._cancel(job)  # again: the first cancel may have come before the job ran
        elif files.released and self._uploads.wanted(plan, state):
            return self._uploads.start(plan, layout, now)  # the job is gone: its output goes
        events = job_reports(job, status, files)
        reports = [PlatformReport(now, self._explained(event, layout)) for event in events]
        if not any(isinstance(e, Failed | ComponentCancelled | ReleaseDone) for e in events):
            reports.append(PlatformReport(now + self._settings.poll, PlatformCheckDue()))
        return reports

    def release(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Cancel the job if it still runs (the offered end, or after a failure).

        With results destinations, the upload starts once the job has left the queue.
        """
        _, state = self._layout(plan)
        if self._uploads.started(state):
            return [PlatformReport(now + self._settings.poll, PlatformCheckDue())]
        if _read(state / "job") is not None:
            self._uploads.want(plan, state)  # no job, no output to upload
        self._cancel_session(plan)
        return [PlatformReport(now + self._settings.poll, PlatformCheckDue())]

    def stop(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """A cancel: cancel the job now, pending or running, or stop the data's staging."""
        self._cancel_session(plan)
        return []

    # ----------------------------------------------------------------- internals
    def _layout(self, plan: SessionPlan) -> tuple[Layout, Path]:
        return Layout.of_session(self.root, plan)

    def _slurm(self, *argv: str) -> CommandResult:
        return self._run(argv, self._settings.command_timeout.total_seconds())

    def submit_arguments(self, plan: SessionPlan, layout: Layout, now: datetime) -> list[str]:
        """The `sbatch` command line for a session: its resources, start and time limit."""
        settings = self._settings
        begins = max(plan.start, now)
        minutes = max(1, math.ceil((plan.end - begins) / timedelta(minutes=1)))
        argv = [
            settings.sbatch,
            "--parsable",
            f"--job-name=voexec-{plan.session_id}",
            f"--chdir={layout.root}",
            f"--output={layout.logs}/slurm-%j.out",
            "--ntasks=1",
            f"--cpus-per-task={plan.cores}",
            f"--mem={max(1, int(plan.memory * 1024))}M",
            f"--time={minutes}",
        ]
        if plan.start > now:
            # Slurm reads --begin in the controller's local time: voexec must share its zone.
            argv.append(f"--begin={plan.start.astimezone().strftime('%Y-%m-%dT%H:%M:%S')}")
        if plan.gpus:
            argv.append(f"--gres=gpu:{plan.gpus}")
        if settings.partition:
            argv.append(f"--partition={settings.partition}")
        if settings.account:
            argv.append(f"--account={settings.account}")
        return [*argv, *settings.extra_args, str(layout.root / "job.sh")]

    def _submit(self, plan: SessionPlan, layout: Layout, now: datetime) -> str:
        done = self._slurm(*self.submit_arguments(plan, layout, now))
        job = done.stdout.strip().split(";", 1)[0]
        if done.returncode != 0 or not job.isdigit():
            said = done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}"
            raise PlatformError(f"sbatch refused the job: {said}")
        return job

    def _submit_once(self, plan: SessionPlan, layout: Layout, state: Path, now: datetime) -> str:
        job = self._submit(plan, layout, now)
        (state / "job").write_text(f"{job}\n")
        return job

    def _observe_staging(
        self, plan: SessionPlan, layout: Layout, state: Path, now: datetime
    ) -> list[PlatformReport]:
        """Before the job: the host stages the data; once it has, the job is submitted."""
        staging = self._staging.observe(plan, layout)
        poll = PlatformReport(now + self._settings.poll, PlatformCheckDue())
        released = (state / "released").exists()
        if staging.state == "running":
            if released:
                self._staging.stop(plan, state)  # again: the runner escalates to SIGKILL
            return [poll]
        if released and staging.state == "staged":
            return [PlatformReport(now, ReleaseDone())]  # released before the job was due
        if released:  # the offered end came first
            reason = (
                f"the session ended before data {staging.item!r} was staged on the broker's host"
            )
            return [PlatformReport(now, Failed(reason=reason))]
        if staging.state == "failed":
            return [PlatformReport(now, Failed(reason=staging.reason))]
        job = self._submit_once(plan, layout, state, now)
        if (state / "released").exists():  # a cancel came while sbatch answered
            self._cancel(job)
        note = f"data staged; Slurm job {job}; working directory {layout.root}"
        return [PlatformReport(now + self._settings.poll, PlatformCheckDue(), note)]

    def _job(self, state: Path) -> str:
        job = _read(state / "job")
        if job is None:
            raise PlatformError("no Slurm job was submitted for this session")
        return job

    def _job_state(self, job: str) -> str | None:
        """The job's state from squeue, else from sacct; None when neither knows it."""
        queued = self._slurm(self._settings.squeue, "-h", "-j", job, "--states=all", "-o", "%T")
        state = queued.stdout.strip().split()
        if queued.returncode == 0 and state:
            return state[0]
        accounted = self._slurm(self._settings.sacct, "-n", "-X", "-P", "-j", job, "-o", "State")
        state = accounted.stdout.strip().split()
        return state[0] if accounted.returncode == 0 and state else None

    def _cancel(self, job: str) -> None:
        done = self._slurm(self._settings.scancel, job)
        said = done.stderr.lower()
        if done.returncode != 0 and "completed" not in said and "invalid job id" not in said:
            raise PlatformError(f"scancel {job} failed: {done.stderr.strip()}")

    def _cancel_session(self, plan: SessionPlan) -> None:
        _, state = self._layout(plan)
        job = _read(state / "job")
        if job is None and not self._staging.started(state):
            return  # nothing was started
        released = state / "released"
        if not released.exists():
            released.write_text(f"{time.time()}\n")
        if job is None:
            self._staging.stop(plan, state)  # the job will not be submitted
        else:
            self._cancel(job)

    def _explained(self, event: AnyEvent, layout: Layout) -> AnyEvent:
        """A failure with the tail of the log of the step that failed, and where the logs are."""
        if not isinstance(event, Failed):
            return event
        step = "prepare" if "preparation" in event.reason else "run"
        tail = log_tail(Path(layout.log(step, "err")))  # bounded read, secrets masked
        detail = f": {tail}" if tail else ""
        return Failed(reason=f"{event.reason}{detail} (logs: {layout.logs})")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None
