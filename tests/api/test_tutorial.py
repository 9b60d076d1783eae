"""docs/tutorial-python.md runs: its `python` blocks, in order, against a live demo server.

The server is `voexec serve --demo` in a subprocess (`tests/live_server.py`), on a free port,
with its own data directory and a settings file that sets a broker write token (so the
tutorial's writes are checked as they would be on a shared server). The blocks share one
namespace, as the cells of a notebook do; the tutorial's URL is replaced by the server's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import live_voexec, token_settings
from voexec.client import Broker, Catalogue

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial-python.md"
TUTORIAL_URL = "http://127.0.0.1:8000"
TOKEN = "tutorial-write-token-kept-for-the-test-server-only"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)

pytestmark = pytest.mark.slow


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    with live_voexec(tmp_path, token_settings(TOKEN)) as url:
        yield url


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
