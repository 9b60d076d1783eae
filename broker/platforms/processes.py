"""A session's processes on this machine: finding them and signalling them.

Every process the `local` adapter starts for a session carries `VOEXEC_SESSION=<id>` in its
environment, and so do their children, even those that leave the process group. On Linux the
session's processes are found by that mark in `/proc/<pid>/environ`, which also guards against
a recycled pid; zombies count as gone. Elsewhere only the runner's process group is known.

I/O on `/proc` and signals only; imports nothing of ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Final

__all__ = ["MARK", "is_running", "session_processes", "signal_processes"]

MARK: Final = "VOEXEC_SESSION"
"""The environment variable naming the session a process belongs to."""
_PROC: Final = Path("/proc")


def _marked(pid: int, session_id: str) -> bool:
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return f"{MARK}={session_id}".encode() in environ.split(b"\0")


def _state(pid: int) -> str | None:
    """The process's state letter (`R`, `S`, `Z`...), None when there is no such process."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def is_running(pid: int, session_id: str) -> bool:
    """True when `pid` is a live (not zombie) process of the session."""
    if not _PROC.is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state = _state(pid)
    return state is not None and state != "Z" and _marked(pid, session_id)


def session_processes(session_id: str, *, group: int | None = None) -> list[int]:
    """The live processes of the session (on Linux); elsewhere `[group]` while it has members."""
    if not _PROC.is_dir():
        if group is None:
            return []
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [group]
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            if pid != os.getpid() and _state(pid) not in {None, "Z"} and _marked(pid, session_id):
                found.append(pid)
    return found


def signal_processes(pids: list[int], signum: signal.Signals, *, group: int | None = None) -> None:
    """Send `signum` to each process (and to `group`, the runner's process group, if given)."""
    if group is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
