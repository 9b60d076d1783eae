"""The local platform: runs sessions for real, as child processes of this machine.

Each session gets a working directory `<workdir>/<session id>/` (see `recipe.Layout`): its
preparation (`prepare.sh`: fetch, stage data, make a fresh virtual environment) and its work
(`run.sh`) each run under `session_runner.py`, detached from voexec, with their output in
`logs/`, what the program writes in `output/`, and their pid and exit code in `state/`. All the
adapter knows is in those files, so a restarted voexec observes its sessions where they are.

Limits: the offered memory caps the program's address space; the offered cores are advisory
(`OMP_NUM_THREADS`); the offered end stops the work (the runner does it even while voexec is
down); a cancel sends SIGTERM to everything of the session and SIGKILL after `grace`. Programs
run with a clean environment (no voexec settings or secrets), `HOME` in their directory.

Docker-container images run with the configured engine (podman; `containers` builds the
lines): pulled by digest during preparation, the offered cores, memory and the pids setting as
the container's limits, no network, the data read-only. The container runs under the engine's
own monitor, outside the runner's process group, so a cancel or the offered end asks the runner
to stop it by name (`<engine> stop`, then `rm --force`), and the adapter removes it itself
when the runner is gone.

When the request names results destinations, the release uploads the output folder to them
once nothing of the work runs (`uploads`), and the session lists each object written.

An interactive session (a notebook executable without a notebook, see `jupyter`) has a Jupyter
server as its work: it is started as soon as the preparation has succeeded, and the session
becomes AVAILABLE, with the server's URL as its connector, once the server answers
`/api/status` with its token. A container that publishes ports asking for access is started
the same way, and the session becomes AVAILABLE with a connector per port (`<engine> port`)
once every such port answers. Connectors reported are remembered in `state/connectors.json`,
so each is reported once. A server that does not answer within `startup_timeout` fails the
session with its last log lines, and is stopped.

A session booked with GPUs takes free ids of the platform's GPUs when its work starts (`gpus`:
a ledger under a lock), and waits for them while an ending session still holds them; a
container gets them as CDI devices or device files, a process as `CUDA_VISIBLE_DEVICES`.

It runs whatever an accepted request names, as the user running voexec: offer it only to
trusted clients (`broker.write_tokens`) and limit `local.sources`.

Imports `core`, the broker's model, lifecycle, ports and the platform helpers; runs processes.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import platform as python_platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal

from broker.lifecycle import (
    Failed,
    PlatformCheckDue,
    ReleaseDone,
    ResourcesReady,
    WorkFinished,
)
from broker.model import (
    AnyExecutable,
    DockerContainer,
    JupyterNotebook,
    PythonProgram,
    SimpleSessionConnector,
)
from broker.platforms import java, jupyter, processes
from broker.platforms.containers import (
    ContainerEngine,
    access_ports,
    container_name,
    published_connectors,
)
from broker.platforms.gpus import GPU_STATE, GpuLedger, gpu_passing
from broker.platforms.port import PlatformError, PlatformReport, SessionPlan
from broker.platforms.recipe import (
    FETCHER,
    S3_CLIENT,
    Layout,
    Tools,
    prepare_script,
    refusals,
    run_script,
)
from broker.platforms.uploads import ResultsUploader, launch_step, log_tail, s3_environment
from core.errors import ConfigError
from core.settings import LocalPlatformSettings, PlatformSettings

__all__ = ["LocalPlatform", "local_tools"]

HERE: Final = Path(__file__).resolve().parent
FETCH_HELPER: Final = HERE / "session_fetch.py"
S3_HELPER: Final = HERE / "session_s3.py"
DEADLINE_MARGIN: Final = timedelta(seconds=30)
"""The runner stops the work this long after the offered end by itself: voexec's own release
comes first while it runs, the runner's deadline is for when it does not."""
_RUNTIMES: Final[tuple[Literal["apptainer", "singularity"], ...]] = ("apptainer", "singularity")
_ENGINE_ENVIRONMENT: Final = ("DOCKER_HOST", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE")
"""The engine's own configuration variables (with every `CONTAINERS_*` one): voexec's values
are handed to the engine's calls, and to nothing else of the session."""
CONTAINER_MARGIN: Final = timedelta(seconds=20)
"""Beyond the grace period, how long the engine may take to stop and remove a container."""
ENGINE_TIMEOUT: Final = 30
"""Seconds one engine call of the adapter (removing a container) may take."""
PORT_TIMEOUT: Final = 5
"""Seconds `<engine> port` may take: it is asked while the service waits."""
CONNECTORS: Final = "connectors.json"
"""In `state/`: the connectors already reported."""
WANTED: Final = "run.wanted"
"""In `state/`: when the work was due but waited for GPUs still held (seconds since the epoch)."""
STARTED: Final = "run.started"
"""In `state/`: when the work step was started (seconds since the epoch, the service's clock)."""
PORT_PROBE_TIMEOUT: Final = 2.0
"""Seconds a published port may take to answer the adapter's probe."""


def _python_version(python: str, setting: str) -> str:
    if python == sys.executable:
        return python_platform.python_version()
    try:
        answer = subprocess.run(  # noqa: S603 - the operator's configured interpreter
            [python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise ConfigError(f"setting {setting}: cannot run {python}: {error}") from error
    return answer.stdout.strip()


def local_tools(settings: LocalPlatformSettings, setting: str = "local") -> Tools:
    """What this machine has to run sessions with, found on PATH as the settings say.

    Raises:
        ConfigError: the configured interpreter does not run.
    """
    python = settings.python or sys.executable
    runner = shutil.which(settings.jupyter)
    if runner is not None and not (
        Path(runner).with_name("jupyter-nbconvert").exists() or shutil.which("jupyter-nbconvert")
    ):
        runner = None  # jupyter without nbconvert cannot execute notebooks
    wanted = settings.container_runtime
    runtime = None
    why = f"Singularity images are turned off ({setting}.container_runtime: none)"
    if wanted == "auto":
        runtime = next((name for name in _RUNTIMES if shutil.which(name)), None)
        why = "neither apptainer nor singularity was found on PATH"
    elif wanted != "none":
        runtime = wanted if shutil.which(wanted) else None
        why = f"{wanted} was not found on PATH"
    engine, no_engine = _engine(settings, setting)
    server_command = settings.jupyter_server.strip()
    server = None
    no_server = f"interactive sessions are turned off ({setting}.jupyter_server: none)"
    if server_command not in {"", "none"}:
        server = jupyter.find_server(server_command)
        no_server = (
            f"{server_command} was found neither on PATH nor beside voexec's Python "
            f"({setting}.jupyter_server; pip install jupyter-server)"
        )
    return Tools(
        python=python,
        python_version=_python_version(python, f"{setting}.python"),
        jupyter=runner,
        container_runtime=runtime,
        sources=tuple(settings.sources),
        no_containers=why,
        engine=engine,
        no_engine=no_engine,
        jupyter_server=server,
        no_jupyter_server=no_server,
        listen=settings.listen,
        jvm=java.detect(settings.java, f"{setting}.java"),
    )


def _engine(settings: LocalPlatformSettings, setting: str) -> tuple[ContainerEngine | None, str]:
    """The container engine the settings name, or why there is none."""
    command = settings.container_engine.strip()
    if command in {"", "none"}:
        return None, f"containers are turned off ({setting}.container_engine: none)"
    found = shutil.which(command)
    if found is None:
        return None, f"{command} was not found on PATH ({setting}.container_engine)"
    environment = tuple(
        (name, value)
        for name, value in sorted(os.environ.items())
        if name.startswith("CONTAINERS_") or name in _ENGINE_ENVIRONMENT
    )
    engine = ContainerEngine(
        command=found,
        registries=tuple(settings.registries),
        pids=settings.container_pids,
        environment=environment,
        setting=setting,
    )
    return engine, ""


_STEP_NAMES: Final = {"prepare": "preparation", "run": "program"}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None


def _mark(path: Path, now: datetime) -> None:
    """Note `now` in `path` (seconds since the epoch), unless it already holds a time."""
    if not path.exists():
        path.write_text(f"{now.timestamp()}\n", encoding="utf-8")


def _port_answers(location: str) -> bool:
    """True when a published port answers: any HTTP answer for `http:`, a connection else.

    UDP cannot be asked without knowing the protocol: it counts as answering.
    """
    url = urllib.parse.urlsplit(location)
    if url.scheme == "udp" or url.hostname is None or url.port is None:
        return url.scheme == "udp"
    if url.scheme == "http":
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=PORT_PROBE_TIMEOUT)
        try:
            connection.request("GET", url.path or "/")
            connection.getresponse().read(0)
            return True
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()
    try:
        with socket.create_connection((url.hostname, url.port), timeout=PORT_PROBE_TIMEOUT):
            return True
    except OSError:
        return False


class LocalPlatform:
    """A `Platform` running each session in processes of this machine."""

    def __init__(self, settings: PlatformSettings, data_dir: str | Path) -> None:
        self.name = settings.name
        local = settings.local
        self.root = Path(local.workdir or Path(data_dir) / "platforms" / settings.name).resolve()
        self._settings = local
        self._poll = local.poll
        self.tools = dataclasses.replace(
            local_tools(local, f"broker.platforms[{settings.name}].local"),
            mirrors=tuple(settings.data.mirrors.items()),
            max_data_bytes=int(settings.data.max_size * 2**30),
        )
        self._data = settings.data
        self._uploads = ResultsUploader(self.name, settings.data, local.poll, local.grace)
        self._connector_host = jupyter.connector_host(local.listen, local.connector_host)
        self._setting = f"broker.platforms[{settings.name}].local"
        self._gpus = gpu_passing(settings, self._setting)
        self._ledger = GpuLedger(self.root, self._gpus.ids) if self._gpus else None

    # ----------------------------------------------------------------- the port
    def accepts(self, executable: AnyExecutable, gpus: int = 0) -> Sequence[str]:
        """Why this machine cannot run `executable`, or give it `gpus` GPUs; empty when it can.

        No notebook runner, no container engine; GPUs for a container without CDI or device
        files for them.
        """
        reasons = refusals(executable, self.tools)
        if gpus and self._gpus is not None and self._engine_runs_executable(executable):
            reasons += self._gpus.container_refusals()
        return reasons

    def prepare(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Write the session's scripts and start its preparation; observed from now on."""
        layout, state = self._layout(plan)
        if not (state / "prepare.pid").exists():
            root = Path(layout.root)
            for folder in (root, Path(layout.logs), state):
                folder.mkdir(parents=True, exist_ok=True)
            (root / "prepare.sh").write_text(prepare_script(plan, self.tools, layout))
            (root / "run.sh").write_text(run_script(plan, self.tools, layout))
            shutil.copyfile(FETCH_HELPER, root / FETCHER)
            shutil.copyfile(S3_HELPER, root / S3_CLIENT)
            if jupyter.is_interactive(plan.executable):
                jupyter.write_token(state)
            self._launch(plan, layout, "prepare", memory=None)
        note = f"working directory {layout.root}: output in output/, logs in logs/"
        return [self._poll_report(now, note)]

    def start(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Start the work (once); the polls already under way will see how it goes."""
        layout, state = self._layout(plan)
        if not (state / "run.pid").exists() and not self._launch_work(plan, layout, now):
            _mark(state / WANTED, now)  # its GPUs are still held: the polls start it
        return []

    def observe(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """How the session's processes are doing: running, finished, failed, or gone."""
        layout, state = self._layout(plan)
        released = _read(state / "released")
        if released is not None:
            return self._observe_release(plan, state, float(released), now)
        for step, done in (("run", WorkFinished()), ("prepare", ResourcesReady())):
            if not (state / f"{step}.pid").exists():
                continue
            code = _read(state / f"{step}.exit")
            if code is None:
                return self._still_running(plan, layout, state, step, now)
            if step == "prepare" and code == "0" and self._work_due(plan, state):
                # A server is the work: it starts now, so that it answers when the session
                # becomes AVAILABLE (its first answer is the report that makes it so). Other
                # work gets here when it waited for its GPUs at the start.
                return self._start_or_wait(plan, layout, state, now)
            if code == "0" or (step == "run" and (state / "run.deadline").exists()):
                # A program stopped at the offered end while voexec was away ran its course.
                return [PlatformReport(now, done), self._poll_report(now)]
            return [PlatformReport(now, Failed(reason=self._failure(layout, state, step, code)))]
        raise PlatformError("nothing was started for this session on this machine")

    def release(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Stop what still runs (SIGTERM, SIGKILL after the grace period); observed until gone.

        With results destinations, the upload starts once nothing of the work is left.
        """
        _, state = self._layout(plan)
        if self._uploads.started(state):
            return [self._poll_report(now)]  # asked again while uploading: let it finish
        self._uploads.want(plan, state)
        self._terminate(plan)
        return [self._poll_report(now)]

    def stop(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """A cancel: stop everything of the session now."""
        self._terminate(plan)
        return []

    # ----------------------------------------------------------------- internals
    def _layout(self, plan: SessionPlan) -> tuple[Layout, Path]:
        return Layout.of_session(self.root, plan)

    def _poll_report(self, now: datetime, note: str | None = None) -> PlatformReport:
        return PlatformReport(now + self._poll, PlatformCheckDue(), note)

    def _still_running(
        self, plan: SessionPlan, layout: Layout, state: Path, step: str, now: datetime
    ) -> list[PlatformReport]:
        """A step without an exit code: still running (its ways in, once), late, or gone."""
        if not self._runner_alive(plan, state, step):
            return [PlatformReport(now, Failed(reason=self._vanished(layout, step)))]
        if step != "run":
            return [self._poll_report(now)]
        ways_in = self._connectors(plan, state, now)
        late = self._late_server(plan, layout, state, now)
        return [late] if late is not None else [*ways_in, self._poll_report(now)]

    def _interactive(self, plan: SessionPlan) -> bool:
        """True when the work is a server to connect to, started once the preparation is done.

        A Jupyter server, or a container publishing ports asking for access.
        """
        executable = plan.executable
        if jupyter.is_interactive(executable):
            return True
        return isinstance(executable, DockerContainer) and bool(access_ports(executable))

    def _work_due(self, plan: SessionPlan, state: Path) -> bool:
        """True when the work should run now that the preparation is done (and does not)."""
        return self._interactive(plan) or (state / WANTED).exists()

    def _launch_work(self, plan: SessionPlan, layout: Layout, now: datetime) -> bool:
        """Start the work step, noting when (an interactive server's start-up is timed).

        A session booked with GPUs first takes free ones (`gpus`), its work script then names
        them; False, with nothing started, while too few are free.
        """
        state = Path(layout.state)
        if plan.gpus and self._ledger is not None and self._gpus is not None:
            with self._ledger.held() as holders:
                ids = self._ledger.take(holders, plan.session_id, plan.gpus, self._holds_gpus)
                if ids is None:
                    return False
                (state / GPU_STATE).write_text("\n".join(ids) + "\n", encoding="utf-8")
                devices = self._gpus.engine_options(ids) if self._engine_runs(plan) else []
                script = run_script(plan, self.tools, layout, ids, devices)
                (Path(layout.root) / "run.sh").write_text(script)
                self._launch(plan, layout, "run", memory=self._memory(plan))
        else:
            self._launch(plan, layout, "run", memory=self._memory(plan))
        _mark(state / STARTED, now)
        return True

    def _holds_gpus(self, session: str) -> bool:
        """True while the session's work runs (its GPUs are not free)."""
        pid = _read(self.root / session / "state" / "run.pid")
        return bool(pid and pid.isdigit() and processes.is_running(int(pid), session))

    def _start_or_wait(
        self, plan: SessionPlan, layout: Layout, state: Path, now: datetime
    ) -> list[PlatformReport]:
        """Start the work, or wait for its GPUs (at most `startup_timeout` past the start)."""
        if self._launch_work(plan, layout, now):
            return [self._poll_report(now)]
        _mark(state / WANTED, now)
        # An interactive session is ready before its offered start; the session booked before
        # it may hold its GPUs until then: only the wait past the start counts.
        since = max(float(_read(state / WANTED) or now.timestamp()), plan.start.timestamp())
        waited = now.timestamp() - since
        timeout = self._settings.startup_timeout.total_seconds()
        if waited <= timeout:
            return [self._poll_report(now)]
        assert self._ledger is not None  # only GPUs make the work wait
        with self._ledger.held() as holders:
            holding = self._ledger.holders_of(holders, self._holds_gpus)
        return [
            PlatformReport(
                now,
                Failed(
                    reason=f"{plan.gpus} GPU(s) of this platform were not free within "
                    f"{timeout:g} s ({self._setting}.startup_timeout); held by session(s) "
                    + (", ".join(holding) or "none that still runs")
                ),
            )
        ]

    def _late_server(
        self, plan: SessionPlan, layout: Layout, state: Path, now: datetime
    ) -> PlatformReport | None:
        """A failure when an interactive server has not answered within `startup_timeout`.

        The server is stopped at once; the reason names the setting and its last log lines.
        """
        if not self._interactive(plan) or (state / CONNECTORS).exists():
            return None
        started = _read(state / STARTED)
        if started is None:
            return None
        waited = now.timestamp() - float(started)
        timeout = self._settings.startup_timeout.total_seconds()
        if waited <= timeout:
            return None
        self._terminate(plan)
        what = (
            "the Jupyter server"
            if jupyter.is_interactive(plan.executable)
            else "the container's ports asking for access"
        )
        logs = [layout.log("run", "err"), layout.log("run", "out")]
        tail = next((t for t in (log_tail(Path(log)) for log in logs) if t), "")
        said = f"its last log lines: {tail}" if tail else "it logged nothing"
        return PlatformReport(
            now,
            Failed(
                reason=f"{what} did not answer within {timeout:g} s "
                f"({self._setting}.startup_timeout); {said} (log: {logs[0]})"
            ),
        )

    def _memory(self, plan: SessionPlan) -> int | None:
        """The address-space cap of the session's work, bytes; None for none."""
        return int(plan.memory * 2**30) if self._limits_memory(plan) else None

    def _connectors(self, plan: SessionPlan, state: Path, now: datetime) -> list[PlatformReport]:
        """The session's ways in, reported once: when its server answers, its ports are out.

        An interactive session's report also says that it is ready (it becomes AVAILABLE);
        a container's comes when it already runs, where that is a no-op.
        """
        if (state / CONNECTORS).exists():
            return []
        found: tuple[SimpleSessionConnector, ...] | None = None
        note = None
        if jupyter.is_interactive(plan.executable):
            port, token = jupyter.read_port(state), jupyter.read_token(state)
            if port is None or token is None:
                return []
            if not jupyter.answers(jupyter.probe_host(self.tools.listen), port, token):
                return []
            found = (jupyter.connector(self._connector_host, port, token),)
            note = f"a Jupyter server answers on port {port}; the connector carries its token"
        elif isinstance(plan.executable, DockerContainer) and access_ports(plan.executable):
            found = self._published(plan, plan.executable)
            if found and not all(_port_answers(c.location or "") for c in found):
                return []  # published, but the server inside does not answer yet
            if found:
                note = "published: " + ", ".join(c.location or "" for c in found)
        if not found:
            return []
        (state / CONNECTORS).write_text(
            json.dumps([c.location for c in found]) + "\n", encoding="utf-8"
        )
        return [PlatformReport(now, ResourcesReady(), note, connectors=found)]

    def _published(
        self, plan: SessionPlan, container: DockerContainer
    ) -> tuple[SimpleSessionConnector, ...] | None:
        """The container's ports asking for access as the engine published them, if it runs."""
        engine = self._engine_of()
        try:
            listing = subprocess.run(  # noqa: S603 - the configured engine, our container's name
                [engine.command, "port", container_name(plan.session_id)],
                env={**os.environ, **dict(engine.environment)},
                capture_output=True,
                text=True,
                timeout=PORT_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None  # asked again at the next poll
        return published_connectors(container, listing.stdout) if listing.returncode == 0 else None

    def _limits_memory(self, plan: SessionPlan) -> bool:
        # Container engines reserve more address space than they use: never cap them.
        runs_here = isinstance(plan.executable, PythonProgram | JupyterNotebook)
        return self._settings.limit_memory and runs_here

    def _engine_runs(self, plan: SessionPlan) -> bool:
        return self._engine_runs_executable(plan.executable)

    def _engine_runs_executable(self, executable: AnyExecutable) -> bool:
        return isinstance(executable, DockerContainer) and self.tools.engine is not None

    def _engine_of(self) -> ContainerEngine:
        if self.tools.engine is None:
            raise PlatformError(f"cannot run containers: {self.tools.no_engine}")
        return self.tools.engine

    def _container_options(self, plan: SessionPlan, step: str) -> list[str]:
        """The runner stops the work's container by name: it runs outside the runner's group."""
        if step != "run" or not self._engine_runs(plan):
            return []
        engine = self._engine_of().command
        margin = str(CONTAINER_MARGIN.total_seconds())
        name = container_name(plan.session_id)
        return ["--container", name, "--engine", engine, "--container-margin", margin]

    def _remove_container(self, plan: SessionPlan) -> None:
        """Stop and remove the session's container when nothing else will (no runner left)."""
        if not self._engine_runs(plan):
            return
        engine = self._engine_of()
        try:
            subprocess.run(  # noqa: S603 - the configured engine, our container's name
                [engine.command, "rm", "--force", container_name(plan.session_id)],
                env={**os.environ, **dict(engine.environment)},
                capture_output=True,
                timeout=ENGINE_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PlatformError(f"cannot remove the session's container: {error}") from error

    def _launch(
        self,
        plan: SessionPlan,
        layout: Layout,
        step: str,
        *,
        memory: int | None,
        deadline: datetime | None = None,
    ) -> None:
        """Start `<step>.sh` under the runner; returns once its pid is recorded.

        The runner stops it at `deadline`, by default a little after the offered end.
        """
        secrets: dict[str, str] = {}
        if step == "prepare":
            # Only the step that stages data gets the platform's S3 keys (the upload of the
            # results gets its own, see `uploads`); it drops them once the data is staged.
            secrets |= s3_environment(self._data)
        if self._engine_runs(plan):
            secrets |= dict(self._engine_of().environment)
        launch_step(
            plan,
            layout,
            step,
            deadline=deadline or plan.end + DEADLINE_MARGIN,
            grace=self._settings.grace,
            secrets=secrets,
            what=f"the {step} step",
            options=[
                *(["--memory", str(memory)] if memory else []),
                *self._container_options(plan, step),
            ],
        )

    def _runner(self, state: Path, step: str) -> int | None:
        pid = _read(state / f"{step}.pid")
        return int(pid) if pid and pid.isdigit() else None

    def _runner_alive(self, plan: SessionPlan, state: Path, step: str) -> bool:
        pid = self._runner(state, step)
        return pid is not None and processes.is_running(pid, plan.session_id)

    def _terminate(self, plan: SessionPlan) -> None:
        """Mark the session released and stop its processes; the runners escalate to SIGKILL."""
        _, state = self._layout(plan)
        if not state.exists():
            return  # nothing was ever started
        released = state / "released"
        if not released.exists():
            released.write_text(f"{time.time()}\n")
        runners = {
            step: pid
            for step in ("prepare", "run")
            if (pid := self._runner(state, step)) and processes.is_running(pid, plan.session_id)
        }
        if "run" in runners and self._engine_runs(plan):
            # The runner stops the container by name; signalling the engine's client or the
            # container's processes ourselves would only race with it.
            processes.signal_processes([runners["run"]], signal.SIGTERM)
            return
        others = processes.session_processes(plan.session_id)
        if not runners:
            self._remove_container(plan)
        if runners:
            for runner in runners.values():  # each stops its group, kills it after the grace
                processes.signal_processes([], signal.SIGTERM, group=runner)
            processes.signal_processes(
                [pid for pid in others if pid not in runners.values()], signal.SIGTERM
            )
        else:
            processes.signal_processes(others, signal.SIGKILL)

    def _observe_release(
        self, plan: SessionPlan, state: Path, since: float, now: datetime
    ) -> list[PlatformReport]:
        layout, _ = self._layout(plan)
        if self._uploads.started(state):
            return self._uploads.observe(plan, layout, now)
        left = processes.session_processes(plan.session_id)
        if not left and self._ledger is not None and plan.gpus:
            self._ledger.give_back(plan.session_id)
        if not left and self._uploads.wanted(plan, state):
            return self._uploads.start(plan, layout, now)
        if not left:
            return [PlatformReport(now, ReleaseDone())]
        allowed = 2 * self._settings.grace
        if self._engine_runs(plan):
            allowed += CONTAINER_MARGIN
        if time.time() - since > allowed.total_seconds():  # the runner did not finish the job
            self._remove_container(plan)
            processes.signal_processes(left, signal.SIGKILL)
        return [self._poll_report(now)]

    def _vanished(self, layout: Layout, step: str) -> str:
        what = _STEP_NAMES.get(step, "program")
        return (
            f"the {what} ended without an exit code (killed from outside?); "
            f"logs: {layout.log(step, 'err')}"
        )

    def _failure(self, layout: Layout, state: Path, step: str, code: str) -> str:
        what = _STEP_NAMES.get(step, "program")
        number = int(code) if code.lstrip("-").isdigit() else None
        said = (
            f"was killed by signal {-number}"
            if number is not None and number < 0
            else f"exited with code {code}"
        )
        error_log = layout.log(step, "err")
        if (state / f"{step}.deadline").exists():
            said = "did not finish before the offered end"
        tail = _read(state / f"{step}.error") or log_tail(Path(error_log))
        return f"the {what} {said}" + (f": {tail}" if tail else "") + f" (log: {error_log})"
