"""Fixtures for the vocabulary tests: the shipped snapshot (UAT, messenger, product-type).

`shared_vocabularies` (../shared/vocabularies, the full IVOA set in every serialisation) is for
the few tests that need more than the package ships; they carry the `shared` marker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.conftest import SNAPSHOT, shared_path
from tests.unit.vocabularies.vocabulary_server import VocabularyServer
from vocabularies.desise import decode_desise
from vocabularies.model import Concept, Vocabulary
from vocabularies.sources import SnapshotManifest


@pytest.fixture(scope="session")
def shared_vocabularies() -> Path:
    """../shared/vocabularies (skips, or fails in CI, when it is missing)."""
    return shared_path("vocabularies")


@pytest.fixture(scope="session")
def uat_raw() -> dict[str, Any]:
    """The UAT desise document as plain JSON: the ground truth tests compare against."""
    return json.loads((SNAPSHOT / "uat.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def uat() -> Vocabulary:
    """The full UAT, from the snapshot's desise file."""
    return decode_desise((SNAPSHOT / "uat.json").read_bytes(), "uat")


@pytest.fixture
def vocab_server() -> Iterator[VocabularyServer]:
    """A loopback server answering like www.ivoa.net/rdf, serving the snapshot's files."""
    server = VocabularyServer(SNAPSHOT).start()
    yield server
    server.stop()


@pytest.fixture
def empty_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot folder holding no vocabulary (as if the package shipped none)."""
    folder = tmp_path_factory.mktemp("empty-snapshot")
    manifest = SnapshotManifest(taken=date(2026, 1, 1), source="nowhere", vocabularies={})
    (folder / "manifest.json").write_bytes(msgspec.json.encode(manifest))
    return folder


def make_vocabulary(*concepts: Concept, name: str = "toy") -> Vocabulary:
    """A small vocabulary for exact expectations."""
    return Vocabulary(
        name=name,
        uri=f"https://example.org/{name}",
        title=name.title(),
        description="",
        concepts={concept.term: concept for concept in concepts},
    )


def concept(term: str, *broader: str, label: str | None = None, **extra: Any) -> Concept:
    """A concept of the toy vocabulary; the label defaults to the term in title case."""
    return Concept(
        uri=f"https://example.org/toy#{term}",
        term=term,
        label=label or term.replace("-", " ").capitalize(),
        broader=tuple(broader),
        **extra,
    )
