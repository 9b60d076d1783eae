"""The report of `bench.bench_accepts`: what one scenario measured, and its Markdown section.

`Measured` holds one scenario's totals and latencies; `section` writes the `## Broker accepts
on PostgreSQL` section of docs/benchmarks.md: how the numbers were taken, two tables, what they
mean (with the comparisons computed from them), and how they compare with `BEFORE`, the same
benchmark run against the code before offer requests stopped locking every platform.
Pure: no I/O. Imports the benchmark's client and server modules for their types only.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from bench import percentile
from bench.accepts_clients import Scenario
from bench.accepts_server import SERVER_SETTINGS, Activity

__all__ = ["BEFORE", "HEADING", "Earlier", "Measured", "Window", "section"]

HEADING: Final = "## Broker accepts on PostgreSQL"


@dataclass(frozen=True)
class Window:
    """The measured window: from the clients' release to the last one's end."""

    seconds: float
    busy: float | None
    """Share of the machine's CPUs not idle (None without /proc/stat)."""
    activity: Activity
    """What the database's connections were doing, sampled."""


@dataclass(frozen=True)
class Measured:
    """One scenario's totals; latencies in milliseconds."""

    scenario: Scenario
    offer_ms: list[float]
    accept_ms: list[float]
    no_capacity: int
    accepted: int
    conflicts: int
    expired: int
    cpu_seconds: float
    """CPU time of the client processes (not of the server) over the window."""
    window: Window

    @property
    def attempted(self) -> int:
        """Accepts tried (every offer request answered YES leads to one)."""
        return len(self.accept_ms)

    @property
    def per_second(self) -> float:
        """Accepts that succeeded, per second of the measured window."""
        return self.accepted / self.window.seconds


@dataclass(frozen=True)
class Earlier:
    """One scenario as an earlier version of the code measured it, in runs of this benchmark."""

    accepts_per_second: tuple[float, ...]
    offer_p99_ms: tuple[float, ...]
    waiting_for_lock: tuple[float, ...]


BEFORE_CODE: Final = "1eacdce"
"""The commit measured for `BEFORE`: offer requests locked every platform and computed their
offers while holding the locks."""
BEFORE: Final[dict[tuple[str, int], Earlier]] = {
    ("pool", 1): Earlier(
        accepts_per_second=(44.9, 43.2), offer_p99_ms=(20.9, 22.9), waiting_for_lock=(0.0, 0.0)
    ),
    ("pool", 2): Earlier(
        accepts_per_second=(46.0, 46.4), offer_p99_ms=(41.5, 43.1), waiting_for_lock=(0.7, 0.8)
    ),
    ("pool", 8): Earlier(
        accepts_per_second=(42.7, 41.4), offer_p99_ms=(188.3, 190.4), waiting_for_lock=(6.7, 6.7)
    ),
    ("pool", 32): Earlier(
        accepts_per_second=(41.5, 36.8),
        offer_p99_ms=(1156.4, 2061.6),
        waiting_for_lock=(29.1, 28.8),
    ),
    ("one small platform", 32): Earlier(
        accepts_per_second=(19.3, 18.7), offer_p99_ms=(99.4, 106.1), waiting_for_lock=(11.3, 11.3)
    ),
}
"""(scenario, clients) -> two runs of `BEFORE_CODE` with this benchmark's defaults (15 s per
pool run, 20 rounds) on the machine above, interleaved with the first runs of the code after
it (load average 0.9 to 12.8 over those runs)."""


def _ms(samples: Sequence[float], fraction: float) -> str:
    return f"{percentile(samples, fraction):.1f} ms" if samples else "-"


def _paragraph(text: str) -> str:
    return textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)


def section(results: Sequence[Measured], facts: Mapping[str, str], load: tuple[str, str]) -> str:
    """The Markdown section for docs/benchmarks.md."""
    durable = facts["fsync"] == "on" and facts["synchronous_commit"] == "on"
    settings = ", ".join(f"`{name}={facts[name]}`" for name in SERVER_SETTINGS)
    server = (
        f"PostgreSQL {facts['version']} on the same machine, over loopback TCP: {settings}. "
        + (
            "Commits wait for the disk (fsync and synchronous_commit on)."
            if durable
            else "This is the throwaway test cluster of `scripts/services/postgres`, which runs "
            "without durability: a commit does not wait for the disk, so these numbers are "
            "bound by CPU and locks; with fsync and synchronous_commit on, every transaction "
            "also waits for its WAL flush (to measure that, start the cluster with "
            '`SERVICES_POSTGRES_OPTIONS="-c fsync=on -c synchronous_commit=on '
            '-c full_page_writes=on"`).'
        )
    )
    paragraphs = [
        f"Machine: as above, 2 CPUs shared with other work. Load average (1, 5, 15 min) before "
        f"the run: {load[0]}; after it: {load[1]} (which includes the benchmark itself).",
        server,
        "Each client is an OS process of its own (multiprocessing with the `spawn` context) "
        "with its own engine (one connection) and `BrokerService`, as separate voexec "
        "processes sharing one database would be: threads in one interpreter would take "
        "turns on the GIL and measure that instead. Clients call the service directly (no "
        "HTTP) and start together once all have connected and warmed up; each scenario runs "
        "on a new, empty database. `offer` is one `request_offers` call, `accept` one "
        "`update_session` to ACCEPTED. An accept is refused as a conflict when another "
        "client accepted that offer first, and as expired when its hold ran out (after 5 "
        "minutes, the default `offer_ttl`). Machine CPU busy is the share of both CPUs "
        "not idle during the run (`/proc/stat`), whoever used it; client CPU is what the "
        "client processes used, per offer request and its accept. The last two columns of the "
        "second table are the mean number of the database's connections, sampled every 0.2 s "
        "from `pg_stat_activity`, waiting for a lock, and idle in a transaction (a "
        "transaction open while its client computes).",
    ]
    lines = [HEADING, "", *(part for text in paragraphs for part in (_paragraph(text), ""))]
    lines += [
        "| scenario | clients | measured | offer requests | NO: no capacity | accepts tried "
        "| succeeded | conflict | expired | **accepts/s** | machine CPU busy | client CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r.scenario.name} | {r.scenario.clients} | {r.window.seconds:.1f} s "
            f"| {len(r.offer_ms):,} | {r.no_capacity:,} | {r.attempted:,} | {r.accepted:,} "
            f"| {r.conflicts:,} | {r.expired:,} | **{r.per_second:.1f}** "
            f"| {_percent(r.window.busy)} | {_cpu_per_request(r)} |"
            for r in results
        ),
        "",
        "| scenario | clients | offer p50 | offer p99 | accept p50 | accept p99 "
        "| waiting for a lock | idle in transaction |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r.scenario.name} | {r.scenario.clients} | {_ms(r.offer_ms, 0.5)} "
            f"| {_ms(r.offer_ms, 0.99)} | {_ms(r.accept_ms, 0.5)} | {_ms(r.accept_ms, 0.99)} "
            f"| {r.window.activity.waiting_for_lock:.1f} "
            f"| {r.window.activity.idle_in_transaction:.1f} |"
            for r in results
        ),
        "",
    ]
    lines += [part for text in _reading(results) for part in (_paragraph(text), "")]
    lines += _comparison(results)
    lines += [_paragraph(_CHECKED), ""]
    return "\n".join(lines)


def _cpu_per_request(result: Measured) -> str:
    return f"{result.cpu_seconds * 1000 / max(len(result.offer_ms), 1):.1f} ms"


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction:.0%}"


def _reading(results: Sequence[Measured]) -> list[str]:
    """What the numbers mean, in paragraphs, with the comparisons computed from them."""
    paragraphs = [
        "What they mean. `pool` asks for one-hour sessions of 2-4 cores on 8 platforms of "
        "64 cores, starting within two hours of a random time in the week ahead, and accepts "
        "one offer of each set. `one small platform` runs rounds in which every client asks "
        "for the same half hour on one platform that fits 4 sessions (4 get an offer, the "
        "others a NO for capacity), then every client accepts one of those 4 offers (4 "
        "succeed, the others are conflicts); its accepts/s is 4 per round, so it says how "
        "long a round of 32 offer requests and 32 accepts on one platform takes.",
        "How the broker locks (`broker/service/offers.py`). An offer request reads the "
        "bookings of the platforms that could serve it and computes its offers without any "
        "lock; then it locks only the platforms its offers are on, reading with the locked rows "
        "how many transactions have taken capacity there (`capacity_taken`). Where no count "
        "changed since its snapshot, the holds are checked against the bookings it read; "
        "otherwise it reads their bookings again and checks against those. It stores the holds "
        "that fit, one statement per table, in that transaction. If another request took the "
        "room in between, it searches again under the locks (and, if the best left is on a "
        "platform it does not hold, once more with every platform that could serve it "
        "locked). An accept shares its platform's lock with other accepts and locks its offer "
        "set first, so that accepting one offer while "
        "another client accepts a sibling cannot deadlock.",
        "The count and the bounded read, measured alternately with the code before them (commit "
        "d8426f6), `pool` with 32 clients for 8 s: 87.2 and 93.3 accepts/s before (14.3 and "
        "13.0 ms of client CPU per offer request and accept; load average 3-26 during the runs), "
        "73.9 and 79.7 now (16.1 ms both; load average 15-26); one client alone, in process: "
        "10.6 ms of CPU per offer request and accept before, 9.9 ms now. With 32 clients on 8 "
        "platforms most counts change between a request's snapshot and its lock, so the second "
        "read stays, and the count costs a statement in the snapshot and an upsert at the "
        "commit: the pool gains nothing from it on PostgreSQL (the bounded read pays where "
        "platforms hold many bookings, see [Broker offers](#broker-offers)). 500 accepts/s is "
        "not reached: both CPUs are busy with about 80.",
    ]
    pools = [r for r in results if r.scenario.mode == "pool"]
    if len(pools) > 1:
        first, last = pools[0], pools[-1]
        activity = last.window.activity
        rates = [r.per_second for r in pools]
        paragraphs.append(
            f"From {first.scenario.clients} to {last.scenario.clients} clients the pool's rate "
            f"goes from {first.per_second:.1f} to {last.per_second:.1f} accepts/s (between "
            f"{min(rates):.1f} and {max(rates):.1f}), the median offer request from "
            f"{_ms(first.offer_ms, 0.5)} to {_ms(last.offer_ms, 0.5)}, the median accept from "
            f"{_ms(first.accept_ms, 0.5)} to {_ms(last.accept_ms, 0.5)}, and the machine's CPUs "
            f"are {_percent(last.window.busy)} busy with {last.scenario.clients} clients. "
            f"Connections still wait for locks ({activity.waiting_for_lock:.1f} on average "
            f"with {last.scenario.clients} clients), but each waits for a short check and "
            "insert, not for another process's search: every pool request's offers land on "
            "the same two platforms (on a tie the platform listed first wins, and these "
            "platforms are alike and mostly empty), so storing holds still takes turns on "
            "those two rows. Beyond that, the clients, PostgreSQL and the machine's other work "
            "share two CPUs."
        )
    if any(r.scenario.mode == "rounds" for r in results):
        paragraphs.append(
            "`one small platform` gains nothing from this: all its requests want the same "
            "platform at the same time, so they take turns on its lock however short the "
            "turns, and a request that finds its offer taken by the time it holds the lock "
            "searches a second time, under the lock."
        )
    return paragraphs


_CHECKED: Final = (
    "After every scenario the database's own rows were checked (`bench/capacity.py`, "
    "`broker/scheduling/audit.py`): at no instant do the bookings and the holds of unexpired "
    "offers on a platform exceed its cores, memory or GPUs, and there is exactly one booking per "
    "accept that succeeded. Bookings are never released during a run (nothing cancels and the "
    "work queue is not run), so the rows at the end are every booking made. A violation fails the"
    " run and publishes nothing. `python -m bench accepts` regenerates this section; it needs "
    "`VOEXEC_TEST_POSTGRES_URL` (see above)."
)


def _comparison(results: Sequence[Measured]) -> list[str]:
    """Before and now, a paragraph and a table, for the scenarios `BEFORE` has (Markdown lines)."""
    rows = []
    for result in results:
        earlier = BEFORE.get((result.scenario.name, result.scenario.clients))
        if earlier is None:
            continue
        rows.append(
            f"| {result.scenario.name} | {result.scenario.clients} "
            f"| {_runs(earlier.accepts_per_second, '')} | **{result.per_second:.1f}** "
            f"| {_runs(earlier.offer_p99_ms, ' ms')} | {_ms(result.offer_ms, 0.99)} "
            f"| {_runs(earlier.waiting_for_lock, '')} "
            f"| {result.window.activity.waiting_for_lock:.1f} |"
        )
    if not rows:
        return []
    intro = (
        f"Before and now. `before` is this benchmark run twice, with its defaults, against "
        f"commit {BEFORE_CODE}, where every offer request locked every platform and computed "
        "its offers while holding the locks, on this machine and on the same day as the first "
        "runs of the code measured above (both runs are given: the machine's other work "
        "varies from run to run); `now` is the run above."
    )
    return [
        _paragraph(intro),
        "",
        "| scenario | clients | accepts/s before | accepts/s now | offer p99 before "
        "| offer p99 now | waiting for a lock before | now |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def _runs(values: Sequence[float], unit: str) -> str:
    return " / ".join(f"{value:.1f}{unit}" for value in values)
