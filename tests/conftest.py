"""Shared fixtures: settings for tests, the shared data folder, and service switches.

Tests that need a real server (PostgreSQL, OpenSearch, Chromium, ...) call `require_service`;
without the service they skip with the reason, and with `VOEXEC_REQUIRE_SERVICES=1` (CI) the
skip becomes a failure, so a missing service can never pass unnoticed.

Vocabularies: tests use the snapshot that ships with the package (`SNAPSHOT`: UAT, messenger,
product-type), so a clone with nothing beside it runs them. Only tests that need reference
material the project does not ship (the full IVOA set, RDF serialisations, the schema) read
`../shared` through `shared_path` and carry the `shared` marker.

Variables read here start with `VOEXEC_TEST_`, which the settings loader ignores:
`VOEXEC_TEST_SHARED` names the shared folder when it is not `../shared`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.limits import RateLimiter
from core.settings import Settings, settings_from_mapping
from vocabularies.sources import SNAPSHOT_DIR

# Fixtures shared by tests in several folders: data sources for staging (`http_files`, ...),
# the broker's capacity audit after a test (`broker_capacity_audit`).
pytest_plugins = ["tests.data_support", "tests.broker_audit"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_ENV = "VOEXEC_TEST_SHARED"
SHARED = Path(os.environ.get(SHARED_ENV) or ROOT.parent / "shared")
SNAPSHOT = SNAPSHOT_DIR
"""The vocabulary snapshot shipped in the package (desise files named `<name>.json`)."""


def services_required() -> bool:
    """True when missing services must fail the run (CI)."""
    return os.environ.get("VOEXEC_REQUIRE_SERVICES", "") not in {"", "0", "false", "no"}


def require_service(name: str, available: bool, how: str) -> None:
    """Skip (laptop) or fail (CI) when a service is missing."""
    if available:
        return
    message = f"{name} is not available: {how}"
    if services_required():
        pytest.fail(f"VOEXEC_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


def shared_path(*parts: str) -> Path:
    """A path inside ../shared, skipping (or failing in CI) when it is missing."""
    path = SHARED.joinpath(*parts)
    require_service("shared test data", path.exists(), f"{path} not found (set {SHARED_ENV})")
    return path


@pytest.fixture
def tmp_settings(tmp_path: Path) -> Settings:
    """Settings with every file under a temporary folder; IVOA vocabularies from the snapshot."""
    return settings_from_mapping(
        {"data_dir": str(tmp_path / "var"), "vocabularies": {"offline": True}}
    )


_REAL_TAKE = RateLimiter.take


@pytest.fixture(autouse=True)
def _no_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rate limits (`core.limits`) count real time, so tests sending many requests from one
    client would meet them by chance: they are off, except in tests that ask for the fixture
    `rate_limits` (the tests of the limits themselves)."""
    monkeypatch.setattr(RateLimiter, "take", lambda self, kind, key: None)


@pytest.fixture
def rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rate limits as configured."""
    monkeypatch.setattr(RateLimiter, "take", _REAL_TAKE)
