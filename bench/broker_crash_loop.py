"""Kill -9 loop: the broker killed during bursts of accepts and platform calls loses nothing.

`python -m bench.broker_crash_loop [--rounds N] [--workers N] [--clients N] [--database D]`
(a script, not a `bench_` module: it checks, it does not time). Each round starts
`voexec serve --workers N` over one database with two small simulated platforms (8 cores
each, so holds and accepts contend), lets client threads request offers, accept one and
sometimes cancel it for a few seconds, and kills the server's whole process group with
SIGKILL at a random moment of the burst: mid-transaction, mid-platform-call, mid-answer.
After each kill, straight from the database:

- the capacity audit (`bench.capacity`, `broker.scheduling.audit`) finds nothing promised
  twice;
- every session whose accept was answered 200 is stored and accepted (not OFFERED, REJECTED
  or EXPIRED), and every cancel answered 200 stays CANCELLED.

Sessions are short (20 s, starting within 30 s) and offers expire after 30 s, so platform calls
(prepare, start, release) and expiries happen during the bursts. After the last round the
server runs once more, unkilled, until every session has passed its offered end and every offer
its expiry: each accept answered 200 must reach COMPLETED (CANCELLED when it was cancelled),
within a generous bound, and every other stored session must have ended (an accept whose
answer a kill cut off runs as well; an offer is REJECTED or EXPIRED). Any violation ends the
script with status 1 and says which.

`--database sqlite` (the default) uses one SQLite file in a temporary folder; `--database
postgres` a throwaway database (created, then dropped) on the PostgreSQL server named by
`--postgres-url` or `VOEXEC_TEST_POSTGRES_URL`, which every process of the server shares.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import yaml
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench import ROOT
from bench.bench_broker_http import ACCEPT, JSON, _free_port, _offer_ids
from bench.capacity import committed, overbooked
from broker import model
from broker.scheduling.resources import PlatformSpec
from core.db import make_engine, throwaway_database
from core.settings import BrokerSettings, Capacity, PlatformSettings, SimulatedBehaviour

CANCEL = json.dumps({"kind": "uri:enum-value-update", "path": "phase", "value": "CANCELLED"})
DURATION = timedelta(seconds=20)
OFFER_TTL = timedelta(seconds=30)
"""Short, so that the offers left open at a kill expire during the last, unkilled run."""
ENDED = frozenset({"COMPLETED", "CANCELLED", "FAILED", "REJECTED", "EXPIRED"})
ACCEPTED_PHASES = frozenset(
    {"ACCEPTED", "WAITING", "PREPARING", "AVAILABLE", "RUNNING", "RELEASING", "COMPLETED"}
)


def broker_settings() -> BrokerSettings:
    """Two small simulated platforms that prepare and release quickly."""
    return BrokerSettings(
        platforms=[
            PlatformSettings(
                name=name,
                capacity=Capacity(cores=8, memory=32),
                preparation=timedelta(seconds=2),
                simulated=SimulatedBehaviour(
                    prepare=timedelta(seconds=1), release=timedelta(seconds=1)
                ),
            )
            for name in ("left", "right")
        ],
        held_offersets_per_requester=0,
        max_offers=2,
        offer_ttl=OFFER_TTL,
    )


@dataclass
class Ledger:
    """What the clients were told: accepts and cancels answered 200, and cancels asked for."""

    accepted: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    cancelling: set[str] = field(default_factory=set)
    """Cancels sent, answered or not: one a kill cut off may or may not have been committed."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def _request() -> bytes:
    now = datetime.now(UTC)
    document = {
        "executable": {
            "kind": model.KINDS + "executable/docker-container.yaml",
            "image": {"locations": ["ghcr.io/example/crash:1.0"]},
        },
        "compute": {
            "kind": model.KINDS + "compute/simple-compute-resource.yaml",
            "cores": {"min": 1, "max": 2},
            "memory": {"min": 1, "max": 2},
        },
        "schedule": {
            "requested": {
                "start": f"{now:%Y-%m-%dT%H:%M:%SZ}/PT30S",
                "duration": f"PT{int(DURATION.total_seconds())}S",
            }
        },
    }
    return json.dumps(document).encode()


def _client(port: int, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request(
                "POST",
                "/broker/requests",
                body=_request(),
                headers={"Content-Type": JSON, "Accept": JSON},
            )
            answer = connection.getresponse()
            document = json.loads(answer.read() or b"{}")
            ids = _offer_ids(document) if answer.status == 303 else []
            if not ids:
                time.sleep(0.05)
                continue
            chosen = rng.choice(ids)
            connection.request(
                "POST",
                f"/broker/sessions/{chosen}",
                body=ACCEPT,
                headers={"Content-Type": JSON, "Accept": JSON},
            )
            answer = connection.getresponse()
            answer.read()
            if answer.status == 200:
                with ledger.lock:
                    ledger.accepted.add(chosen)
                if rng.random() < 0.2:
                    with ledger.lock:
                        ledger.cancelling.add(chosen)
                    connection.request(
                        "POST",
                        f"/broker/sessions/{chosen}",
                        body=CANCEL,
                        headers={"Content-Type": JSON, "Accept": JSON},
                    )
                    answer = connection.getresponse()
                    answer.read()
                    if answer.status == 200:
                        with ledger.lock:
                            ledger.cancelled.add(chosen)
        except (OSError, http.client.HTTPException, ValueError):
            time.sleep(0.05)  # the server was killed, or is not up yet


def _start(settings: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "voexec", "serve", "--config", str(settings)]
    command += ["--port", str(port), "--workers", str(workers)]
    log = (settings.parent / "serve.log").open("ab")
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    return process
            except OSError:
                time.sleep(0.2)
        tail = (settings.parent / "serve.log").read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError("voexec serve did not start:\n" + "\n".join(tail))
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        raise


def _phases(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, phase FROM broker_session")).all()
    return {row.id: row.phase for row in rows}


def _audit(engine: Engine, specs: Sequence[PlatformSpec], ledger: Ledger) -> list[str]:
    problems = overbooked(committed(engine, datetime.now(UTC)), specs)
    phases = _phases(engine)
    for uuid in sorted(ledger.accepted):
        phase = phases.get(uuid)
        if uuid in ledger.cancelled:
            if phase != "CANCELLED":
                problems.append(f"session {uuid}: cancelled, but stored as {phase}")
        elif phase not in ACCEPTED_PHASES and not (
            uuid in ledger.cancelling and phase == "CANCELLED"
        ):
            problems.append(f"session {uuid}: accepted, but stored as {phase}")
    return problems


def _ends(phases: dict[str, str], ledger: Ledger) -> list[str]:
    """What the last run left wrong: a session not ended, or not ended as its answers said.

    An accept answered 200 ends COMPLETED (CANCELLED when a cancel was answered 200; either
    when a kill cut off the cancel's answer). An accept whose answer a kill cut off ends
    COMPLETED or CANCELLED too (it was committed), an offer never accepted ends REJECTED or
    EXPIRED; nothing ends FAILED (the simulated platforms never fail).
    """
    problems = []
    for uuid, phase in sorted(phases.items()):
        if uuid in ledger.accepted:
            if uuid in ledger.cancelled:
                wanted = {"CANCELLED"}
            elif uuid in ledger.cancelling:  # the cancel's answer was cut off
                wanted = {"COMPLETED", "CANCELLED"}
            else:
                wanted = {"COMPLETED"}
            if phase not in wanted:
                problems.append(f"session {uuid}: ended {phase}, not {' or '.join(wanted)}")
        elif phase not in ENDED - {"FAILED"}:
            problems.append(f"session {uuid}: ended {phase}")
    problems += [f"session {uuid}: accepted, not stored" for uuid in ledger.accepted - set(phases)]
    return problems


def run(
    rounds: int, workers: int, clients: int, burst: float, postgres_url: str | None = None
) -> int:
    """Run the loop; the number of problems found (0: all kept).

    `postgres_url`: a PostgreSQL server to run on (in a throwaway database); None: SQLite.
    """
    with tempfile.TemporaryDirectory(prefix="voexec-crash-") as folder_name:
        folder = Path(folder_name)
        if postgres_url is None:
            (folder / "data").mkdir()
            url = f"sqlite:///{folder / 'data' / 'voexec.db'}"
            return _run(folder, url, rounds=rounds, workers=workers, clients=clients, burst=burst)
        with throwaway_database(postgres_url, "voexec_crash") as url:
            return _run(folder, url, rounds=rounds, workers=workers, clients=clients, burst=burst)


def _run(folder: Path, url: str, *, rounds: int, workers: int, clients: int, burst: float) -> int:
    settings_model = broker_settings()
    specs = [PlatformSpec.from_settings(p) for p in settings_model.platforms]
    ledger = Ledger()
    problems: list[str] = []
    settings = folder / "voexec.yaml"
    document = {
        "data_dir": str(folder / "data"),
        "log_level": "WARNING",
        "vocabularies": {"offline": True},
        "auth": {"limits": {"enabled": False}},
        "database": {"url": url},
        "broker": json.loads(json.dumps(_plain(settings_model))),
    }
    settings.write_text(yaml.safe_dump(document), encoding="utf-8")
    port = _free_port()
    engine = make_engine(url)
    started = time.monotonic()
    try:
        for number in range(1, rounds + 1):
            process = _start(settings, port, workers)
            stop = threading.Event()
            threads = [
                threading.Thread(target=_client, args=(port, ledger, stop, number * 100 + i))
                for i in range(clients)
            ]
            for thread in threads:
                thread.start()
            try:
                time.sleep(random.uniform(burst / 2, burst))
            finally:
                os.killpg(process.pid, signal.SIGKILL)  # the whole group: supervisor and workers
                process.wait(30)
                stop.set()
            for thread in threads:
                thread.join(60)
            found = _audit(engine, specs, ledger)
            print(
                f"round {number}: killed; {len(ledger.accepted)} accepted so far, "
                f"{len(ledger.cancelled)} cancelled; problems: {len(found)}; "
                f"load {_load()}",
                flush=True,
            )
            problems += [f"round {number}: {problem}" for problem in found]
        # Once more, unkilled, until every session has passed its offered end and every offer
        # its expiry: each stored session must then have ended.
        process = _start(settings, port, workers)
        try:
            deadline = time.time() + (DURATION + OFFER_TTL).total_seconds() + 120
            while time.time() < deadline:
                phases = _phases(engine)
                if all(phase in ENDED for phase in phases.values()):
                    break
                time.sleep(1)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
        phases = _phases(engine)
        problems += _ends(phases, ledger)
        problems += _audit(engine, specs, ledger)
    finally:
        engine.dispose()
    ran = {uuid for uuid, phase in phases.items() if phase in ("COMPLETED", "CANCELLED")}
    print(
        f"{engine.dialect.name}: {rounds} kills, {len(phases)} sessions stored, "
        f"{len(ledger.accepted)} accepts answered ({len(ledger.cancelled)} then cancelled), "
        f"{len(ran - ledger.accepted)} accepted with the answer lost to a kill, "
        f"{len(ran)} ran to COMPLETED or CANCELLED: {len(problems)} problems; "
        f"{time.monotonic() - started:.0f} s; load {_load()}"
    )
    for problem in problems:
        print(f"  {problem}")
    return len(problems)


def _load() -> str:
    """The load average (1, 5, 15 minutes), as `/proc/loadavg` says it."""
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3])
    except OSError:
        return "unknown"


def _plain(settings: BrokerSettings) -> object:
    return msgspec.to_builtins(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.broker_crash_loop`: 0 when nothing was lost, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=6, help="kills (default 6)")
    parser.add_argument("--workers", type=int, default=2, help="server workers (default 2)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--burst", type=float, default=4.0, help="most seconds before a kill")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="sqlite (a file, the default) or postgres (a throwaway database)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("VOEXEC_TEST_POSTGRES_URL", ""),
        help="the PostgreSQL server (default: VOEXEC_TEST_POSTGRES_URL)",
    )
    arguments = parser.parse_args(argv)
    # Stopped from outside: end as on Ctrl-C, killing the server and dropping the database.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    postgres_url: str | None = None
    if arguments.database == "postgres":
        if not arguments.postgres_url:
            parser.error("--database postgres needs --postgres-url or VOEXEC_TEST_POSTGRES_URL")
        postgres_url = arguments.postgres_url
    found = run(
        arguments.rounds, arguments.workers, arguments.clients, arguments.burst, postgres_url
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
