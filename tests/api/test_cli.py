"""Every client command of `voexec` against a live `voexec serve --demo`, over HTTP.

One server for the module (`tests/live_server.py`): the demo catalogue and its simulated
platforms, its own data directory, and a token that may publish and change sessions. Commands
run through `voexec.cli.main` with `VOEXEC_URL` set, as from a shell; the exit codes and the
one-line failures are checked in a subprocess, where a traceback would show.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.catalogue_support import executable
from tests.live_server import live_voexec, token_settings
from voexec.cli import main
from voexec.cli_client import EXIT_UNREACHABLE

pytestmark = pytest.mark.slow

TOKEN = "cli-tests-token-of-at-least-thirty-two-characters"
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CLIENT_VARIABLES = ("VOEXEC_URL", "VOEXEC_TOKEN", "VOEXEC_BROKER_TOKEN", "VOEXEC_CONFIG")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = token_settings(TOKEN)
    # The tests ask for many offer sets and leave most open: no limit on those one holds.
    settings.setdefault("broker", {})["held_offersets_per_requester"] = 0
    with live_voexec(tmp_path_factory.mktemp("cli"), settings) as url:
        yield url


@pytest.fixture(autouse=True)
def environment(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands find the server in VOEXEC_URL and the token in VOEXEC_TOKEN."""
    for name in CLIENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VOEXEC_URL", server)
    monkeypatch.setenv("VOEXEC_TOKEN", TOKEN)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def offer_rows(out: str) -> list[list[str]]:
    """The offers table's rows as cells, split on runs of two or more spaces."""
    lines = out.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("#  PLATFORM"))
    rows = []
    for line in lines[start + 1 :]:
        if not line[:1].isdigit():
            break
        rows.append(re.split(r"\s{2,}", line))
    return rows


def first_offer(capsys: pytest.CaptureFixture[str]) -> str:
    status, out, err = run(capsys, "offers", "sofia-2", "--duration", "PT1H")
    assert status == 0, err
    return offer_rows(out)[0][-1]


# ------------------------------------------------------------------------- catalogue
def test_search_prints_a_table_with_facets_and_json(capsys):
    status, out, _ = run(capsys, "search", "period")
    assert status == 0
    header, first = out.splitlines()[:2]
    assert header.split() == ["NAME", "VERSION", "KIND", "GPU", "TITLE", "ID"]
    assert first.split()[0] == "lomb-scargle-periods"
    assert re.search(r"^  kind: .*python-program \(\d+\)", out, re.MULTILINE), out

    status, out, _ = run(capsys, "search", "--kind", "python-program", "--json")
    assert status == 0
    page = json.loads(out)
    assert page["hits"]
    assert {hit["kind"] for hit in page["hits"]} == {"python-program"}
    assert page["total"] == len(page["hits"])


def test_a_bad_search_value_fails_naming_the_field(capsys):
    status, out, err = run(capsys, "search", "--limit", "0")
    assert (status, out) == (1, "")
    assert err.startswith("voexec: HTTP 400")
    assert "limit" in err


def test_entry_by_name_and_by_id(capsys):
    status, out, _ = run(capsys, "entry", "sofia-2")
    assert status == 0
    assert out.startswith("sofia-2: ")
    entry_id = re.search(r"^  id\s+(\S+)$", out, re.MULTILINE)
    assert entry_id, out
    status, again, _ = run(capsys, "entry", entry_id.group(1), "--json")
    assert status == 0
    assert json.loads(again)["name"] == "sofia-2"


def test_an_unknown_entry_name_suggests_close_ones(capsys):
    status, out, err = run(capsys, "entry", "sofia")
    assert (status, out) == (1, "")
    assert "voexec: HTTP 404" in err
    assert "did you mean: sofia-2?" in err


# ------------------------------------------------------------------------- publishing
def test_publish_needs_a_token_then_the_entry_can_be_found(capsys, monkeypatch, tmp_path):
    document = tmp_path / "ivoa-executable.yaml"
    document.write_text(yaml.safe_dump(executable(name="cli-published-finder")))
    monkeypatch.delenv("VOEXEC_TOKEN")
    status, out, err = run(capsys, "publish", str(document))
    assert (status, out) == (1, "")
    assert "HTTP 401" in err
    assert "VOEXEC_TOKEN" in err

    status, out, err = run(capsys, "publish", str(document), "--token", TOKEN)
    assert status == 0, err
    assert re.match(r"new\s+cli-published-finder 1\.0\.0  id cli-published-finder-\w+", out), out
    status, out, _ = run(capsys, "entry", "cli-published-finder")
    assert status == 0
    assert out.startswith("cli-published-finder: Cube source finder")


def test_a_refused_document_lists_each_problem_with_its_line(capsys, tmp_path):
    document = tmp_path / "ivoa-executable.yaml"
    document.write_text(yaml.safe_dump(executable(licence="gplv3"), sort_keys=False))
    status, out, _ = run(capsys, "publish", str(document))
    assert status == 1
    line = next(
        n for n, text in enumerate(document.read_text().splitlines(), 1) if "licence" in text
    )
    assert f"{document}:{line}: error: licence:" in out
    assert "GPL-3.0-only" in out
    assert "nothing was stored" in out


def test_publish_check_needs_no_server(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("VOEXEC_URL", closed_port_url())
    config = tmp_path / "voexec.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\nvocabularies:\n  offline: true\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(executable(licence="gplv3"), sort_keys=False))
    status, out, _ = run(capsys, "publish", str(broken), "--check", "--config", str(config))
    assert status == 1
    assert f"{broken}:" in out
    assert "error: licence:" in out

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(executable(name="checked-only")))
    status, out, _ = run(capsys, "publish", str(good), "--check", "--config", str(config))
    assert (status, out) == (0, f"{good}: valid (checked-only)\n")


# ------------------------------------------------------------------------- offers and sessions
def test_offers_for_an_entry_name_show_strategy_and_cost(capsys):
    status, out, err = run(capsys, "offers", "sofia-2", "--duration", "PT1H")
    assert status == 0, err
    assert out.splitlines()[0].startswith("sofia-2 ")
    header = next(line for line in out.splitlines() if line.startswith("#  "))
    assert header.split() == [
        *("#", "PLATFORM", "STRATEGY", "START", "DURATION"),
        *("RESOURCES", "COST", "EXPIRES", "OFFER"),
    ]
    rows = offer_rows(out)
    assert rows
    strategies = {row[2] for row in rows}
    assert strategies <= {"earliest", "largest", "longest", "cheapest"}
    assert "earliest" in strategies
    assert all(UUID.fullmatch(row[-1]) for row in rows)
    assert all(row[4] != "-" for row in rows)  # every offer says for how long
    assert any(re.match(r"\d", row[6]) for row in rows), "no offer shows its cost"
    assert "Accept one with: voexec accept OFFER" in out


def test_offers_json_and_an_override_problem(capsys):
    status, out, _ = run(capsys, "offers", "sofia-2", "--cores", "16", "--json")
    assert status == 0
    offer_set = json.loads(out)
    assert offer_set["result"] == "YES"
    assert offer_set["offers"][0]["compute"]["cores"]["min"] >= 16
    status, out, err = run(capsys, "offers", "sofia-2", "--cores", "0")
    assert (status, out) == (1, "")
    assert "cores:" in err


def test_accept_session_cancel_and_watch(capsys):
    offer = first_offer(capsys)
    status, out, err = run(capsys, "accept", offer)
    assert status == 0, err
    assert re.fullmatch(rf"\S+/broker/sessions/{offer}: ACCEPTED\n", out), out
    status, out, _ = run(capsys, "session", offer)
    assert status == 0
    assert re.search(r"^phase     (ACCEPTED|WAITING|PREPARING|AVAILABLE|RUNNING)$", out, re.M), out
    assert re.search(r"^platform  (alpha|beta|gamma)$", out, re.MULTILINE), out
    status, out, _ = run(capsys, "cancel", offer)
    assert (status, out.endswith(": CANCELLED\n")) == (0, True)
    status, out, _ = run(capsys, "watch", offer)  # terminal: it returns at once
    assert status == 0
    assert "phase     CANCELLED" in out


def test_an_illegal_update_fails_naming_the_phase(capsys):
    offer = first_offer(capsys)
    assert run(capsys, "reject", offer)[0] == 0
    status, out, err = run(capsys, "accept", offer)
    assert (status, out) == (1, "")
    assert "voexec: HTTP 409" in err
    assert "REJECTED" in err


def test_watch_follows_an_offer_until_it_expires(capsys, tmp_path):
    with live_voexec(tmp_path, {"broker": {"offer_ttl": "PT2S"}}) as url:
        status, out, err = run(capsys, "offers", "sofia-2", "--server", url)
        assert status == 0, err
        offer = offer_rows(out)[0][-1]
        status, out, _ = run(capsys, "watch", offer, "--server", url, "--interval", "0.2")
    assert status == 0
    lines = out.splitlines()
    # Normally the watch starts while the offer is OFFERED and prints the change to EXPIRED;
    # on a very slow machine the offer may already have expired when the watch starts.
    if "phase     OFFERED" in lines:
        assert re.fullmatch(r"\S+Z  EXPIRED", lines[-1]), lines
    else:
        assert "phase     EXPIRED" in lines


def test_request_sends_a_file_and_prints_the_offers(capsys, tmp_path):
    status, out, err = run(capsys, "request", str(EXAMPLES / "request-docker.yaml"))
    assert status == 0, err
    assert offer_rows(out)
    status, out, _ = run(capsys, "request", str(EXAMPLES / "request-docker.json"), "--json")
    assert status == 0
    assert json.loads(out)["result"] == "YES"

    bad = tmp_path / "bad.yaml"
    bad.write_text("schedule: {requested: {duration: P1M}}\n")
    status, out, err = run(capsys, "request", str(bad))
    assert (status, out) == (1, "")
    assert "voexec: HTTP 400" in err
    assert "schedule.requested.duration" in err


def test_request_shows_the_gpus_offered_and_a_missing_file_is_named(capsys, tmp_path):
    status, out, err = run(capsys, "request", str(EXAMPLES / "request-gpu.yaml"))
    assert status == 0, err
    resources = [row[5] for row in offer_rows(out)]
    assert all(re.search(r"\b\d+ x (A100|H100)\b", cell) for cell in resources), resources
    missing = tmp_path / "none.yaml"
    status, out, err = run(capsys, "request", str(missing))
    assert (status, out) == (1, "")
    assert err.startswith(f"voexec: cannot read {missing}")


def test_a_request_nobody_can_serve_prints_the_reasons(capsys, tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(
        (EXAMPLES / "request-docker.yaml")
        .read_text()
        .replace("min: 2\n    max: 4\n", "min: 5000\n    max: 6000\n", 1)
    )
    status, out, _ = run(capsys, "request", str(big))
    assert status == 1
    assert out.startswith("No offers:")
    assert "5000" in out


def test_writes_without_a_token_are_refused_saying_how_to_give_one(capsys, monkeypatch):
    offer = first_offer(capsys)
    monkeypatch.delenv("VOEXEC_TOKEN")
    status, out, _ = run(capsys, "session", offer)  # reads need no token
    assert (status, "phase     OFFERED" in out) == (0, True)
    status, out, err = run(capsys, "reject", offer)
    assert (status, out) == (1, "")
    assert "HTTP 401" in err
    assert "VOEXEC_TOKEN" in err
    status, _, err = run(capsys, "reject", offer, "--token", "not-" + TOKEN)
    assert status == 1
    assert "HTTP 403" in err
    monkeypatch.setenv("VOEXEC_BROKER_TOKEN", TOKEN)  # the older variable is still read
    assert run(capsys, "reject", offer)[:2] == (
        0,
        f"{os.environ['VOEXEC_URL']}/broker/sessions/{offer}: REJECTED\n",
    )


def test_session_urls_choose_their_server_and_other_servers_are_refused(capsys, server):
    offer = first_offer(capsys)
    url = f"{server}/broker/sessions/{offer}"
    status, out, _ = run(capsys, "session", url)
    assert (status, "phase     OFFERED" in out) == (0, True)
    status, out, err = run(capsys, "session", url, "--server", closed_port_url())
    assert (status, out) == (1, "")
    assert "is on another server than" in err
    assert f"--server {server}/broker" in err


def test_broker_is_still_read_as_the_server_with_a_note(capsys, server, monkeypatch):
    monkeypatch.setenv("VOEXEC_URL", closed_port_url())
    status, out, err = run(capsys, "entry", "sofia-2", "--broker", server)
    assert status == 0
    assert out.startswith("sofia-2: ")
    assert "--broker is the older name of --server" in err


# ------------------------------------------------ failures, as a shell sees them
def voexec(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in CLIENT_VARIABLES}
    environment["VOEXEC_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "voexec", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "command", [("search", "x"), ("offers", "sofia-2"), ("accept", "0" * 8), ("watch", "x")]
)
def test_an_unreachable_server_is_one_line_and_its_own_exit_status(command):
    url = closed_port_url()
    done = voexec(*command, url=url)
    assert done.returncode == EXIT_UNREACHABLE
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"voexec: cannot reach {url}/")
    assert "VOEXEC_URL" in done.stderr


def test_a_refusal_exits_1_without_a_traceback(server):
    done = voexec("entry", "no-such-entry-anywhere", url=server)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("voexec: HTTP 404")
