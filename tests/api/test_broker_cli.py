"""The `voexec request|accept|reject|cancel|session` client against the real app over HTTP.

The app runs under uvicorn on a free loopback port in a thread; the commands go through
`voexec.cli.main`, exactly as from a shell. Writes send the token in `VOEXEC_BROKER_TOKEN` to a
broker configured with write tokens.
"""

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from broker.cli import TOKEN_ENV
from core.settings import settings_from_mapping
from tests.api.test_broker_auth import app_for
from tests.api.test_broker_requests import EXAMPLES, PLATFORMS
from voexec.cli import main

TOKEN = "cli-s3cret"


@contextmanager
def serving(tmp_path: Path, **broker: Any) -> Iterator[str]:
    """Serve the app on a free loopback port; yield its base URL."""
    settings = settings_from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "vocabularies": {"offline": True},
            "broker": {"platforms": PLATFORMS, **broker},
        }
    )
    server = uvicorn.Server(uvicorn.Config(app_for(settings), log_level="warning"))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        try:
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError("the server did not start")
                time.sleep(0.01)
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("cli")) as url:
        yield url


@pytest.fixture(scope="module")
def guarded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker whose writes need the bearer token `TOKEN`."""
    with serving(tmp_path_factory.mktemp("cli-token"), write_tokens=[TOKEN]) as url:
        yield url


@pytest.fixture(autouse=True)
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start without a token, whatever the shell running them has set."""
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def offer_urls(table: str) -> list[str]:
    return [word for word in table.split() if "/broker/sessions/" in word]


def test_request_prints_the_offers_as_a_table(broker, capsys):
    status, out, _ = run(
        capsys, "request", str(EXAMPLES / "request-docker.yaml"), "--broker", broker
    )
    assert status == 0
    header, row = out.splitlines()[:2]
    assert header.split() == [
        "#",
        "start",
        "duration",
        "cores",
        "memory",
        "GPUs",
        "platform",
        "expires",
        "offer",
    ]
    cells = row.split()
    assert cells[0] == "1"
    assert cells[2:8] == ["PT1H", "4", "8", "GiB", "-", "small"]
    assert cells[-1].startswith(f"{broker}/broker/sessions/")
    assert "voexec accept OFFER_URL" in out


def test_request_shows_the_gpus_offered(broker, capsys):
    status, out, _ = run(capsys, "request", str(EXAMPLES / "request-gpu.yaml"), "--broker", broker)
    assert status == 0
    row = out.splitlines()[1]
    assert " x A100" in row  # the earliest offer gives the requested minimum count
    assert " gpu " in row


def test_request_json_prints_the_offer_set_document(broker, capsys, tmp_path):
    request = tmp_path / "request.json"
    request.write_text((EXAMPLES / "request-docker.json").read_text())
    status, out, _ = run(capsys, "request", str(request), "--broker", broker, "--json")
    assert status == 0
    document = json.loads(out)
    assert document["result"] == "YES"
    assert document["offers"][0]["phase"] == "OFFERED"


def test_a_no_prints_the_reasons_and_fails(broker, capsys, tmp_path):
    request = tmp_path / "big.yaml"
    request.write_text(
        (EXAMPLES / "request-docker.yaml")
        .read_text()
        .replace("min: 2\n    max: 4\n", "min: 500\n    max: 600\n", 1)
    )
    status, out, _ = run(capsys, "request", str(request), "--broker", broker)
    assert status == 1
    assert out.startswith("No offers:")
    reasons = [line for line in out.splitlines() if line.strip().startswith("ERROR: small")]
    assert reasons, out
    assert "500" in reasons[0]


def test_accept_then_cancel_and_watch_a_finished_session(broker, capsys):
    _, out, _ = run(capsys, "request", str(EXAMPLES / "request-docker.yaml"), "--broker", broker)
    url = offer_urls(out)[0]
    assert run(capsys, "accept", url)[:2] == (0, f"{url}: ACCEPTED\n")
    status, out, _ = run(capsys, "session", url)
    assert status == 0
    # The work queue runs in real time: by now the session may be on its way to the start,
    # which is at least the platform's preparation time (a minute) away.
    assert re.search(r"^phase     (ACCEPTED|WAITING|PREPARING|AVAILABLE)$", out, re.MULTILINE), out
    assert re.search(r"^platform  (small|gpu)$", out, re.MULTILINE), out
    assert run(capsys, "cancel", url)[:2] == (0, f"{url}: CANCELLED\n")
    status, out, _ = run(capsys, "session", url, "--watch")  # terminal: returns at once
    assert status == 0
    assert "phase     CANCELLED" in out


def test_an_illegal_update_fails_naming_the_phase(broker, capsys):
    _, out, _ = run(capsys, "request", str(EXAMPLES / "request-docker.yaml"), "--broker", broker)
    url = offer_urls(out)[0]
    assert run(capsys, "reject", url)[:2] == (0, f"{url}: REJECTED\n")
    status, _, err = run(capsys, "accept", url)
    assert status == 1
    assert "HTTP 409 Conflict: The session is REJECTED; it cannot become ACCEPTED." in err


def test_a_malformed_request_file_fails_naming_the_field(broker, capsys, tmp_path):
    request = tmp_path / "bad.yaml"
    request.write_text("schedule: {requested: {duration: P1M}}\n")
    status, _, err = run(capsys, "request", str(request), "--broker", broker)
    assert status == 1
    assert "HTTP 400 Bad Request: $.schedule.requested.duration:" in err


def test_a_missing_file_and_an_unreachable_broker_fail_cleanly(capsys, tmp_path):
    status, _, err = run(capsys, "request", str(tmp_path / "none.yaml"))
    assert (status, "cannot read" in err) == (1, True)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    request = str(EXAMPLES / "request-docker.yaml")
    status, _, err = run(capsys, "request", request, "--broker", f"http://127.0.0.1:{port}")
    assert status == 1
    assert "cannot reach the broker" in err


def test_watch_follows_a_session_until_it_ends(capsys, tmp_path):
    with serving(tmp_path, offer_ttl="PT2S") as url:
        _, out, _ = run(capsys, "request", str(EXAMPLES / "request-docker.yaml"), "--broker", url)
        offer = offer_urls(out)[0]
        status, out, _ = run(capsys, "session", offer, "--watch", "--interval", "0.1")
    assert status == 0
    lines = out.splitlines()
    # Normally the watch starts while the offer is OFFERED and prints the change to EXPIRED;
    # on a very slow machine the offer may already have expired when the watch starts.
    if "phase     OFFERED" in lines:
        assert lines[-1].endswith("  EXPIRED")
        assert lines[-1].split()[0].endswith("Z")
    else:
        assert "phase     EXPIRED" in lines


def test_writes_send_the_token_from_the_environment(guarded_broker, capsys, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    status, out, _ = run(
        capsys, "request", str(EXAMPLES / "request-docker.yaml"), "--broker", guarded_broker
    )
    assert status == 0
    url = offer_urls(out)[0]
    assert run(capsys, "accept", url)[:2] == (0, f"{url}: ACCEPTED\n")
    monkeypatch.delenv(TOKEN_ENV)
    status, out, _ = run(capsys, "session", url)  # reads need no token
    assert status == 0
    assert re.search(r"^phase     (ACCEPTED|WAITING|PREPARING|AVAILABLE)$", out, re.MULTILINE), out
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert run(capsys, "cancel", url)[:2] == (0, f"{url}: CANCELLED\n")


def test_a_write_without_the_token_fails_saying_how_to_give_one(guarded_broker, capsys):
    request = str(EXAMPLES / "request-docker.yaml")
    status, out, err = run(capsys, "request", request, "--broker", guarded_broker)
    assert (status, out) == (1, "")
    assert "HTTP 401 Unauthorized: a bearer token is needed" in err
    assert f"(Authorization: Bearer <token>). Set {TOKEN_ENV} to one of the broker's" in err


def test_a_wrong_token_fails_naming_the_variable(guarded_broker, capsys, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    _, out, _ = run(
        capsys, "request", str(EXAMPLES / "request-docker.yaml"), "--broker", guarded_broker
    )
    url = offer_urls(out)[0]
    monkeypatch.setenv(TOKEN_ENV, "not-" + TOKEN)
    status, _, err = run(capsys, "reject", url)
    assert status == 1
    assert "HTTP 403 Forbidden: this bearer token may not" in err
    assert f". The token in {TOKEN_ENV} is not one of the broker's write tokens." in err
    monkeypatch.delenv(TOKEN_ENV)
    status, out, _ = run(capsys, "session", url)
    assert (status, "phase     OFFERED" in out) == (0, True)  # the refused reject changed nothing
