"""`voexec harvest`: the progress bar, the report a packager reads, exit statuses."""

from __future__ import annotations

import argparse
from contextlib import nullcontext

import msgspec
import pytest

from harvest import cli
from harvest.model import HarvestReport
from tests.unit.harvest.conftest import PipelineKit, executable

FILE = "ivoa-executable.yaml"


@pytest.fixture
def voexec(kit: PipelineKit, monkeypatch):
    """Run `voexec harvest ...` with the kit's pipeline; returns the exit status."""
    monkeypatch.delenv("VOEXEC_CONFIG", raising=False)
    pipeline = kit.pipeline()

    def main(*argv: str) -> int:
        parser = argparse.ArgumentParser(prog="voexec")
        cli.register(parser.add_subparsers(), lambda _settings: nullcontext(pipeline))
        args = parser.parse_args(["harvest", *argv])
        return int(args.func(args))

    return main


def test_prints_a_progress_bar_then_each_problem_as_field_and_reason(kit, voexec, capsys):
    kit.gitlab.add_project("astro/good", {FILE: executable("good")})
    kit.gitlab.add_project("astro/bad", {FILE: "name: x\n", "other": "y"}, tags=("v1",))
    kit.gitlab.commit(kit.gitlab.projects[102], {FILE: "name: [x\n"})

    status = voexec("--source", "lab", "--progress")

    out, err = capsys.readouterr()
    assert status == 0
    assert err.startswith("\r[")
    assert "2/2 projects" in err
    assert err.endswith("\n")
    lines = out.splitlines()
    assert lines[0].startswith("harvest of lab: succeeded")
    assert "projects: 2 found (2 harvested)" in out
    assert "entries:  3 found, 2 new, 0 updated, 0 unchanged, 0 withdrawn, 1 invalid" in out
    assert "  astro/bad [harvested] (1 new, 1 invalid)" in out
    bad = [line for line in lines if line.startswith("    main: (document): invalid YAML")]
    assert len(bad) == 1


def test_no_progress_bar_when_stderr_is_not_a_terminal(kit, voexec, capsys):
    kit.gitlab.add_project("astro/good", {FILE: executable("good")})

    voexec("--source", "lab")

    assert capsys.readouterr().err == ""


def test_unchanged_projects_are_listed_only_with_all(kit, voexec, capsys):
    kit.gitlab.add_project("astro/good", {FILE: executable("good")})
    voexec("--source", "lab")
    capsys.readouterr()

    voexec("--source", "lab")
    quiet = capsys.readouterr().out
    voexec("--source", "lab", "--all")
    everything = capsys.readouterr().out

    assert "astro/good" not in quiet
    assert "projects: 1 found (1 unchanged)" in quiet
    assert "  astro/good [unchanged]" in everything


def test_a_partial_run_exits_2_and_names_the_failing_project(kit, voexec, capsys):
    kit.gitlab.add_project("astro/good", {FILE: executable("good")})
    failing = kit.gitlab.add_project("astro/flaky", {FILE: executable("flaky")})
    kit.gitlab.fail(f"/projects/{failing.id}/", status=500, times=None)

    status = voexec("--source", "lab")

    out = capsys.readouterr().out
    assert status == 2
    assert "  astro/flaky [failed]" in out
    assert "    project: reading branch main of project" in out


def test_a_stored_report_is_printed_again_and_as_json(kit, voexec, capsys):
    kit.gitlab.add_project("astro/good", {FILE: executable("good")})
    voexec("--source", "lab", "--json")
    report = msgspec.json.decode(capsys.readouterr().out, type=HarvestReport)

    voexec("--report", report.run_id)
    again = capsys.readouterr().out

    assert report.counts.new == 1
    assert again.startswith(f"harvest of lab: succeeded in 0.0 s (run {report.run_id})")


def test_an_unknown_source_is_a_domain_error_for_main_to_print(voexec):
    from harvest.model import UnknownSource

    with pytest.raises(UnknownSource, match="no harvest source 'nope'"):
        voexec("--source", "nope")
