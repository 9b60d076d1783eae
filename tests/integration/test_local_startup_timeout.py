"""An interactive session whose server never answers fails after `local.startup_timeout`.

Through the real `BrokerService` (SQLite store, the system clock, the work queue ticked in a
loop): the platform's `jupyter_server` is a fake command that says something on its error
output and then sleeps without ever listening. Past a short start-up timeout the session is
FAILED with a reason naming the timeout, the setting and the server's last log lines (its token
masked), and the server's processes are gone. No timed assertions: every wait polls with a
generous deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker import model
from broker.model import codec
from broker.platforms import build_platform
from broker.platforms.processes import session_processes
from broker.service import BrokerService
from broker.store.sql import SqlBrokerStore
from core.clock import SystemClock
from core.db import make_engine
from core.settings import BrokerSettings, Capacity, LocalPlatformSettings, PlatformSettings
from tests.broker_support import accept_first, messages, tick_until, wait_for

pytestmark = pytest.mark.slow

P = model.SessionPhase
K = model.KINDS
BASE = "http://broker.test/broker"
SAID = "fake server: loading extensions forever"
FAKE_SERVER = f"""\
#!/bin/sh
echo 'fake server: starting' >&2
echo '{SAID}' >&2
echo 'fake server: at http://127.0.0.1:8888/lab?token=0123456789abcdef' >&2
exec sleep 600
"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[BrokerService]:
    server = tmp_path / "never-listens"
    server.write_text(FAKE_SERVER)
    server.chmod(0o755)
    settings = PlatformSettings(
        name="workstation",
        adapter="local",
        capacity=Capacity(cores=2, memory=3),
        executables=["jupyter-notebook"],
        preparation=timedelta(seconds=1),
        local=LocalPlatformSettings(
            poll=timedelta(milliseconds=200),
            grace=timedelta(seconds=2),
            container_runtime="none",
            container_engine="none",
            jupyter_server=str(server),
            startup_timeout=timedelta(seconds=3),
        ),
    )
    store = SqlBrokerStore(make_engine(f"sqlite:///{tmp_path / 'broker.db'}"))
    store.migrate()
    yield BrokerService(
        BrokerSettings(platforms=[settings], max_offers=1),
        SystemClock(),
        store,
        {settings.name: build_platform(settings, tmp_path / "var")},
    )
    store.engine.dispose()


def test_a_server_that_never_answers_fails_the_session_naming_the_timeout(service):
    now = datetime.now(UTC).replace(microsecond=0)
    document = {
        "executable": {"kind": K + "executable/jupyter-notebook.yaml", "meta": {"name": "lab"}},
        "compute": {
            "kind": K + "compute/simple-compute-resource.yaml",
            "cores": {"min": 1, "max": 1},
            "memory": {"min": 1, "max": 1},
        },
        "schedule": {"requested": {"start": f"{now.isoformat()}/PT10M", "duration": "PT10M"}},
    }
    request = codec.convert(document, model.ExecutionRequest).value
    session = accept_first(service, service.request_offers(request, BASE))

    failed = tick_until(service, session, P.FAILED)
    assert not failed.connectors
    said = " / ".join(messages(failed))
    assert "the Jupyter server did not answer within 3 s" in said
    assert "broker.platforms[workstation].local.startup_timeout" in said
    assert SAID in said  # the server's last log lines
    assert "logs/run.err" in said
    assert "lab?token=***" in said  # the log's secrets are masked
    assert "0123456789abcdef" not in said
    wait_for(lambda: not session_processes(str(session)), "the server's processes to end")
