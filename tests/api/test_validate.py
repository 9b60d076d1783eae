"""`voexec validate`: voexec passes its own validator; a broken broker fails exactly its defects.

Both brokers are real HTTP servers: voexec is `voexec serve --demo` in a subprocess on a free
port with its own data directory (offers live six seconds, so the expiry scenario runs), the
broken broker (`tests.api.test_validate_brokers`) is served by uvicorn in a thread. The reports are
read as a CI system reads them: JUnit XML through `xml.etree`, the JSON report by its fields.
"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.auth import token_sha256
from tests.api.test_validate_brokers import BROKEN, broken_broker
from tests.live_server import live_voexec, serving_in_thread
from voexec.validate import command
from voexec.validate.checks import Options
from voexec.validate.exchange import Credentials
from voexec.validate.report import FORMAT
from voexec.validate.suite import SCENARIOS, run_suite

TOKEN = "validate-write-token-for-the-test-server-only"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def voexec_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = {
        "auth": {
            "tokens": [{"name": "validator", "sha256": token_sha256(TOKEN)}],
            # The suite asks for many offers in a few seconds, as one identity.
            "limits": {"offers": {"requests": 10000, "per": "PT1M"}},
        },
        "broker": {"offer_ttl": "PT6S"},
    }
    with live_voexec(tmp_path_factory.mktemp("validate-voexec"), settings) as url:
        yield url + "/broker"


@pytest.fixture(scope="module")
def broken() -> Iterator[str]:
    with serving_in_thread(broken_broker(), log_level="error") as url:
        yield url


def _failures(report: object) -> dict[str, list[str]]:
    return {
        outcome.id: [f"{f.level}: {f.requirement} ({f.observed})" for f in outcome.findings
                     if f.status == "fail"]
        for outcome in report.outcomes  # type: ignore[attr-defined]
        if outcome.status == "fail"
    }  # fmt: skip


def test_voexec_passes_its_own_validator_including_booking(voexec_broker: str) -> None:
    report = run_suite(
        voexec_broker,
        credentials=Credentials(token=TOKEN),
        options=Options(booking=True, expiry_wait=30),
    )

    assert _failures(report) == {}
    assert report.exit_status == 0
    statuses = {outcome.id: outcome.status for outcome in report.outcomes}
    assert set(statuses) == {scenario.id for scenario in SCENARIOS}
    # Every scenario really ran: none was skipped for want of a prerequisite.
    assert "skip" not in statuses.values(), statuses


def test_without_the_token_voexec_refuses_and_the_report_says_why(voexec_broker: str) -> None:
    report = run_suite(
        voexec_broker, options=Options(expiry_wait=0), only=["offers-endpoint", "json"]
    )

    first, second = report.outcomes
    assert first.must_failed
    assert "401" in first.findings[0].observed and "--token" in first.findings[0].observed  # noqa: PT018
    assert second.status == "skip"
    assert report.exit_status == 1


def test_the_broken_broker_fails_exactly_its_five_defects(broken: str) -> None:
    report = run_suite(broken, options=Options(expiry_wait=20))

    failed = _failures(report)
    assert sorted(failed) == sorted(BROKEN), failed
    must = {outcome.id for outcome in report.outcomes if outcome.must_failed}
    assert must == set(BROKEN) - {"see-other"}  # 200 instead of 303 breaks a SHOULD
    assert report.exit_status == 1
    see_other = next(o for o in report.outcomes if o.id == "see-other")
    finding = next(f for f in see_other.findings if f.status == "fail")
    # The finding shows the exchange that showed it.
    exchange = see_other.exchanges[finding.exchanges[0]]
    assert (exchange.method, exchange.status) == ("POST", 200)
    assert exchange.url.endswith("/requests") and '"result"' in exchange.body  # noqa: PT018


def _validate(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="voexec")
    command.register(parser.add_subparsers())
    parsed = parser.parse_args(["validate", *args])
    status = parsed.func(parsed)
    return status, capsys.readouterr().out


def test_junit_and_json_reports_are_read_by_their_tools(
    broken: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "validate.xml"

    status, out = _validate(
        [broken, "--json", "--junit", str(junit), "--expiry-wait", "20"], capsys
    )

    assert status == 1
    suite = ET.parse(junit).getroot()
    cases = suite.findall("testcase")
    failed = [case for case in cases if case.find("failure") is not None]
    skipped = [case for case in cases if case.find("skipped") is not None]
    assert suite.tag == "testsuite" and len(cases) == int(suite.get("tests", "")) == len(SCENARIOS)  # noqa: PT018
    assert len(failed) == int(suite.get("failures", "")) == len(BROKEN)
    assert len(skipped) == int(suite.get("skipped", "")) == 2  # the capacity scenarios
    assert {case.get("name", "").split(":")[0] for case in failed} == set(BROKEN)
    assert {case.find("failure").get("type") for case in failed} == {"MUST", "SHOULD"}  # type: ignore[union-attr]

    document = json.loads(out)
    assert document["format"] == FORMAT and document["exit_status"] == 1  # noqa: PT018
    assert document["summary"]["fail"] == len(BROKEN)
    assert document["summary"]["must_failures"] == len(BROKEN) - 1
    by_id = {scenario["id"]: scenario for scenario in document["scenarios"]}
    expiry = by_id["offer-expiry"]
    failing = [f for f in expiry["findings"] if f["status"] == "fail" and f["level"] == "MUST"]
    assert failing
    shown = [expiry["exchanges"][i] for i in failing[0]["exchanges"]]
    assert [(e["method"], e["status"]) for e in shown] == [("POST", 200), ("GET", 200)]


def test_text_report_names_each_failure_with_its_word(
    broken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = _validate([broken, "--expiry-wait", "0", "--only", "no-with-reasons"], capsys)

    assert status == 1
    assert "FAIL [MUST] no-with-reasons" in out
    assert "-> 500" in out


def test_the_page_validates_the_local_broker_for_a_signed_in_reader(voexec_broker: str) -> None:
    root = voexec_broker.removesuffix("/broker")
    page = httpx.get(
        f"{root}/validate",
        params={"url": voexec_broker},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120,
    )

    assert page.status_code == 200, page.text[:500]
    assert 'id="scenario-see-other"' in page.text
    assert "no MUST failed" in page.text
    # Booking scenarios are never run from the page.
    assert "books (and cancels) a session: not run here" in page.text


def test_the_page_refuses_urls_it_is_not_allowed_and_asks_for_a_sign_in(
    voexec_broker: str,
) -> None:
    root = voexec_broker.removesuffix("/broker")
    elsewhere = httpx.get(
        f"{root}/validate", params={"url": "http://169.254.169.254/latest"}, timeout=30
    )
    anonymous = httpx.get(f"{root}/validate", params={"url": voexec_broker}, timeout=30)
    form = httpx.get(f"{root}/validate", timeout=30)

    assert elsewhere.status_code == 403
    assert "validate.allowed_urls" in elsewhere.text
    assert anonymous.status_code == 401
    assert form.status_code == 200
    assert f'<option value="{voexec_broker}" selected>' in form.text
