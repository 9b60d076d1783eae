"""Broker accepts on PostgreSQL: offer requests and accepts from up to 32 concurrent clients.

Each client is an OS process of its own (multiprocessing, `spawn` context) that builds its own
engine, store and `BrokerService` over one shared PostgreSQL database, as separate voexec
processes would (`bench.accepts_clients`). Threads in one interpreter would serialise the
Python half of each call on the GIL and measure that rather than the database. Calls go
straight to the service (no HTTP): `request_offers`, then `update_session(uuid,
phase=ACCEPTED)` on one of the offers.

Scenarios, each on a fresh throwaway database (created on the server, dropped afterwards,
also when the run fails; `bench.accepts_server`, which also samples `pg_stat_activity` while
the clients run):

- `pool`, with 1, 2, 8 and 32 clients for a fixed time: 8 platforms of 64 cores and 256 GiB;
  each request asks for a one-hour session of 2-4 cores and 8-16 GiB starting within two
  hours of a random instant 1-160 hours ahead; the client accepts one of its offers at random.
  There is room for tens of thousands of such sessions, so accepts mostly succeed.
- `one small platform`, 32 clients in rounds: one platform of 8 cores and 32 GiB, one offer per
  request, sessions of exactly 2 cores and 8 GiB, so four fit at once. In each round every
  client asks for the same half-hour start range (4 get an offer, the others a NO for
  capacity), then every client accepts one of the round's 4 offers (4 succeed, the others are
  refused as conflicts).

After each scenario the capacity invariant is checked from the database's own rows
(`bench.capacity`): at no instant do the bookings (and the holds of unexpired offers) on a
platform exceed its cores or memory, and there is one booking per accept that succeeded. A
violation raises: a run that double-books publishes no numbers.

Needs a PostgreSQL server: `VOEXEC_TEST_POSTGRES_URL` or `--postgres-url`
(`bash scripts/services/postgres start; source .services/env`). `run()` is what
`python -m bench accepts` calls; `python -m bench.bench_accepts [--seconds S] [--rounds N]
[--write-docs]` runs it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from queue import Empty
from threading import BrokenBarrierError
from typing import Final

from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from bench import write_sections
from bench.accepts_clients import (
    UUID_BYTES,
    WAIT_SECONDS,
    ClientPlan,
    ClientResult,
    Scenario,
    client_main,
    one_small_platform,
    pool,
)
from bench.accepts_report import Measured, Window, section
from bench.accepts_server import (
    ActivitySampler,
    ServerUnavailable,
    server_facts,
    throwaway_database,
)
from bench.capacity import committed, overbooked
from broker.platforms.simulated import SimulatedPlatform
from broker.scheduling.resources import BookingKind, PlatformSpec
from broker.service import BrokerService
from broker.store.sql import SqlBrokerStore
from core.clock import SystemClock
from core.db import make_engine

URL_ENV: Final = "VOEXEC_TEST_POSTGRES_URL"
HOW_TO_START: Final = (
    "start one with `bash scripts/services/postgres start; source .services/env` "
    f"(which sets {URL_ENV}), or pass --postgres-url"
)
POOL_CLIENTS: Final = (1, 2, 8, 32)
"""The numbers of clients of the `pool` runs that `python -m bench accepts` publishes."""
MAX_ROUNDS: Final = 75
"""Rounds are two hours apart and must start within the 7-day booking horizon."""


class CapacityViolated(RuntimeError):
    """The database shows more promised than a platform has: the run must not publish."""


def check_invariant(engine: Engine, scenario: Scenario, accepted: int) -> None:
    """Raise unless capacity holds and every accept that succeeded made one booking."""
    platforms = [PlatformSpec.from_settings(platform) for platform in scenario.settings().platforms]
    commitments = committed(engine, datetime.now(UTC))
    problems = overbooked(commitments, platforms)
    bookings = sum(1 for item in commitments if item.kind is BookingKind.BOOKING)
    if bookings != accepted:
        problems.append(f"{bookings} bookings stored for {accepted} accepts that succeeded")
    if problems:
        raise CapacityViolated(
            f"capacity invariant violated in '{scenario.name}' with {scenario.clients} "
            "clients; no numbers are published:\n  " + "\n  ".join(problems)
        )


# --------------------------------------------------------------------------- a scenario
def measure(server_url: str, scenario: Scenario, seconds: float, rounds: int) -> Measured:
    """Run one scenario on a fresh database; raise if a client broke or capacity was exceeded."""
    with throwaway_database(server_url) as url:
        engine = make_engine(url, poolclass=NullPool)
        try:
            # Migrate and create the platform rows once, before the clients race to do it.
            store = SqlBrokerStore(engine)
            store.migrate()
            settings = scenario.settings()
            platforms = {p.name: SimulatedPlatform(p) for p in settings.platforms}
            BrokerService(settings, SystemClock(), store, platforms)
            hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            plans = [
                ClientPlan(url, scenario, index, seconds, rounds, hour + timedelta(hours=2))
                for index in range(scenario.clients)
            ]
            window, collected = _run_clients(plans)
            # The cause first: the other clients then report a broken barrier.
            errors = sorted(
                (result.error for result in collected if result.error),
                key=lambda error: "BrokenBarrierError" in error,
            )
            if errors:
                raise RuntimeError("clients failed:\n  " + "\n  ".join(errors))
            accepted = sum(result.accepted for result in collected)
            check_invariant(engine, scenario, accepted)
        finally:
            engine.dispose()
    return Measured(
        scenario=scenario,
        offer_ms=[ms for result in collected for ms in result.offer_ms],
        accept_ms=[ms for result in collected for ms in result.accept_ms],
        no_capacity=sum(result.no_capacity for result in collected),
        accepted=accepted,
        conflicts=sum(result.conflicts for result in collected),
        expired=sum(result.expired for result in collected),
        cpu_seconds=sum(result.cpu_seconds for result in collected),
        window=window,
    )


def _run_clients(plans: Sequence[ClientPlan]) -> tuple[Window, list[ClientResult]]:
    """Start one process per plan, release them together, and collect what they measured.

    Every process is gone when this returns, also after a failure.
    """
    context = multiprocessing.get_context("spawn")
    count = len(plans)
    ready, step = context.Barrier(count + 1), context.Barrier(count)
    slots = context.Array("c", count * UUID_BYTES)
    results: Queue[ClientResult] = context.Queue()
    processes = [
        context.Process(target=client_main, args=(plan, ready, step, slots, results))
        for plan in plans
    ]
    try:
        for process in processes:
            process.start()
        sampler = ActivitySampler(plans[0].database_url)
        _wait_for_release(ready, step, processes)
        released, cpu_before = time.monotonic(), _cpu_times()
        sampler.start()
        try:
            collected = _collect(results, processes, ready, step)
        finally:
            activity = sampler.stop()
        busy = _busy_since(cpu_before)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()
    finished = [result.finished_at for result in collected if not result.error]
    seconds = max(finished) - released if finished else 0.0
    return Window(seconds, busy, activity), collected


def _wait_for_release(ready: Barrier, step: Barrier, processes: Sequence[BaseProcess]) -> None:
    """Wait at the start barrier with the clients; break it if a client dies before it.

    A client that fails in Python breaks the barrier itself; one that dies before it runs any
    of our code (say, an import error under `spawn`) cannot, so it is watched for here.
    """
    waiter = threading.Thread(target=_wait_at, args=(ready,), daemon=True)
    waiter.start()
    while waiter.is_alive():
        waiter.join(timeout=0.5)
        if waiter.is_alive() and any(process.exitcode is not None for process in processes):
            ready.abort()
            step.abort()


def _wait_at(barrier: Barrier) -> None:
    with contextlib.suppress(BrokenBarrierError):  # the clients' results say why
        barrier.wait(WAIT_SECONDS)


def _collect(
    results: Queue[ClientResult],
    processes: Sequence[BaseProcess],
    ready: Barrier,
    step: Barrier,
) -> list[ClientResult]:
    """Every client's result; a client that exited without one gets an error result."""
    collected: dict[int, ClientResult] = {}
    suspects: set[int] = set()
    quiet_since = time.monotonic()
    while len(collected) < len(processes):
        try:
            result = results.get(timeout=1.0)
        except Empty:
            # Exited and still silent after a whole second of an empty queue: it died.
            dead = {
                index
                for index, process in enumerate(processes)
                if process.exitcode is not None and index not in collected
            }
            for index in dead & suspects:
                code = processes[index].exitcode
                collected[index] = ClientResult(index, error=f"client {index}: exited {code}")
                ready.abort()
                step.abort()
            suspects = dead
            if time.monotonic() - quiet_since > WAIT_SECONDS:
                raise RuntimeError(f"{len(processes) - len(collected)} clients hung") from None
            continue
        collected[result.index] = result
        quiet_since = time.monotonic()
    return [collected[index] for index in sorted(collected)]


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs since boot, from /proc/stat; None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    return fields[3] + fields[4], sum(fields[:8])


def _busy_since(before: tuple[int, int] | None) -> float | None:
    after = _cpu_times()
    if before is None or after is None or after[1] == before[1]:
        return None
    return 1 - (after[0] - before[0]) / (after[1] - before[1])


def _load() -> str:
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


# --------------------------------------------------------------------------- entry points
def postgres_url(given: str | None = None) -> str:
    """The server to measure: `given`, else `VOEXEC_TEST_POSTGRES_URL`.

    Raises:
        ServerUnavailable: neither is set.
    """
    url = (given or os.environ.get(URL_ENV, "")).strip()
    if not url:
        raise ServerUnavailable(f"no PostgreSQL server: {URL_ENV} is not set; {HOW_TO_START}")
    return url


def run(
    postgres: str | None = None,
    *,
    seconds: float = 15.0,
    rounds: int = 20,
    wide: int = 32,
    pools: Sequence[int] = POOL_CLIENTS,
    small: bool = True,
) -> str:
    """Run the scenarios, print the section and return it (Markdown).

    Args:
        postgres: the server (default: `VOEXEC_TEST_POSTGRES_URL`).
        seconds: how long each `pool` run lasts.
        rounds: how many rounds `one small platform` runs.
        wide: how many clients `one small platform` has.
        pools: the numbers of clients of the `pool` runs.
        small: whether to run `one small platform`.
    """
    server = postgres_url(postgres)
    try:
        facts = server_facts(server)
    except ServerUnavailable as error:
        raise ServerUnavailable(f"{error}; {HOW_TO_START}") from None
    before = _load()
    scenarios = [pool(clients) for clients in pools]
    if small:
        scenarios.append(one_small_platform(wide))
    results = []
    for scenario in scenarios:
        print(f"{scenario.name}, {scenario.clients} clients ...", flush=True)
        results.append(measure(server, scenario, seconds, rounds))
    markdown = section(results, facts, (before, _load()))
    print(markdown)
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.bench_accepts`: run, print, and with `--write-docs` update the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--postgres-url", help=f"the server (default: ${URL_ENV})")
    parser.add_argument("--seconds", type=float, default=15.0, help="per pool run (default 15)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=20,
        choices=range(1, 76),
        metavar="1-75",
        help="rounds on the small platform (default 20)",
    )
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=list(POOL_CLIENTS),
        metavar="N",
        help="clients of each pool run (default: %(default)s)",
    )
    parser.add_argument(
        "--no-small", action="store_true", help="skip the 'one small platform' scenario"
    )
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    arguments = parser.parse_args(argv)
    try:
        markdown = run(
            arguments.postgres_url,
            seconds=arguments.seconds,
            rounds=arguments.rounds,
            pools=arguments.clients,
            small=not arguments.no_small,
        )
    except ServerUnavailable as error:
        print(error, file=sys.stderr)
        return 2
    if arguments.write_docs:
        write_sections([markdown])
    return 0


if __name__ == "__main__":
    sys.exit(main())
