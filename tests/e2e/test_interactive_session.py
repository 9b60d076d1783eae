"""An interactive Jupyter session in the browser: the session page links to the connector, and
the link opens the session's Jupyter server, token included.

The app runs under uvicorn with one `local` platform (its own work queue runner drives the
session); the session is asked for and accepted through the broker service, then the page is
read in Chromium as a researcher would.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import pytest

from broker import model
from broker.model import codec
from core.settings import settings_from_mapping
from tests.e2e.conftest import DESKTOP, screenshot
from tests.live_server import serving_in_thread
from voexec.app import create_app
from voexec.wiring import build_services

DEADLINE = 150.0
NOTEBOOK = model.KINDS + "executable/jupyter-notebook.yaml"


@pytest.fixture
def workstation(tmp_path) -> Iterator[tuple[str, Any]]:
    """voexec with one local platform that starts Jupyter servers, on a loopback port."""
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True},
            "broker": {
                "allow_anonymous_runs": True,  # loopback only, for this test
                "platforms": [
                    {
                        "name": "workstation",
                        "adapter": "local",
                        "capacity": {"cores": 2, "memory": 3},
                        "executables": ["jupyter-notebook"],
                        "preparation": "PT1S",
                        "local": {
                            "poll": "PT0.2S",
                            "grace": "PT2S",
                            "container_engine": "none",
                            "container_runtime": "none",
                        },
                    }
                ],
            },
        }
    )
    services = build_services(settings)
    with serving_in_thread(create_app(settings, services)) as url:
        yield url, services.components["broker"]


def _available_session(broker: Any, base: str) -> tuple[UUID, str]:
    """Ask for an interactive session, accept it, wait for its connector: (uuid, location)."""
    now = datetime.now(UTC).replace(microsecond=0)
    request = codec.convert(
        {
            "executable": {"kind": NOTEBOOK, "meta": {"name": "scratch"}},
            "schedule": {"requested": {"start": f"{now.isoformat()}/PT10M", "duration": "PT10M"}},
            "compute": {
                "kind": model.KINDS + "compute/simple-compute-resource.yaml",
                "cores": {"min": 1, "max": 1},
                "memory": {"min": 1, "max": 1},
            },
        },
        model.ExecutionRequest,
    ).value
    offers = broker.request_offers(request, f"{base}/broker")
    assert offers.result == "YES", [m.message for m in offers.meta.messages]
    uuid = offers.offers[0].meta.uuid
    broker.update_session(uuid, model.EnumValueUpdate(path="phase", value="ACCEPTED"))
    deadline = time.monotonic() + DEADLINE
    while True:
        session = broker.get_session(uuid)
        if session.connectors and session.phase in (
            model.SessionPhase.AVAILABLE,
            model.SessionPhase.RUNNING,
        ):
            return uuid, session.connectors[0].location
        assert session.phase not in model.TERMINAL_PHASES, session.meta.messages[-3:]
        assert time.monotonic() < deadline, f"still {session.phase}"
        time.sleep(0.2)


@pytest.mark.chromium
def test_the_session_page_links_to_the_sessions_jupyter_server(browser, workstation):
    base, broker = workstation
    uuid, location = _available_session(broker, base)
    context = browser.new_context(viewport=DESKTOP, base_url=base)
    page = context.new_page()
    try:
        page.goto(f"/sessions/{uuid}")
        link = page.locator("section[aria-labelledby='connectors-heading'] a")
        assert link.get_attribute("href") == location
        screenshot(page, "session-interactive")
        with page.expect_navigation() as navigation:
            link.click()
        answer = navigation.value
        assert answer is not None
        assert answer.ok
        server = urlsplit(location)
        assert urlsplit(page.url).netloc == server.netloc  # the session's own server
        # The browser now holds the server's login cookie: its API answers without the token.
        status = page.evaluate("fetch('/api/status').then(r => r.status)")
        assert status == 200
    finally:
        context.close()
    # Cancelled, the session's server goes away.
    broker.update_session(uuid, model.EnumValueUpdate(path="phase", value="CANCELLED"))
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            socket.create_connection((server.hostname, server.port), timeout=5).close()
        except ConnectionRefusedError:
            break
        assert time.monotonic() < deadline, "the Jupyter server still answers after the cancel"
        time.sleep(0.2)
