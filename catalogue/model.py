"""The catalogue's data: the publisher's file, entries with versions, and what searches return.

Two families of msgspec Structs live here:

- **the publisher's file** (`ExecutableSpec`, `ExecutableList` and their parts): the schema of
  `ivoa-executable.yaml`. `docs/ivoa-executable.schema.json` is generated from these types
  (`publisher_file_schema()`), so a field's `Meta(description=...)` is its documentation;
- **catalogue records** (`Provenance`, `EntryVersion`, `EntryDetail`, `PublishReport`,
  `SearchPage`...): what the service stores and answers.

Pure data and pure helpers only (ids, version order); imports nothing of ours but `core` and
`catalogue.ports`, and no I/O library.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from catalogue.ports import Needs, SortOrder

SLUG_PATTERN: Final = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
LATEST: Final = "latest"
"""The version label of whatever the repository's default branch holds."""

Slug = Annotated[
    str,
    Meta(
        pattern=SLUG_PATTERN,
        description="Lower-case letters, digits and '-', 1-64 characters (e.g. `sofia-2`).",
    ),
]
Text = Annotated[str, Meta(min_length=1, max_length=200)]
Url = Annotated[str, Meta(max_length=2000, description="An absolute http(s) URL.")]


class _Document(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base of the publisher's file: unknown keys are problems, never silently dropped."""


# ----------------------------------------------------------------------- the publisher's file
class Author(_Document, frozen=True, kw_only=True):
    """A person who wrote or maintains the executable."""

    name: Text
    orcid: Annotated[
        str | None,
        Meta(description="ORCID iD, bare (`0000-0002-1825-0097`) or as an https://orcid.org URL."),
    ] = None
    affiliation: Annotated[str, Meta(max_length=300)] | None = None


class GpuNeeds(_Document, frozen=True, kw_only=True):
    """Accelerators the executable needs (or can use, when `optional`)."""

    count: Annotated[int, Meta(ge=1, le=64, description="GPUs per run.")] = 1
    memory: Annotated[float, Meta(gt=0, le=4096, description="GiB per GPU, at least.")] | None = (
        None
    )
    vendor: Annotated[
        str | None, Meta(description="`nvidia`, `amd` or `intel` when only one vendor will do.")
    ] = None
    optional: Annotated[
        bool, Meta(description="True when it also runs without a GPU (only slower).")
    ] = False


class DeclaredNeeds(_Document, frozen=True, kw_only=True):
    """The least it needs to run; the hand-off to the broker asks for at least this."""

    cores: Annotated[int, Meta(ge=1, le=4096, description="CPU cores, at least.")] = 1
    memory: Annotated[float, Meta(gt=0, le=65536, description="Memory in GiB, at least.")] = 1.0
    gpus: GpuNeeds | None = None
    duration: Annotated[
        str | None,
        Meta(description="Typical run time, an ISO-8601 duration (`PT2H`, `PT30M`, `P1DT6H`)."),
    ] = None

    def for_broker(self) -> Needs:
        """The needs as the broker port sees them (an optional GPU is not a need)."""
        gpus = self.gpus if self.gpus and not self.gpus.optional else None
        return Needs(
            cores=self.cores,
            memory=self.memory,
            gpus=gpus.count if gpus else 0,
            gpu_memory=gpus.memory if gpus else None,
            duration=self.duration,
        )

    @property
    def gpu(self) -> Literal["required", "optional", "none"]:
        """The value of the `gpu` search facet."""
        if self.gpus is None:
            return "none"
        return "optional" if self.gpus.optional else "required"


class ExpectedData(_Document, frozen=True, kw_only=True):
    """Data the executable expects as input."""

    description: Annotated[str, Meta(min_length=1, max_length=2000)]
    formats: Annotated[
        list[str], Meta(description="Format names or media types (`FITS`, `image/fits`).")
    ] = []
    examples: Annotated[
        list[str],
        Meta(description="Example locations: http(s), s3:// or ivo:// URIs of real data."),
    ] = []


class Links(_Document, frozen=True, kw_only=True):
    """Where to learn more."""

    homepage: Url | None = None
    documentation: Url | None = None
    source: Url | None = None
    issues: Url | None = None
    doi: Annotated[
        str | None, Meta(description="A DOI, bare (`10.5281/zenodo.123`) or as a doi.org URL.")
    ] = None


ExecutableBlock = Annotated[
    dict[str, Any],
    Meta(
        description=(
            "An IVOA Execution Broker executable: `kind` plus that kind's fields "
            "(a container image and its digest, a notebook location, a Python program...)."
        ),
        extra_json_schema={
            "required": ["kind"],
            "properties": {"kind": {"type": "string", "minLength": 1}},
        },
    ),
]


class ExecutableSpec(_Document, frozen=True, kw_only=True):
    """One executable: catalogue metadata plus what the Execution Broker runs."""

    name: Slug
    title: Text
    summary: Annotated[str, Meta(min_length=1, max_length=300, description="One sentence.")]
    description: Annotated[str, Meta(max_length=50_000, description="Markdown.")] = ""
    version: Annotated[
        str, Meta(min_length=1, max_length=64, description='Quote it: `"1.10"`, not 1.10.')
    ]
    authors: Annotated[list[Author], Meta(min_length=1)]
    licence: Annotated[
        str, Meta(description="An SPDX licence identifier or expression (`MIT`, `GPL-3.0-only`).")
    ]
    keywords: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=60)]], Meta(max_length=30)
    ] = []
    subjects: Annotated[
        list[str], Meta(description="UAT concepts: term, label or URI (`radio-astronomy`).")
    ] = []
    functions: Annotated[
        list[str], Meta(description="What it does, from the `software-function` vocabulary.")
    ] = []
    messengers: Annotated[
        list[str], Meta(description="IVOA messenger vocabulary: `Radio`, `Optical`, `X-ray`...")
    ] = []
    needs: DeclaredNeeds = DeclaredNeeds()
    data: list[ExpectedData] = []
    links: Links = Links()
    executable: ExecutableBlock


class ExecutableList(_Document, frozen=True, kw_only=True):
    """Several executables published from one file."""

    executables: Annotated[list[ExecutableSpec], Meta(min_length=1)]


def publisher_file_schema() -> dict[str, Any]:
    """The JSON Schema of `ivoa-executable.yaml`: one executable, or a list under `executables`."""
    (single, many), definitions = msgspec.json.schema_components(
        (ExecutableSpec, ExecutableList), ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://voexec.org/schema/ivoa-executable.schema.json",
        "title": "ivoa-executable.yaml",
        "description": (
            "Catalogue metadata and an IVOA Execution Broker executable, published from a "
            "repository. One executable, or several under `executables:`."
        ),
        "anyOf": [single, many],
        "$defs": definitions,
    }


# ----------------------------------------------------------------------- catalogue records
PublishStatus = Literal["new", "updated", "unchanged"]
RefKind = Literal["default-branch", "tag"]


class Provenance(msgspec.Struct, frozen=True, kw_only=True):
    """Where a version came from."""

    source: str
    """`api`, `cli`, `demo`, or the name of a harvest source."""
    repository: str | None = None
    """Repository URL, when harvested."""
    path: str | None = None
    """Path of the publisher's file inside the repository."""
    ref: str | None = None
    """Branch or tag name."""
    ref_kind: RefKind | None = None
    """`default-branch`: filed as `latest`; `tag`: under the tag; none: the declared version."""
    commit: str | None = None
    harvested_at: datetime | None = None

    def version_label(self, declared: str) -> str:
        """The label a version published from here is filed under."""
        if self.ref_kind == "default-branch":
            return LATEST
        if self.ref_kind == "tag" and self.ref:
            return self.ref
        return declared


class EntryVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One stored version of an entry: the normalised document and where it came from."""

    version: str
    """Label: a tag, `latest`, or the declared version."""
    spec: ExecutableSpec
    """Normalised: canonical vocabulary terms, SPDX ids, bare ORCID iDs and DOIs."""
    content_hash: str
    provenance: Provenance
    published_at: datetime
    """When this version label was first stored."""
    updated_at: datetime
    """When its content last changed."""


class VersionWrite(msgspec.Struct, frozen=True):
    """One version to store under an entry id."""

    entry_id: str
    version: EntryVersion
    document: bytes | None = None
    """The spec's canonical JSON (`canonical_json`) when the caller has it: not encoded again."""


class VersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A version in an entry's version list."""

    version: str
    declared_version: str
    published_at: datetime
    updated_at: datetime
    content_hash: str


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """An entry's header: identity, state and versions (newest first)."""

    id: str
    name: str
    source: str
    repository: str | None
    path: str | None
    current_version: str
    withdrawn: bool
    created_at: datetime
    updated_at: datetime
    versions: list[VersionInfo]


class Concept(msgspec.Struct, frozen=True):
    """A vocabulary term with its label."""

    term: str
    label: str


class EntryDetail(msgspec.Struct, frozen=True, kw_only=True):
    """What `GET /catalogue/executables/{id}` answers: one version in full, and the others."""

    id: str
    name: str
    withdrawn: bool
    version: str
    current_version: str
    spec: ExecutableSpec
    subjects: list[Concept]
    functions: list[Concept]
    kind: str
    gpu: Literal["required", "optional", "none"]
    platforms: list[str]
    """Registered platforms that can run it now (kind and declared needs)."""
    provenance: Provenance
    content_hash: str
    published_at: datetime
    updated_at: datetime
    versions: list[VersionInfo]


class EntrySummary(msgspec.Struct, frozen=True, kw_only=True):
    """A search hit, resolved from the store."""

    id: str
    name: str
    title: str
    summary: str
    version: str
    kind: str
    licence: str
    gpu: Literal["required", "optional", "none"]
    subjects: list[Concept]
    functions: list[Concept]
    authors: list[str]
    updated_at: datetime
    score: float


class PublishOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What publishing did to one entry."""

    id: str
    name: str
    version: str
    status: PublishStatus


class ProblemItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A problem or warning with a field of the published document."""

    field: str
    reason: str
    suggestions: list[str] = []


class PublishReport(msgspec.Struct, frozen=True, kw_only=True):
    """Outcome of one publication: per entry, or the problems that stopped it (nothing stored)."""

    entries: list[PublishOutcome] = []
    problems: list[ProblemItem] = []
    warnings: list[ProblemItem] = []

    @property
    def ok(self) -> bool:
        """True when the document was accepted (warnings do not stop it)."""
        return not self.problems


class FacetBucket(msgspec.Struct, frozen=True, kw_only=True):
    """One value of a facet: how many hits it would select; narrower values beneath it."""

    value: str
    label: str
    count: int
    selected: bool = False
    children: list[FacetBucket] = []


class Facet(msgspec.Struct, frozen=True, kw_only=True):
    """A facet: flat, or a tree for vocabulary facets (subject, function)."""

    name: str
    hierarchical: bool
    buckets: list[FacetBucket]


class SearchRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A search as a researcher asks it: text, facet selections (labels or terms), sort, page."""

    text: str = ""
    filters: dict[str, tuple[str, ...]] = {}
    sort: SortOrder = "relevance"
    cursor: str | None = None
    limit: int | None = None
    facets: tuple[str, ...] | None = None
    """The facets to count and show (None: all); the others are left out of the page."""


class SearchPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of results with facet counts and the cursor of the next page."""

    total: int
    hits: list[EntrySummary]
    facets: list[Facet]
    next_cursor: str | None
    sort: SortOrder


class HandOff(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the researcher changes when asking for offers; everything else comes from the entry."""

    version: str | None = None
    """Which version to run (default: the entry's current one)."""
    start: str | None = None
    """When it may start: an ISO-8601 interval (`2026-09-01T10:00Z/PT2H`) or instant."""
    duration: str | None = None
    """How long it runs (ISO-8601 duration); default: the entry's typical duration."""
    cores: Annotated[int, Meta(ge=1)] | None = None
    memory: Annotated[float, Meta(gt=0)] | None = None
    """GiB."""
    gpus: Annotated[int, Meta(ge=0)] | None = None
    data: list[str] = []
    """Input locations: http(s)://, s3://bucket/key or ivo:// URIs."""
    results: str | None = None
    """Where the results go when the run ends: `s3+https://ENDPOINT/BUCKET/PREFIX`, an
    http(s):// URL prefix each file is PUT under, or a folder on the platform (`/path` or
    `file:///path`)."""


# ----------------------------------------------------------------------- pure helpers
def entry_id(source: str, repository: str | None, path: str | None, name: str) -> str:
    """The stable id of an entry: its name and a digest of where it is published from.

    Deterministic, so re-harvesting or re-publishing finds the same entry; the digest keeps
    two repositories that publish the same name apart.
    """
    origin = "\x1f".join((source, repository or "", path or "", name))
    return f"{name}-{hashlib.sha256(origin.encode()).hexdigest()[:10]}"


def canonical_json(spec: ExecutableSpec) -> bytes:
    """A normalised document as stored: JSON with keys in a fixed order."""
    return msgspec.json.encode(spec, order="deterministic")


def content_hash(spec: ExecutableSpec, document: bytes | None = None) -> str:
    """A digest of a normalised document: equal content, equal hash (key order does not matter).

    `document` is the spec's `canonical_json` when the caller has it already.
    """
    return hashlib.sha256(canonical_json(spec) if document is None else document).hexdigest()


_VERSION_PART = re.compile(r"(\d+)|([^\d]+)")


def version_key(label: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order of version labels: `v1.10` after `v1.9`, numbers before words."""
    parts: list[tuple[int, int | str]] = []
    for number, word in _VERSION_PART.findall(label.lower().removeprefix("v")):
        parts.append((1, int(number)) if number else (0, word))
    return tuple(parts)


def current_version(labels: Iterable[str]) -> str:
    """The version shown by default: the default branch (`latest`) if present, else the highest."""
    labels = list(labels)
    if not labels:
        raise ValueError("an entry has at least one version")
    if LATEST in labels:
        return LATEST
    return max(labels, key=version_key)


def kind_term(kind: str) -> str:
    """The short `executable-kind` term of an executable `kind` URI or alias.

    `https://.../kinds/executable/docker-container.yaml`, `.../docker-container-1.0`,
    `uri:docker-container-1.0` and `docker-container` all give `docker-container`.
    """
    last = kind.rstrip("/").rsplit("/", 1)[-1].removeprefix("uri:")
    last = last.removesuffix(".yaml").removesuffix(".yml")
    return re.sub(r"-\d+(?:\.\d+)*$", "", last)
