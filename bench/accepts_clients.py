"""The client side of `bench.bench_accepts`: scenarios, and one client process's loop.

A client is an OS process started with the `spawn` context: it builds its own engine (one
connection), store and `BrokerService` over the benchmark's database, warms up, waits at a
barrier for the others, then either runs free for a fixed time (`pool`: ask for offers, accept
one of its own) or in lockstep rounds (`rounds`: every client asks for the same start range,
publishes the offer it got in shared memory, then every client accepts one of the round's
offers). It times each call, counts NO answers and refused accepts by cause, and puts a
`ClientResult` on the results queue, with `error` set when anything unexpected happened.

Everything handed to a client is plain, picklable data. Imports the broker's service, store
and simulated platform; no web layer.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any, Final, Literal
from uuid import UUID

from broker import model
from broker.model import codec
from broker.platforms.simulated import SimulatedPlatform
from broker.service import BrokerService, IllegalUpdate
from broker.store.sql import SqlBrokerStore
from core.clock import SystemClock
from core.db import make_engine
from core.settings import BrokerSettings, settings_from_mapping

__all__ = [
    "UUID_BYTES",
    "WAIT_SECONDS",
    "ClientPlan",
    "ClientResult",
    "Scenario",
    "client_main",
    "execution_request",
    "one_small_platform",
    "pool",
]

BASE_URL: Final = "http://bench.local/broker"
ACCEPT: Final = model.EnumValueUpdate(path="phase", value="ACCEPTED")
REJECT: Final = model.EnumValueUpdate(path="phase", value="REJECTED")
NO_CAPACITY: Final = "urn:voexec:no-capacity"
UUID_BYTES: Final = 36
WAIT_SECONDS: Final = 300.0
"""Longest wait at a barrier or for a result: spawning 32 interpreters on a busy machine."""
POOL_WINDOW: Final = timedelta(hours=2)
"""A pool request's start range (the broker's default `default_start_window`)."""
ROUND_SPACING: Final = timedelta(hours=2)
"""Distance between the start ranges of two rounds: their one-hour sessions never overlap."""
ROUND_WINDOW: Final = timedelta(minutes=30)
"""A round's start range: every one-hour session starting in it covers its last half hour."""

Mode = Literal["pool", "rounds"]


@dataclass(frozen=True)
class Scenario:
    """What the clients ask for and where (plain data: it is pickled to every client)."""

    name: str
    mode: Mode
    clients: int
    platforms: tuple[tuple[str, int, float], ...]
    """(name, cores, GiB) of each platform."""
    cores: tuple[int, int]
    memory: tuple[int, int]
    """GiB (the wire schema takes whole GiB)."""
    max_offers: int

    def settings(self) -> BrokerSettings:
        """The broker settings every client (and the set-up) builds its service from."""
        platforms = [
            {
                "name": name,
                "capacity": {"cores": cores, "memory": memory},
                "executables": ["docker-container"],
            }
            for name, cores, memory in self.platforms
        ]
        broker = {"platforms": platforms, "max_offers": self.max_offers}
        return settings_from_mapping({"broker": broker}).broker


def pool(clients: int) -> Scenario:
    """`clients` clients on 8 roomy platforms (see the module docstring)."""
    platforms = tuple((f"pool-{index}", 64, 256.0) for index in range(8))
    return Scenario("pool", "pool", clients, platforms, (2, 4), (8, 16), max_offers=4)


def one_small_platform(clients: int) -> Scenario:
    """`clients` clients fighting over one platform that fits four sessions at once."""
    return Scenario(
        "one small platform", "rounds", clients, (("small", 8, 32.0),), (2, 2), (8, 8), 1
    )


@dataclass(frozen=True)
class ClientPlan:
    """One client's orders: the database, the scenario, how long or how many rounds."""

    database_url: str
    scenario: Scenario
    index: int
    seconds: float
    rounds: int
    first_round: datetime
    """Start of round 0's start range, the same for every client."""


@dataclass
class ClientResult:
    """What one client measured (milliseconds) and counted; `error` when it broke."""

    index: int
    offer_ms: list[float] = field(default_factory=list)
    accept_ms: list[float] = field(default_factory=list)
    no_capacity: int = 0
    accepted: int = 0
    conflicts: int = 0
    expired: int = 0
    cpu_seconds: float = 0.0
    finished_at: float = 0.0
    """`time.monotonic()` when it stopped (one clock for every process on Linux)."""
    error: str | None = None


def execution_request(
    scenario: Scenario, start: datetime, window: timedelta
) -> model.ExecutionRequest:
    """A one-hour docker-container request of the scenario's size, starting in the window."""

    def instant(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    document = {
        "executable": {
            "kind": model.KINDS + "executable/docker-container.yaml",
            "meta": {"name": "bench"},
            "image": {"locations": ["ghcr.io/example/bench:1.0"]},
        },
        "compute": {
            "kind": model.KINDS + "compute/simple-compute-resource.yaml",
            "cores": {"min": scenario.cores[0], "max": scenario.cores[1]},
            "memory": {"min": scenario.memory[0], "max": scenario.memory[1]},
        },
        "schedule": {
            "requested": {
                "start": f"{instant(start)}/{instant(start + window)}",
                "duration": "PT1H",
            }
        },
    }
    encoded = codec.encode(document, codec.Media.JSON)
    return codec.decode_request(encoded, codec.Media.JSON).value


class _Client:
    """One client's broker, with the timing and counting around its two calls."""

    def __init__(self, plan: ClientPlan, result: ClientResult) -> None:
        settings = plan.scenario.settings()
        self.engine = make_engine(plan.database_url, pool_size=1, max_overflow=0)
        platforms = {p.name: SimulatedPlatform(p) for p in settings.platforms}
        self.clock = SystemClock()
        self.broker = BrokerService(
            settings,
            self.clock,
            SqlBrokerStore(self.engine),
            platforms,
            worker_id=f"bench-{plan.index}",
        )
        self.result = result

    def offer(self, request: model.ExecutionRequest) -> list[UUID]:
        """Ask for offers (timed); the UUIDs offered, none after a NO for capacity."""
        began = time.perf_counter()
        answer = self.broker.request_offers(request, BASE_URL)
        self.result.offer_ms.append((time.perf_counter() - began) * 1000)
        offered = [offer.meta.uuid for offer in answer.offers if offer.meta and offer.meta.uuid]
        if not offered:
            messages = answer.meta.messages if answer.meta else []
            errors = [m for m in messages if m.level is model.MessageLevel.ERROR]
            if not errors or any(m.kind != NO_CAPACITY for m in errors):
                # A NO for anything but capacity means the benchmark's request is wrong.
                raise RuntimeError(f"unexpected NO: {[m.message for m in errors]}")
            self.result.no_capacity += 1
        return offered

    def accept(self, offer: UUID) -> None:
        """Accept one offer (timed), counting a refusal as a conflict or an expiry."""
        began = time.perf_counter()
        try:
            self.broker.update_session(offer, ACCEPT)
        except IllegalUpdate as refusal:
            if refusal.phase is model.SessionPhase.EXPIRED:
                self.result.expired += 1
            else:  # someone else accepted it (or a sibling) first
                self.result.conflicts += 1
        else:
            self.result.accepted += 1
        finally:
            self.result.accept_ms.append((time.perf_counter() - began) * 1000)

    def warm_up(self, scenario: Scenario, start: datetime) -> None:
        """One untimed request, its offers rejected: connections and code paths warm."""
        answer = self.broker.request_offers(
            execution_request(scenario, start, POOL_WINDOW), BASE_URL
        )
        for offer in answer.offers:
            if offer.meta and offer.meta.uuid:
                self.broker.update_session(offer.meta.uuid, REJECT)


def _pool_loop(client: _Client, plan: ClientPlan) -> None:
    rng = random.Random(plan.index)
    deadline = time.monotonic() + plan.seconds
    while time.monotonic() < deadline:
        start = client.clock.now() + timedelta(minutes=rng.uniform(60, 160 * 60))
        offered = client.offer(execution_request(plan.scenario, start, POOL_WINDOW))
        if offered:
            client.accept(rng.choice(offered))


def _rounds_loop(client: _Client, plan: ClientPlan, step: Barrier, slots: Any) -> None:
    """Every round: all ask for the same range, publish their offer, all accept one of them.

    `slots` is a shared `multiprocessing.Array("c")` with one 36-byte UUID slot per client.
    """
    for number in range(plan.rounds):
        start = plan.first_round + number * ROUND_SPACING
        offered = client.offer(execution_request(plan.scenario, start, ROUND_WINDOW))
        mine = str(offered[0]).encode() if offered else b"\0" * UUID_BYTES
        slots[plan.index * UUID_BYTES : (plan.index + 1) * UUID_BYTES] = mine
        step.wait(WAIT_SECONDS)
        published = bytes(slots[:])
        everyone = [
            UUID(chunk.decode())
            for chunk in (
                published[i : i + UUID_BYTES] for i in range(0, len(published), UUID_BYTES)
            )
            if chunk.strip(b"\0")
        ]
        if everyone:
            client.accept(everyone[plan.index % len(everyone)])
        step.wait(WAIT_SECONDS)  # nobody overwrites a slot before everyone has read it


def client_main(
    plan: ClientPlan, ready: Barrier, step: Barrier, slots: Any, results: Queue[ClientResult]
) -> None:
    """A client process: build a broker, warm up, wait for the others, run, report."""
    result = ClientResult(plan.index)
    try:
        client = _Client(plan, result)
        try:
            warm_start = plan.first_round + (plan.rounds + 1) * ROUND_SPACING
            client.warm_up(plan.scenario, warm_start)
            ready.wait(WAIT_SECONDS)
            began_cpu = time.process_time()
            if plan.scenario.mode == "pool":
                _pool_loop(client, plan)
            else:
                _rounds_loop(client, plan, step, slots)
            result.cpu_seconds = time.process_time() - began_cpu
            result.finished_at = time.monotonic()
        finally:
            client.engine.dispose()
    except Exception as error:  # noqa: BLE001 - reported to the parent, which fails the run
        result.error = f"client {plan.index}: {type(error).__name__}: {error}"
        ready.abort()
        step.abort()
    results.put(result)
