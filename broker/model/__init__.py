"""The IVOA Execution Broker's wire schema as msgspec Structs: the one public import point.

Implements the shapes and exact `kind` URIs of the newest IVOA Execution Broker schema
(Calycopis-openapi v1.0, `../shared/spec/openapi/`), plus voexec's extension kinds
(`AcceleratedComputeResource`, `PythonProgram`, `JavaProgram`, the results storage kinds, see
docs/broker.md). The
building blocks live in `broker.model.common` and the components in `broker.model.components`;
this module adds the documents that travel whole (the request, offer sets, sessions, error
bodies) and re-exports everything, so callers write `from broker.model import DockerContainer`.

Request and response documents are separate types (`ExecutionRequest` in, `OfferSetResponse` and
sessions out). Components are shared by both: the fields the server sets (`meta.uuid`, `phase`,
`schedule`, ...) are optional, and the service ignores them on input.

Pure data: imports msgspec and the two model parts only; decoding, legacy aliases and encoding
live in `broker.model.codec`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Final, Literal

from broker.model.common import (
    EXTENSION_KINDS,
    KINDS,
    AbstractCostItem,
    AbstractMetricItem,
    AnyCost,
    AnyMetric,
    AnyOption,
    AnyUpdate,
    Component,
    ComponentMetadata,
    EnumValueOption,
    EnumValueUpdate,
    Instant,
    IntegerDeltaOption,
    IntegerDeltaUpdate,
    IntegerValueOption,
    IntegerValueUpdate,
    LifecyclePhase,
    LifecycleSchedule,
    LifecycleStartDurationInstant,
    LifecycleStartDurationInterval,
    MessageItem,
    MessageLevel,
    MinMaxCount,
    Option,
    SimpleMinMaxFloatCost,
    SimpleMinMaxFloatMetric,
    StringValueOption,
    StringValueUpdate,
    TaggedStruct,
    Update,
    WireStruct,
    message_item,
    render_template,
)
from broker.model.components import (
    ACCELERATED_COMPUTE_KIND,
    FILE_RESULTS_KIND,
    HTTP_RESULTS_KIND,
    JAVA_PROGRAM_KIND,
    PYTHON_PROGRAM_KIND,
    S3_RESULTS_KIND,
    AcceleratedComputeResource,
    AcceleratorCount,
    AcceleratorMemory,
    Accelerators,
    AnyCompute,
    AnyData,
    AnyExecutable,
    AnyResultsStorage,
    AnyStorage,
    AnyVolume,
    ComputeCapability,
    ComputeResource,
    DataResource,
    DockerContainer,
    DockerExternalPort,
    DockerImageSpec,
    DockerInternalPort,
    DockerNetworkPort,
    DockerNetworkSpec,
    DockerPlatformSpec,
    Executable,
    FileResultsStorage,
    HttpResultsStorage,
    IvoaDataLinkItem,
    IvoaDataResource,
    IvoaDataResourceBlock,
    IvoaObsCoreItem,
    JavaClassName,
    JavaConstraint,
    JavaProgram,
    JupyterNotebook,
    PythonConstraint,
    PythonProgram,
    RucioDataResource,
    RucioDataResourceBlock,
    RucioReplicaBlock,
    S3DataResource,
    S3ResultsStorage,
    SimpleComputeCores,
    SimpleComputeMemory,
    SimpleComputeResource,
    SimpleDataResource,
    SimpleStorageResource,
    SimpleStorageSize,
    SimpleVolumeMount,
    SingularityContainer,
    SkaoChecksumItem,
    SkaoDataResource,
    SkaoDataResourceBlock,
    SkaoReplicaItem,
    StorageResource,
    VolumeMount,
    python_version_allows,
    release_allows,
)
from core.time import Duration, Interval

__all__ = [
    "ACCELERATED_COMPUTE_KIND",
    "ERROR_RESPONSE_KIND",
    "EXTENSION_KINDS",
    "FILE_RESULTS_KIND",
    "HTTP_RESULTS_KIND",
    "JAVA_PROGRAM_KIND",
    "KINDS",
    "OFFERSET_KIND",
    "PYTHON_PROGRAM_KIND",
    "S3_RESULTS_KIND",
    "TERMINAL_PHASES",
    "AbstractCostItem",
    "AbstractMetricItem",
    "AcceleratedComputeResource",
    "AcceleratorCount",
    "AcceleratorMemory",
    "Accelerators",
    "AnyCompute",
    "AnyCost",
    "AnyData",
    "AnyExecutable",
    "AnyMetric",
    "AnyOption",
    "AnyResultsStorage",
    "AnySession",
    "AnyStorage",
    "AnyUpdate",
    "AnyVolume",
    "Component",
    "ComponentMetadata",
    "ComputeCapability",
    "ComputeResource",
    "DataResource",
    "DockerContainer",
    "DockerExternalPort",
    "DockerImageSpec",
    "DockerInternalPort",
    "DockerNetworkPort",
    "DockerNetworkSpec",
    "DockerPlatformSpec",
    "Duration",
    "EnumValueOption",
    "EnumValueUpdate",
    "ErrorResponse",
    "Executable",
    "ExecutionRequest",
    "ExecutionSession",
    "FileResultsStorage",
    "HttpResultsStorage",
    "Instant",
    "IntegerDeltaOption",
    "IntegerDeltaUpdate",
    "IntegerValueOption",
    "IntegerValueUpdate",
    "Interval",
    "IvoaDataLinkItem",
    "IvoaDataResource",
    "IvoaDataResourceBlock",
    "IvoaObsCoreItem",
    "JavaClassName",
    "JavaConstraint",
    "JavaProgram",
    "JupyterNotebook",
    "LifecyclePhase",
    "LifecycleSchedule",
    "LifecycleStartDurationInstant",
    "LifecycleStartDurationInterval",
    "MessageItem",
    "MessageLevel",
    "MinMaxCount",
    "OfferSetResponse",
    "Option",
    "PythonConstraint",
    "PythonProgram",
    "RequestedScheduleBlock",
    "RequestedScheduleItem",
    "RucioDataResource",
    "RucioDataResourceBlock",
    "RucioReplicaBlock",
    "S3DataResource",
    "S3ResultsStorage",
    "ScheduledExecutionSchedule",
    "ScheduledExecutionSession",
    "SessionPhase",
    "SimpleComputeCores",
    "SimpleComputeMemory",
    "SimpleComputeResource",
    "SimpleDataResource",
    "SimpleExecutionSession",
    "SimpleMinMaxFloatCost",
    "SimpleMinMaxFloatMetric",
    "SimpleSessionConnector",
    "SimpleStorageResource",
    "SimpleStorageSize",
    "SimpleVolumeMount",
    "SingularityContainer",
    "SkaoChecksumItem",
    "SkaoDataResource",
    "SkaoDataResourceBlock",
    "SkaoReplicaItem",
    "StorageResource",
    "StringValueOption",
    "StringValueUpdate",
    "TaggedStruct",
    "UnknownKind",
    "Update",
    "VolumeMount",
    "WireStruct",
    "message_item",
    "python_version_allows",
    "release_allows",
    "render_template",
]

OFFERSET_KIND: Final = KINDS + "offerset/execution-offerset.yaml"
"""Offer sets are not in the schema's discriminator mappings; this is the reference
implementation's URI, which we use too."""

ERROR_RESPONSE_KIND: Final = EXTENSION_KINDS + "error/error-response.yaml"


# ------------------------------------------------------------------------- the request
class RequestedScheduleItem(WireStruct, frozen=True):
    """When the client wants the session: a range to start in, and for how long."""

    start: Interval | None = None
    """The range in which the session may start; a single instant means exactly then."""
    duration: Duration | None = None


class RequestedScheduleBlock(WireStruct, frozen=True):
    """The schedule block of a request."""

    requested: RequestedScheduleItem | None = None


class ExecutionRequest(WireStruct, frozen=True):
    """A request for offers: an executable, the resources it needs, and when.

    Every part is optional on the wire; a request the broker cannot serve (no executable, a kind
    it does not know, more cores than it has) is answered with `result: NO` and messages, never
    with a decoding error.
    """

    executable: AnyExecutable | None = None
    compute: AnyCompute | None = None
    storage: list[AnyStorage] = []
    data: list[AnyData] = []
    schedule: RequestedScheduleBlock | None = None
    costs: list[AnyCost] = []
    """Cost limits: the most the client will pay."""
    metrics: list[AnyMetric] = []
    """Metric requirements: the least the client needs."""


# ------------------------------------------------------------------------- sessions
class SessionPhase(StrEnum):
    """The phase of an execution session (SimpleExecutionSessionPhase)."""

    INITIAL = "INITIAL"
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    WAITING = "WAITING"
    PREPARING = "PREPARING"
    AVAILABLE = "AVAILABLE"
    RUNNING = "RUNNING"
    RELEASING = "RELEASING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        """True when nothing can happen to the session any more."""
        return self in TERMINAL_PHASES


TERMINAL_PHASES: Final = frozenset(
    {
        SessionPhase.REJECTED,
        SessionPhase.EXPIRED,
        SessionPhase.COMPLETED,
        SessionPhase.FAILED,
        SessionPhase.CANCELLED,
    }
)
"""Phases a session never leaves."""


class SimpleSessionConnector(WireStruct, frozen=True):
    """A way in to a running session (a notebook URL, a port), filled by the server."""

    kind: str | None = None
    """A URI naming the kind of connector."""
    status: Literal["PREPARING", "AVAILABLE", "FINISHED"] | None = None
    protocol: str | None = None
    """Typically TCP, HTTP or HTTPS."""
    location: str | None = None
    """The connector's URL."""


class ExecutionSession(Component, frozen=True, kw_only=True):
    """An offer, or an accepted session (AbstractExecutionSession)."""

    FAMILY: ClassVar[str] = "session"
    phase: SessionPhase
    expires: Instant | None = None
    """When the offer expires; meaningful only while OFFERED."""
    executable: AnyExecutable | None = None
    compute: AnyCompute | None = None
    storage: list[AnyStorage] = []
    data: list[AnyData] = []
    connectors: list[SimpleSessionConnector] = []


class SimpleExecutionSession(
    ExecutionSession, frozen=True, kw_only=True, tag=KINDS + "session/simple-execution-session.yaml"
):
    """A session without a session-level schedule."""


class ScheduledExecutionSchedule(LifecycleSchedule, frozen=True):
    """When the session as a whole is prepared, available and released."""


class ScheduledExecutionSession(
    SimpleExecutionSession,
    frozen=True,
    kw_only=True,
    tag=KINDS + "session/scheduled-execution-session.yaml",
):
    """A session with its schedule; what this broker answers."""

    schedule: ScheduledExecutionSchedule | None = None


AnySession = SimpleExecutionSession | ScheduledExecutionSession


# ------------------------------------------------------------------------- offer sets
class OfferSetResponse(Component, frozen=True, kw_only=True, tag=OFFERSET_KIND):
    """The answer to a request: YES with one or more offers, or NO with messages saying why."""

    FAMILY: ClassVar[str] = "offerset"
    result: Literal["YES", "NO"]
    description: str | None = None
    offers: list[AnySession] = []


# ------------------------------------------------------------------------- errors
class ErrorResponse(TaggedStruct, frozen=True, kw_only=True, tag=ERROR_RESPONSE_KIND):
    """voexec's error body for the broker routes (the schema leaves errors as a TODO).

    `meta.messages` holds one message per problem; each names the JSON path (value `path`) and
    the reason (value `reason`) when the problem is with a field of the input.
    """

    FAMILY: ClassVar[str] = "error"
    status: int
    """The HTTP status code, repeated for clients that only see the body."""
    title: str
    meta: ComponentMetadata


class UnknownKind(WireStruct, frozen=True):
    """A component in a request whose `kind` this broker does not know.

    Decoding sets it aside instead of failing, so the service can answer NO naming the kind.
    """

    path: str
    """JSON path of the component, e.g. `$.data[1]`."""
    family: str
    """Which family the kind was expected in (executable, compute, data, ...)."""
    kind: str
