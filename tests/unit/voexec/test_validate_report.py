"""The validator's report: a scenario's status is its worst finding, and only a MUST fails a run."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from voexec.validate.report import Finding, Outcome, Report, to_junit


def _report(*findings: Finding) -> Report:
    outcome = Outcome("x", "a scenario", books=False, findings=list(findings))
    return Report(
        broker="http://b", started="2026-01-01T00:00:00Z", seconds=0.1, outcomes=[outcome]
    )


def test_a_failed_should_is_reported_but_does_not_fail_the_run() -> None:
    report = _report(Finding("pass", "MUST", "a"), Finding("fail", "SHOULD", "b"))

    assert report.outcomes[0].status == "fail"
    assert report.outcomes[0].level == "SHOULD"
    assert report.exit_status == 0


def test_a_failed_must_fails_the_run_and_names_the_word_in_junit() -> None:
    report = _report(Finding("warn", "MAY", "a"), Finding("fail", "MUST", "b", "saw 500"))

    assert report.exit_status == 1
    failure = ET.fromstring(to_junit(report)).find("testcase/failure")
    assert failure is not None
    assert failure.get("type") == "MUST"
    assert "saw 500" in (failure.text or "")


def test_warnings_and_skips_are_not_failures() -> None:
    assert _report(Finding("warn", "SHOULD", "a")).outcomes[0].status == "warn"
    assert _report(Finding("skip", "MUST", "a")).outcomes[0].status == "skip"
    assert _report().outcomes[0].status == "skip"
    suite = ET.fromstring(to_junit(_report(Finding("warn", "SHOULD", "a"))))
    assert suite.get("failures") == "0"
    assert suite.find("testcase/system-out") is not None
