"""A small HTTP/1.1 load generator for the end-to-end broker benches: keep-alive GETs.

Each client is an OS process with one keep-alive connection that sends a request, reads the
whole answer (status line, headers, `Content-Length` bytes) and sends the next; the processes
start together and run for a fixed time. The client does as little as it can per request
(bytes written once, one `recv` loop), so that on a machine with few CPUs most of the time
goes to the server; still, client and server share the CPUs, so the rate is a floor and the
server's CPU time per request (`server_cpu`) is the figure that says what one core serves.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Load:
    """What the clients did."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _request(host: str, port: int, path: str, accept: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: {accept}\r\n\r\n".encode("ascii")


def _read_answer(sock: socket.socket, buffer: bytearray) -> int:
    """Read one whole answer from `sock` (what is left over stays in `buffer`); its status."""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    head = bytes(buffer[:end]).lower()
    status = int(head[9:12])
    marker = head.find(b"content-length:")
    length = int(head[marker + 15 : head.find(b"\r\n", marker)]) if marker >= 0 else 0
    total = end + 4 + length
    while len(buffer) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    del buffer[:total]
    return status


@dataclass(frozen=True)
class _Job:
    host: str
    port: int
    paths: list[str]
    accept: str
    seconds: float
    start: float


def _client(job: _Job, results: multiprocessing.Queue[tuple[int, int, list[float]]]) -> None:
    host, port, paths, accept, seconds, start = (
        job.host,
        job.port,
        job.paths,
        job.accept,
        job.seconds,
        job.start,
    )
    requests = [_request(host, port, path, accept) for path in paths]
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()
    latencies: list[float] = []
    done = errors = 0
    while time.time() < start:
        time.sleep(0.001)
    until = time.perf_counter() + seconds
    i = 0
    while True:
        began = time.perf_counter()
        if began >= until:
            break
        sock.sendall(requests[i % len(requests)])
        status = _read_answer(sock, buffer)
        latencies.append((time.perf_counter() - began) * 1000)
        if status == 200:
            done += 1
        else:
            errors += 1
        i += 1
    sock.close()
    results.put((done, errors, latencies))


def run_load(
    host: str,
    port: int,
    paths: Sequence[str],
    *,
    clients: int = 4,
    seconds: float = 5.0,
    accept: str = "application/json",
) -> Load:
    """GET `paths` in turn from `clients` processes for `seconds`; what they measured."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[tuple[int, int, list[float]]] = context.Queue()
    start = time.time() + 1.0 + 0.1 * clients  # every process connected before anyone sends
    processes = [
        context.Process(
            target=_client,
            args=(_Job(host, port, list(paths), accept, seconds, start), results),
        )
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    gathered = [results.get(timeout=seconds + 60) for _ in processes]
    for process in processes:
        process.join()
    latencies = sorted(ms for _, _, got in gathered for ms in got)
    return Load(
        requests=sum(done for done, _, _ in gathered),
        errors=sum(errors for _, errors, _ in gathered),
        seconds=seconds,
        latencies_ms=latencies,
    )


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time the processes `pids` used so far (Linux `/proc`)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a server's worker processes)."""
    found = [pid]
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for text in child.read_text().split():
            found.extend(process_tree(int(text)))
    return found


def load_average() -> tuple[float, float, float]:
    """The machine's load average (1, 5, 15 minutes)."""
    return os.getloadavg()
