"""Loading vocabularies: from a loopback server like ivoa.net, the cache, a folder, the shipped
snapshot, or nothing."""

import json
import logging
import socket
from datetime import UTC, date, datetime

import msgspec
import pytest

from core.clock import ManualClock
from core.errors import ConfigError, NotFound, Unavailable
from core.settings import VocabularySettings
from tests.unit.vocabularies.vocabulary_server import VocabularyServer
from vocabularies.desise import decode_desise
from vocabularies.fetch import Fetched, HttpFetcher
from vocabularies.model import UnknownVocabulary
from vocabularies.registry import (
    load_registry,
    load_vocabulary,
    refresh_vocabularies,
)
from vocabularies.sources import BUILTIN_DIR, Snapshot

OURS = {"accelerator-class", "executable-kind", "software-function"}
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SHIPPED = Snapshot()


def _settings(server=None, **changes):
    base_url = server.base_url if server is not None else "http://127.0.0.1:9/rdf"
    return VocabularySettings(base_url=base_url, **changes)


def _fetches(server):
    """Requests that asked for a vocabulary (each also follows one redirect)."""
    return [path for path, _ in server.requests if path.count("/") == 2]


def _closed_port_url():
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/rdf"


# ---------------------------------------------------------------------------- the network
def test_the_url_loader_negotiates_desise_and_caches_it(vocab_server, tmp_path, uat_raw):
    settings = _settings(vocab_server, names=["uat", "messenger"])
    registry = load_registry(settings, tmp_path, clock=ManualClock(NOW))
    assert set(registry.names()) == OURS | {"uat", "messenger"}
    assert registry.problems == ()
    assert len(registry.get("uat").concepts) == len(uat_raw["terms"])
    assert registry.origin("uat").kind == "network"
    assert registry.origin("uat").location.endswith("/uat.json")  # after the 303
    assert registry.origin("uat").version == "2026-01-02"  # the dated folder redirected to
    assert registry.origin("uat").fetched_at == NOW
    assert vocab_server.requests[0] == ("/rdf/uat", "application/x-desise+json")
    cached = tmp_path / "vocabularies" / "uat.desise"
    assert json.loads(cached.read_bytes()) == uat_raw
    meta = json.loads((tmp_path / "vocabularies" / "uat.meta.json").read_bytes())
    assert meta["media_type"] == "application/x-desise+json"
    assert meta["fetched_at"].startswith("2026-11-22T12:00:00")


def test_the_second_load_uses_the_cache_without_asking_the_server(vocab_server, tmp_path):
    settings = _settings(vocab_server, names=["uat", "product-type"])
    first = load_registry(settings, tmp_path)
    asked = len(vocab_server.requests)
    assert len(_fetches(vocab_server)) == 2
    second = load_registry(settings, tmp_path)
    assert len(vocab_server.requests) == asked
    assert second.origin("uat").kind == "cache"
    assert second.get("uat") == first.get("uat")
    assert second.get("product-type") == first.get("product-type")


def test_the_cache_serves_when_the_server_is_down(vocab_server, tmp_path):
    settings = _settings(vocab_server, names=["uat"])
    online = load_registry(settings, tmp_path)
    vocab_server.stop()
    offline = load_registry(settings, tmp_path)
    assert offline.get("uat") == online.get("uat")
    assert offline.origin("uat").kind == "cache"
    assert offline.problems == ()


def test_the_cache_says_when_and_whence_its_copy_was_fetched(vocab_server, tmp_path):
    settings = _settings(vocab_server, names=["messenger"])
    load_registry(settings, tmp_path, clock=ManualClock(NOW))
    origin = load_registry(settings, tmp_path).origin("messenger")
    assert (origin.kind, origin.fetched_at, origin.version) == ("cache", NOW, "2026-01-02")
    assert origin.url == vocab_server.base_url + "/messenger/2026-01-02/messenger.json"
    assert origin.describe() == f"cached copy fetched 2026-11-22 12:00 UTC from {origin.url}"


def test_with_the_server_down_and_nothing_cached_the_snapshot_serves(tmp_path, caplog):
    fetcher = _CountingFetcher(HttpFetcher(timeout=2))
    settings = _settings(names=["uat", "messenger", "product-type"])
    settings = msgspec.structs.replace(settings, base_url=_closed_port_url())
    with caplog.at_level(logging.WARNING, logger="vocabularies.registry"):
        registry = load_registry(settings, tmp_path, fetch=fetcher)
    assert registry.problems == ()
    assert fetcher.calls == 1  # an unreachable server is asked once, not once per vocabulary
    for name in ("uat", "messenger", "product-type"):
        origin = registry.origin(name)
        entry = SHIPPED.entry(name)
        assert entry is not None
        assert (origin.kind, origin.version) == ("snapshot", entry.version)
        assert origin.snapshot_date == SHIPPED.manifest.taken
        assert "could not be reached" in origin.note
        assert origin.describe().startswith(f"snapshot of {SHIPPED.manifest.taken} shipped")
    assert len(registry.get("uat").concepts) > 2000
    assert "using the snapshot of" in caplog.text
    # The snapshot is not a fetched copy: nothing is cached, so the next start asks again.
    assert not (tmp_path / "vocabularies").exists()


def test_with_the_server_down_nothing_cached_and_no_snapshot_only_our_own_load(
    tmp_path, caplog, empty_snapshot
):
    fetcher = _CountingFetcher(HttpFetcher(timeout=2))
    settings = _settings(names=["uat", "messenger", "product-type"])
    settings = msgspec.structs.replace(settings, base_url=_closed_port_url())
    with caplog.at_level(logging.WARNING, logger="vocabularies.registry"):
        registry = load_registry(settings, tmp_path, fetch=fetcher, snapshot=empty_snapshot)
    assert set(registry.names()) == OURS
    assert [p.split(":")[0] for p in registry.problems] == ["uat", "messenger", "product-type"]
    assert "not cached" in registry.problems[0]
    assert fetcher.calls == 1  # an unreachable server is asked once, not once per vocabulary
    assert "uat" in caplog.text


def test_an_rdf_only_server_is_read_once_and_cached_as_desise(tmp_path):
    # A Turtle-only vocabulary: one of our own files, served under another name.
    served = tmp_path / "served"
    served.mkdir()
    (served / "kinds.ttl").write_bytes((BUILTIN_DIR / "executable-kind.ttl").read_bytes())
    rdf_only = ("application/rdf+xml", "text/turtle")
    server = VocabularyServer(served, formats=rdf_only).start()
    try:
        settings = _settings(server, names=["kinds"])
        loaded = load_registry(settings, tmp_path).get("kinds")
        # Desise and RDF/XML were answered with HTML (not available); Turtle came third.
        assert [accept for _, accept in server.requests] == [
            "application/x-desise+json",
            "application/rdf+xml",
            "text/turtle",
            "text/turtle",  # the 303 redirect, followed
        ]
    finally:
        server.stop()
    assert loaded.title == "Executable kinds"  # from the RDF header
    assert loaded.concepts["docker-container"].alt_labels  # only the RDF carries these
    cached = (tmp_path / "vocabularies" / "kinds.desise").read_bytes()
    assert decode_desise(cached, "kinds") == loaded
    assert load_registry(settings, tmp_path).get("kinds") == loaded


def test_a_server_that_never_sends_a_vocabulary_format_is_a_problem(tmp_path, empty_snapshot):
    def html_only(url, accept):
        return Fetched(b"<html/>", "text/html", url)

    registry = load_registry(_settings(names=["uat"]), tmp_path, fetch=html_only)
    assert registry.problems == ()
    assert "text/html" in registry.origin("uat").note  # the snapshot stood in, saying why
    assert registry.origin("uat").kind == "snapshot"
    bare = load_registry(
        _settings(names=["uat"]), tmp_path, fetch=html_only, snapshot=empty_snapshot
    )
    (problem,) = bare.problems
    assert "text/html" in problem
    assert "uat" not in bare


def test_an_unknown_vocabulary_on_the_server_is_a_problem_not_a_crash(vocab_server, tmp_path):
    registry = load_registry(_settings(vocab_server, names=["no-such-thing"]), tmp_path)
    (problem,) = registry.problems
    assert "404" in problem
    assert set(registry.names()) == OURS


def test_offline_never_fetches_and_uses_the_snapshot(vocab_server, tmp_path):
    settings = _settings(vocab_server, names=["uat", "datalink/core"], offline=True)
    registry = load_registry(settings, tmp_path)
    assert vocab_server.requests == []
    assert registry.origin("uat").kind == "snapshot"
    assert registry.origin("uat").note == "vocabularies.offline is set"
    (problem,) = registry.problems  # the snapshot holds no datalink/core
    assert problem.startswith("datalink/core:")
    assert "offline" in problem


def test_a_damaged_cache_file_is_fetched_again(vocab_server, tmp_path):
    settings = _settings(vocab_server, names=["messenger"])
    load_registry(settings, tmp_path)
    (tmp_path / "vocabularies" / "messenger.desise").write_bytes(b"{ truncated")
    registry = load_registry(settings, tmp_path)
    assert registry.origin("messenger").kind == "network"
    assert len(_fetches(vocab_server)) == 2


def test_a_configured_cache_dir_is_used(vocab_server, tmp_path):
    cache = tmp_path / "elsewhere"
    load_registry(_settings(vocab_server, names=["messenger"], cache_dir=str(cache)), tmp_path)
    assert (cache / "messenger.desise").is_file()
    assert not (tmp_path / "vocabularies").exists()


# ---------------------------------------------------------------------------- refresh
def test_refresh_replaces_the_cache_and_says_what_changed(vocab_server, tmp_path):
    settings = _settings(vocab_server, names=["messenger"])
    assert [o.status for o in refresh_vocabularies(settings, tmp_path)] == ["updated"]
    assert [o.status for o in refresh_vocabularies(settings, tmp_path)] == ["unchanged"]


def test_refresh_with_the_server_down_keeps_the_cached_copy(vocab_server, tmp_path):
    settings = _settings(vocab_server, names=["messenger", "uat"])
    load_registry(settings, tmp_path)
    before = (tmp_path / "vocabularies" / "messenger.desise").read_bytes()
    vocab_server.stop()
    outcomes = refresh_vocabularies(settings, tmp_path)
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert all("cached copy stays in use" in o.detail for o in outcomes)
    assert (tmp_path / "vocabularies" / "messenger.desise").read_bytes() == before
    assert load_registry(settings, tmp_path).origin("messenger").kind == "cache"


def test_refresh_is_skipped_for_a_folder_or_offline(tmp_path):
    folder = VocabularySettings(path=str(tmp_path), names=["uat"])
    offline = VocabularySettings(offline=True, names=["uat"])
    for settings in (folder, offline):
        assert [o.status for o in refresh_vocabularies(settings, tmp_path)] == ["skipped"]


# ---------------------------------------------------------------------------- a folder
def test_a_folder_is_read_without_the_network(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "uat.desise").write_bytes((SHIPPED.folder / "uat.json").read_bytes())
    (folder / "datalink-core.desise").write_text(
        '{"uri": "http://www.ivoa.net/rdf/datalink/core", "flavour": "RDF Property",'
        ' "terms": {"this": {"label": "This"}, "preview": {"label": "Preview"}}}',
        encoding="utf-8",
    )
    (folder / "voresource-relationship_type.ttl").write_bytes(
        (BUILTIN_DIR / "accelerator-class.ttl").read_bytes()
    )
    settings = VocabularySettings(
        path=str(folder),
        names=["uat", "datalink/core", "voresource/relationship_type", "missing"],
        base_url=_closed_port_url(),
    )
    registry = load_registry(settings, tmp_path)
    assert {"uat", "datalink/core", "voresource/relationship_type"} <= set(registry.names())
    assert registry.origin("uat").location.endswith("uat.desise")
    assert registry.origin("uat").describe() == f"read from {folder / 'uat.desise'}"
    assert registry.get("datalink-core") is registry.get("datalink/core")
    (problem,) = registry.problems
    assert problem.startswith("missing:")  # a folder is all there is: no snapshot stands in


def test_a_folder_falls_back_to_turtle_when_there_is_no_desise(tmp_path):
    (tmp_path / "kinds.ttl").write_bytes((BUILTIN_DIR / "executable-kind.ttl").read_bytes())
    registry = load_registry(VocabularySettings(path=str(tmp_path), names=["kinds"]), tmp_path)
    assert registry.get("kinds").title == "Executable kinds"  # only the RDF carries the title


def test_a_path_that_is_not_a_folder_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match=r"vocabularies\.path"):
        load_registry(VocabularySettings(path=str(tmp_path / "nope")), tmp_path)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs", "a//b", ""])
def test_names_that_could_escape_the_cache_are_refused(tmp_path, name):
    with pytest.raises(ConfigError, match="not a vocabulary name"):
        load_registry(VocabularySettings(names=[name], offline=True), tmp_path)


# ---------------------------------------------------------------------------- the registry
def test_unknown_names_are_not_found_naming_the_vocabulary_and_the_known_ones(tmp_path):
    registry = load_registry(VocabularySettings(names=[], offline=True), tmp_path)
    with pytest.raises(UnknownVocabulary) as raised:
        registry.get("uat")
    assert isinstance(raised.value, NotFound)
    assert "'uat'" in raised.value.message
    assert "software-function" in raised.value.message


def test_our_own_names_cannot_be_shadowed(tmp_path):
    registry = load_registry(VocabularySettings(names=["executable-kind"], offline=True), tmp_path)
    assert registry.origin("executable-kind").kind == "builtin"
    assert "our own" in registry.problems[0]


def test_load_vocabulary_loads_one_and_explains_a_failure(vocab_server, tmp_path, empty_snapshot):
    vocab, origin = load_vocabulary(_settings(vocab_server), tmp_path, "messenger")
    assert (vocab.name, origin.kind) == ("messenger", "network")
    assert load_vocabulary(_settings(), tmp_path, "software-function")[1].kind == "builtin"
    offline = _settings(offline=True)
    assert load_vocabulary(offline, tmp_path, "uat")[1].kind == "snapshot"
    with pytest.raises(NotFound, match="offline"):
        load_vocabulary(offline, tmp_path, "uat", snapshot=empty_snapshot)


def test_the_shipped_snapshot_holds_the_default_vocabularies_with_their_licences():
    # The defaults must work on a machine that never reached ivoa.net.
    manifest = SHIPPED.manifest
    assert set(VocabularySettings().names) <= set(manifest.vocabularies)
    assert manifest.taken <= date.today()
    for name, entry in manifest.vocabularies.items():
        vocabulary = SHIPPED.read(name)
        assert vocabulary is not None
        assert vocabulary.uri == entry.uri == f"http://www.ivoa.net/rdf/{name}"
        assert vocabulary.title != name  # the snapshot carries the title the RDF gives
        assert date.fromisoformat(entry.version) <= manifest.taken
        assert entry.licence in {"CC0-1.0", "CC-BY-SA-3.0"}
        assert entry.licence_url.startswith(
            ("http://creativecommons.org/", "https://creativecommons.org/")
        )
        assert entry.attribution
    assert SHIPPED.entry("uat").licence == "CC-BY-SA-3.0"  # the UAT's own licence, kept
    assert (SHIPPED.folder / "README.md").is_file()


def test_a_snapshot_with_the_default_vocabularies_is_small():
    # Compact JSON: the package carries it to every installation.
    files = [SHIPPED.folder / entry.file for entry in SHIPPED.manifest.vocabularies.values()]
    assert sum(path.stat().st_size for path in files) < 1_000_000
    assert b"\n  " not in files[0].read_bytes()


class _CountingFetcher:
    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def __call__(self, url, accept):
        self.calls += 1
        return self.inner(url, accept)


def test_the_http_fetcher_translates_failures(vocab_server):
    fetch = HttpFetcher(timeout=5)
    with pytest.raises(NotFound):
        fetch(vocab_server.base_url + "/nothing-here", "application/x-desise+json")
    with pytest.raises(Unavailable, match="more than 100 bytes"):
        HttpFetcher(max_bytes=100)(vocab_server.base_url + "/uat", "application/x-desise+json")
    with pytest.raises(Unavailable, match="cannot fetch"):
        fetch(_closed_port_url() + "/uat", "application/x-desise+json")
