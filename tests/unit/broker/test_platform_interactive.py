"""Interactive sessions and Java programs without a broker: offer-time refusals, the lines the
scripts get, the JVM's version, the server's runtime file and the `/api/status` probe."""

from __future__ import annotations

import http.server
import json
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from urllib.parse import parse_qs, urlsplit

import pytest

from broker import model
from broker.model import codec
from broker.platforms import containers, java, jupyter
from broker.platforms.port import SessionPlan
from broker.platforms.recipe import Layout, Tools, prepare_script, refusals, run_script
from core.errors import Invalid

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
LAYOUT = Layout(PurePosixPath("/work/s-1"))
JDK17 = java.Jvm("/usr/bin/java", "17.0.15")
TOOLS = Tools(
    python="python3",
    python_version="3.11.7",
    jupyter_server="/opt/jupyter/bin/jupyter-server",
    listen="127.0.0.1",
    jvm=JDK17,
)
DIGEST = "sha256:" + "ab" * 32


def plan(executable: model.AnyExecutable, memory: float = 2.0) -> SessionPlan:
    return SessionPlan(
        session_id="s-1",
        executable=executable,
        cores=3,
        memory=memory,
        gpus=0,
        start=NOW + timedelta(minutes=10),
        end=NOW + timedelta(minutes=70),
    )


def jar(**fields: object) -> model.JavaProgram:
    return model.JavaProgram(location="https://example.org/tool.jar", **fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- interactive
@pytest.mark.parametrize(
    ("executable", "interactive"),
    [
        (model.JupyterNotebook(), True),
        (model.JupyterNotebook(location="  "), True),
        (model.JupyterNotebook(location="https://example.org/n.ipynb"), False),
        (jar(), False),
    ],
)
def test_a_notebook_without_a_notebook_is_an_interactive_session(executable, interactive):
    assert jupyter.is_interactive(executable) is interactive


def test_an_interactive_session_needs_a_jupyter_server_and_not_nbconvert():
    blank = model.JupyterNotebook()
    assert refusals(blank, TOOLS) == []
    without = Tools(python="python3", jupyter="/usr/bin/jupyter", no_jupyter_server="not here")
    assert refusals(blank, without) == ["runs no interactive Jupyter sessions: not here"]
    # A notebook to execute still needs nbconvert, whatever the server.
    executed = model.JupyterNotebook(location="https://example.org/n.ipynb")
    assert refusals(executed, TOOLS)[0].startswith("runs no Jupyter notebooks")


def test_the_work_of_an_interactive_session_is_its_server_with_the_token_in_a_file():
    script = run_script(plan(model.JupyterNotebook()), TOOLS, LAYOUT)
    assert "export JUPYTER_TOKEN_FILE=/work/s-1/state/jupyter.token" in script
    assert "export JUPYTER_RUNTIME_DIR=/work/s-1/state/jupyter" in script
    last = script.strip().splitlines()[-1]
    assert last.startswith("exec /opt/jupyter/bin/jupyter-server --no-browser")
    assert "--ip=127.0.0.1 --port=0" in last
    assert "--ServerApp.root_dir=/work/s-1/output" in last
    assert "token=" not in script  # never on a command line
    assert "nbconvert" not in script
    preparation = prepare_script(plan(model.JupyterNotebook()), TOOLS, LAYOUT)
    assert "notebook.ipynb" not in preparation  # nothing to fetch


def test_the_token_is_random_kept_and_readable_by_its_owner_only(tmp_path):
    first = jupyter.write_token(tmp_path)
    assert len(first) >= 40
    assert jupyter.write_token(tmp_path) == first
    assert jupyter.read_token(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "jupyter.token").stat().st_mode) == 0o600
    other = tmp_path / "other"
    other.mkdir()
    assert jupyter.write_token(other) != first


def test_the_port_comes_from_the_servers_runtime_file(tmp_path):
    assert jupyter.read_port(tmp_path) is None
    runtime = tmp_path / "jupyter"
    runtime.mkdir()
    (runtime / "jpserver-12.json").write_text("{half written")
    assert jupyter.read_port(tmp_path) is None
    (runtime / "jpserver-12.json").write_text(json.dumps({"port": 41234, "token": "x"}))
    assert jupyter.read_port(tmp_path) == 41234


@pytest.mark.parametrize(
    ("listen", "configured", "host", "url"),
    [
        ("127.0.0.1", "", "127.0.0.1", "http://127.0.0.1:8123/?token=t%2Bk"),
        ("::1", "", "::1", "http://[::1]:8123/?token=t%2Bk"),
        (
            "0.0.0.0",
            "lab.example.org",
            "lab.example.org",
            "http://lab.example.org:8123/?token=t%2Bk",
        ),
    ],
)
def test_the_connector_names_the_server_and_carries_its_token(listen, configured, host, url):
    assert jupyter.connector_host(listen, configured) == host
    connector = jupyter.connector(host, 8123, "t+k")
    assert connector.location == url
    assert connector.kind == jupyter.JUPYTER_CONNECTOR
    assert connector.status == "AVAILABLE"
    assert parse_qs(urlsplit(url).query)["token"] == ["t+k"]


class _Status(http.server.BaseHTTPRequestHandler):
    token = "right"

    def do_GET(self) -> None:
        good = self.path == "/api/status" and self.headers["Authorization"] == f"token {self.token}"
        self.send_response(200 if good else 403)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def status_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_probe_asks_api_status_with_the_token(status_server):
    assert jupyter.answers("127.0.0.1", status_server, "right")
    assert not jupyter.answers("127.0.0.1", status_server, "wrong")


def test_the_probe_of_a_port_nobody_listens_on_is_no():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    port = server.server_address[1]
    server.server_close()
    assert not jupyter.answers("127.0.0.1", port, "right", timeout=1)


# ------------------------------------------------------------------------- java
@pytest.mark.parametrize(
    ("said", "version"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', "17.0.15"),
        ('openjdk version "21" 2023-09-19', "21"),
        ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment', "8.0.392"),
        ('openjdk version "11.0.2-ea" 2019-01-15', "11.0.2"),
        ("Error: could not find libjava.so", None),
    ],
)
def test_the_jvm_version_is_read_from_java_version(said, version):
    assert java.java_version(said) == version


@pytest.mark.parametrize(
    ("program", "jvm", "expected"),
    [
        (jar(java_version="17"), JDK17, []),
        (jar(java_version=">=11"), JDK17, []),
        (jar(java_version=">=11,<18"), JDK17, []),
        (jar(java_version="21"), JDK17, ["runs Java 17.0.15, not Java 21 as the program asks"]),
        (jar(java_version=">=21"), JDK17, ["runs Java 17.0.15, not Java >=21 as the program asks"]),
        (jar(), java.Jvm(None, missing="java was not found on PATH (local.java)"),
         ["runs no Java programs: java was not found on PATH (local.java)"]),
        (model.JavaProgram(main_class="org.example.Main"), JDK17,
         ["needs the jar's location to fetch it from"]),
    ],
)  # fmt: skip
def test_a_java_program_is_refused_without_a_suitable_jvm(program, jvm, expected):
    tools = Tools(python="python3", jvm=jvm)
    assert refusals(program, tools) == expected


def test_a_platform_without_java_settings_refuses_java_programs():
    assert refusals(jar(), Tools(python="python3"))[0].startswith("runs no Java programs")


def test_the_jvm_is_asked_once_and_a_missing_one_says_so():
    missing = java.detect("/nonexistent/java", "broker.platforms[w].local.java")
    assert missing.command is None
    assert missing.missing == (
        "/nonexistent/java was not found on PATH (broker.platforms[w].local.java)"
    )
    assert (
        java.detect("none", "local.java").missing
        == "Java programs are turned off (local.java: none)"
    )
    assert java.detect("/nonexistent/java", "broker.platforms[w].local.java") is missing


def test_a_java_program_is_fetched_checked_and_run_with_the_offered_memory():
    program = jar(digest=DIGEST, main_class="org.example.Main")
    preparation = prepare_script(plan(program), TOOLS, LAYOUT)
    assert "session_fetch.py file https://example.org/tool.jar program/program.jar" in preparation
    assert f"program/program.jar {DIGEST}" in preparation
    work = run_script(plan(program, memory=2.0), TOOLS, LAYOUT).strip().splitlines()[-1]
    assert work == (
        "exec /usr/bin/java -Xmx1536m -XX:ActiveProcessorCount=3 "
        "-cp /work/s-1/program/program.jar org.example.Main"
    )
    manifest = run_script(plan(jar(), memory=1.0), TOOLS, LAYOUT).strip().splitlines()[-1]
    assert manifest.endswith(
        "-Xmx768m -XX:ActiveProcessorCount=3 -jar /work/s-1/program/program.jar"
    )
    assert "hashlib" not in prepare_script(plan(jar()), TOOLS, LAYOUT)  # no digest, no check


def test_the_digest_check_fails_naming_both_digests(tmp_path):
    (tmp_path / "program").mkdir()
    (tmp_path / "program" / "program.jar").write_bytes(b"not the jar")
    lines = java.prepare_lines(jar(digest=DIGEST), sys.executable, "session_fetch.py")
    check = subprocess.run(
        ["/bin/sh", "-c", lines[1]], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert check.returncode != 0
    assert f"not {DIGEST} as the request says" in check.stderr
    assert "the jar is sha256:" in check.stderr


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("digest", "md5:abc"),
        ("digest", "sha256:" + "a" * 63),
        ("main_class", "org.example.Main; rm -rf /"),
        ("java_version", "seventeen"),
    ],
)
def test_a_java_program_with_a_bad_field_is_refused_naming_it(field, value):
    document = {"kind": model.JAVA_PROGRAM_KIND, "location": "https://e.org/t.jar", field: value}
    with pytest.raises(Invalid) as caught:
        codec.convert(document, model.AnyExecutable)
    assert f"$.{field}" in str(caught.value)


def test_a_java_program_is_read_and_written_under_its_kind():
    document = {
        "kind": model.JAVA_PROGRAM_KIND,
        "location": "https://e.org/t.jar",
        "digest": DIGEST,
        "main_class": "org.example.Main",
        "java_version": ">=11",
    }
    program = codec.convert(document, model.AnyExecutable).value
    assert isinstance(program, model.JavaProgram)
    assert codec.to_builtins(program) == document


# ------------------------------------------------------------------------- published ports
def test_a_container_gets_a_connector_per_port_asking_for_access():
    ports = [
        {"access": True, "internal": {"port": 8888}, "protocol": "HTTP", "path": "lab"},
        {"access": True, "internal": {"port": 5432}},
        {"internal": {"port": 9000}},  # published, not a way in
    ]
    container = codec.convert(
        {
            "kind": model.KINDS + "executable/docker-container.yaml",
            "image": {"locations": ["127.0.0.1:5000/tool:1"]},
            "network": {"ports": ports},
        },
        model.AnyExecutable,
    ).value
    assert containers.access_ports(container) == [8888, 5432]
    assert containers.published_connectors(container, "8888/tcp -> 127.0.0.1:41000\n") is None
    listing = (
        "8888/tcp -> 127.0.0.1:41000\n5432/tcp -> 127.0.0.1:41001\n9000/tcp -> 127.0.0.1:41002\n"
    )
    found = containers.published_connectors(container, listing)
    assert found is not None
    assert [(c.protocol, c.location, c.status) for c in found] == [
        ("HTTP", "http://127.0.0.1:41000/lab", "AVAILABLE"),
        ("TCP", "tcp://127.0.0.1:41001", "AVAILABLE"),
    ]
    assert {c.kind for c in found} == {containers.PORT_CONNECTOR}
