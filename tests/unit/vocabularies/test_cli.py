"""`voexec vocab list|show|refresh` through the real command-line entry point."""

import socket

import pytest
import yaml

from tests.conftest import SNAPSHOT
from tests.unit.vocabularies.vocabulary_server import VocabularyServer
from vocabularies import expand
from voexec.cli import main


def _config(tmp_path, **vocabularies):
    path = tmp_path / "voexec.yaml"
    settings = {"data_dir": str(tmp_path / "var"), "vocabularies": vocabularies}
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return str(path)


@pytest.fixture
def config(tmp_path):
    """No network, nothing cached: the IVOA vocabularies come from the shipped snapshot."""
    return _config(tmp_path, offline=True, names=["uat", "messenger"])


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
    assert "not cached, and vocabularies.offline forbids fetching it" in err


def test_list_names_sources_versions_and_problems(tmp_path, capsys):
    config = _config(tmp_path, offline=True, names=["uat", "datalink/core"])
    assert main(["vocab", "list", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "\nuat " in out
    assert "version 2026-01-02, snapshot of 2026-03-19 shipped with voexec" in out
    assert "builtin: our own" in out
    assert "not loaded: datalink/core: not cached, and vocabularies.offline" in out


def test_refresh_from_a_folder_is_skipped(tmp_path, capsys):
    config = _config(tmp_path, path=str(tmp_path), names=["uat"])
    assert main(["vocab", "refresh", "--config", config]) == 0
    assert "skipped" in capsys.readouterr().out


def test_refresh_fetches_into_the_cache_which_then_wins_over_the_snapshot(tmp_path, capsys):
    server = VocabularyServer(SNAPSHOT).start()
    try:
        config = _config(tmp_path, base_url=server.base_url, names=["uat", "messenger"])
        assert main(["vocab", "refresh", "--config", config]) == 0
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["uat", "updated"],
        ["messenger", "updated"],
    ]
    cached = tmp_path / "var" / "vocabularies" / "uat.desise"
    assert cached.read_bytes() == (SNAPSHOT / "uat.json").read_bytes()
    # The server is gone, yet the next start uses the fetched copy, not the snapshot.
    assert main(["vocab", "list", "--config", config]) == 0
    listing = capsys.readouterr().out
    assert "cached copy fetched" in listing
    assert f"from {server.base_url}/uat/2026-01-02/uat.json" in listing
    assert "snapshot" not in listing


def test_refresh_with_the_server_unreachable_fails_saying_so(tmp_path, capsys):
    config = _config(tmp_path, base_url=_closed_port_url(), names=["messenger"])
    assert main(["vocab", "refresh", "--config", config]) == 1
    captured = capsys.readouterr()
    assert "messenger" in captured.out
    assert "failed" in captured.out
    assert "cannot fetch" in captured.out
    assert "could not be refreshed" in captured.err
    assert not (tmp_path / "var" / "vocabularies" / "messenger.desise").exists()


def _closed_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/rdf"
