"""docs/tutorial-python.md runs: its `python` blocks, in order, against a live demo server.

The server is `voexec serve --demo` in a subprocess, on a free port, with its own data
directory and a settings file that sets a broker write token (so the tutorial's writes are
checked as they would be on a shared server). The blocks share one namespace, as the cells of
a notebook do; the tutorial's URL is replaced by the server's.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from voexec.client import Broker, Catalogue

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial-python.md"
TUTORIAL_URL = "http://127.0.0.1:8000"
TOKEN = "tutorial-write-token-kept-for-the-test-server-only"
STARTUP_SECONDS = 120.0
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)

pytestmark = pytest.mark.slow


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


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "voexec.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'var'}\n"
        "vocabularies:\n  offline: true\n"
        f"broker:\n  write_tokens: [{TOKEN}]\n"
    )
    port = free_port()
    log = tmp_path / "server.log"
    # The server reads only this test's settings, whatever the environment running the tests says.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VOEXEC_")}
    with log.open("wb") as output:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "voexec", "serve", "--demo"),
                *("--config", str(config), "--host", "127.0.0.1", "--port", str(port)),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=tmp_path,
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


def test_the_python_tutorial_runs_against_a_live_demo_server(
    live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = PYTHON_BLOCK.findall(TUTORIAL.read_text(encoding="utf-8"))
    assert len(blocks) >= 8, "the tutorial's python blocks were not found"
    assert all(TUTORIAL_URL in block for block in blocks[:1]), "the tutorial's URL moved"
    monkeypatch.setenv("VOEXEC_BROKER_TOKEN", TOKEN)
    namespace: dict[str, object] = {"__name__": "tutorial"}

    try:
        for number, block in enumerate(blocks, start=1):
            code = compile(
                block.replace(TUTORIAL_URL, live_server), f"tutorial block {number}", "exec"
            )
            exec(code, namespace)
    finally:
        # A block that failed leaves the tutorial's clients open; closing twice is harmless.
        for value in namespace.values():
            if isinstance(value, Catalogue | Broker):
                value.close()

    session = namespace["session"]
    assert getattr(session, "phase", None) == "COMPLETED"
