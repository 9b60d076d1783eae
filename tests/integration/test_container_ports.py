"""An interactive container for real: a published port as the session's way in.

End to end through the broker (SQLite store, the system clock, the work queue ticked in a
loop): an OCI image from the loopback registry (`scripts/services/containers`, busybox) runs
`httpd` on a port the request lists with `access: true`, on the local platform with podman.
The session gets a connector naming the port as podman published it on 127.0.0.1; an HTTP GET
of that URL from here returns the file the container serves. A cancel, and the offered end,
really stop the container: it is gone from podman and the port stops answering. Skipped
without podman or the registry; failed under `VOEXEC_REQUIRE_SERVICES=1`. No timed
assertions: every wait polls with a generous deadline.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import pytest

from broker import model
from broker.model import codec
from broker.platforms import build_platform
from broker.platforms.containers import PORT_CONNECTOR, container_name
from broker.platforms.processes import session_processes
from broker.service import BrokerService
from broker.store.sql import SqlBrokerStore
from core.clock import SystemClock
from core.db import make_engine
from core.settings import BrokerSettings, Capacity, LocalPlatformSettings, PlatformSettings
from tests.broker_support import accept_first, messages, tick_until, wait_for
from tests.contract.test_platforms import IMAGE, IMAGE_TAG, REGISTRY, containers_available

pytestmark = [pytest.mark.containers, pytest.mark.slow]

P = model.SessionPhase
K = model.KINDS
BASE = "http://broker.test/broker"
INSIDE = 8080
GREETING = "served from inside the container"
SERVE = f"""\
set -eu
mkdir -p /voexec/output/www
printf '%s\\n' '{GREETING}' > /voexec/output/www/greeting.txt
exec httpd -f -p {INSIDE} -h /voexec/output/www
"""
"""What the container runs (busybox's sh): a file, then busybox's httpd serving it."""


class Broker:
    """A broker service whose one local platform runs containers with podman."""

    def __init__(
        self,
        tmp_path: Path,
        preparation: timedelta,
        startup_timeout: timedelta = timedelta(minutes=2),
    ) -> None:
        self.settings = PlatformSettings(
            name="workstation",
            adapter="local",
            capacity=Capacity(cores=2, memory=3),
            executables=["docker-container"],
            preparation=preparation,
            local=LocalPlatformSettings(
                poll=timedelta(milliseconds=200),
                grace=timedelta(seconds=2),
                container_runtime="none",
                container_engine="podman",
                registries=[REGISTRY],
                container_pids=64,
                startup_timeout=startup_timeout,
            ),
        )
        self.store = SqlBrokerStore(make_engine(f"sqlite:///{tmp_path / 'broker.db'}"))
        self.store.migrate()
        self.platform = build_platform(self.settings, tmp_path / "var")
        self.service = BrokerService(
            BrokerSettings(platforms=[self.settings], max_offers=1),
            SystemClock(),
            self.store,
            {self.settings.name: self.platform},
        )

    def accepted(self, duration: str, script: str = SERVE) -> UUID:
        now = datetime.now(UTC).replace(microsecond=0)
        document: dict[str, Any] = {
            "executable": {
                "kind": K + "executable/docker-container.yaml",
                "image": {"locations": [f"{IMAGE}:{IMAGE_TAG}"]},
                "entrypoint": "/bin/sh",
                "command": ["-c", script],
                "network": {
                    "ports": [
                        {
                            "access": True,
                            "internal": {"port": INSIDE},
                            "protocol": "HTTP",
                            "path": "/greeting.txt",
                        }
                    ]
                },
            },
            "compute": {
                "kind": K + "compute/simple-compute-resource.yaml",
                "cores": {"min": 1, "max": 1},
                "memory": {"min": 1, "max": 1},
            },
            "schedule": {"requested": {"start": f"{now.isoformat()}/PT10M", "duration": duration}},
        }
        request = codec.convert(document, model.ExecutionRequest).value
        return accept_first(self.service, self.service.request_offers(request, BASE))

    def with_connector(self, session: UUID, *phases: P) -> model.AnySession:
        """Tick until the session is in one of `phases` with a connector."""
        found: list[model.AnySession] = []

        def ready() -> bool:
            current = tick_until(self.service, session, *phases)
            found[:] = [current]
            return bool(current.connectors)

        wait_for(ready, "the session's connector")
        return found[0]

    def cancel(self, session: UUID) -> None:
        cancel = model.EnumValueUpdate(path="phase", value="CANCELLED")
        self.service.update_session(session, cancel)

    def close(self) -> None:
        self.store.engine.dispose()


@pytest.fixture
def broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Broker]:
    """The platform's preparation is the test's parameter (a minute by default)."""
    containers_available()
    made = Broker(tmp_path, getattr(request, "param", timedelta(minutes=1)))
    yield made
    made.close()


def get(location: str) -> tuple[int, str]:
    url = urlsplit(location)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        connection.request("GET", url.path or "/")
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def stops_answering(location: str) -> bool:
    try:
        get(location)
    except (ConnectionError, OSError, http.client.HTTPException):
        return True
    return False


def container_exists(session: UUID) -> bool:
    engine = shutil.which("podman")
    assert engine is not None
    listed = subprocess.run(
        [engine, "ps", "--all", "--quiet", "--filter", f"name=^{container_name(str(session))}$"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=dict(os.environ),
    )
    return bool(listed.stdout.strip())


def serves(session: model.AnySession) -> str:
    """The connector's URL, once checked to serve the container's file."""
    [connector] = session.connectors
    assert connector.kind == PORT_CONNECTOR
    assert connector.status == "AVAILABLE"
    assert connector.protocol == "HTTP"
    url = urlsplit(connector.location)
    assert url.scheme == "http"
    assert url.hostname == "127.0.0.1"
    assert url.port is not None
    assert url.port != INSIDE
    assert url.path == "/greeting.txt"
    assert get(connector.location) == (200, GREETING + "\n")
    assert any(connector.location in text for text in messages(session))
    return connector.location


def test_a_containers_published_port_is_its_connector_until_cancelled(broker):
    # A minute of preparation: the offered start is a minute away, and the container starts as
    # soon as its image is there. The session is AVAILABLE, with its connector, before it.
    session = broker.accepted("PT10M")
    ready = broker.with_connector(session, P.AVAILABLE)
    assert datetime.now(UTC) < ready.schedule.available.start.start  # type: ignore[union-attr]
    location = serves(ready)
    assert container_exists(session)

    broker.cancel(session)
    cancelled = tick_until(broker.service, session, P.CANCELLED)
    assert [c.status for c in cancelled.connectors] == ["FINISHED"]
    wait_for(lambda: stops_answering(location), "the port to stop answering")
    wait_for(lambda: not container_exists(session), "the container to be removed")
    wait_for(lambda: not session_processes(str(session)), "the session's processes to end")


@pytest.mark.parametrize("broker", [timedelta(seconds=1)], indirect=True)
def test_the_offered_end_stops_a_serving_container(broker):
    session = broker.accepted("PT20S")
    location = serves(broker.with_connector(session, P.AVAILABLE, P.RUNNING))

    ended = tick_until(broker.service, session, P.COMPLETED, seconds=150)
    assert [c.status for c in ended.connectors] == ["FINISHED"]
    wait_for(lambda: stops_answering(location), "the port to stop answering")
    wait_for(lambda: not container_exists(session), "the container to be removed")
    wait_for(lambda: not session_processes(str(session)), "the session's processes to end")


def test_a_container_whose_port_never_answers_fails_after_the_startup_timeout(tmp_path):
    containers_available()
    broker = Broker(tmp_path, timedelta(seconds=1), startup_timeout=timedelta(seconds=5))
    try:
        silent = "echo 'loading a very large model' >&2; exec sleep 600"
        session = broker.accepted("PT10M", silent)
        failed = tick_until(broker.service, session, P.FAILED)
        assert not failed.connectors
        said = " / ".join(messages(failed))
        assert "the container's ports asking for access did not answer within 5 s" in said
        assert "broker.platforms[workstation].local.startup_timeout" in said
        assert "loading a very large model" in said
        wait_for(lambda: not container_exists(session), "the container to be removed")
        wait_for(lambda: not session_processes(str(session)), "the session's processes to end")
    finally:
        broker.close()
