"""One contract suite for the catalogue's SQL store, run on every database it supports.

SQLite runs everywhere; PostgreSQL runs when `VOEXEC_TEST_POSTGRES_URL` names a server (`make
services`), each test in a fresh database, and is skipped otherwise (a failure in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import event, inspect

from catalogue.model import EntryVersion, ExecutableSpec, Provenance, VersionWrite, content_hash
from catalogue.store_sql import VERSION_TABLE, SqlCatalogueStore
from core.db import make_engine
from tests.catalogue_support import executable
from tests.integration.conftest import fresh_postgres_database, postgres_server_url

STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=STORES)
def database_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalogue.db'}"
        return
    with fresh_postgres_database(postgres_server_url(), prefix="voexec_catalogue") as url:
        yield url


@pytest.fixture
def store(database_url):
    engine = make_engine(database_url)
    store = SqlCatalogueStore(engine)
    store.migrate()
    yield store
    engine.dispose()


def version(label: str = "1.0.0", *, source: str = "api", **changes) -> EntryVersion:
    spec = msgspec.convert(executable(version=label, **changes), ExecutableSpec)
    return EntryVersion(
        version=label,
        spec=spec,
        content_hash=content_hash(spec),
        provenance=Provenance(source=source, repository="https://gitlab.example.org/a/b"),
        published_at=T0,
        updated_at=T0,
    )


def save(store, entry_id: str, *versions: EntryVersion, now: datetime = T0) -> list[str]:
    return store.save([VersionWrite(entry_id, v) for v in versions], now=now)


def test_migrations_are_idempotent_and_use_their_own_version_table(store):
    store.migrate()
    tables = set(inspect(store.engine).get_table_names())
    assert {"catalogue_entry", "catalogue_version", VERSION_TABLE} <= tables


def test_new_then_unchanged_then_updated(store):
    assert save(store, "e1", version()) == ["new"]
    assert save(store, "e1", version(), now=T0 + timedelta(hours=1)) == ["unchanged"]
    entry = store.entry("e1")
    assert entry.updated_at == T0  # an unchanged publication writes nothing
    changed = version(summary="Finds more sources.")
    assert save(store, "e1", changed, now=T0 + timedelta(hours=2)) == ["updated"]
    stored = store.version("e1", "1.0.0")
    assert stored.spec.summary == "Finds more sources."
    assert stored.published_at == T0
    assert stored.updated_at == T0 + timedelta(hours=2)


def test_versions_are_listed_newest_first_and_latest_is_current(store):
    save(store, "e1", version("1.9.0"), version("1.10.0"), version("1.2.0"))
    entry = store.entry("e1")
    assert [v.version for v in entry.versions] == ["1.10.0", "1.9.0", "1.2.0"]
    assert entry.current_version == "1.10.0"
    save(store, "e1", version("latest"))
    assert store.entry("e1").current_version == "latest"
    assert store.entry("e1").versions[0].version == "latest"


def test_withdrawn_entries_are_kept_but_not_current_and_restored_by_publishing(store):
    save(store, "e1", version())
    save(store, "e2", version())
    assert store.withdraw("e1", now=T0 + timedelta(minutes=1)) is True
    assert store.withdraw("nope", now=T0) is False
    assert store.entry("e1").withdrawn is True
    assert set(store.current_versions(["e1", "e2"])) == {"e2"}
    assert [key for key, _ in store.iter_current()] == ["e2"]
    assert store.count() == 1
    assert store.count(include_withdrawn=True) == 2
    assert save(store, "e1", version()) == ["updated"]
    assert store.entry("e1").withdrawn is False


def test_a_failing_write_stores_nothing_of_its_batch(store):
    def fail_on_versions(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("INSERT INTO CATALOGUE_VERSION"):
            raise RuntimeError("disk full")  # after the entries' insert ran

    event.listen(store.engine, "before_cursor_execute", fail_on_versions)
    try:
        with pytest.raises(RuntimeError):
            store.save([VersionWrite("e1", version()), VersionWrite("e2", version())], now=T0)
        with pytest.raises(RuntimeError):
            store.save_all(
                [[VersionWrite("e3", version())], [VersionWrite("e4", version())]], now=T0
            )
    finally:
        event.remove(store.engine, "before_cursor_execute", fail_on_versions)
    assert store.entry("e1") is None
    assert store.count(include_withdrawn=True) == 0


def test_every_row_lock_is_taken_in_id_order_so_two_batches_cannot_deadlock(store):
    # Two transactions that lock the same rows in different orders can deadlock on PostgreSQL;
    # the writes (save) and the withdrawals (withdraw_all) both lock entries by ascending id.
    # Which order an unordered `FOR UPDATE` locks in depends on the plan, so a deadlock cannot
    # be provoked on demand: the statements themselves are checked.
    locks: list[str] = []

    def keep_locks(_conn, _cursor, statement, *_args):
        if "FOR UPDATE" in statement.upper():
            locks.append(" ".join(statement.upper().split()))

    save(store, "e2", version())
    event.listen(store.engine, "before_cursor_execute", keep_locks)
    try:
        save(store, "e1", version(summary="Finds more sources."))
        assert store.withdraw_all(["e2", "e1"], now=T0 + timedelta(minutes=1)) == ["e2", "e1"]
    finally:
        event.remove(store.engine, "before_cursor_execute", keep_locks)
    if store.engine.dialect.name == "postgresql":
        assert len(locks) >= 2  # SQLite locks the whole database instead
    for statement in locks:
        assert "ORDER BY CATALOGUE_ENTRY.ID" in statement, statement


def test_iteration_walks_every_entry_once_across_batches(store, monkeypatch):
    monkeypatch.setattr("catalogue.store_sql._BATCH", 2)
    for number in range(5):
        save(store, f"e{number}", version())
    assert [key for key, _ in store.iter_current()] == [f"e{n}" for n in range(5)]
    assert len(store.current_versions([f"e{n}" for n in range(5)])) == 5


def test_ids_by_source_and_repository(store):
    save(store, "a1", version(source="gitlab"))
    save(store, "a2", version(source="gitlab"))
    save(store, "b1", version(source="api"))
    store.withdraw("a2", now=T0)
    assert store.ids_from("gitlab") == ["a1"]
    assert store.ids_from("gitlab", "https://gitlab.example.org/a/b") == ["a1"]
    assert store.ids_from("gitlab", "https://elsewhere.example.org/x") == []


def test_documents_and_instants_round_trip(store):
    original = version()
    save(store, "e1", original)
    stored = store.version("e1", "1.0.0")
    assert stored.spec == original.spec
    assert stored.content_hash == original.content_hash
    assert stored.provenance == original.provenance
    assert stored.published_at.tzinfo is not None
    assert store.version("e1", "9.9") is None
    assert store.entry("missing") is None


def test_a_batch_of_documents_is_saved_as_one_by_one_would_be(store):
    save(store, "old", version())
    statuses = store.save_all(
        [
            [VersionWrite("e1", version("1.0.0"))],
            [VersionWrite("e1", version("1.1.0")), VersionWrite("e2", version())],
            [VersionWrite("old", version())],
            [],
        ],
        now=T0,
    )
    assert statuses == [["new"], ["updated", "new"], ["unchanged"], []]
    assert store.entry("e1").current_version == "1.1.0"
    assert set(store.current_versions(["e1", "e2", "old"])) == {"e1", "e2", "old"}


def test_a_batch_hit_by_a_concurrent_writer_is_saved_document_by_document(store, monkeypatch):
    from catalogue import store_sql

    save(store, "e2", version())
    real = store_sql._load_stored
    calls = []

    def stale_once(connection, ids):
        calls.append(list(ids))
        found = real(connection, ids)
        if len(calls) == 1:  # read before another process created e2
            found.pop("e2", None)
        return found

    monkeypatch.setattr(store_sql, "_load_stored", stale_once)
    statuses = store.save_all(
        [[VersionWrite("e1", version())], [VersionWrite("e2", version())]], now=T0
    )
    assert statuses == [["new"], ["unchanged"]]
    assert calls == [["e1", "e2"], ["e1"], ["e2"]]  # the shared transaction, then one each
    assert store.count() == 2


def test_a_batch_judges_each_write_after_the_ones_before_it(store):
    later = T0 + timedelta(hours=1)
    save(store, "kept", version("1.0.0"))
    save(store, "gone", version("1.0.0"))
    store.withdraw("gone", now=T0)
    changed = version("1.0.0", title="Another title")
    statuses = store.save_all(
        [
            # one file, three refs of one entry: tags, then the default branch
            [VersionWrite("e1", version("v1.0")), VersionWrite("e1", version("v1.1"))],
            [VersionWrite("e1", version("latest")), VersionWrite("e1", version("v1.0"))],
            [VersionWrite("kept", changed), VersionWrite("gone", version("1.0.0"))],
            [VersionWrite("e1", version("v1.1", title="Changed in the same batch"))],
        ],
        now=later,
    )
    assert statuses == [
        ["new", "updated"],
        ["updated", "unchanged"],
        ["updated", "updated"],
        ["updated"],
    ]
    entry = store.entry("e1")
    assert entry.current_version == "latest"
    assert [v.version for v in entry.versions] == ["latest", "v1.1", "v1.0"]
    assert store.version("e1", "v1.1").spec.title == "Changed in the same batch"
    kept = store.version("kept", "1.0.0")
    assert kept.spec.title == "Another title"
    assert kept.content_hash == changed.content_hash
    assert kept.published_at == T0
    assert kept.updated_at == later
    assert store.entry("kept").updated_at == later
    restored = store.entry("gone")
    assert restored.withdrawn is False
    assert restored.updated_at == later
    assert store.save_all(
        [[VersionWrite("kept", changed)], [VersionWrite("e1", version("latest"))]], now=later
    ) == [["unchanged"], ["unchanged"]]


def test_a_stored_document_is_the_one_given_when_the_caller_encoded_it(store):
    from catalogue.model import canonical_json

    original = version()
    document = canonical_json(original.spec)
    assert store.save([VersionWrite("e1", original, document)], now=T0) == ["new"]
    assert store.version("e1", "1.0.0").spec == original.spec


def test_withdrawing_many_and_ids_by_repository(store, monkeypatch):
    monkeypatch.setattr("catalogue.store_sql._BATCH", 2)
    for number in range(5):
        entry = msgspec.structs.replace(
            version(source="oai"),
            provenance=Provenance(source="oai", repository=f"ivo://r/{number % 2}"),
        )
        save(store, f"e{number}", entry)
    assert store.ids_by_repository("oai", ["ivo://r/0", "ivo://r/1", "ivo://r/9"]) == {
        "ivo://r/0": ["e0", "e2", "e4"],
        "ivo://r/1": ["e1", "e3"],
        "ivo://r/9": [],
    }
    assert store.ids_by_repository("other", ["ivo://r/0"]) == {"ivo://r/0": []}
    later = T0 + timedelta(minutes=5)
    assert store.withdraw_all(["e4", "missing", "e0", "e2", "e1"], now=later) == [
        "e4",
        "e0",
        "e2",
        "e1",
    ]
    assert store.withdraw_all(["e0"], now=later + timedelta(minutes=5)) == ["e0"]
    assert store.entry("e0").withdrawn
    assert store.entry("e0").updated_at == later
    assert store.ids_by_repository("oai", ["ivo://r/0", "ivo://r/1"]) == {
        "ivo://r/0": [],
        "ivo://r/1": ["e3"],
    }
    assert store.count() == 1


def test_what_each_repository_published_with_the_current_versions_commit(store, monkeypatch):
    monkeypatch.setattr("catalogue.store_sql._BATCH", 2)

    def from_record(record: int, commit: str, label: str = "1.0.0") -> EntryVersion:
        entry = version(label, source="oai")
        origin = Provenance(source="oai", repository=f"ivo://r/{record}", commit=commit)
        return msgspec.structs.replace(entry, provenance=origin)

    save(store, "e0", from_record(0, "a"))
    save(store, "e1", from_record(1, "b"))
    save(store, "e2", from_record(1, "b"))
    save(store, "e3", from_record(2, "c"))
    save(store, "e0", from_record(0, "d", "2.0.0"))  # the newer version is current
    save(store, "e0", from_record(0, "e", "0.9.0"))  # an older one is not
    store.withdraw("e2", now=T0)
    assert store.published_by_repository("oai", ["ivo://r/0", "ivo://r/1", "ivo://r/9"]) == {
        "ivo://r/0": [("e0", "2.0.0", "d", False)],
        "ivo://r/1": [("e1", "1.0.0", "b", False), ("e2", "1.0.0", "b", True)],
        "ivo://r/9": [],
    }
    assert store.published_by_repository("other", ["ivo://r/0"]) == {"ivo://r/0": []}
