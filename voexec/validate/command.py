"""`voexec validate URL`: run the conformance suite against an Execution Broker, from a shell.

Credentials: `--token TOKEN` (or `VOEXEC_BROKER_TOKEN`) sends a bearer token; `--basic USER`
sends HTTP Basic with the password from `VOEXEC_VALIDATE_PASSWORD`, or asked for on the
terminal, so it stays out of shell histories and process lists. Reports: text on stdout, or
`--json` (stdout), and/or `--junit FILE`. Exit status 0 when no MUST fails, 1 otherwise.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from voexec.validate.exchange import Credentials

# The suite (and httpx under it) is imported when the command runs, not when it is mounted, so
# `voexec --help` and every other command start without it.

__all__ = ["register"]

# Names of environment variables, not secrets.
TOKEN_ENV: Final = "VOEXEC_BROKER_TOKEN"  # noqa: S105
PASSWORD_ENV: Final = "VOEXEC_VALIDATE_PASSWORD"  # noqa: S105


def _credentials(args: argparse.Namespace) -> Credentials:
    from voexec.validate.exchange import Credentials

    if args.basic is not None:
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            password = getpass.getpass(f"password for {args.basic} at {args.url}: ")
        return Credentials(user=args.basic, password=password)
    return Credentials(token=args.token or os.environ.get(TOKEN_ENV) or None)


def _validate(args: argparse.Namespace) -> int:
    from voexec.validate.checks import Options
    from voexec.validate.report import to_json, to_junit, to_text
    from voexec.validate.suite import SCENARIOS, run_suite

    unknown = sorted(set(args.only or ()) - {scenario.id for scenario in SCENARIOS})
    if unknown:
        known = ", ".join(scenario.id for scenario in SCENARIOS)
        sys.stderr.write(
            f"voexec validate: unknown scenario {', '.join(unknown)}; known: {known}\n"
        )
        return 2
    options = Options(booking=args.booking, expiry_wait=args.expiry_wait)
    report = run_suite(
        args.url, credentials=_credentials(args), options=options, only=args.only or (),
        timeout=args.timeout,
    )  # fmt: skip
    if args.junit:
        Path(args.junit).write_text(to_junit(report), encoding="utf-8")
    sys.stdout.write(to_json(report) if args.json else to_text(report, verbose=args.verbose))
    return report.exit_status


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `validate` to the root command."""
    parser = commands.add_parser(
        "validate",
        help="check an IVOA Execution Broker against the standard",
        description=(
            "Run conformance scenarios against the Execution Broker at URL (the base that "
            "/requests, /offersets and /sessions are under, e.g. http://127.0.0.1:8000/broker). "
            "Scenarios that book cancel what they made. Exit status 0 when no MUST fails."
        ),
    )
    parser.add_argument("url", help="the broker's base URL")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--token", help=f"bearer token for writes (default: ${TOKEN_ENV})")
    who.add_argument(
        "--basic", metavar="USER", help=f"HTTP Basic user; password from ${PASSWORD_ENV} or asked"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    parser.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report to FILE")
    parser.add_argument(
        "--booking",
        action="store_true",
        help="also fill capacity: bookings, held offers, concurrent accepts (books, then cancels)",
    )
    parser.add_argument(
        "--expiry-wait",
        type=float,
        default=330.0,
        metavar="SECONDS",
        help="longest wait for an offer to expire (default 330; 0 skips the expiry check)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="ID",
        help="run only this scenario (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP call")
    parser.add_argument("-v", "--verbose", action="store_true", help="show passed checks too")
    parser.set_defaults(func=_validate)
