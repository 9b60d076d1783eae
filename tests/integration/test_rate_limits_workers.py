"""Rate limits hold for the machine under `voexec serve --workers 2`, not for each worker.

A real server with two worker processes; the test keeps several keep-alive connections open,
finds out from /proc which worker accepted each one, and spends a small sign-in limit over
connections to both workers. The total let through is the limit, not twice it.
"""

from __future__ import annotations

import http.client
import itertools
import os
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.live_server import live_voexec, token_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

LIMIT = 6
TOKEN = "a-token-long-enough-for-voexec-to-take-it-as-one"


def _accepted_by(server_port: int, client_ports: set[int]) -> dict[int, int]:
    """The pid of the process holding the server's end of each connection, by client port."""
    inodes: dict[int, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if local_port == server_port and remote_port in client_ports and fields[3] == "01":
            inodes[int(fields[9])] = remote_port
    owners: dict[int, int] = {}
    for process in Path("/proc").glob("[0-9]*"):
        try:
            for descriptor in (process / "fd").iterdir():
                target = os.readlink(descriptor)
                if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                    owners[inodes[int(target[8:-1])]] = int(process.name)
        except OSError:  # a process that ended or is not ours
            continue
    return owners


def _sign_in(connection: http.client.HTTPConnection) -> int:
    connection.request(
        "POST",
        "/sign-in",
        body="token=not-a-token-of-this-voexec&next=/",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    answer = connection.getresponse()
    answer.read()
    return answer.status


def test_two_workers_let_through_the_limit_once_not_once_each(tmp_path: Path) -> None:
    settings = token_settings(TOKEN)
    settings["auth"]["limits"] = {"sign_in": {"requests": LIMIT, "per": "PT1H"}}
    with live_voexec(tmp_path, settings, demo=False, workers=2) as url:
        port = urlsplit(url).port
        assert port is not None
        by_worker: dict[int, list[http.client.HTTPConnection]] = {}
        opened: list[http.client.HTTPConnection] = []
        try:
            for _ in range(64):  # until both workers hold some: the kernel picks the acceptor
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request("GET", "/health")
                answer = connection.getresponse()
                answer.read()
                assert answer.status == 200
                opened.append(connection)
                client_ports = {c.sock.getsockname()[1] for c in opened if c.sock is not None}
                owners = _accepted_by(port, client_ports)
                by_worker = {}
                for c in opened:
                    if c.sock is not None and c.sock.getsockname()[1] in owners:
                        pid = owners[c.sock.getsockname()[1]]
                        by_worker.setdefault(pid, []).append(c)
                if len(by_worker) >= 2 and all(len(cs) >= 2 for cs in by_worker.values()):
                    break
            assert len(by_worker) == 2, f"both workers must answer: {by_worker}"
            # Alternate between the workers: each one alone would let LIMIT through.
            answered: Counter[tuple[int, int]] = Counter()
            rounds = zip(*(itertools.cycle(cs) for cs in by_worker.values()), strict=False)
            for pair in itertools.islice(rounds, 2 * LIMIT):
                for connection, pid in zip(pair, by_worker, strict=True):
                    answered[(pid, _sign_in(connection))] += 1
        finally:
            for connection in opened:
                connection.close()
    statuses = Counter(status for (_, status), n in answered.items() for _ in range(n))
    assert statuses == {401: LIMIT, 429: 3 * LIMIT}, answered
    assert {pid for (pid, status) in answered if status == 401} <= set(by_worker)
    assert all(sum(n for (p, _), n in answered.items() if p == pid) > 0 for pid in by_worker)
