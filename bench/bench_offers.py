"""Broker offers benchmark: one request over 10 platforms holding 10,000 bookings.

Times `broker.scheduling.offers.make_offers` in this process, the pure part of `POST
/broker/requests` (no HTTP, no database): grouping the bookings, one sweep per platform, the slot
searches, and four offers chosen one by one, each held before the next is chosen. The bookings are
1,000 per platform, from 10 minutes to 10 hours long, starting from 10 hours ago to the end of the
7-day horizon, each with 1-8 cores and 1-32 GiB (one in ten on a GPU platform also takes a GPU),
generated from a fixed seed.

Scenarios: the default request (a start window of 2 hours, as `default_start_window`) for a
3-hour session of 16-32 cores and 64 GiB, which is the target (p99 under 20 ms); the same with
a start window as long as the horizon, which makes every booking relevant; a GPU request. A
last scenario sends the default request through `BrokerService.request_offers` over a SQLite
file holding the same bookings: the whole request but HTTP, with reading the bookings from the
database and storing the offer set and its holds (each offer set is rejected, untimed, so that
every run sees the same bookings).

`run()` is what `python -m bench` calls; `python -m bench.bench_offers [--runs N]
[--write-docs]` runs it alone, and `--write-docs` replaces the `## Broker offers` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import percentile, write_sections
from broker import model
from broker.lifecycle import Phase, SessionState
from broker.model import codec
from broker.platforms.simulated import SimulatedPlatform
from broker.scheduling.intervals import Interval
from broker.scheduling.offers import OfferPolicy, make_offers
from broker.scheduling.resources import (
    Booking,
    Demand,
    Gpu,
    GpuDemand,
    GpuShare,
    PlatformSpec,
    Prices,
    Resources,
)
from broker.service import BrokerService
from broker.store.sql import SessionRecord, SqlBrokerStore
from core.clock import ManualClock
from core.db import make_engine
from core.settings import BrokerSettings, Capacity, CostModel, GpuModel, PlatformSettings

HEADING = "## Broker offers"
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
PLATFORMS = 10
BOOKINGS = 10_000
TARGET_P99_MS = 20.0
SERVICE_BEFORE = ("1eacdce", "152 and 154 ms")
"""The last scenario as that commit measured it, for comparison."""


def platforms() -> list[PlatformSpec]:
    """Ten platforms of 256-544 cores; every third one has 8 GPUs; most have prices.

    Sized so that the bookings below keep them about a third to a half busy.
    """
    return [
        PlatformSpec(
            name=f"platform-{index}",
            cores=256 + 32 * index,
            memory=1024.0 + 128 * index,
            gpus=(Gpu(model="A100", memory=80, count=8),) if index % 3 == 0 else (),
            kinds=frozenset({"docker-container", "jupyter-notebook"}),
            prices=Prices(core_hour=0.01 * (1 + index % 4), gib_hour=0.001) if index % 5 else None,
            preparation=timedelta(seconds=30 + 10 * index),
        )
        for index in range(PLATFORMS)
    ]


def bookings(
    specs: list[PlatformSpec], count: int = BOOKINGS, seed: int = 7, now: datetime = NOW
) -> list[Booking]:
    """`count` bookings spread evenly over the platforms and over the horizon from `now`."""
    rng = random.Random(seed)
    made = []
    for number in range(count):
        spec = specs[number % len(specs)]
        start = now + timedelta(minutes=rng.uniform(-600, 7 * 24 * 60))
        gpus = (GpuShare("A100", 1),) if spec.gpus and rng.random() < 0.1 else ()
        made.append(
            Booking(
                platform=spec.name,
                interval=Interval(start, start + timedelta(minutes=rng.uniform(10, 600))),
                resources=Resources(
                    cores=rng.randint(1, 8), memory=float(rng.randint(1, 32)), gpus=gpus
                ),
            )
        )
    return made


def request(window: timedelta, gpus: GpuDemand | None = None) -> Demand:
    """A 3-hour session of 16-32 cores and 64 GiB that may start within `window` from now."""
    return Demand(
        kind="docker-container",
        duration=timedelta(hours=3),
        windows=(Interval(NOW, NOW + window),),
        cores_min=16,
        cores_max=32,
        memory_min=64.0,
        gpus=gpus,
    )


def platform_settings(spec: PlatformSpec) -> PlatformSettings:
    """The configuration that gives `spec` (GPUs, prices, preparation and kinds included)."""
    prices = spec.prices
    return PlatformSettings(
        name=spec.name,
        capacity=Capacity(
            cores=spec.cores,
            memory=spec.memory,
            gpus=[GpuModel(model=g.model, memory=g.memory, count=g.count) for g in spec.gpus],
        ),
        executables=sorted(spec.kinds),
        cost=None
        if prices is None
        else CostModel(core_hour=prices.core_hour, gib_hour=prices.gib_hour, unit=prices.unit),
        preparation=spec.preparation,
    )


def wire_request(window: timedelta) -> model.ExecutionRequest:
    """`request(window)` as a client sends it: a Docker container, 16-32 cores, 64 GiB, 3 h."""
    document = {
        "executable": {
            "kind": model.KINDS + "executable/docker-container.yaml",
            "image": {"locations": ["ghcr.io/example/bench:1.0"]},
        },
        "compute": {
            "kind": model.KINDS + "compute/simple-compute-resource.yaml",
            "cores": {"min": 16, "max": 32},
            "memory": {"min": 64},
        },
        "schedule": {
            "requested": {
                "start": f"{NOW.isoformat()}/{(NOW + window).isoformat()}",
                "duration": "PT3H",
            }
        },
    }
    return codec.decode_request(codec.encode(document, codec.Media.JSON), codec.Media.JSON).value


def stored_broker(folder: Path) -> BrokerService:
    """A broker over a SQLite file in `folder` holding `bookings(platforms())` as bookings."""
    specs = platforms()
    settings = BrokerSettings(platforms=[platform_settings(spec) for spec in specs])
    store = SqlBrokerStore(make_engine(f"sqlite:///{folder / 'broker.db'}"))
    store.migrate()
    broker = BrokerService(
        settings,
        ManualClock(NOW),
        store,
        {p.name: SimulatedPlatform(p) for p in settings.platforms},
    )
    with store.write() as tx:
        for number, booked in enumerate(bookings(specs)):
            identifier = f"00000000-0000-4000-8000-{number:012d}"
            interval = booked.interval
            record = SessionRecord(
                id=identifier,
                offerset_id=None,
                platform=booked.platform,
                resources=booked.resources,
                state=SessionState(
                    session_id=identifier,
                    phase=Phase.ACCEPTED,
                    start=interval.start,
                    end=interval.end,
                ),
                document=model.ScheduledExecutionSession(phase=model.SessionPhase.ACCEPTED),
            )
            tx.add_session(record, start=interval.start, end=interval.end)
            tx.add_booking(identifier, booked)
    return broker


@dataclass(frozen=True)
class Measured:
    """The latency of one scenario, in milliseconds: wall clock, and CPU time of this process.

    CPU time leaves out the time other processes took the CPUs from us, so on a shared machine
    it says what the code costs, and the wall clock what a caller waited.
    """

    scenario: str
    offers: int
    p50: float
    p99: float
    worst: float
    cpu_p50: float
    cpu_p99: float


def measure(scenario: str, demand: Demand, runs: int, warmup: int = 20) -> Measured:
    """Time `make_offers` for one demand against the same platforms and bookings."""
    specs = platforms()
    booked = bookings(specs)
    policy = OfferPolicy()
    result = make_offers(specs, booked, demand, NOW, policy)
    if not result.offers:  # measuring the NO path would flatter the numbers
        raise RuntimeError(f"{scenario}: no offers ({[r.text for r in result.reasons]})")
    return _timed(
        scenario,
        len(result.offers),
        runs,
        warmup,
        call=lambda: make_offers(specs, booked, demand, NOW, policy),
        after=lambda: None,
    )


def measure_service(scenario: str, window: timedelta, runs: int, warmup: int = 20) -> Measured:
    """Time `BrokerService.request_offers` for one request over the stored bookings."""
    request = wire_request(window)
    reject = model.EnumValueUpdate(path="phase", value="REJECTED")
    with tempfile.TemporaryDirectory(prefix="voexec-bench-offers-") as folder:
        broker = stored_broker(Path(folder))
        answers: list[model.OfferSetResponse] = []

        def ask() -> None:
            answers.append(broker.request_offers(request, "http://bench.local/broker"))

        def reject_them() -> None:  # untimed: the next run sees the same bookings
            for offer in answers.pop().offers:
                if offer.meta and offer.meta.uuid:
                    broker.update_session(offer.meta.uuid, reject)

        ask()
        offered = len(answers[0].offers)
        if not offered:
            raise RuntimeError(f"{scenario}: no offers")
        reject_them()
        return _timed(scenario, offered, runs, warmup, call=ask, after=reject_them)


def _timed(
    scenario: str,
    offers: int,
    runs: int,
    warmup: int,
    *,
    call: Callable[[], object],
    after: Callable[[], object],
) -> Measured:
    """Time `call` `runs` times after `warmup` untimed calls; `after` runs untimed after each."""
    for _ in range(warmup):
        call()
        after()
    wall, cpu = [], []
    for _ in range(runs):
        began, began_cpu = time.perf_counter(), time.process_time()
        call()
        cpu.append((time.process_time() - began_cpu) * 1000)
        wall.append((time.perf_counter() - began) * 1000)
        after()
    return Measured(
        scenario=scenario,
        offers=offers,
        p50=percentile(wall, 0.50),
        p99=percentile(wall, 0.99),
        worst=max(wall),
        cpu_p50=percentile(cpu, 0.50),
        cpu_p99=percentile(cpu, 0.99),
    )


def section(results: list[Measured], runs: int) -> str:
    """The Markdown section for docs/benchmarks.md."""
    main = results[0]
    verdict = "meets" if main.p99 < TARGET_P99_MS else "misses"
    cpu_verdict = "meets" if main.cpu_p99 < TARGET_P99_MS else "misses"
    lines = [
        HEADING,
        "",
        f"`make_offers` for one request over {PLATFORMS} platforms holding {BOOKINGS:,} "
        "bookings (1,000 each, over the 7-day horizon),",
        f"default policy (4 offers, strategies earliest, largest, longest, cheapest); {runs} "
        f"runs ({runs // 3} for the second and the last scenario) after 20 warm-up runs, "
        "in process.",
        f"Python {sys.version.split()[0]}, load average {_load()} when it ran. Target: p99 "
        f"under {TARGET_P99_MS:g} ms for the first scenario: wall clock {verdict} it "
        f"({main.p99:.1f} ms), CPU time {cpu_verdict} it ({main.cpu_p99:.1f} ms).",
        "",
        "| scenario | offers | p50 | p99 | slowest | CPU p50 | CPU p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r.scenario} | {r.offers} | {r.p50:.2f} ms | {r.p99:.2f} ms | {r.worst:.2f} ms "
            f"| {r.cpu_p50:.2f} ms | {r.cpu_p99:.2f} ms |"
            for r in results
        ),
        "",
        "The search cost grows with the bookings that overlap the start window plus the session",
        "(a sweep over them), not with the horizon: the second scenario makes all 10,000 count.",
        "The last scenario is the whole request but HTTP, on the embedded database: reading",
        "the bookings that can overlap the start range, the search, then storing the offer set,",
        "its sessions and holds in one write transaction, where the holds are checked again",
        "(`broker.scheduling.audit.holds_fit`). The read walks the index on (platform, end)",
        "only up to the range's end plus the platform's longest booking (`broker_platform.",
        "longest`), through one prebuilt statement, rows as plain tuples decoded once and kept;",
        "under the platform's lock, an unchanged count of the transactions that took capacity",
        "there (`capacity_taken`) lets the check use the bookings already read instead of",
        "reading them again. Before that (commit d8426f6: the index walked from the range's",
        "start to the platform's last booking, about 9,700 entries for 730 rows, read twice",
        "through SQLAlchemy rows) this scenario took 25.4 ms of CPU (p50; 71 ms p99) measured",
        "by hand at load average 9-12, and 13.9 ms (p99 16.3 ms) after the bounded read at the",
        "same load. At commit",
        f"{SERVICE_BEFORE[0]}, which read every live booking of every platform for each request,",
        f"this took {SERVICE_BEFORE[1]} (p50, two runs on this machine, the same day).",
        "The same request end to end over HTTP (`voexec serve`, the real clock): [Broker over",
        "HTTP](#broker-over-http).",
        "",
    ]
    return "\n".join(lines)


def _load() -> str:
    return ", ".join(f"{load:.1f}" for load in os.getloadavg())


def run(runs: int = 300) -> str:
    """Run the benchmark, print the section and return it (Markdown)."""
    results = [
        measure(
            "2-hour start window (the default), 3-hour session", request(timedelta(hours=2)), runs
        ),
        measure("start window = the whole 7-day horizon", request(timedelta(days=7)), runs // 3),
        measure(
            "GPU request (2 x A100 >= 40 GiB), 2-hour window",
            request(timedelta(hours=2), GpuDemand(count_min=2, memory_min=40)),
            runs,
        ),
        measure_service(
            "the first scenario through `BrokerService.request_offers`, SQLite",
            timedelta(hours=2),
            runs // 3,
        ),
    ]
    markdown = section(results, runs)
    print(markdown)
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=300, help="timed runs (default 300)")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    arguments = parser.parse_args()
    markdown = run(arguments.runs)
    if arguments.write_docs:
        write_sections([markdown])


if __name__ == "__main__":
    main()
