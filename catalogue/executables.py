"""What the catalogue asks of an Execution Broker `executable` block beyond the broker's schema.

- **Kinds by name.** Packagers may write `kind: docker-container` (a term or label of our
  `executable-kind` vocabulary); `canonical_block` replaces it by the kind URI the vocabulary
  maps it to, so the broker, the index and the hand-off all see one spelling.
- **Pinned content.** A catalogue entry must say exactly what runs: a container image needs
  its digest (a tag can be moved to other content at any time), and every kind needs the
  location it is fetched from. `pinning_problems` reports what is missing; the broker's own
  schema checks (done through the `BrokerGateway`) come on top.

Pure: no I/O; imports `vocabularies` and `catalogue.model` only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from catalogue.model import ExecutableSpec, kind_term
from core.errors import Problem
from vocabularies.model import UnknownVocabulary, Vocabulary
from vocabularies.registry import VocabularyRegistry
from vocabularies.resolve import resolve

KINDS_VOCABULARY: Final = "executable-kind"
DIGEST: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
DIGEST_REASON: Final = "a digest (sha256:...) is required so the image cannot change under you"
_LOCATED: Final = ("singularity-container", "jupyter-notebook", "python-program")


def kinds_vocabulary(registry: VocabularyRegistry) -> Vocabulary | None:
    """The `executable-kind` vocabulary, when loaded."""
    try:
        return registry.get(KINDS_VOCABULARY)
    except UnknownVocabulary:
        return None


def kind_of(kind: str, vocabulary: Vocabulary | None) -> str:
    """The `executable-kind` term of a kind URI, alias, term or label (`docker-container`)."""
    if vocabulary is not None:
        term = resolve(vocabulary, kind).term
        if term is not None:
            return term
    return kind_term(kind)


def executable_kind(spec: ExecutableSpec, registry: VocabularyRegistry) -> str:
    """The `executable-kind` term of a spec's executable."""
    return kind_of(str(spec.executable.get("kind", "")), kinds_vocabulary(registry))


def canonical_block(block: dict[str, Any], vocabulary: Vocabulary | None) -> dict[str, Any]:
    """The block with a kind written by name (`docker-container`) replaced by its kind URI.

    Older metadata named the kind `type`; it is read as `kind` (the broker reads it so too).
    """
    if "kind" not in block and isinstance(block.get("type"), str):
        block = {"kind": block["type"], **{k: v for k, v in block.items() if k != "type"}}
    kind = block.get("kind")
    if vocabulary is None or not isinstance(kind, str) or "://" in kind or ":" in kind:
        return block
    term = resolve(vocabulary, kind).term
    if term is None:
        return block
    uris = [uri for uri in vocabulary.concepts[term].exact_match if uri.startswith("http")]
    return {**block, "kind": uris[0]} if uris else block


def pinning_problems(term: str, block: Mapping[str, Any]) -> list[Problem]:
    """What a block of kind `term` lacks to say exactly what runs (fields relative to the block)."""
    if term == "docker-container":
        image = block.get("image")
        if not isinstance(image, Mapping):
            return [Problem("image", "is required: the image's locations and digest")]
        problems = []
        locations = image.get("locations")
        if not isinstance(locations, list) or not locations:
            problems.append(
                Problem(
                    "image.locations", "list where the image is pulled from (registry/name:tag)"
                )
            )
        digest = image.get("digest")
        if digest is None:
            problems.append(Problem("image.digest", DIGEST_REASON))
        elif not isinstance(digest, str) or not DIGEST.match(digest):
            problems.append(
                Problem(
                    "image.digest", f"{digest!r} is not a sha256 digest (sha256: + 64 hex digits)"
                )
            )
        return problems
    if term in _LOCATED and not isinstance(block.get("location"), str):
        return [
            Problem("location", f"is required: where the {term.replace('-', ' ')} is fetched from")
        ]
    return []
