"""Helpers shared by the catalogue's unit, contract and API tests.

Vocabularies are the IVOA UAT and messenger of the snapshot shipped in the package (offline,
nothing cached) plus our own, loaded once per session; documents are built from one valid
template so each test changes only what it is about.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from core.settings import Settings, VocabularySettings, settings_from_mapping
from tests.auth_support import PUBLISH_TOKEN, named
from tests.conftest import ROOT
from vocabularies.registry import VocabularyRegistry, load_registry
from voexec.demo import DEMO_PLATFORMS

DEMO_FOLDER = ROOT / "catalogue" / "demo"
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("ivoa-executable-*.yaml"))
K = "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/"
DOCKER = K + "executable/docker-container.yaml"
DIGEST = "sha256:" + "ab" * 32


@functools.cache
def _registry(cache: str) -> VocabularyRegistry:
    settings = VocabularySettings(names=["uat", "messenger"], offline=True)
    return load_registry(settings, cache)


def registry(tmp_root: Path) -> VocabularyRegistry:
    """The shipped snapshot's UAT and messenger, and our own (loaded once per process)."""
    return _registry(str(tmp_root))


def executable(**changes: Any) -> dict[str, Any]:
    """A valid publisher document for one executable, with some fields changed."""
    document: dict[str, Any] = {
        "name": "cube-finder",
        "title": "Cube source finder",
        "summary": "Finds sources in radio data cubes.",
        "description": "Finds *sources* in cubes.",
        "version": "1.0.0",
        "authors": [{"name": "A. Packager"}],
        "licence": "MIT",
        "keywords": ["HI", "cubes"],
        "subjects": ["radio-interferometry"],
        "functions": ["source-extraction"],
        "messengers": ["Radio"],
        "needs": {"cores": 2, "memory": 4, "duration": "PT1H"},
        "executable": {
            "kind": DOCKER,
            "image": {"locations": ["registry.example.org/cube-finder:1.0.0"], "digest": DIGEST},
        },
    }
    document = copy.deepcopy(document)
    document.update(changes)
    return document


def app_settings(data_dir: Path, **catalogue: Any) -> Settings:
    """Settings for an app with the snapshot's vocabularies, the demo platforms and a token."""
    return settings_from_mapping(
        {
            "data_dir": str(data_dir),
            "vocabularies": {"offline": True, "names": ["uat", "messenger"]},
            "auth": {"tokens": [named("publisher", PUBLISH_TOKEN, "packager")]},
            "catalogue": catalogue,
            # Offers stay open to anonymous callers, as on a voexec whose tokens only publish;
            # every test client is one requester, so the cap on held offer sets (tested in
            # tests/api/test_broker_holds.py) is lifted.
            "broker": {
                "platforms": DEMO_PLATFORMS,
                "allow_anonymous_runs": True,
                "held_offersets_per_requester": 0,
            },
        }
    )
