"""What a real platform runs for a session: the checks at offer time and the shell scripts.

Shared by the `local` and `slurm` adapters, which run the same two steps in a per-session
working directory: `prepare.sh` fetches the program (or notebook, or image) and the data and
makes the environment; `run.sh` runs the work there. Slurm runs both in one batch job
(`job_script`). Also owns the directory's layout (`Layout`) and `refusals`, the reasons a
platform with given `Tools` cannot run an executable.

How each kind runs:

- python-program: a fresh virtual environment made from `Tools.python` (with pip only when
  there are requirements to install), then `entry_point`: `module:function` is called,
  `module` runs as `python -m module`, `path/to/script.py` runs as a script; without one, a
  single-file program runs itself and a folder runs its `__main__.py`.
- jupyter-notebook: `jupyter nbconvert --to notebook --execute`, the executed notebook kept as
  `output/executed.ipynb`.
- docker-container: with a Docker-compatible engine (`Tools.engine`, the local platform's
  podman): pinned to a digest, pulled by digest, run with limits (see `containers`); without
  one (Slurm), pulled and run by apptainer/singularity (`docker://` image) or podman.
- singularity-container: pulled (or downloaded) and run by apptainer/singularity.
- jupyter-notebook without a notebook: an interactive session; the work is a Jupyter server
  (`jupyter.server_lines`), which the local platform starts when the preparation is done.
- java-program: the jar fetched (and checked against its digest), run on `Tools.jvm` (`java`).

When the request names results destinations (voexec's results storage kinds), `upload.sh`
copies the output folder to each during the release (`upload_script`, `session_results.py`).

Data that needs the platform's credentials (`needs_credentials`: S3 objects, when the platform
has S3 keys) can be staged before the preparation by a step of its own, `stage.sh`
(`stage_script`), which a batch platform runs on the broker's host; the preparation then only
checks that it is there (`prepare_script`'s `staged`).

Every program runs in `output/` with `VOEXEC_SESSION`, `VOEXEC_DATA` (the staged data, one file
per data resource, named after it), `VOEXEC_OUTPUT`, `VOEXEC_CORES` (also `OMP_NUM_THREADS`)
and `VOEXEC_MEMORY_GIB` set (with GPUs, `VOEXEC_GPUS`, and `CUDA_VISIBLE_DEVICES` outside a
container, which gets its GPUs as devices instead); containers see the data at `/voexec/data`
(read-only) and the output at `/voexec/output`.

Pure: builds text, reads nothing; imports the broker's model and ports only.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final, Literal

from broker.model import (
    AnyExecutable,
    DockerContainer,
    JavaProgram,
    JupyterNotebook,
    PythonProgram,
    SingularityContainer,
    python_version_allows,
)
from broker.platforms import java, jupyter
from broker.platforms.containers import (
    CONTAINER_DATA,
    CONTAINER_OUTPUT,
    ContainerEngine,
    engine_refusals,
    prepare_lines,
    run_lines,
)
from broker.platforms.data_plan import S3_SCHEMES, from_mirror
from broker.platforms.port import DataSource, PlatformError, SessionPlan

__all__ = [
    "FETCHER",
    "S3_CLIENT",
    "S3_VARIABLES",
    "STAGED_ITEM",
    "UPLOADER",
    "Layout",
    "Tools",
    "data_source",
    "job_script",
    "needs_credentials",
    "prepare_script",
    "refusals",
    "run_script",
    "stage_script",
    "upload_script",
]

NO_JVM: Final = java.Jvm(None)
"""A platform without a JVM (Slurm's, for now)."""
FETCHER: Final = "session_fetch.py"
"""The fetch helper's file name, in the session's directory."""
UPLOADER: Final = "session_results.py"
"""The results upload helper's file name, in the session's directory."""
S3_CLIENT: Final = "session_s3.py"
"""The S3 client the fetch helper imports, beside it in the session's directory."""
S3_VARIABLES: Final = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)
"""The platform's S3 credentials, handed to the steps that stage data or upload results."""
STAGED_ITEM: Final = "stage.item"
"""In `state/`: the name of the data item `stage.sh` is staging (the last one, once done)."""
_MODULE: Final = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_ENTRY_FUNCTION: Final = re.compile(rf"^{_MODULE}:[A-Za-z_]\w*$")
_ENTRY_MODULE: Final = re.compile(rf"^{_MODULE}$")
_ENTRY_SCRIPT: Final = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[\w./-]+\.py$")
_PULLABLE: Final = ("library://", "docker://", "oras://", "shub://")
_IMAGE: Final = "program/image.sif"
_SESSION_ID: Final = re.compile(r"^[A-Za-z0-9][\w-]*$")
"""A session id safe as a directory name (ours are UUIDs)."""


@dataclass(frozen=True, slots=True)
class Tools:
    """What a platform has to run sessions with."""

    python: str
    """Interpreter (command or path) that fetches and makes virtual environments."""
    python_version: str | None = None
    """Its version (`3.11.7`) when known; a program asking for another is refused."""
    jupyter: str | None = None
    """The `jupyter` command; None: notebooks are refused."""
    container_runtime: Literal["apptainer", "singularity", "podman"] | None = None
    """None: containers are refused."""
    sources: tuple[str, ...] = ()
    """URL prefixes programs, notebooks and images must start with; empty allows any."""
    no_containers: str = "no container runtime (apptainer, singularity or podman) is configured"
    """Why containers are refused, when `container_runtime` is None."""
    engine: ContainerEngine | None = None
    """The Docker-compatible engine docker-container images run with; when it is given, or
    `no_engine` is, `container_runtime` runs Singularity images only."""
    no_engine: str | None = None
    """Why docker-container images are refused: the platform runs them with an engine only,
    and has none."""
    jupyter_server: str | None = None
    """The `jupyter-server` command of interactive sessions; None: they are refused."""
    mirrors: tuple[tuple[str, str], ...] = ()
    """URL prefix -> local folder of replicas (`data.mirrors`): data found there is copied
    from the replica instead of moving over the network."""
    max_data_bytes: int = 0
    """Largest data item staged (`data.max_size`), in bytes; 0: no limit."""
    no_jupyter_server: str = "this platform starts no Jupyter servers"
    """Why interactive sessions are refused, when `jupyter_server` is None."""
    listen: str = "127.0.0.1"
    """The address interactive sessions' servers listen on."""
    jvm: java.Jvm = NO_JVM
    """The JVM java-program executables run on (or why there is none)."""

    @property
    def runs_docker_with_engine(self) -> bool:
        """True when docker-container images are the engine's business."""
        return self.engine is not None or self.no_engine is not None


@dataclass(frozen=True, slots=True)
class Layout:
    """The files of one session's working directory."""

    root: PurePosixPath

    @classmethod
    def of_session(cls, workdir: Path, plan: SessionPlan) -> tuple[Layout, Path]:
        """The layout of `plan`'s directory under `workdir`, and its state folder there.

        Raises:
            PlatformError: the session id could not be a directory name of its own.
        """
        if not _SESSION_ID.match(plan.session_id):
            raise PlatformError(f"not a session id: {plan.session_id!r}")
        root = workdir / plan.session_id
        return cls(PurePosixPath(root.as_posix())), root / "state"

    @property
    def program(self) -> PurePosixPath:
        """The fetched program, notebook or image."""
        return self.root / "program"

    @property
    def data(self) -> PurePosixPath:
        """The staged data, one file per data resource."""
        return self.root / "data"

    @property
    def output(self) -> PurePosixPath:
        """The program's working directory: what it writes is kept here."""
        return self.root / "output"

    @property
    def venv(self) -> PurePosixPath:
        """The session's own Python environment."""
        return self.root / "venv"

    @property
    def logs(self) -> PurePosixPath:
        """`prepare.out`, `prepare.err`, `run.out`, `run.err` (and Slurm's own log)."""
        return self.root / "logs"

    @property
    def state(self) -> PurePosixPath:
        """Pid, exit-code and marker files: all the platform knows about the session."""
        return self.root / "state"

    def log(self, step: str, stream: Literal["out", "err"]) -> PurePosixPath:
        """A step's output (`out`) or error (`err`) log."""
        return self.logs / f"{step}.{stream}"

    def script(self, step: str) -> PurePosixPath:
        """A step's shell script."""
        return self.root / f"{step}.sh"


# ------------------------------------------------------------------------- offer-time checks
def _source_of(executable: AnyExecutable) -> str | None:
    match executable:
        case PythonProgram(location=location):
            return location
        case JupyterNotebook(location=location) | SingularityContainer(location=location):
            return location or None  # a blank notebook comes from nowhere
        case JavaProgram(location=location):
            return location
        case DockerContainer(image=image) if image is not None and image.locations:
            return image.locations[0]
        case _:
            return None


def _governed_by_sources(executable: AnyExecutable, tools: Tools) -> bool:
    # With an engine, images come from the registries of its allow-list instead.
    return not (isinstance(executable, DockerContainer) and tools.runs_docker_with_engine)


def _python_refusals(program: PythonProgram, tools: Tools) -> list[str]:
    reasons = []
    wanted, have = program.python_version, tools.python_version
    if wanted and have and not python_version_allows(wanted, have):
        reasons.append(f"runs Python {have}, not Python {wanted} as the program asks")
    if program.location is None:
        reasons.append("needs the program's location to fetch it from")
    entry = program.entry_point
    if entry and not any(rule.match(entry) for rule in _ENTRY_PATTERNS):
        reasons.append(
            f"cannot run entry_point {entry!r}: give module:function, a module name, "
            "or a relative path to a .py file"
        )
    return reasons


_ENTRY_PATTERNS: Final = (_ENTRY_FUNCTION, _ENTRY_MODULE, _ENTRY_SCRIPT)


def refusals(executable: AnyExecutable, tools: Tools) -> list[str]:
    """Why a platform with `tools` cannot run `executable`; empty when it can."""
    reasons: list[str] = []
    source = _source_of(executable)
    if (
        tools.sources
        and source is not None
        and _governed_by_sources(executable, tools)
        and not source.startswith(tools.sources)
    ):
        reasons.append(f"does not run code from {source}; allowed: {', '.join(tools.sources)}")
    match executable:
        case PythonProgram():
            reasons += _python_refusals(executable, tools)
        case JupyterNotebook() if jupyter.is_interactive(executable):
            if tools.jupyter_server is None:
                reasons.append(f"runs no interactive Jupyter sessions: {tools.no_jupyter_server}")
        case JupyterNotebook() if tools.jupyter is None:
            reasons.append("runs no Jupyter notebooks: `jupyter nbconvert` was not found")
        case JavaProgram():
            reasons += java.refusals(executable, tools.jvm)
        case DockerContainer() if tools.runs_docker_with_engine:
            reasons += engine_refusals(executable, tools.engine, tools.no_engine or "")
        case SingularityContainer() if tools.runs_docker_with_engine and (
            tools.container_runtime is None
        ):
            reasons.append(f"runs no Singularity images: {tools.no_containers}")
        case DockerContainer() | SingularityContainer() if tools.container_runtime is None:
            reasons.append(f"runs no containers: {tools.no_containers}")
        case SingularityContainer() if tools.container_runtime == "podman":
            reasons.append("runs Singularity images with apptainer or singularity only")
        case DockerContainer(image=image) if image is None or not image.locations:
            reasons.append("needs an image location to run a container")
    return reasons


# ------------------------------------------------------------------------- the scripts
def _q(value: object) -> str:
    return shlex.quote(str(value))


def _data_file(name: str) -> str:
    safe = re.sub(r"[^\w.-]", "_", name).lstrip(".")
    return safe or "data"


def _image_reference(container: DockerContainer) -> str:
    image = container.image
    if image is None or not image.locations:
        raise PlatformError("the container has no image location")
    location = image.locations[0]
    return f"{location.split('@')[0]}@{image.digest}" if image.digest else location


def _prepare_python(program: PythonProgram, tools: Tools) -> list[str]:
    if program.location is None:
        raise PlatformError("the Python program has no location to fetch it from")
    python, fetch = _q(tools.python), f"{_q(tools.python)} {FETCHER}"
    lines = [f"{fetch} program {_q(program.location)} program"]
    requirements = program.requirements
    if not requirements:
        return [*lines, f"{python} -m venv --without-pip venv"]
    pip = "venv/bin/python -m pip install --disable-pip-version-check --no-input --quiet"
    lines.append(f"{python} -m venv venv")
    if isinstance(requirements, str):  # the URL of a requirements file
        return [
            *lines,
            f"{fetch} file {_q(requirements)} requirements.txt",
            f"{pip} -r requirements.txt",
        ]
    return [*lines, f"{pip} {' '.join(_q(r) for r in requirements)}"]


def _prepare_executable(plan: SessionPlan, tools: Tools) -> list[str]:
    fetch = f"{_q(tools.python)} {FETCHER}"
    pull = f"{_q(tools.container_runtime)} pull --force {_IMAGE}"
    match plan.executable:
        case PythonProgram() as program:
            lines = _prepare_python(program, tools)
        case JupyterNotebook() if jupyter.is_interactive(plan.executable):
            lines = []  # nothing to fetch: the server starts when the preparation is done
        case JupyterNotebook(location=location) if location:
            lines = [f"{fetch} file {_q(location)} program/notebook.ipynb"]
        case JavaProgram() as program:
            lines = java.prepare_lines(program, tools.python, FETCHER)
        case SingularityContainer(location=location) if location:
            pulled = location.startswith(_PULLABLE)
            lines = [
                f"{pull} {_q(location)}" if pulled else f"{fetch} file {_q(location)} {_IMAGE}"
            ]
        case DockerContainer() as container if tools.engine is not None:
            lines = prepare_lines(container, tools.engine, tools.python, FETCHER)
        case DockerContainer() if tools.runs_docker_with_engine:
            raise PlatformError(f"cannot run docker-container images: {tools.no_engine}")
        case DockerContainer() as container if tools.container_runtime == "podman":
            lines = [f"podman pull --quiet {_q(_image_reference(container))}"]
        case DockerContainer() as container:
            lines = [f"{pull} {_q('docker://' + _image_reference(container))}"]
        case _:
            raise PlatformError(f"cannot prepare {type(plan.executable).__name__}: no location")
    return lines


def data_source(item: DataSource, tools: Tools) -> str:
    """Where the preparation reads a data item from: a local replica, else its location.

    Raises:
        PlatformError: the item has no URL to fetch it from.
    """
    if not item.location:
        raise PlatformError(
            f"data {item.name!r} ({item.kind.rsplit('/', 1)[-1]}) has no URL to fetch it from"
        )
    return from_mirror(item.location, dict(tools.mirrors)) or item.location


def needs_credentials(source: str, *, s3_keys: bool) -> bool:
    """Whether staging `source` needs the platform's credentials (an S3 object it signs for).

    Without S3 keys the platform reads S3 unsigned, as anyone may; http(s) and file sources
    are read without credentials.
    """
    return s3_keys and source.startswith(tuple(f"{scheme}://" for scheme in S3_SCHEMES))


def _stage_line(item: DataSource, tools: Tools) -> str:
    source, target = data_source(item, tools), f"data/{_data_file(item.name)}"
    return f"{_q(tools.python)} {FETCHER} data {_q(source)} {_q(target)} {tools.max_data_bytes}"


def prepare_script(
    plan: SessionPlan, tools: Tools, layout: Layout, staged: Collection[str] = ()
) -> str:
    """The preparation step: fetch the executable and the data, make the environment.

    `staged` names the data items already staged into `data/` (by `stage_script`, on the
    platform's host): the step only checks each is there.

    Raises:
        PlatformError: a data resource has no URL to fetch, or the executable no location.
    """
    lines = [
        "#!/bin/sh",
        f"# Preparation of session {plan.session_id}: fetch, stage, make the environment.",
        "set -eu",
        f"cd {_q(layout.root)}",
        "mkdir -p program data output",
    ]
    # The data first: only this part needs the platform's S3 credentials, which are dropped
    # before anything the request names (pip's builds, an image pull) runs.
    for item in plan.data:
        if item.name not in staged:
            lines.append(_stage_line(item, tools))
            continue
        target = _q(f"data/{_data_file(item.name)}")
        missing = _q(f"data {item.name!r} was not staged on the broker's host")
        lines.append(f"[ -e {target} ] || {{ echo {missing} >&2; exit 1; }}")
    lines.append(f"unset {' '.join(S3_VARIABLES)}")
    lines += _prepare_executable(plan, tools)
    return "\n".join(lines) + "\n"


def stage_script(plan: SessionPlan, tools: Tools, layout: Layout, names: Collection[str]) -> str:
    """The data items `names`, staged into `data/` before the preparation, one after the other.

    Run on the platform's host with its credentials (nothing of the request runs in it); each
    item's name goes to `state/stage.item` before it is staged, so a failure can name it.

    Raises:
        PlatformError: an item has no URL to fetch it from.
    """
    lines = [
        "#!/bin/sh",
        f"# The data of session {plan.session_id} that needs the platform's credentials.",
        "set -eu",
        f"cd {_q(layout.root)}",
        "mkdir -p data state",
    ]
    for item in plan.data:
        if item.name in names:
            lines.append(f"printf '%s\\n' {_q(item.name)} > state/{STAGED_ITEM}")
            lines.append(_stage_line(item, tools))
    return "\n".join(lines) + "\n"


def _python_command(program: PythonProgram, layout: Layout) -> list[str]:
    python = _q(layout.venv / "bin" / "python")
    entry = program.entry_point
    if entry and _ENTRY_FUNCTION.match(entry):
        call = (
            "import importlib, sys; module, _, name = sys.argv.pop(1).partition(':'); "
            "sys.exit(getattr(importlib.import_module(module), name)())"
        )
        return [f"exec {python} -c {_q(call)} {_q(entry)}"]
    if entry and _ENTRY_MODULE.match(entry):
        return [f"exec {python} -m {_q(entry)}"]
    if entry:
        return [f"exec {python} {_q(layout.program / entry)}"]
    program_dir = _q(layout.program)
    return [
        f"set -- {program_dir}/*",
        f'if [ "$#" -eq 1 ] && [ -f "$1" ]; then exec {python} "$1"; fi',
        f"if [ -f {program_dir}/__main__.py ]; then exec {python} {program_dir}; fi",
        "echo 'no entry_point given, and the program is neither one file nor a folder with"
        " __main__.py' >&2",
        "exit 2",
    ]


def _container_command(plan: SessionPlan, tools: Tools, layout: Layout) -> list[str]:
    runtime = _q(tools.container_runtime)
    if isinstance(plan.executable, DockerContainer) and tools.container_runtime == "podman":
        container = plan.executable
        parts = [
            "exec podman run --rm",
            f"--name {_q('voexec-' + plan.session_id)}",
            f"--cpus {plan.cores} --memory {_q(f'{int(plan.memory * 1024)}m')}",
            f"-v {_q(f'{layout.data}:{CONTAINER_DATA}:ro')}",
            f"-v {_q(f'{layout.output}:{CONTAINER_OUTPUT}')} -w {CONTAINER_OUTPUT}",
            *(f"-e {_q(f'{k}={v}')}" for k, v in container.environment.items()),
            *([f"--entrypoint {_q(container.entrypoint)}"] if container.entrypoint else []),
            _q(_image_reference(container)),
            *(_q(argument) for argument in container.command),
        ]
        return [" ".join(parts)]
    environment: dict[str, str] = {}
    arguments: list[str] = []
    entrypoint: str | None = None
    if isinstance(plan.executable, DockerContainer):
        environment = dict(plan.executable.environment)
        arguments = list(plan.executable.command)
        entrypoint = plan.executable.entrypoint
    parts = [
        f"exec {runtime} {'exec' if entrypoint else 'run'} --cleanenv",
        *(["--nv"] if plan.gpus else []),
        f"--bind {_q(f'{layout.data}:{CONTAINER_DATA}:ro')}",
        f"--bind {_q(f'{layout.output}:{CONTAINER_OUTPUT}')} --pwd {CONTAINER_OUTPUT}",
        *(f"--env {_q(f'{k}={v}')}" for k, v in environment.items()),
        _q(layout.root / _IMAGE),
        *([_q(entrypoint)] if entrypoint else []),
        *(_q(argument) for argument in arguments),
    ]
    return [" ".join(parts)]


def run_script(
    plan: SessionPlan,
    tools: Tools,
    layout: Layout,
    gpus: Sequence[str] = (),
    devices: Sequence[str] = (),
) -> str:
    """The work step: run the executable in `output/` with the session's environment.

    `gpus` are the ids of the GPUs the session got (`VOEXEC_GPUS`; `CUDA_VISIBLE_DEVICES` for a
    program running as a process); `devices` the engine's `--device` values giving them to a
    container.
    """
    exports = {
        "VOEXEC_SESSION": plan.session_id,
        "VOEXEC_DATA": str(layout.data),
        "VOEXEC_OUTPUT": str(layout.output),
        "VOEXEC_CORES": str(plan.cores),
        "OMP_NUM_THREADS": str(plan.cores),
        "VOEXEC_MEMORY_GIB": f"{plan.memory:g}",
    }
    in_engine = isinstance(plan.executable, DockerContainer) and tools.engine is not None
    if gpus:
        exports["VOEXEC_GPUS"] = ",".join(gpus)
        if not in_engine:  # a container sees its own devices only, numbered from 0
            exports["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    lines = [
        "#!/bin/sh",
        f"# The work of session {plan.session_id}.",
        "set -u",
        f"cd {_q(layout.output)}",
        *(f"export {name}={_q(value)}" for name, value in exports.items()),
    ]
    match plan.executable:
        case PythonProgram() as program:
            lines.append(f"export PYTHONPATH={_q(layout.program)}")
            lines += _python_command(program, layout)
        case JupyterNotebook() if jupyter.is_interactive(plan.executable):
            if tools.jupyter_server is None:
                raise PlatformError(f"cannot start a Jupyter server: {tools.no_jupyter_server}")
            lines += jupyter.server_lines(tools.jupyter_server, tools.listen, layout)
        case JupyterNotebook():
            lines.append(
                f"exec {_q(tools.jupyter)} nbconvert --to notebook --execute "
                f"{_q(layout.program / 'notebook.ipynb')} --output-dir {_q(layout.output)} "
                "--output executed"
            )
        case JavaProgram() as program:
            lines += java.run_lines(plan, program, tools.jvm, layout)
        case DockerContainer() if tools.engine is not None:
            lines += run_lines(plan, tools.engine, layout, list(exports.items()), devices)
        case DockerContainer() | SingularityContainer():
            lines += _container_command(plan, tools, layout)
    return "\n".join(lines) + "\n"


def upload_script(
    plan: SessionPlan,
    tools: Tools,
    layout: Layout,
    authorization: Mapping[str, str] | None = None,
) -> str:
    """The release's upload step: copy the output folder to each results destination.

    Run with the platform's S3 keys and http credentials (and nothing of the request runs in
    it); `authorization` names, per http(s) destination, the variable holding its
    `Authorization` header. Each object written is a `result {json}` line of its output, and
    the first that fails stops it.
    """
    variables = authorization or {}
    lines = [
        "#!/bin/sh",
        f"# The results of session {plan.session_id}: the output folder, uploaded.",
        "set -eu",
        f"cd {_q(layout.root)}",
    ]
    for target in plan.results:
        options = ["--root", _q(target.root)] if target.root else []
        if target.destination in variables:
            options += ["--authorization-env", _q(variables[target.destination])]
        lines.append(
            " ".join([_q(tools.python), UPLOADER, "output", _q(target.destination), *options])
        )
    return "\n".join(lines) + "\n"


def job_script(layout: Layout, steps: Sequence[str] = ("prepare", "run")) -> str:
    """One shell script running the steps in turn, each step's exit code in `state/`.

    For a batch system: the job prepares and then works, and stops at the first step that
    fails, exiting with its code.
    """
    lines = ["#!/bin/sh", f"cd {_q(layout.root)} || exit 1"]
    for step in steps:
        exit_file = f"state/{step}.exit"
        lines += [
            f"sh {step}.sh > logs/{step}.out 2> logs/{step}.err",
            "code=$?",
            f'echo "$code" > {exit_file}.tmp && mv {exit_file}.tmp {exit_file}',
            '[ "$code" -eq 0 ] || exit "$code"',
        ]
    return "\n".join(lines) + "\n"
