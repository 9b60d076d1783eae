"""The suite: every scenario in order, and `run_suite`, which runs them against one broker.

`SCENARIOS` is the table: id (stable; the JSON and JUnit reports use it), title, the function,
whether it books (and cancels), and whether it fills capacity (only with `--booking`). A
scenario that raises `Unmet` is skipped with that reason; one that raises anything else is a
failed MUST naming the error, so a validator bug or a broker's nonsense never stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from core.time import format_instant
from voexec.validate import booking, older, scenarios
from voexec.validate.checks import Check, Options, Run, Unmet
from voexec.validate.exchange import Credentials, Wire
from voexec.validate.report import Finding, Outcome, Report

__all__ = ["SCENARIOS", "Scenario", "run_suite"]


@dataclass(frozen=True)
class Scenario:
    """One row of the suite."""

    id: str
    title: str
    run: Callable[[Check], None]
    books: bool = False
    fills: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "offers-endpoint", "POST /requests answers an offer set", scenarios.check_offers_endpoint
    ),
    Scenario("json", "JSON request bodies and answers", scenarios.check_json),
    Scenario("yaml", "YAML request bodies and answers", scenarios.check_yaml),
    Scenario("yaml-default", "YAML when the client does not choose", scenarios.check_yaml_default),
    Scenario("see-other", "303 See Other with the offer set's Location", scenarios.check_see_other),
    Scenario("read-back", "Offer sets and sessions read back", scenarios.check_read_back),
    Scenario("kinds", "Answers use the schema's kind URIs", scenarios.check_kinds),
    Scenario("start-range", "Offers start within the requested range", scenarios.check_start_range),
    Scenario("min-max", "Offers meet the minima, respect the maxima", scenarios.check_min_max),
    Scenario(
        "options", "Offers list their allowed updates (meta.options)", scenarios.check_options
    ),
    Scenario(
        "illegal-transitions", "Reject; illegal updates refused", scenarios.check_reject_and_illegal
    ),
    Scenario(
        "no-with-reasons", "Impossible requests: NO with reasons", scenarios.check_no_with_reasons
    ),
    Scenario(
        "unknown-kind", "An unknown kind is answered NO, naming it", scenarios.check_unknown_kind
    ),
    Scenario(
        "structured-errors",
        "Bad input: 4xx naming the field; 404",
        scenarios.check_structured_errors,
    ),
    Scenario(
        "offer-expiry", "Offers expire and cannot be accepted after", scenarios.check_offer_expiry
    ),
    Scenario("older-forms", "Older request forms and paths", older.check_older_forms),
    Scenario(
        "accept-siblings",
        "Accept rejects the siblings; cancel",
        booking.check_accept_siblings,
        books=True,
    ),
    Scenario("direct", "Direct execution (POST /direct)", booking.check_direct, books=True),
    Scenario(
        "capacity-holds",
        "Bookings and held offers reduce capacity",
        booking.check_capacity_holds,
        books=True,
        fills=True,
    ),
    Scenario(
        "concurrent-accepts",
        "Concurrent accepts never exceed capacity",
        booking.check_concurrent_accepts,
        books=True,
        fills=True,
    ),
)


def _selected(scenario: Scenario, options: Options) -> str | None:
    """Why the scenario is not run with these options (None: it is run)."""
    if scenario.fills and not options.booking:
        return "fills the broker's capacity: run with --booking"
    if scenario.books and not options.books:
        return "books (and cancels) a session: not run here"
    return None


def run_suite(
    url: str,
    *,
    credentials: Credentials | None = None,
    options: Options | None = None,
    only: Sequence[str] = (),
    timeout: float = 30.0,
) -> Report:
    """Run the suite against the broker at `url` (the base /requests is under)."""
    options = options or Options()
    wire = Wire(url, credentials or Credentials(), timeout=timeout)
    run = Run(wire, options)
    started = datetime.now(UTC)
    clock = time.perf_counter()
    outcomes = []
    try:
        for scenario in SCENARIOS:
            if only and scenario.id not in only:
                continue
            outcome = Outcome(scenario.id, scenario.title, scenario.books)
            outcomes.append(outcome)
            reason = _selected(scenario, options)
            if reason is None and run.broker_missing:
                reason = f"the broker did not answer: {run.broker_missing}"
            if reason:
                outcome.findings.append(_skipped(reason))
                continue
            _run_one(scenario, Check(run, outcome))
    finally:
        wire.close()
    return Report(
        broker=wire.base,
        started=format_instant(started.replace(microsecond=0)),
        seconds=time.perf_counter() - clock,
        outcomes=outcomes,
    )


def _skipped(reason: str) -> Finding:
    return Finding("skip", "MUST", "not run", reason)


def _run_one(scenario: Scenario, check: Check) -> None:
    started = time.perf_counter()
    try:
        scenario.run(check)
    except Unmet as reason:
        check.skip("prerequisite", str(reason))
    except Exception as error:  # noqa: BLE001 - one scenario's surprise must not stop the suite
        check.record(
            "fail", "MUST", "The scenario ran to its end",
            f"{type(error).__name__}: {error}",
            [len(check.outcome.exchanges) - 1] if check.outcome.exchanges else [],
        )  # fmt: skip
    finally:
        check.outcome.seconds = time.perf_counter() - started
