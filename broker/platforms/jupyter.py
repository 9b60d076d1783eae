"""Interactive sessions: one Jupyter server per session, and the connector that leads to it.

A jupyter-notebook executable without a notebook (no `location`, or an empty one) asks for an
interactive session rather than a notebook to execute: the researcher connects to a Jupyter
server and works in it. The schema's kinds take no new fields (extensions are new kinds), so a
blank notebook is the signal.

On the local platform the session's work step (`run.sh`, `server_lines`) is the server. It is
started as soon as the preparation has succeeded, so that it already answers when the session
becomes AVAILABLE; the offered start changes nothing for it, and the offered end or a cancel
stops it like any other work. It listens on the platform's `listen` address and a port the
system picks (`--port 0`: no race for a free port); its runtime file in `state/jupyter/` says
which port it got (`read_port`). Its token is 32 random bytes kept in `state/jupyter.token`
(mode 0600, `write_token`), which the server reads through `JUPYTER_TOKEN_FILE`: it never
appears on a command line that `ps` shows. The adapter asks `/api/status` with the token
(`answers`); once the server answers, the session's connector is the server's URL with the
token (`connector`), and the session becomes AVAILABLE.

Imports the standard library and the broker's model. Reads and writes the session's state
files; `answers` makes one HTTP request; `find_server` looks at PATH.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import socket
import sys
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Final

from broker.model import EXTENSION_KINDS, AnyExecutable, JupyterNotebook, SimpleSessionConnector

if TYPE_CHECKING:
    from broker.platforms.recipe import Layout

__all__ = [
    "JUPYTER_CONNECTOR",
    "answers",
    "connector",
    "connector_host",
    "find_server",
    "is_interactive",
    "probe_host",
    "read_port",
    "read_token",
    "server_lines",
    "write_token",
]

JUPYTER_CONNECTOR: Final = EXTENSION_KINDS + "connector/jupyter-server.yaml"
"""The kind of a session's connector to its Jupyter server."""
TOKEN_FILE: Final = "jupyter.token"  # noqa: S105 - a file name, not a secret
"""The token's file, in the session's `state/` folder."""
RUNTIME_FOLDER: Final = "jupyter"
"""The server's runtime folder (its `jpserver-<pid>.json`), in the session's `state/` folder."""
PROBE_TIMEOUT: Final = 2.0
"""Seconds `/api/status` may take to answer: the adapter asks inside the service's calls."""
_WILDCARDS: Final = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - recognised, not bound


def is_interactive(executable: AnyExecutable) -> bool:
    """True for a jupyter-notebook executable without a notebook: an interactive session."""
    return isinstance(executable, JupyterNotebook) and not (executable.location or "").strip()


def find_server(command: str) -> str | None:
    """The `jupyter-server` command: on PATH, or beside the interpreter running voexec.

    The second place finds a `jupyter-server` installed with voexec in its virtual environment
    when that environment's `bin/` is not on PATH.
    """
    found = shutil.which(command)
    if found is None and os.sep not in command:
        beside = Path(sys.executable).with_name(command)
        found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None
    return found


def write_token(state: Path) -> str:
    """The session's token: made (and kept, readable by this user only) on first use."""
    path = state / TOKEN_FILE
    existing = read_token(state)
    if existing:
        return existing
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(token)
    return token


def read_token(state: Path) -> str | None:
    """The session's token, None before it was made."""
    try:
        return (state / TOKEN_FILE).read_text(encoding="ascii").strip() or None
    except FileNotFoundError:
        return None


def _q(value: object) -> str:
    return shlex.quote(str(value))


def server_lines(server: str, listen: str, layout: Layout) -> list[str]:
    """The lines of `run.sh` that start the session's Jupyter server in `output/`.

    `--allow-root` because voexec may run as root in a container; the server only ever serves
    the session's own folder, as the user voexec runs as.
    """
    state = layout.state
    return [
        f"export JUPYTER_TOKEN_FILE={_q(state / TOKEN_FILE)}",
        f"export JUPYTER_RUNTIME_DIR={_q(state / RUNTIME_FOLDER)}",
        f"export JUPYTER_CONFIG_DIR={_q(layout.root / '.jupyter')}",
        f"export JUPYTER_DATA_DIR={_q(layout.root / '.jupyter' / 'data')}",
        " ".join(
            [
                f"exec {_q(server)} --no-browser --allow-root",
                f"--ip={_q(listen)} --port=0 --ServerApp.port_retries=0",
                f"--ServerApp.root_dir={_q(layout.output)}",
            ]
        ),
    ]


def read_port(state: Path) -> int | None:
    """The port the session's server listens on, from its runtime file; None before it has one."""
    for path in sorted((state / RUNTIME_FOLDER).glob("jpserver-*.json")):
        try:
            port = json.loads(path.read_text(encoding="utf-8")).get("port")
        except (OSError, ValueError):
            continue  # being written: the next poll reads it
        if isinstance(port, int) and 0 < port < 65536:
            return port
    return None


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host  # a name


def connector_host(listen: str, configured: str) -> str:
    """The host a connector URL names: the configured one, else the listen address.

    A server listening on every address (`0.0.0.0`, `::`) is named by this machine's name.
    """
    if configured:
        return configured
    return socket.getfqdn() if listen in _WILDCARDS else listen


def probe_host(listen: str) -> str:
    """Where voexec itself asks the server: loopback when it listens on every address."""
    if listen in _WILDCARDS:
        return "::1" if listen == "::" else "127.0.0.1"
    return listen


def answers(host: str, port: int, token: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when the server at `host:port` answers `/api/status` 200 with `token`."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/api/status", headers={"Authorization": f"token {token}"})
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def connector(host: str, port: int, token: str) -> SimpleSessionConnector:
    """The session's way in: the server's URL with its token, which a browser opens as is."""
    query = urllib.parse.urlencode({"token": token})
    return SimpleSessionConnector(
        kind=JUPYTER_CONNECTOR,
        status="AVAILABLE",
        protocol="HTTP",
        location=f"http://{_url_host(host)}:{port}/?{query}",
    )
