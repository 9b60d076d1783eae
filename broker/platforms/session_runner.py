"""Runs one step of a session (its preparation or its work) detached from voexec.

A standalone script, run by path with the interpreter running voexec (`python -I
session_runner.py ...`); it imports the standard library only and nothing of ours. The `local`
adapter starts it and returns at once: the launcher forks, the child becomes the leader of a
new session and process group, records its pid in `<state>/<step>.pid`, tells the launcher it
is ready (the launcher then exits, so the runner is never voexec's child and voexec never has
to reap it), runs the command with its output in files, and writes the command's exit code to
`<state>/<step>.exit` (atomically) when it ends. Everything it knows is in those files, so a
restarted voexec still observes the step.

It also enforces the session's limits while voexec is away: at `--deadline` (a little after the
offered end) or on SIGTERM it sends SIGTERM to its whole process group, and `--grace` seconds
later SIGKILL, leaving `<state>/<step>.deadline` when the deadline did it; `--memory` caps the
command's address space (RLIMIT_AS).

With `--container NAME --engine ENGINE` the command runs a container, which the engine keeps
outside the runner's process group: stopping then means `ENGINE stop --time <grace> NAME`
(the container's stop signal, SIGKILL after the grace), and when the command has not ended
`--container-margin` seconds after that, `ENGINE rm --force NAME` and SIGKILL to the group.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

WAIT_STEP = 0.25
"""Seconds between checks of the deadline while the command runs."""


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="folder of pid and exit files")
    parser.add_argument("--step", required=True, help="name of the step: prepare or run")
    parser.add_argument("--cwd", type=Path, required=True, help="working directory of the command")
    parser.add_argument("--out", type=Path, required=True, help="file for the command's stdout")
    parser.add_argument("--err", type=Path, required=True, help="file for the command's stderr")
    parser.add_argument("--deadline", type=float, help="epoch seconds: stop the command then")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds from SIGTERM to KILL")
    parser.add_argument("--memory", type=int, help="address-space limit of the command, bytes")
    parser.add_argument("--container", help="name of the container the command runs")
    parser.add_argument("--engine", help="the engine running it (podman, docker)")
    parser.add_argument(
        "--container-margin", type=float, default=20.0, help="seconds the engine may add"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    options = parser.parse_args(argv)
    if options.command[:1] == ["--"]:
        options.command = options.command[1:]
    if not options.command:
        parser.error("no command given")
    if bool(options.container) != bool(options.engine):
        parser.error("--container and --engine go together")
    return options


class _Stopper:
    """Stops the whole process group: SIGTERM first, SIGKILL after the grace period.

    For a container, the engine stops it instead (its processes are not in the group), and
    removes it when the stop takes too long.
    """

    def __init__(self, options: argparse.Namespace) -> None:
        self.stop_time: float = options.grace
        self.grace: float = options.grace
        self.container: str | None = options.container
        self.engine: str | None = options.engine
        if self.container:
            self.grace += options.container_margin
        self.since: float | None = None
        self._stopping: subprocess.Popen[bytes] | None = None

    def _engine(self, *arguments: str, wait: bool) -> None:
        command = [str(self.engine), *arguments, str(self.container)]
        try:
            if wait:
                subprocess.run(command, capture_output=True, timeout=30, check=False)  # noqa: S603
            else:
                self._stopping = subprocess.Popen(  # noqa: S603 - the configured engine
                    command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
        except (OSError, subprocess.TimeoutExpired):
            pass  # the group's SIGKILL and the adapter's own removal come next

    def terminate(self, *_: object) -> None:
        if self.since is not None:
            return
        self.since = time.monotonic()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's SIGTERM reaches us too
        if self.container:
            # The command (the engine's client) returns once the container has stopped.
            self._engine("stop", "--time", str(max(1, round(self.stop_time))), wait=False)
        else:
            os.killpg(os.getpgrp(), signal.SIGTERM)

    def overdue(self) -> bool:
        return self.since is not None and time.monotonic() - self.since >= self.grace

    def kill_group(self) -> None:
        if self.container and self.since is not None:
            self._engine("rm", "--force", wait=True)
        os.killpg(os.getpgrp(), signal.SIGKILL)  # ourselves included: nothing is left


def _run(options: argparse.Namespace) -> int:
    stopper = _Stopper(options)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopper.terminate()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)

    def limits() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if options.memory:
            resource.setrlimit(resource.RLIMIT_AS, (options.memory, options.memory))

    with options.out.open("ab") as out, options.err.open("ab") as err:
        child = subprocess.Popen(  # noqa: S603 - the command is the session's, by design
            options.command,
            cwd=options.cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            preexec_fn=limits,  # noqa: PLW1509 - the runner has no threads
        )
    code: int | None = None
    while code is None:
        try:
            code = child.wait(timeout=WAIT_STEP)
        except subprocess.TimeoutExpired:
            if options.deadline is not None and time.time() >= options.deadline:
                if stopper.since is None:
                    (options.state / f"{options.step}.deadline").write_text("reached\n")
                stopper.terminate()
            if stopper.overdue():
                _write_atomically(options.state / f"{options.step}.exit", f"{-signal.SIGKILL}\n")
                stopper.kill_group()
    _write_atomically(options.state / f"{options.step}.exit", f"{code}\n")
    if stopper.since is not None:
        stopper.kill_group()  # what the command left behind goes too
    return 0


def main(argv: list[str]) -> int:
    """Start the step detached; returns when the runner has recorded its pid."""
    options = _arguments(argv)
    options.state.mkdir(parents=True, exist_ok=True)
    ready_read, ready_write = os.pipe()
    if os.fork():  # the launcher: wait until the runner is set up, then leave
        os.close(ready_write)
        with os.fdopen(ready_read, "rb") as ready:
            problem = ready.read().decode(errors="replace")
        if problem:
            sys.stderr.write(problem)
            return 1
        return 0
    os.close(ready_read)
    try:
        os.setsid()
        _write_atomically(options.state / f"{options.step}.pid", f"{os.getpid()}\n")
        devnull = os.open(os.devnull, os.O_RDWR)
        for stream in (0, 1, 2):
            os.dup2(devnull, stream)
    except OSError as error:
        os.write(ready_write, f"cannot start the runner: {error}\n".encode())
        os._exit(1)
    os.close(ready_write)
    try:
        _run(options)
    except BaseException as error:  # noqa: BLE001 - say why in the exit file, whatever it was
        (options.state / f"{options.step}.error").write_text(f"{error!r}\n", encoding="utf-8")
        _write_atomically(options.state / f"{options.step}.exit", "127\n")
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
