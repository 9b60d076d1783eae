"""Smoke tests of the real servers the scale-out deployment runs on, and of its compose file.

They prove that what `scripts/services/` starts is usable the way voexec uses it: PostgreSQL
through `core.db` (psycopg 3, row locks that really lock), and OpenSearch through opensearch-py
(mappings, the analysis filters the catalogue needs, bulk indexing, aggregations, deletion).
The compose file is checked against voexec's own settings loader, so a renamed setting cannot
leave `docker-compose.yml` behind.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opensearchpy import OpenSearch, helpers
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from core.db import make_engine, read_transaction, session_factory, write_transaction
from core.settings import OpenSearchSearch, load_settings
from tests.integration.conftest import fresh_postgres_database

ROOT = Path(__file__).resolve().parents[2]
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a NOWAIT lock request that finds the row locked


# --------------------------------------------------------------------------- PostgreSQL
metadata = MetaData()
platforms = Table(
    "platforms",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
    Column("capacity", Integer, nullable=False),
)


@pytest.fixture
def engine(postgres_database_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_make_engine_reaches_postgres_through_psycopg(
    engine: Engine, postgres_database_url: str
) -> None:
    with engine.connect() as connection:
        version = connection.execute(text("SELECT version()")).scalar_one()
        database = connection.execute(text("SELECT current_database()")).scalar_one()
    assert engine.dialect.name == "postgresql"
    assert engine.dialect.driver == "psycopg"
    assert version.startswith("PostgreSQL ")
    assert database == make_url(postgres_database_url).database


def test_select_for_update_holds_the_row_until_commit(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(insert(platforms).values(id=1, name="cluster-a", capacity=8))
    locked_row = select(platforms).where(platforms.c.id == 1)

    with engine.connect() as holder, engine.connect() as contender:
        holder.begin()
        assert holder.execute(locked_row.with_for_update()).one().capacity == 8
        contender.begin()
        with pytest.raises(OperationalError) as refused:
            contender.execute(locked_row.with_for_update(nowait=True))
        assert getattr(refused.value.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE
        contender.rollback()

        holder.execute(platforms.update().where(platforms.c.id == 1).values(capacity=7))
        holder.commit()
        # Released by the commit: the contender now gets the lock and the committed value.
        contender.begin()
        assert contender.execute(locked_row.with_for_update(nowait=True)).one().capacity == 7
        contender.commit()


def test_core_transactions_commit_and_roll_back_on_postgres(engine: Engine) -> None:
    sessions = session_factory(engine)
    with write_transaction(sessions) as session:
        session.execute(insert(platforms).values(id=1, name="kept", capacity=4))

    def insert_then_fail() -> None:
        with write_transaction(sessions) as session:
            session.execute(insert(platforms).values(id=2, name="rolled-back", capacity=4))
            raise RuntimeError("abort the transaction")

    with pytest.raises(RuntimeError, match="abort"):
        insert_then_fail()

    with read_transaction(sessions) as session:
        names = session.execute(select(platforms.c.name)).scalars().all()
    assert names == ["kept"]


def test_fresh_database_exists_only_inside_its_block(postgres_url: str) -> None:
    admin = make_engine(postgres_url, poolclass=NullPool)
    query = text("SELECT count(*) FROM pg_database WHERE datname = :name")
    try:
        with fresh_postgres_database(postgres_url, prefix="voexec_probe") as url:
            name = make_url(url).database
            assert name is not None
            assert name.startswith("voexec_probe_")
            # A connection left open must not stop the drop.
            lingering = make_engine(url, poolclass=NullPool).connect()
            with admin.connect() as connection:
                assert connection.execute(query, {"name": name}).scalar_one() == 1
        with admin.connect() as connection:
            assert connection.execute(query, {"name": name}).scalar_one() == 0
        lingering.invalidate()
    finally:
        admin.dispose()


# --------------------------------------------------------------------------- OpenSearch
KINDS = ["docker-container", "jupyter-notebook", "python-program"]
LICENCES = ["MIT", "GPL-3.0", "Apache-2.0", "BSD-3-Clause"]


@pytest.fixture
def client(opensearch_url: str) -> Iterator[OpenSearch]:
    client = OpenSearch(hosts=[opensearch_url], timeout=30)
    yield client
    client.close()


def _entries(count: int, seed: int) -> list[dict[str, Any]]:
    chooser = random.Random(seed)
    return [
        {
            "id": f"entry-{number}",
            "name": f"{chooser.choice(['spectra', 'photometry', 'imaging'])} tool {number}",
            "kind": chooser.choice(KINDS),
            "licence": chooser.choice(LICENCES),
            "gpus": chooser.randint(0, 2),
        }
        for number in range(count)
    ]


def test_opensearch_index_bulk_load_aggregate_and_delete(
    client: OpenSearch, opensearch_index_prefix: str
) -> None:
    index = f"{opensearch_index_prefix}-catalogue"
    client.indices.create(
        index=index,
        body={
            "mappings": {
                "properties": {
                    "name": {"type": "text", "fields": {"exact": {"type": "keyword"}}},
                    "kind": {"type": "keyword"},
                    "licence": {"type": "keyword"},
                    "gpus": {"type": "integer"},
                }
            }
        },
    )
    entries = _entries(60, seed=6)
    indexed, errors = helpers.bulk(
        client,
        ({"_index": index, "_id": entry["id"], "_source": entry} for entry in entries),
        refresh="wait_for",
    )
    assert (indexed, errors) == (len(entries), [])

    # Multi-select faceting: the licence filter narrows the hits (post_filter) but not the
    # licence counts, which are computed over everything the text query matched.
    chosen_licence = entries[0]["licence"]
    response = client.search(
        index=index,
        body={
            "size": 100,
            "query": {"match": {"name": "spectra"}},
            "post_filter": {"term": {"licence": chosen_licence}},
            "aggs": {
                "licence": {"terms": {"field": "licence", "size": 10}},
                "kind": {
                    "filter": {"term": {"licence": chosen_licence}},
                    "aggs": {"values": {"terms": {"field": "kind", "size": 10}}},
                },
            },
        },
    )
    matching = [entry for entry in entries if "spectra" in entry["name"]]
    chosen = [entry for entry in matching if entry["licence"] == chosen_licence]
    assert response["hits"]["total"]["value"] == len(chosen)
    assert {hit["_id"] for hit in response["hits"]["hits"]} == {entry["id"] for entry in chosen}
    licence_counts = {
        bucket["key"]: bucket["doc_count"]
        for bucket in response["aggregations"]["licence"]["buckets"]
    }
    assert licence_counts == Counter(entry["licence"] for entry in matching)
    kind_counts = {
        bucket["key"]: bucket["doc_count"]
        for bucket in response["aggregations"]["kind"]["values"]["buckets"]
    }
    assert kind_counts == Counter(entry["kind"] for entry in chosen)

    client.indices.delete(index=index)
    assert not client.indices.exists(index=index)


def test_opensearch_has_the_synonym_and_folding_filters(
    client: OpenSearch, opensearch_index_prefix: str
) -> None:
    # These filters live in the analysis-common module, which the integ-test distribution
    # leaves out and scripts/services/opensearch adds back; the catalogue's analyser needs them.
    index = f"{opensearch_index_prefix}-analysis"
    client.indices.create(
        index=index,
        body={
            "settings": {
                "analysis": {
                    "filter": {
                        "concepts": {
                            "type": "synonym_graph",
                            "synonyms": ["galaxy, galaxies, extragalactic"],
                        }
                    },
                    "analyzer": {
                        "catalogue_text": {
                            "type": "custom",
                            "tokenizer": "standard",
                            "filter": ["lowercase", "asciifolding", "concepts"],
                        }
                    },
                }
            },
            "mappings": {"properties": {"title": {"type": "text", "analyzer": "catalogue_text"}}},
        },
    )
    client.index(index=index, id="1", body={"title": "Extragalactic survey"}, refresh=True)
    client.index(index=index, id="2", body={"title": "Stellar spectra"}, refresh=True)

    def found(words: str) -> set[str]:
        response = client.search(index=index, body={"query": {"match": {"title": words}}})
        return {hit["_id"] for hit in response["hits"]["hits"]}

    assert found("Galaxies") == {"1"}
    assert found("GALÁXY") == {"1"}
    assert found("stellar") == {"2"}


# --------------------------------------------------------------------------- docker compose
_DEFAULTED = re.compile(r"\$\{(?P<name>[A-Z0-9_]+):-(?P<default>[^}]*)\}")


def _interpolate(value: str) -> str:
    """Resolve `${NAME:-default}` to its default, as compose does with NAME unset."""
    assert "${" not in _DEFAULTED.sub("", value), f"{value!r}: give every variable a default"
    return _DEFAULTED.sub(lambda match: match["default"], value).replace("$$", "$")


def test_compose_file_gives_voexec_valid_settings_for_its_services() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"voexec", "postgres", "opensearch"} <= services.keys()
    for name, service in services.items():
        assert "healthcheck" in service, f"service {name} has no healthcheck"
    assert services["voexec"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "opensearch": {"condition": "service_healthy"},
    }

    environment = {
        name: _interpolate(str(value)) for name, value in services["voexec"]["environment"].items()
    }
    settings = load_settings(environ=environment)  # raises ConfigError naming a bad setting

    database = make_url(settings.database_url)
    assert database.get_backend_name() == "postgresql"
    assert database.host == "postgres"
    postgres_environment = services["postgres"]["environment"]
    assert database.username == _interpolate(postgres_environment["POSTGRES_USER"])
    assert database.password == _interpolate(postgres_environment["POSTGRES_PASSWORD"])
    assert database.database == _interpolate(postgres_environment["POSTGRES_DB"])
    assert isinstance(settings.search, OpenSearchSearch)
    assert settings.search.url == "http://opensearch:9200"
    volumes = compose["volumes"]
    for name in ("postgres", "opensearch"):
        mounted = {mount.split(":", 1)[0] for mount in services[name]["volumes"]}
        assert mounted & volumes.keys(), f"service {name} keeps its data in no named volume"
