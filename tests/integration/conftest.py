"""Fixtures for tests against real servers: PostgreSQL and OpenSearch.

The servers come from `scripts/services/` (`make services`, `make test-all`, CI's `.ci/run`),
which pass their URLs in `VOEXEC_TEST_POSTGRES_URL` and `VOEXEC_TEST_OPENSEARCH_URL`. A test
that asks for one of these fixtures skips, with the reason, when its server is not configured or
does not answer; with `VOEXEC_REQUIRE_SERVICES=1` (CI) it fails instead
(`tests.conftest.require_service`).

- `postgres_url` (session): the server's `postgres` database, checked to answer.
- `postgres_database_url` (test): a fresh, uniquely named database, dropped after the test.
- `opensearch_url` (session): the cluster, checked to answer.
- `opensearch_index_prefix` (test): a unique index-name prefix; every index under it (and so
  every alias on them) is deleted after the test.

Tests using these fixtures get the `postgres` / `opensearch` marker automatically, so
`pytest -m "not opensearch"` leaves them out. The plain functions (`postgres_server_url`,
`fresh_postgres_database`, ...) serve suites outside this folder, such as the store and search
contract suites, which can wrap them in fixtures of their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from core.db import make_engine, throwaway_database
from tests.conftest import require_service

POSTGRES_URL_ENV = "VOEXEC_TEST_POSTGRES_URL"
OPENSEARCH_URL_ENV = "VOEXEC_TEST_OPENSEARCH_URL"
HOW_TO_START = "start it with `make services` and `source .services/env`, or run `make test-all`"

# Fixture name -> marker name, for tests that use the servers.
SERVICE_MARKERS = {
    "postgres_url": "postgres",
    "postgres_database_url": "postgres",
    "opensearch_url": "opensearch",
    "opensearch_index_prefix": "opensearch",
}


def _postgres_problem(url: str) -> str | None:
    """Why the PostgreSQL server at `url` cannot be used, or None when it answers."""
    engine = make_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        # The driver's own message, first line: SQLAlchemy's wrapper adds a long epilogue.
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        return f"{POSTGRES_URL_ENV}={url} does not answer: {reason}"
    finally:
        engine.dispose()
    return None


def _opensearch_problem(url: str) -> str | None:
    """Why the OpenSearch cluster at `url` cannot be used, or None when it answers."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/_cluster/health", timeout=10)
    except httpx.HTTPError as error:
        return f"{OPENSEARCH_URL_ENV}={url} does not answer: {error.__class__.__name__}: {error}"
    if response.status_code != 200:
        return f"{OPENSEARCH_URL_ENV}={url} answers {response.status_code}: {response.text[:200]}"
    if response.json().get("status") not in {"green", "yellow"}:
        return f"{OPENSEARCH_URL_ENV}={url} cluster is {response.json().get('status')}"
    return None


def postgres_server_url() -> str:
    """The test PostgreSQL server's URL; skips (or fails in CI) when there is none."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    require_service("PostgreSQL", bool(url), f"{POSTGRES_URL_ENV} is not set; {HOW_TO_START}")
    problem = _postgres_problem(url)
    require_service("PostgreSQL", problem is None, f"{problem}; {HOW_TO_START}")
    return url


def opensearch_server_url() -> str:
    """The test OpenSearch cluster's URL; skips (or fails in CI) when there is none."""
    url = os.environ.get(OPENSEARCH_URL_ENV, "").strip().rstrip("/")
    require_service("OpenSearch", bool(url), f"{OPENSEARCH_URL_ENV} is not set; {HOW_TO_START}")
    problem = _opensearch_problem(url)
    require_service("OpenSearch", problem is None, f"{problem}; {HOW_TO_START}")
    return url


def fresh_postgres_database(
    server_url: str, prefix: str = "voexec_test"
) -> AbstractContextManager[str]:
    """A database of its own for the `with` block (see `core.db.throwaway_database`)."""
    return throwaway_database(server_url, prefix)


def delete_opensearch_indices(server_url: str, pattern: str) -> None:
    """Delete every index matching `pattern` (closed and hidden ones too)."""
    response = httpx.delete(
        f"{server_url}/{pattern}",
        params={"expand_wildcards": "all", "ignore_unavailable": "true"},
        timeout=30,
    )
    response.raise_for_status()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use a server with that server's marker."""
    for item in items:
        for fixture, marker in SERVICE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the test PostgreSQL server's `postgres` database."""
    return postgres_server_url()


@pytest.fixture
def postgres_database_url(postgres_url: str) -> Iterator[str]:
    """URL of a fresh database of this test's own, dropped after it."""
    with fresh_postgres_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="session")
def opensearch_url() -> str:
    """URL of the test OpenSearch cluster."""
    return opensearch_server_url()


@pytest.fixture
def opensearch_index_prefix(opensearch_url: str) -> Iterator[str]:
    """A unique index-name prefix for this test; its indices are deleted after it."""
    prefix = f"voexec-test-{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        delete_opensearch_indices(opensearch_url, f"{prefix}*")
