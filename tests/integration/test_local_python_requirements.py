"""The local platform for real: a Python program's `requirements` map installs its packages.

A single-file program served by a `file://` URL imports `tabulate`, a small pure-Python
package voexec itself does not depend on. Driven through the real `BrokerService` (SQLite
store, the system clock, the work queue ticked in a loop): with `tabulate` pinned in its
requirements it runs to COMPLETED and writes the version it imported; without it the import
fails and the session is FAILED with the ImportError in its messages. The package goes into
the session's own virtual environment, never into the interpreter running the broker.

Needs PyPI (pip installs the pinned version in the session's environment). No timed
assertions: every wait polls with a generous deadline.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from broker import model
from broker.model import codec
from broker.service import BrokerService
from tests.broker_support import accept_first, local_broker, messages, tick_until

pytestmark = pytest.mark.slow

P = model.SessionPhase
K = model.KINDS
BASE = "http://broker.test/broker"
PACKAGE = "tabulate"
VERSION = "0.9.0"

PROGRAM = f"""\
import os
from pathlib import Path

import {PACKAGE}

table = {PACKAGE}.tabulate([["version", {PACKAGE}.__version__]], tablefmt="plain")
Path(os.environ["VOEXEC_OUTPUT"], "version.txt").write_text(table + "\\n")
"""


def importable_here(package: str) -> bool:
    """Whether `package` imports in the interpreter running the broker (a fresh process, so
    nothing this test process has cached answers for it)."""
    check = [sys.executable, "-c", f"import {package}"]
    return subprocess.run(check, check=False, capture_output=True, timeout=60).returncode == 0


@dataclass
class Broker:
    service: BrokerService
    root: Path

    def accepted(self, executable: dict[str, Any]) -> UUID:
        now = datetime.now(UTC).replace(microsecond=0)
        document = {
            "executable": executable,
            "compute": {
                "kind": K + "compute/simple-compute-resource.yaml",
                "cores": {"min": 1, "max": 1},
                "memory": {"min": 1, "max": 1},
            },
            "schedule": {"requested": {"start": f"{now.isoformat()}/PT10M", "duration": "PT10M"}},
        }
        request = codec.convert(document, model.ExecutionRequest).value
        return accept_first(self.service, self.service.request_offers(request, BASE))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    parts = local_broker(tmp_path, ["python-program"])
    yield Broker(parts.service, parts.root)
    parts.engine.dispose()


@pytest.fixture
def program(tmp_path: Path) -> str:
    # The test means something only while the broker's own interpreter lacks the package.
    assert importlib.util.find_spec(PACKAGE) is None, f"{PACKAGE} is installed in voexec's venv"
    script = tmp_path / "show_version.py"
    script.write_text(PROGRAM)
    return script.as_uri()


def python_program(location: str, requirements: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": model.PYTHON_PROGRAM_KIND,
        "meta": {"name": "show-version"},
        "location": location,
        "requirements": requirements,
    }


def test_a_required_package_is_installed_in_the_session_environment(broker, program):
    wanted = {"python": ">=3.10", PACKAGE: f"=={VERSION}"}
    session = broker.accepted(python_program(program, wanted))
    done = tick_until(broker.service, session, P.COMPLETED, P.FAILED)
    assert done.phase is P.COMPLETED, messages(done)
    output = broker.root / str(session) / "output" / "version.txt"
    assert output.read_text().split() == ["version", VERSION]
    # pip installed into the session's venv, not the broker's.
    assert not importable_here(PACKAGE)


def test_a_package_missing_from_the_requirements_fails_the_run_with_the_import_error(
    broker, program
):
    session = broker.accepted(python_program(program, {"python": ">=3.10"}))
    failed = tick_until(broker.service, session, P.COMPLETED, P.FAILED)
    assert failed.phase is P.FAILED, messages(failed)
    said = " ".join(messages(failed))
    assert f"ModuleNotFoundError: No module named '{PACKAGE}'" in said
    assert not (broker.root / str(session) / "output" / "version.txt").exists()
