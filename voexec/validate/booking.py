"""The scenarios that book: each accepts (or runs directly) and cancels what it made.

- `check_accept_siblings` and `check_direct` make one booking each, cancelled at once (run by
  default from the command line; never from the web page);
- `check_capacity_holds` and `check_concurrent_accepts` fill the broker's capacity at one
  instant two days ahead, so they run only when asked (`--booking`): the first measures how
  many sessions of one size fit (booking them one by one until the broker says NO), then
  checks that an offer holds what it offers and that cancelling and rejecting release it; the
  second accepts more sessions than that at once, from several threads, and counts how many
  the broker let through.

Every session made is cancelled and every offer left open is rejected, also when a check
fails half-way.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Final

from core.time import format_instant
from voexec.validate.checks import (
    ACCEPTED_OR_LATER,
    ENDED,
    JSON,
    Check,
    Unmet,
    execution_request,
    messages_of,
    offers_of,
    phase_of,
    uuid_of,
)

__all__ = [
    "check_accept_siblings",
    "check_capacity_holds",
    "check_concurrent_accepts",
    "check_direct",
]

PROBE_LIMIT: Final = 1 << 14
"""Largest number of cores probed for (doubling from 1)."""
CAPACITY: Final = "capacity"
"""The run fact the capacity scenario leaves for the concurrency one."""


def check_accept_siblings(check: Check) -> None:
    """Accepting one offer rejects its siblings; the session can then be cancelled."""
    at, offerset, offers = check.yes_offers(execution_request(check.run))
    chosen = uuid_of(offers[0])
    accepted: list[str] = []
    try:
        if not chosen:
            raise Unmet("the offer has no meta.uuid")
        a_at, answer, a_doc = check.set_phase(chosen, "ACCEPTED")
        ok = check.must(
            answer.status == 200 and phase_of(a_doc) in ACCEPTED_OR_LATER,
            "An update setting phase ACCEPTED on an OFFERED session MUST accept it",
            f"{answer.brief()}, phase {phase_of(a_doc)!r}",
            [a_at],
        )
        if ok:
            accepted.append(chosen)
        siblings = [uuid_of(o) for o in offers[1:] if uuid_of(o)]
        if not siblings:
            check.warn(
                "Accepting an offer SHOULD reject its siblings",
                "the offer set had one offer: nothing to check",
                [at],
                level="SHOULD",
            )
        for sibling in siblings:
            s_at, _, s_doc = check.session(str(sibling))
            check.should(
                phase_of(s_doc) == "REJECTED",
                "Accepting an offer SHOULD set its sibling offers REJECTED",
                f"sibling {sibling} is {phase_of(s_doc)!r}",
                [s_at],
            )
        if ok:
            c_at, cancel, c_doc = check.set_phase(chosen, "CANCELLED")
            check.must(
                cancel.status == 200 and phase_of(c_doc) in ENDED,
                "An accepted session MUST accept an update setting phase CANCELLED",
                f"{cancel.brief()}, phase {phase_of(c_doc)!r}",
                [c_at],
            )
            if phase_of(c_doc) in ENDED:
                accepted.remove(chosen)
    finally:
        check.cleanup(offerset, cancel=accepted, accepted=[chosen] if chosen else [])


def check_direct(check: Check) -> None:
    """POST /direct: 303 to an accepted session; an impossible one is 400 with a FAILED one."""
    request = execution_request(check.run, schedule=False)
    at, exchange, document = check.call(
        "POST", "/direct", document=request, content_type=JSON, accept=JSON
    )
    if exchange.status in {404, 405}:
        check.warn(
            "Direct execution (POST {base}/direct, newest schema; the Working Draft has none)",
            f"not offered: {exchange.brief()}",
            [at],
            level="MAY",
        )
        return
    session = document if isinstance(document, dict) and "phase" in document else None
    location = exchange.response_headers.get("location")
    if session is None and exchange.status == 303 and location:
        at, _, document = check.call("GET", location, accept=JSON)
        session = document if isinstance(document, dict) and "phase" in document else None
    session_id = uuid_of(session)
    try:
        check.should(
            exchange.status == 303 and bool(location),
            "POST {base}/direct SHOULD answer 303 with the session's Location",
            exchange.brief(),
            [at],
        )
        if exchange.status == 400:
            check.warn(
                "A direct execution of an ordinary request is accepted",
                f"refused with 400 (no slot now?): {exchange.brief()}",
                [at],
                level="SHOULD",
            )
        else:
            check.must(
                phase_of(session) in ACCEPTED_OR_LATER,
                "A direct execution MUST answer an accepted session (never an OFFERED one)",
                f"{exchange.brief()}, phase {phase_of(session)!r}",
                [at],
            )
    finally:
        if session_id and phase_of(session) not in ENDED:
            check.set_phase(session_id, "CANCELLED")
    impossible = execution_request(check.run, cores=(1_000_000, 1_000_000), schedule=False)
    f_at, failed, f_doc = check.call(
        "POST", "/direct", document=impossible, content_type=JSON, accept=JSON
    )
    if not check.must(
        failed.status is not None and failed.status < 500,
        "A direct execution the service cannot serve MUST NOT be a server error",
        failed.brief(),
        [f_at],
    ):
        return
    check.should(
        failed.status == 400 and phase_of(f_doc) == "FAILED" and bool(messages_of(f_doc)),
        "A direct execution the service cannot serve SHOULD be 400 with a FAILED session "
        "saying why (the schema's FailedExecutionResponse)",
        f"{failed.brief()}, phase {phase_of(f_doc)!r}, {len(messages_of(f_doc))} messages",
        [f_at],
    )
    if phase_of(f_doc) in ACCEPTED_OR_LATER and uuid_of(f_doc):
        check.set_phase(str(uuid_of(f_doc)), "CANCELLED")


# ------------------------------------------------------------------------- capacity
def _at_instant(check: Check, cores: int) -> dict[str, Any]:
    start = check.run.facts.setdefault(
        "instant",
        (check.run.now() + timedelta(days=2)).replace(minute=7, second=0, microsecond=0),
    )
    window = f"{format_instant(start)}/PT1M"
    return execution_request(check.run, cores=(cores, cores), memory=(1, 1), start=window,
                             duration="PT1H", name="voexec-validate-capacity")  # fmt: skip


def _probe_size(check: Check) -> int | None:
    """The largest power of two of cores the broker offers at the instant (None: not even 1)."""
    size, best = 1, None
    while size <= PROBE_LIMIT:
        _, offerset = check.request_offers(_at_instant(check, size))
        check.cleanup(offerset)
        if offerset.get("result") != "YES":
            break
        best, size = size, size * 2
    return best


def _book(check: Check, cores: int) -> tuple[str | None, Any, int]:
    """Ask for `cores` at the instant and accept the first offer; the session (or None)."""
    at, offerset = check.request_offers(_at_instant(check, cores))
    offers = offers_of(offerset)
    if offerset.get("result") != "YES" or not offers:
        return None, offerset, at
    chosen = uuid_of(offers[0])
    if not chosen:
        return None, offerset, at
    a_at, _, a_doc = check.set_phase(chosen, "ACCEPTED")
    check.cleanup(offerset, accepted=[chosen])
    return (chosen if phase_of(a_doc) in ACCEPTED_OR_LATER else None), offerset, a_at


def check_capacity_holds(check: Check) -> None:
    """Bookings and held offers reduce what is offered; cancelling and rejecting release it."""
    size = _probe_size(check)
    if size is None:
        raise Unmet("the broker offers not even 1 core two days ahead")
    booked: list[str] = []
    held: Any = None
    try:
        last: Any = None
        last_at = 0
        while len(booked) < check.run.options.max_fill:
            session, last, last_at = _book(check, size)
            if session is None:
                break
            booked.append(session)
        if len(booked) >= check.run.options.max_fill:
            check.warn(
                "Bookings reduce the capacity offered at the same instant",
                f"{len(booked)} sessions of {size} cores were booked at one instant and the "
                "broker still offers more: either its capacity is larger, or bookings do not "
                "count (inconclusive; the concurrency scenario is skipped)",
                [last_at],
                level="MUST",
            )
            return
        check.must(
            bool(booked),
            f"A request for {size} cores, offered a moment ago, MUST be bookable",
            "the first booking failed",
            [last_at],
        )
        check.should(
            bool(messages_of(last)),
            "A NO for lack of capacity SHOULD say why",
            "no messages",
            [last_at],
        )
        check.run.facts[CAPACITY] = (size, len(booked))
        if not booked:
            return
        freed = booked.pop()
        check.set_phase(freed, "CANCELLED")
        at, held = check.request_offers(_at_instant(check, size))
        check.should(
            held.get("result") == "YES",
            "Cancelling a session SHOULD release its capacity",
            f"after cancelling one of {len(booked) + 1} sessions, result {held.get('result')!r}",
            [at],
        )
        if held.get("result") != "YES":
            return
        at2, second = check.request_offers(_at_instant(check, size))
        check.cleanup(second)
        check.must(
            second.get("result") == "NO",
            "An offer MUST hold what it offers until it expires: a second request for the "
            "same capacity is answered NO while the first offer is open",
            f"result {second.get('result')!r}",
            [at, at2],
        )
        check.cleanup(held)
        held = None
        at3, third = check.request_offers(_at_instant(check, size))
        check.cleanup(third)
        check.should(
            third.get("result") == "YES",
            "Rejecting an offer SHOULD release what it held",
            f"result {third.get('result')!r}",
            [at3],
        )
    finally:
        if held is not None:
            check.cleanup(held)
        check.cleanup(None, cancel=booked)


def check_concurrent_accepts(check: Check) -> None:
    """Many clients booking at once never get more than the capacity measured one by one."""
    measured = check.run.facts.get(CAPACITY)
    if not measured:
        raise Unmet("capacity was not measured (see the capacity scenario)")
    size, fits = measured
    clients = min(fits + 4, 24)
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda _: _try_book(check, size), range(clients)))
    sessions = [s for s in results if s]
    try:
        really = []
        for session in sessions:
            at, _, doc = check.session(session)
            if phase_of(doc) in ACCEPTED_OR_LATER:
                really.append((session, at))
        check.must(
            len(really) <= fits,
            f"Concurrent accepts MUST NOT book more than the capacity: at most {fits} sessions "
            f"of {size} cores fit at one instant (booked one by one)",
            f"{clients} clients at once, {len(really)} sessions accepted",
            [at for _, at in really],
        )
    finally:
        check.cleanup(None, cancel=sessions)


def _try_book(check: Check, size: int) -> str | None:
    try:
        return _book(check, size)[0]
    except Unmet:
        return None
