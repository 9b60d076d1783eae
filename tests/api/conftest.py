"""Fixtures of the API tests: every test ends with the broker's capacity audit."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _capacity_audit(broker_capacity_audit: object) -> None:
    """No platform of a broker the test built may end over capacity (`tests.broker_audit`)."""
