"""Wire schema, part 3: the names each kind has had, in one table.

The IVOA Execution Broker schema renamed its kinds several times (`type` URIs under
`.../EB/schema/types/`, then `.../EB/schema/v1.0/types/...-1.0`, now
`.../Calycopis-openapi/schema/v1.0/kinds/...yaml`), the Working Draft's prose uses `uri:...`
short names, the reference implementation echoes compute kinds with a `computer` spelling, and
the forms shown in the IVOA talks used `urn:...-0.1` names (the 2024 prototype) and the IVOA
RDF `.../rdf/executable/types/...` URIs (2023).
`KIND_ALIASES` maps every older name to the newest URI; `broker.model.codec` applies it to every
`kind` it reads, and docs/broker.md lists its patterns.

Pure data: imports msgspec and `broker.model` only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

import msgspec

from broker.model import (
    KINDS,
    PYTHON_PROGRAM_KIND,
    AnyCompute,
    AnyData,
    AnyExecutable,
    AnySession,
    AnyStorage,
    AnyVolume,
    OfferSetResponse,
)

__all__ = ["KIND_ALIASES", "canonical_kind", "tags_of"]

_EB: Final = "https://www.purl.org/ivoa.net/EB/schema/"
_PURL: Final = "https://www.purl.org/ivoa.net/"
_IVOA_RDF: Final = "https://www.ivoa.net/rdf/"


def tags_of(union: Any) -> list[str]:
    """The kind URIs of the members of a tagged union (or of one tagged Struct)."""
    info = msgspec.inspect.type_info(union)
    members = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
    return [
        member.tag
        for member in members
        if isinstance(member, msgspec.inspect.StructType) and isinstance(member.tag, str)
    ]


def _generated_aliases(kind: str) -> Iterator[str]:
    """The names earlier generations of the schema gave a standard kind."""
    folder, name = kind.removeprefix(KINDS).removesuffix(".yaml").split("/")
    folders = (folder, "computer") if folder == "compute" else (folder,)
    for spelling in folders:
        yield f"{KINDS}{spelling}/{name}.yaml"  # "computer": the reference implementation's echo
        yield f"{_EB}v1.0/types/{spelling}/{name}-1.0"  # schema 1.0.4, property `kind`
        yield f"{_EB}types/{spelling}/{name}-1.0"  # mid-2025 examples, property `type`
    yield f"uri:{name}-1.0"  # the Working Draft's prose
    yield f"uri:{name}"
    yield f"urn:{name}-0.1"  # the 2024 prototype (SRCNet demo)
    yield f"urn:{name}"
    if folder == "executable":
        yield f"{_IVOA_RDF}executable/types/{name}"  # the ExecutionPlanner talk, 2023


def _build_aliases() -> dict[str, str]:
    standard = [
        *tags_of(AnyExecutable),
        *tags_of(AnyCompute),
        *tags_of(AnyVolume),
        *tags_of(AnyStorage),
        *tags_of(AnyData),
        *tags_of(AnySession),
        *tags_of(OfferSetResponse),
    ]
    aliases: dict[str, str] = {}
    for kind in standard:
        if kind.startswith(KINDS):
            for alias in _generated_aliases(kind):
                aliases.setdefault(alias, kind)
    docker = KINDS + "executable/docker-container.yaml"
    singularity = KINDS + "executable/singularity-container.yaml"
    jupyter = KINDS + "executable/jupyter-notebook.yaml"
    compute = KINDS + "compute/simple-compute-resource.yaml"
    aliases |= {
        # the Working Draft's OpenAPI (2025-04)
        _EB + "types/executables/docker-container-1.0": docker,
        _EB + "types/executables/singularity-container-1.0": singularity,
        _EB + "types/executables/jupyter-notebook-1.0": jupyter,
        _EB + "types/resources/compute/simple-compute-resource-1.0": compute,
        _EB + "types/resources/storage/simple-storage-resource-1.0": (
            KINDS + "storage/simple-storage-resource.yaml"
        ),
        _EB + "types/resources/data/simple-data-resource-1.0": (
            KINDS + "data/simple-data-resource.yaml"
        ),
        _EB + "types/resources/data/S3-data-resource-1.0": KINDS + "data/S3-data-resource.yaml",
        _EB + "types/resources/data/Rucio-data-resource-1.0": (
            KINDS + "data/rucio-data-resource.yaml"
        ),
        # the Working Draft's prose
        "uri:singular-container-1.0": singularity,
        "uri:generic-compute": compute,
        "uri:python-program-1.0": PYTHON_PROGRAM_KIND,
        "uri:python-program": PYTHON_PROGRAM_KIND,
        "urn:python-program": PYTHON_PROGRAM_KIND,
        _IVOA_RDF + "executable/types/python-program": PYTHON_PROGRAM_KIND,
        _PURL + "executable-types/docker-container": docker,
        _PURL + "executable-types/oci-container": docker,
        _PURL + "executable-types/singularity-container": singularity,
        _PURL + "executable-types/jupyter-notebook": jupyter,
        _PURL + "resource-types/generic-compute": compute,
    }
    return aliases


KIND_ALIASES: Final[Mapping[str, str]] = _build_aliases()
"""Every older name of a kind, mapped to its newest URI."""


def canonical_kind(kind: str) -> str:
    """The newest URI for `kind` (itself when it has no older name)."""
    return KIND_ALIASES.get(kind, kind)
