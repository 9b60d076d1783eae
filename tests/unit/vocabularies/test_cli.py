"""`voexec vocab list|show|refresh` through the real command-line entry point."""

import pytest
import yaml

from vocabularies import expand
from voexec.cli import main


@pytest.fixture
def config(tmp_path, shared_vocabularies):
    path = tmp_path / "voexec.yaml"
    settings = {
        "data_dir": str(tmp_path / "var"),
        "vocabularies": {"path": str(shared_vocabularies), "names": ["uat", "messenger"]},
    }
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return str(path)


def test_show_without_term_prints_the_roots_with_descendant_counts(config, capsys, uat):
    assert main(["vocab", "show", "uat", "--depth", "0", "--config", config]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = lines[2:]
    assert len(listed) == len(expand.roots(uat))
    for line, root in zip(listed, expand.roots(uat), strict=True):
        assert line == f"{uat.concepts[root].label} [{root}] ({uat.descendant_counts[root]})"


def test_show_depth_one_indents_children_under_each_root(config, capsys):
    assert main(["vocab", "show", "software-function", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "Calibration [calibration] (" in out
    assert "\n  Calibration [calibration]" in out
    assert "\n    " not in out  # depth 1: no grandchildren


def test_show_term_prints_labels_definition_links_and_path(config, capsys, uat):
    assert main(["vocab", "show", "uat", "astronomy-software", "--config", config]) == 0
    out = capsys.readouterr().out
    c = uat.concepts["astronomy-software"]
    assert out.startswith(f"{c.label} [uat:astronomy-software]\n")
    assert c.uri in out
    path = " > ".join(uat.concepts[t].label for t in expand.path_to_root(uat, c.term))
    assert f"Path         {path}" in out
    for narrower in c.narrower:
        assert f"[{narrower}]" in out.replace("\n             ", " ")


def test_show_a_deprecated_term_says_what_to_use_instead(config, capsys, uat):
    old = next(c for c in uat.concepts.values() if c.deprecated and c.use_instead)
    assert main(["vocab", "show", "uat", old.term, "--config", config]) == 0
    out = capsys.readouterr().out
    assert f"Deprecated   yes; use instead: {uat.concepts[old.use_instead].label}" in out


def test_show_by_label_resolves_and_an_unknown_term_suggests(config, capsys):
    assert main(["vocab", "show", "uat", "Astronomy Software", "--config", config]) == 0
    assert "[uat:astronomy-software]" in capsys.readouterr().out
    assert main(["vocab", "show", "uat", "astronomy softwar", "--config", config]) == 1
    err = capsys.readouterr().err
    assert "no concept 'astronomy softwar'" in err
    assert "astronomy-software" in err


def test_show_an_unavailable_vocabulary_fails_with_the_reason(config, capsys):
    assert main(["vocab", "show", "no-such-vocabulary", "--config", config]) == 1
    err = capsys.readouterr().err
    assert "'no-such-vocabulary' is not available" in err
    assert "no no-such-vocabulary.desise, .ttl or .rdf in" in err


def test_list_names_sources_and_problems(config, capsys):
    assert main(["vocab", "list", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "uat" in out
    assert "path: " in out
    assert "builtin: " in out


def test_refresh_from_a_folder_is_skipped(config, capsys):
    assert main(["vocab", "refresh", "--config", config]) == 0
    assert "skipped" in capsys.readouterr().out


def test_refresh_reports_failure_with_a_nonzero_status(tmp_path, capsys):
    path = tmp_path / "voexec.yaml"
    settings = {
        "data_dir": str(tmp_path / "var"),
        "vocabularies": {"base_url": "http://127.0.0.1:9/rdf", "names": ["messenger"]},
    }
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    assert main(["vocab", "refresh", "--config", str(path)]) == 1
    assert "failed" in capsys.readouterr().out
