"""The local platform for real: an interactive Jupyter session and a Java program, each driven
through the real `BrokerService` (SQLite store, the system clock, the work queue ticked in a
loop) from offer to end, as a client sees them.

An interactive session (a notebook executable without a notebook) becomes AVAILABLE with one
connector: its Jupyter server's URL, which answers `/api/status` with the token it carries and
refuses without it; a cancel stops the server. A Java program is a jar built here with the
JDK's `javac` and `jar`, served by a `file://` URL and pinned by its digest: it runs to
COMPLETED with its output; a JVM version it does not accept is a NO at offer time; a jar with
another digest fails the preparation naming both.

jupyter-server is a development dependency, so it is always there; the JDK is a system package
(`openjdk-17-jdk-headless`): without it the Java tests skip, or fail under
`VOEXEC_REQUIRE_SERVICES=1`. No timed assertions: every wait polls with a generous deadline.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import pytest

from broker import model
from broker.model import codec
from broker.platforms import java, jupyter
from broker.platforms.processes import session_processes
from broker.service import BrokerService
from tests.broker_support import accept_first, local_broker, messages, tick_until, wait_for
from tests.conftest import require_service

pytestmark = pytest.mark.slow

P = model.SessionPhase
K = model.KINDS
BASE = "http://broker.test/broker"

HELLO = """\
package org.example;

import java.nio.file.Files;
import java.nio.file.Path;

public class Hello {
    public static void main(String[] args) throws Exception {
        String cores = System.getenv("VOEXEC_CORES");
        Files.writeString(Path.of("greeting.txt"), "cores " + cores + "\\n");
        System.out.println("hello from Java " + Runtime.version().feature()
            + " with " + Runtime.getRuntime().availableProcessors() + " processors");
    }
}
"""


@dataclass
class Broker:
    service: BrokerService
    root: Path

    def request(self, executable: dict[str, Any]) -> model.ExecutionRequest:
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
        return codec.convert(document, model.ExecutionRequest).value

    def accepted(self, executable: dict[str, Any]) -> UUID:
        return accept_first(
            self.service, self.service.request_offers(self.request(executable), BASE)
        )

    def run_until(self, session: UUID, *phases: P) -> Any:
        """Tick the work queue until the session is in one of `phases`."""
        return tick_until(self.service, session, *phases)

    def cancel(self, session: UUID) -> None:
        cancel = model.EnumValueUpdate(path="phase", value="CANCELLED")
        self.service.update_session(session, cancel)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    parts = local_broker(tmp_path, ["jupyter-notebook", "java-program"])
    yield Broker(parts.service, parts.root)
    parts.engine.dispose()


def status(location: str, token: str | None) -> int:
    """The status `/api/status` answers at the connector's server, with `token` or without."""
    url = urlsplit(location)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        query = f"?token={token}" if token is not None else ""
        connection.request("GET", f"/api/status{query}")
        return connection.getresponse().status
    finally:
        connection.close()


def refuses_connections(location: str) -> bool:
    try:
        status(location, None)
    except ConnectionRefusedError:
        return True
    return False


# ------------------------------------------------------------------------- interactive
def test_an_interactive_session_serves_jupyter_with_its_token_until_cancelled(broker):
    notebook = {"kind": K + "executable/jupyter-notebook.yaml", "meta": {"name": "lab"}}
    session = broker.accepted(notebook)
    available = broker.run_until(session, P.AVAILABLE, P.RUNNING)
    [connector] = available.connectors
    assert connector.kind == jupyter.JUPYTER_CONNECTOR
    assert connector.status == "AVAILABLE"
    assert connector.protocol == "HTTP"
    url = urlsplit(connector.location)
    assert url.hostname == "127.0.0.1"
    [token] = parse_qs(url.query)["token"]
    assert len(token) >= 40
    assert status(connector.location, token) == 200
    assert status(connector.location, None) == 403
    assert status(connector.location, token[:-1] + ("x" if token[-1] != "x" else "y")) == 403
    # The token is in no message and on no command line.
    assert not any(token in text for text in messages(available))
    for pid in session_processes(str(session)):
        assert token not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")

    broker.cancel(session)
    cancelled = broker.run_until(session, P.CANCELLED)
    assert [c.status for c in cancelled.connectors] == ["FINISHED"]
    wait_for(lambda: refuses_connections(connector.location), "the server to stop")
    wait_for(lambda: not session_processes(str(session)), "the session's processes to end")


# ------------------------------------------------------------------------- java
@pytest.fixture
def hello_jar(tmp_path: Path) -> Path:
    tools = {name: shutil.which(name) for name in ("javac", "jar", "java")}
    require_service(
        "a JDK",
        all(tools.values()),
        f"{', '.join(n for n, p in tools.items() if not p)} not on PATH; "
        "install openjdk-17-jdk-headless",
    )
    source = tmp_path / "src" / "org" / "example" / "Hello.java"
    source.parent.mkdir(parents=True)
    source.write_text(HELLO)
    classes = tmp_path / "classes"
    subprocess.run(
        ["javac", "--release", "11", "-d", str(classes), str(source)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    jar = tmp_path / "hello.jar"
    subprocess.run(
        ["jar", "--create", "--file", str(jar), "-C", str(classes), "."],
        check=True,
        timeout=120,
        capture_output=True,
    )
    return jar


def java_program(jar: Path, **fields: Any) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(jar.read_bytes()).hexdigest()
    return {
        "kind": model.JAVA_PROGRAM_KIND,
        "meta": {"name": "hello"},
        "location": jar.as_uri(),
        "digest": digest,
        "main_class": "org.example.Hello",
        "java_version": ">=11",
    } | fields


def test_a_java_program_runs_to_completed_with_its_output(broker, hello_jar):
    session = broker.accepted(java_program(hello_jar))
    broker.run_until(session, P.COMPLETED)
    folder = broker.root / str(session)
    jvm = java.detect("java", "local.java")
    major = jvm.version.split(".")[0] if jvm.version else "?"
    # The offered core is what the JVM sizes itself for.
    assert (
        folder / "logs" / "run.out"
    ).read_text() == f"hello from Java {major} with 1 processors\n"
    assert (folder / "output" / "greeting.txt").read_text() == "cores 1\n"


def test_a_jvm_the_program_does_not_accept_is_a_no_at_offer_time(broker, hello_jar):
    jvm = java.detect("java", "local.java")
    answer = broker.service.request_offers(
        broker.request(java_program(hello_jar, java_version=">=99")), BASE
    )
    assert answer.result == "NO"
    said = " ".join(messages(answer))
    assert f"runs Java {jvm.version}, not Java >=99 as the program asks" in said


def test_a_jar_with_another_digest_fails_the_preparation_naming_both(broker, hello_jar):
    wrong = "sha256:" + "0" * 64
    session = broker.accepted(java_program(hello_jar, digest=wrong))
    failed = broker.run_until(session, P.FAILED)
    actual = "sha256:" + hashlib.sha256(hello_jar.read_bytes()).hexdigest()
    said = " ".join(messages(failed))
    assert f"the jar is {actual}, not {wrong} as the request says" in said
    assert not (broker.root / str(session) / "output" / "greeting.txt").exists()
