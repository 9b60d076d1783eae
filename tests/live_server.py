"""Live servers for tests that speak HTTP as users do (CLI, tutorial, federation, browsers).

`live_voexec(folder, settings)` starts `python -m voexec serve` on a free loopback port (or the
`port` given, for servers that must name each other) with its own data directory under
`folder` and a settings file holding `settings` (offline vocabularies unless said otherwise),
waits until `/health` answers, yields the base URL and stops the server. The server sees none
of the `VOEXEC_` variables of the shell running the tests, so only the test's settings count.

`serving_in_thread(app)` runs an ASGI app in this process under uvicorn, in a thread, on a
loopback port, for tests that also reach into the app's services; it yields the base URL once
the server listens and stops it afterwards.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

STARTUP_SECONDS = 120.0
"""Generous: a loaded CI machine builds the demo catalogue and its index slowly."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_answering(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"voexec serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # between polls of a condition with a deadline, not a fixed wait
    pytest.fail(f"voexec serve did not answer within {STARTUP_SECONDS:g} s:\n{log.read_text()}")


@contextmanager
def live_voexec(
    folder: Path,
    settings: Mapping[str, Any] | None = None,
    *,
    demo: bool = True,
    port: int | None = None,
    workers: int = 1,
) -> Iterator[str]:
    """Serve voexec (the demo catalogue and platforms by default); yield its base URL."""
    document: dict[str, Any] = {
        "data_dir": str(folder / "var"),
        "vocabularies": {"offline": True},
        **(settings or {}),
    }
    config = folder / "voexec.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    port = port or free_port()
    log = folder / "server.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VOEXEC_")}
    command = [sys.executable, "-m", "voexec", "serve", *(["--demo"] if demo else [])]
    command += ["--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)] if workers > 1 else []
    with log.open("wb") as output:
        server = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=folder
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def token_settings(token: str) -> dict[str, Any]:
    """Settings under which `token` may publish, ask for offers and change sessions.

    Written against what this voexec reads: named, hashed tokens with a role (`auth.tokens`)
    where the settings have them, else the plain lists of broker writers and publishers.
    """
    from core import settings

    if hasattr(settings, "NamedToken"):
        digest = hashlib.sha256(token.encode()).hexdigest()
        return {"auth": {"tokens": [{"name": "tests", "sha256": digest, "role": "packager"}]}}
    return {"broker": {"write_tokens": [token]}, "catalogue": {"publish_tokens": [token]}}


@contextmanager
def serving_in_thread(
    app: Any, port: int = 0, *, startup_seconds: float = 60.0, log_level: str = "warning"
) -> Iterator[str]:
    """Serve the ASGI `app` on loopback `port` (0: any free one) in a thread; yield its URL.

    Pass a port chosen by `free_port()` when the app must know its own URL before it starts.
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_seconds
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the app stopped while starting under uvicorn")
        if time.monotonic() > deadline:
            pytest.fail(f"the app did not start under uvicorn within {startup_seconds:g} s")
        time.sleep(0.05)  # between polls of a condition with a deadline, not a fixed wait
    bound: int = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
