"""What a validation run found, and its three written forms: text, JSON and JUnit XML.

A `Report` holds one `Outcome` per scenario; an outcome holds `Finding`s, each with its status
(`pass`, `fail`, `warn`, `skip`), the standard's word for it (`MUST`, `SHOULD`, `MAY`), the
requirement in the standard's terms, what was observed, and the exchanges that showed it
(indexes into the outcome's `exchanges`). A scenario's status is its worst finding's. A run
fails (exit status 1) when any `MUST` finding fails; failed `SHOULD`s are reported, not fatal.

The JSON form (`to_json`) is documented in docs/validate.md and kept stable: fields are only
ever added. Pure: builds strings, does no I/O.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from voexec.validate.exchange import Exchange

__all__ = [
    "FORMAT",
    "Finding",
    "Level",
    "Outcome",
    "Report",
    "Status",
    "to_json",
    "to_junit",
    "to_text",
]

Status = Literal["pass", "fail", "warn", "skip"]
Level = Literal["MUST", "SHOULD", "MAY"]
FORMAT: Final = "voexec-validate/1"
"""The JSON report's `format`: changes only if a field changes meaning or goes away."""
_WORST: Final[dict[str, int]] = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}


@dataclass(frozen=True)
class Finding:
    """One requirement checked, and how it went."""

    status: Status
    level: Level
    requirement: str
    observed: str = ""
    exchanges: tuple[int, ...] = ()


@dataclass
class Outcome:
    """One scenario's findings and the exchanges it made."""

    id: str
    title: str
    books: bool
    findings: list[Finding] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> Status:
        """The worst finding's status (`skip` when nothing was checked)."""
        if not self.findings:
            return "skip"
        return max((f.status for f in self.findings), key=_WORST.__getitem__)

    @property
    def level(self) -> Level | None:
        """The strongest word among the failed findings (None when none failed)."""
        failed = {f.level for f in self.findings if f.status == "fail"}
        return next((level for level in ("MUST", "SHOULD", "MAY") if level in failed), None)

    @property
    def must_failed(self) -> bool:
        """Whether a MUST of this scenario failed."""
        return any(f.status == "fail" and f.level == "MUST" for f in self.findings)


@dataclass
class Report:
    """A whole run against one broker."""

    broker: str
    started: str
    seconds: float
    outcomes: list[Outcome]
    version: str = "0.1.0"

    @property
    def counts(self) -> dict[str, int]:
        """Scenarios per status."""
        counted = Counter(outcome.status for outcome in self.outcomes)
        return {status: counted.get(status, 0) for status in ("pass", "fail", "warn", "skip")}

    @property
    def must_failures(self) -> int:
        """Scenarios with a failed MUST."""
        return sum(outcome.must_failed for outcome in self.outcomes)

    @property
    def exit_status(self) -> int:
        """0 when no MUST failed, 1 otherwise."""
        return 1 if self.must_failures else 0


# ------------------------------------------------------------------------- text
_MARK: Final = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "skip": "SKIP"}


def to_text(report: Report, *, verbose: bool = False) -> str:
    """The report for a terminal: one line per scenario, details under those not passed."""
    lines = [f"voexec validate {report.broker}  ({report.started}, {report.seconds:.1f} s)", ""]
    for outcome in report.outcomes:
        level = f" [{outcome.level}]" if outcome.level else ""
        books = " (books)" if outcome.books else ""
        lines.append(f"{_MARK[outcome.status]}{level} {outcome.id}: {outcome.title}{books}")
        if outcome.status == "pass" and not verbose:
            continue
        for finding in outcome.findings:
            if finding.status == "pass" and not verbose:
                continue
            lines.append(f"    {_MARK[finding.status]} {finding.level}: {finding.requirement}")
            if finding.observed:
                lines.append(f"         observed: {finding.observed}")
            for index in finding.exchanges:
                exchange = outcome.exchanges[index]
                lines.append(f"         {exchange.brief()}")
                if exchange.body and finding.status == "fail":
                    lines.append("         | " + exchange.body[:300].replace("\n", "\n         | "))
    counts = report.counts
    lines += [
        "",
        f"{counts['pass']} passed, {counts['fail']} failed ({report.must_failures} on a MUST), "
        f"{counts['warn']} with warnings, {counts['skip']} skipped",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- JSON
def _exchange_json(exchange: Exchange) -> dict[str, Any]:
    return {
        "method": exchange.method,
        "url": exchange.url,
        "request_headers": exchange.request_headers,
        "request_body": exchange.request_body,
        "status": exchange.status,
        "response_headers": exchange.response_headers,
        "body": exchange.body,
        "elapsed_ms": round(exchange.elapsed_ms, 1),
        "error": exchange.error,
    }


def report_dict(report: Report) -> dict[str, Any]:
    """The JSON report as plain data (docs/validate.md describes each field)."""
    return {
        "format": FORMAT,
        "validator": f"voexec {report.version}",
        "broker": report.broker,
        "started": report.started,
        "seconds": round(report.seconds, 2),
        "summary": {**report.counts, "must_failures": report.must_failures},
        "exit_status": report.exit_status,
        "scenarios": [
            {
                "id": outcome.id,
                "title": outcome.title,
                "books": outcome.books,
                "status": outcome.status,
                "level": outcome.level,
                "seconds": round(outcome.seconds, 2),
                "findings": [
                    {
                        "status": finding.status,
                        "level": finding.level,
                        "requirement": finding.requirement,
                        "observed": finding.observed,
                        "exchanges": list(finding.exchanges),
                    }
                    for finding in outcome.findings
                ],
                "exchanges": [_exchange_json(exchange) for exchange in outcome.exchanges],
            }
            for outcome in report.outcomes
        ],
    }


def to_json(report: Report) -> str:
    """The JSON report, indented."""
    return json.dumps(report_dict(report), indent=2) + "\n"


# ------------------------------------------------------------------------- JUnit
def to_junit(report: Report) -> str:
    """JUnit XML: one testsuite, one testcase per scenario.

    A failed MUST or SHOULD is a `<failure>` (its type is the word); warnings are written to
    `<system-out>` of a passing case, so CI shows them without failing; skipped scenarios are
    `<skipped>`.
    """
    counts = report.counts
    suite = ET.Element(
        "testsuite",
        name=f"voexec validate {report.broker}",
        tests=str(len(report.outcomes)),
        failures=str(counts["fail"]),
        errors="0",
        skipped=str(counts["skip"]),
        time=f"{report.seconds:.3f}",
        timestamp=report.started,
    )
    for outcome in report.outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="execution-broker",
            name=f"{outcome.id}: {outcome.title}",
            time=f"{outcome.seconds:.3f}",
        )
        details = []
        for finding in outcome.findings:
            details.append(f"{finding.status.upper()} {finding.level}: {finding.requirement}")
            if finding.observed:
                details.append(f"  observed: {finding.observed}")
            details += [f"  {outcome.exchanges[i].brief()}" for i in finding.exchanges]
        text = "\n".join(details)
        if outcome.status == "fail":
            failed = [f for f in outcome.findings if f.status == "fail"]
            failure = ET.SubElement(
                case,
                "failure",
                type=outcome.level or "SHOULD",
                message="; ".join(f"{f.level}: {f.requirement}" for f in failed)[:1000],
            )
            failure.text = text
        elif outcome.status == "skip":
            reason = outcome.findings[0].observed if outcome.findings else "not run"
            ET.SubElement(case, "skipped", message=reason)
        elif text:
            ET.SubElement(case, "system-out").text = text
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )
