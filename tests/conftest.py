"""Shared fixtures: settings for tests, the shared data folder, and service switches.

Tests that need a real server (PostgreSQL, OpenSearch, Chromium, ...) call `require_service`;
without the service they skip with the reason, and with `VOEXEC_REQUIRE_SERVICES=1` (CI) the
skip becomes a failure, so a missing service can never pass unnoticed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.settings import Settings, settings_from_mapping

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VOEXEC_SHARED", ROOT.parent / "shared"))


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
    require_service("shared test data", path.exists(), f"{path} not found (set VOEXEC_SHARED)")
    return path


@pytest.fixture
def tmp_settings(tmp_path: Path) -> Settings:
    """Settings with every file under a temporary folder."""
    return settings_from_mapping(
        {"data_dir": str(tmp_path / "var"), "vocabularies": {"offline": True}}
    )
