"""Fixtures for the vocabulary tests: the IVOA files in ../shared, parsed once per session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import shared_path
from tests.unit.vocabularies.vocabulary_server import VocabularyServer
from vocabularies.desise import decode_desise
from vocabularies.model import Concept, Vocabulary


@pytest.fixture(scope="session")
def shared_vocabularies() -> Path:
    """../shared/vocabularies (skips, or fails in CI, when it is missing)."""
    return shared_path("vocabularies")


@pytest.fixture(scope="session")
def uat_raw(shared_vocabularies: Path) -> dict[str, Any]:
    """The UAT desise document as plain JSON: the ground truth tests compare against."""
    return json.loads((shared_vocabularies / "uat.desise").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def uat(shared_vocabularies: Path) -> Vocabulary:
    """The full UAT, from its desise file."""
    return decode_desise((shared_vocabularies / "uat.desise").read_bytes(), "uat")


@pytest.fixture
def vocab_server(shared_vocabularies: Path) -> Iterator[VocabularyServer]:
    """A loopback server answering like www.ivoa.net/rdf, serving ../shared/vocabularies."""
    server = VocabularyServer(shared_vocabularies).start()
    yield server
    server.stop()


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
