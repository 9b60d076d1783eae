"""Wire schema, part 2: the components a request asks for and a session holds.

Executables (Docker/OCI container, Singularity container, Jupyter notebook, and our Python
and Java program extensions), compute resources (simple, and our accelerated extension), volume
mounts, storage (simple, and our results destinations: S3, http PUT, a folder), and data
resources (simple, S3, Rucio, IVOA, SKAO), each with its exact kind
URI from `kinds/**` of the IVOA schema. Import the public names from `broker.model`.

Pure data: imports msgspec and `broker.model.common` only.

Each family is a closed union (`AnyExecutable`, `AnyCompute`, ...); dispatch with `match`, and
put `AcceleratedComputeResource` before `SimpleComputeResource` since it extends it (and the
results storage kinds before `SimpleStorageResource`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Annotated, ClassVar, Final, Literal

import msgspec

from broker.model.common import (
    EXTENSION_KINDS,
    KINDS,
    Component,
    LifecycleComponent,
    MinMaxCount,
    NameValueMap,
    VolumeMode,
    WireStruct,
)

# ------------------------------------------------------------------------- executables
OciDigest = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$",
        description="Content digest, e.g. sha256:<64 hex digits>.",
    ),
]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class Executable(LifecycleComponent, frozen=True):
    """What runs (AbstractExecutable)."""

    FAMILY: ClassVar[str] = "executable"


class DockerPlatformSpec(WireStruct, frozen=True):
    """The platform a container image is built for."""

    architecture: str = "amd64"
    os: str = "linux"


class DockerImageSpec(WireStruct, frozen=True):
    """A container image: where to pull it from and the digest that identifies it."""

    locations: list[str] = []
    """Repository locations, `<repository>/<namespace>/<container>:<tag>`."""
    digest: OciDigest | None = None
    platform: DockerPlatformSpec | None = None


class DockerInternalPort(WireStruct, frozen=True):
    """A port inside the container (set by the client)."""

    port: Port | None = None


class DockerExternalPort(WireStruct, frozen=True):
    """Where a container port is reachable from outside (set by the server)."""

    port: Port | None = None
    addresses: list[str] = []


class DockerNetworkPort(WireStruct, frozen=True):
    """A container port to publish, and whether it is listed as a way in to the session."""

    access: bool | None = None
    internal: DockerInternalPort | None = None
    external: DockerExternalPort | None = None
    protocol: Literal["UDP", "TCP", "HTTP", "HTTPS"] | None = None
    """Network protocol; TCP when not given."""
    path: str | None = None
    """Path part of the access URL, e.g. a notebook's path."""


class DockerNetworkSpec(WireStruct, frozen=True):
    """Network access to a container."""

    ports: list[DockerNetworkPort] = []


class DockerContainer(Executable, frozen=True, tag=KINDS + "executable/docker-container.yaml"):
    """A Docker or OCI container (https://opencontainers.org/)."""

    image: DockerImageSpec | None = None
    privileged: bool = False
    command: list[str] = []
    """Arguments passed to the entrypoint."""
    entrypoint: str | None = None
    environment: NameValueMap = {}
    network: DockerNetworkSpec | None = None


class SingularityContainer(
    Executable, frozen=True, tag=KINDS + "executable/singularity-container.yaml"
):
    """A Singularity (Apptainer) container image."""

    location: str | None = None
    """URL to download the image from."""


class JupyterNotebook(Executable, frozen=True, tag=KINDS + "executable/jupyter-notebook.yaml"):
    """A Jupyter notebook (https://jupyter.org/)."""

    location: str | None = None
    """URL of the notebook."""


PYTHON_PROGRAM_KIND: Final = EXTENSION_KINDS + "executable/python-program.yaml"

_VERSION_CLAUSE: Final = r"\s*(?:===?|~=|!=|<=|>=|<|>)?\s*\d+(?:\.\d+)*(?:\.\*)?\s*"
PythonConstraint = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^{_VERSION_CLAUSE}(?:,{_VERSION_CLAUSE})*$",
        description=(
            "The Python versions the program runs on: a version (`3.11`: any 3.11.x) or "
            "comma-separated PEP 440 clauses on release numbers (`>3.10`, `>=3.10,<3.13`)."
        ),
        examples=["3.11", ">3.10", ">=3.10,<3.13"],
    ),
]


class PythonProgram(Executable, frozen=True, kw_only=True, tag=PYTHON_PROGRAM_KIND):
    """voexec extension: a Python program run in its own environment.

    The program is fetched from `location` (a git repository, archive or single file URL), its
    dependencies are installed from `requirements` (a list of requirement specifiers, or the URL
    of a requirements file), and `entry_point` is run (`module:function`, a module name, or a
    script path inside the program). `python_version` is what the program asks of the
    interpreter: a platform whose Python does not satisfy it answers NO.

    `location` may be left out (a developer's metadata lives in the program's own repository),
    but a platform that runs programs for real needs it and says NO without it.
    """

    location: str | None = None
    requirements: list[str] | str | None = None
    entry_point: str | None = None
    python_version: PythonConstraint | None = None


JAVA_PROGRAM_KIND: Final = EXTENSION_KINDS + "executable/java-program.yaml"

Sha256Digest = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="SHA-256 of the file, as `sha256:<64 lower-case hex digits>`.",
    ),
]
JavaClassName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$",
        description="A fully qualified class name, e.g. `org.example.Main`.",
    ),
]
JavaConstraint = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^{_VERSION_CLAUSE}(?:,{_VERSION_CLAUSE})*$",
        description=(
            "The Java versions the program runs on: a feature release (`17`: any 17.x) or "
            "comma-separated clauses on release numbers (`>=11`, `>=11,<22`)."
        ),
        examples=["17", ">=11", ">=11,<22"],
    ),
]


class JavaProgram(Executable, frozen=True, kw_only=True, tag=JAVA_PROGRAM_KIND):
    """voexec extension: a Java program, one jar run on the platform's JVM.

    The jar is fetched from `location` and, when `digest` is given, checked against it (a jar
    with another digest fails the preparation). `main_class` is run; without it, the
    `Main-Class` of the jar's manifest. `java_version` is what the program asks of the JVM: a
    platform whose JVM does not satisfy it, or that has none, answers NO naming its version.
    """

    location: str | None = None
    """URL (or local path) of the jar."""
    digest: Sha256Digest | None = None
    main_class: JavaClassName | None = None
    java_version: JavaConstraint | None = None


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _padded(version: tuple[int, ...], length: int) -> tuple[int, ...]:
    return version + (0,) * (length - len(version))


def _clause_allows(clause: str, have: tuple[int, ...]) -> bool:
    found = re.match(r"===?|~=|!=|<=|>=|<|>|", clause)
    assert found is not None  # the empty alternative always matches
    op, text = found.group(), clause[found.end() :].strip()
    if text.endswith(".*") or not op:  # a prefix: `3.11` or `==3.11.*` is any 3.11.x
        prefix = _release(text.removesuffix(".*"))
        inside = have[: len(prefix)] == prefix
        return not inside if op == "!=" else inside
    wanted = _release(text)
    length = max(len(wanted), len(have))
    mine, theirs = _padded(have, length), _padded(wanted, length)
    if op == "~=":  # PEP 440's compatible release: ~=X.Y is >=X.Y and the same X
        return mine >= theirs and have[: len(wanted) - 1] == wanted[:-1]
    return _COMPARISONS[op](mine, theirs)


_COMPARISONS: Final[dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]]] = {
    "==": operator.eq,
    "===": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def python_version_allows(constraint: str, version: str) -> bool:
    """True when the interpreter `version` (`3.11.7`) satisfies `constraint` (`>3.10`).

    Release numbers only: pre-, post- and dev-release suffixes of `version` are ignored.
    """
    release = re.match(r"\d+(?:\.\d+)*", version.strip())
    if release is None:
        return False
    have = _release(release.group())
    return all(_clause_allows(clause.strip(), have) for clause in constraint.split(","))


def release_allows(constraint: str, version: str) -> bool:
    """True when the release `version` (`17.0.15`) satisfies `constraint` (`>=11,<22`).

    The same clauses as Python's (`python_version_allows`), for any release-numbered runtime.
    """
    return python_version_allows(constraint, version)


AnyExecutable = (
    DockerContainer | SingularityContainer | JupyterNotebook | PythonProgram | JavaProgram
)


# ------------------------------------------------------------------------- volumes
class VolumeMount(Component, frozen=True):
    """Where a data or storage resource appears inside the compute resource."""

    FAMILY: ClassVar[str] = "volume"


class SimpleVolumeMount(VolumeMount, frozen=True, tag=KINDS + "volume/simple-volume-mount.yaml"):
    """Mount a data or storage resource (by name or UUID) at a path."""

    path: str | None = None
    mode: VolumeMode | None = None
    resource: str | None = None
    """Name or UUID of the data or storage resource to mount."""


AnyVolume = SimpleVolumeMount


# ------------------------------------------------------------------------- compute
class ComputeResource(LifecycleComponent, frozen=True):
    """Where it runs (AbstractComputeResource)."""

    FAMILY: ClassVar[str] = "compute"
    volumes: list[AnyVolume] = []


class SimpleComputeCores(MinMaxCount, frozen=True):
    """CPU cores: the minimum the execution needs and the maximum it can use."""


class SimpleComputeMemory(MinMaxCount, frozen=True):
    """Memory in GiB: the minimum the execution needs and the maximum it can use."""


class SimpleComputeResource(
    ComputeResource, frozen=True, tag=KINDS + "compute/simple-compute-resource.yaml"
):
    """Cores and memory (GiB). In an offer, min = max = what is offered."""

    cores: SimpleComputeCores | None = None
    memory: SimpleComputeMemory | None = None


class AcceleratorCount(WireStruct, frozen=True):
    """How many devices: the minimum needed and the maximum usable."""

    min: Annotated[int, msgspec.Meta(ge=0, le=1024)] | None = None
    max: Annotated[int, msgspec.Meta(ge=0, le=1024)] | None = None


class AcceleratorMemory(WireStruct, frozen=True):
    """Memory per device, GiB."""

    min: Annotated[float, msgspec.Meta(ge=0)] | None = None


class ComputeCapability(WireStruct, frozen=True):
    """Lowest acceptable compute capability (CUDA's, for NVIDIA devices)."""

    min: Annotated[float, msgspec.Meta(ge=0)] | None = None


class Accelerators(WireStruct, frozen=True):
    """voexec extension: the accelerators (GPUs) an execution needs.

    Every condition given must hold for one device model; `models` lists acceptable models (any
    when empty). In an offer: count min = max = devices offered, `models` = the one model,
    `memory.min` = its memory.
    """

    count: AcceleratorCount | None = None
    vendor: str | None = None
    models: list[str] = []
    memory: AcceleratorMemory | None = None
    compute_capability: ComputeCapability | None = None


ACCELERATED_COMPUTE_KIND: Final = EXTENSION_KINDS + "compute/accelerated-compute-resource.yaml"


class AcceleratedComputeResource(SimpleComputeResource, frozen=True, tag=ACCELERATED_COMPUTE_KIND):
    """voexec extension: a simple compute resource plus accelerators (GPUs)."""

    accelerators: Accelerators | None = None


AnyCompute = SimpleComputeResource | AcceleratedComputeResource


# ------------------------------------------------------------------------- storage
class StorageResource(LifecycleComponent, frozen=True):
    """Space to hold data (AbstractStorageResource)."""

    FAMILY: ClassVar[str] = "storage"
    data: list[str] = []
    """Names or UUIDs of the data resources held here."""


class SimpleStorageSize(MinMaxCount, frozen=True):
    """Storage size in GiB: the minimum needed and the maximum usable."""


class SimpleStorageResource(
    StorageResource, frozen=True, tag=KINDS + "storage/simple-storage-resource.yaml"
):
    """Storage of a given size (GiB)."""

    size: SimpleStorageSize | None = None


S3_RESULTS_KIND: Final = EXTENSION_KINDS + "storage/s3-results-storage.yaml"
HTTP_RESULTS_KIND: Final = EXTENSION_KINDS + "storage/http-results-storage.yaml"
FILE_RESULTS_KIND: Final = EXTENSION_KINDS + "storage/file-results-storage.yaml"


class S3ResultsStorage(SimpleStorageResource, frozen=True, tag=S3_RESULTS_KIND):
    """voexec extension: the session's results go to an S3 prefix when its work ends.

    Every file of the output folder becomes the object `<prefix><its path in the folder>` in
    `bucket` at `endpoint` (path-style). The platform signs with its own keys, never with
    anything from the request; one that may not write to `endpoint` says NO.
    """

    endpoint: str | None = None
    """The S3 service, `https://s3.example.net`."""
    bucket: str | None = None
    prefix: str = ""
    """Prepended to each file's path; end it with `/` to make a folder."""


class HttpResultsStorage(SimpleStorageResource, frozen=True, tag=HTTP_RESULTS_KIND):
    """voexec extension: the session's results are PUT under a URL when its work ends.

    Each file of the output folder is sent with `PUT <location>/<its path in the folder>`.
    """

    location: str | None = None
    """The http(s) URL prefix the files go under."""


class FileResultsStorage(SimpleStorageResource, frozen=True, tag=FILE_RESULTS_KIND):
    """voexec extension: the session's results are copied to a folder on the platform."""

    path: str | None = None
    """An absolute folder path on the platform (created when missing)."""


AnyResultsStorage = S3ResultsStorage | HttpResultsStorage | FileResultsStorage
"""voexec's results destinations: storage kinds whose content is the session's output."""

AnyStorage = S3ResultsStorage | HttpResultsStorage | FileResultsStorage | SimpleStorageResource


# ------------------------------------------------------------------------- data
ObjectType = Literal["FILE", "CONTAINER", "DATASET"]


class DataResource(LifecycleComponent, frozen=True):
    """Data the execution reads (AbstractDataResource)."""

    FAMILY: ClassVar[str] = "data"
    storage: str | None = None
    """Name or UUID of the storage resource that will hold it."""


class SimpleDataResource(DataResource, frozen=True, tag=KINDS + "data/simple-data-resource.yaml"):
    """A file to download from a URL."""

    location: str | None = None


class S3DataResource(DataResource, frozen=True, tag=KINDS + "data/S3-data-resource.yaml"):
    """An object (or a whole bucket) in an S3 store."""

    endpoint: str | None = None
    template: str | None = None
    bucket: str | None = None
    object: str | None = None
    """Object name; empty mounts the whole bucket as a directory."""


class RucioDataResourceBlock(WireStruct, frozen=True):
    """Where an object is in a Rucio data management system."""

    endpoint: str | None = None
    scope: str | None = None
    object: str | None = None
    type: ObjectType | None = None


class RucioReplicaBlock(WireStruct, frozen=True):
    """A Rucio replica: the storage element and the object's URL in it."""

    rse: str | None = None
    url: str | None = None


class RucioDataResource(DataResource, frozen=True, tag=KINDS + "data/rucio-data-resource.yaml"):
    """An object in a Rucio data management system."""

    rucio: RucioDataResourceBlock | None = None


class IvoaObsCoreItem(WireStruct, frozen=True):
    """One ObsCore row describing the data."""

    obs_id: str | None = None
    obs_collection: str | None = None
    obs_publisher_did: str | None = None
    obs_creator_did: str | None = None
    dataproduct_type: str | None = None
    calib_level: Annotated[int, msgspec.Meta(ge=0, le=4)] | None = None
    access_url: str | None = None
    access_format: str | None = None


class IvoaDataLinkItem(WireStruct, frozen=True):
    """One DataLink row describing the data."""

    id: str | None = msgspec.field(default=None, name="ID")
    access_url: str | None = None
    service_def: str | None = None
    error_message: str | None = None
    description: str | None = None
    semantics: str | None = None
    content_type: str | None = None
    content_length: Annotated[int, msgspec.Meta(ge=0)] | None = None
    content_qualifier: str | None = None
    local_semantics: str | None = None
    link_auth: str | None = None
    link_authorized: str | None = None


class IvoaDataResourceBlock(WireStruct, frozen=True):
    """The IVOA identity of the data: its ivoid and optional ObsCore and DataLink rows."""

    ivoid: str | None = None
    obscore: IvoaObsCoreItem | None = None
    datalink: IvoaDataLinkItem | None = None


class IvoaDataResource(DataResource, frozen=True, tag=KINDS + "data/ivoa-data-resource.yaml"):
    """Data known by its IVOA identifier."""

    ivoa: IvoaDataResourceBlock | None = None


class SkaoChecksumItem(WireStruct, frozen=True):
    """A checksum: algorithm and value."""

    type: str | None = None
    value: str | None = None


class SkaoReplicaItem(WireStruct, frozen=True):
    """A replica of a SKAO data object in a storage element."""

    rsename: str | None = None
    dataurl: str | None = None


class SkaoDataResourceBlock(WireStruct, frozen=True):
    """Where a data object is in the SKAO data lake."""

    namespace: str | None = None
    objectname: str | None = None
    objecttype: ObjectType | None = None
    datasize: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """Bytes."""
    checksum: SkaoChecksumItem | None = None
    replicas: list[SkaoReplicaItem] = []


class SkaoDataResource(DataResource, frozen=True, tag=KINDS + "data/skao-data-resource.yaml"):
    """A data object in the SKAO data lake, with its IVOA identity."""

    ivoa: IvoaDataResourceBlock | None = None
    skao: SkaoDataResourceBlock | None = None


AnyData = (
    SimpleDataResource | S3DataResource | RucioDataResource | IvoaDataResource | SkaoDataResource
)
