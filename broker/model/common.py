"""Wire schema, part 1: the building blocks every broker component shares.

Component metadata, messages (and `message_item`, which renders them), options, updates,
lifecycle phases and schedules, costs and metrics, as in `components.yaml`, `messages.yaml`
and `kinds/{costs,metrics}` of the IVOA Execution Broker schema (Calycopis-openapi v1.0).
Import the public names from `broker.model`, which re-exports this module; this one exists only
to keep each file to one concern.

Pure data: imports msgspec and `core.time` only.

Conventions kept by every wire Struct (`WireStruct`):

- unknown fields are errors (`forbid_unknown_fields`), so a typo is reported by name instead of
  being silently dropped;
- fields left at their default (None, empty lists) are omitted when encoding (`omit_defaults`);
- Structs are frozen: change one with `msgspec.structs.replace`;
- tagged families use the schema's discriminator property `kind`, and each member's tag is its
  exact kind URI (or `uri:...` name for options and updates).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Final, Literal
from uuid import UUID

import msgspec

from core.time import Duration, Interval, format_duration, format_instant

KINDS: Final = "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/"
"""Base of every kind URI in the IVOA schema."""

EXTENSION_KINDS: Final = "https://voexec.org/broker/kinds/"
"""Base of the kinds voexec adds (documented in docs/broker.md)."""

Instant = Annotated[datetime, msgspec.Meta(tz=True)]
"""An aware date-time; encoded in UTC with seconds and `Z`."""

NameValueMap = dict[str, str]
"""The schema's NameValueMap: string names to string values."""


class WireStruct(
    msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, frozen=True, kw_only=True
):
    """Base of every wire Struct: strict on input, minimal on output, immutable."""


class TaggedStruct(
    msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, frozen=True, tag_field="kind"
):
    """Base of every member of a family discriminated by `kind`.

    Not keyword-only, so the common fields come first when encoded (kind, meta, ...); subclasses
    that add required fields declare `kw_only=True`.
    """

    FAMILY: ClassVar[str] = "component"
    """Which family (executable, compute, data, ...) this kind belongs to; used in messages."""


# ------------------------------------------------------------------------- messages
class MessageLevel(StrEnum):
    """How serious a message is."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    OTHER = "OTHER"


class MessageItem(WireStruct, frozen=True):
    """A message in the Message Templates style (https://messagetemplates.org/).

    `template` has `{name}` holes, `values` fills them, and `message` is the rendered text, so a
    client can either show `message` or localise `template` itself.
    """

    kind: str | None = None
    """The message type identifier, typically a URI naming the condition."""
    time: Instant | None = None
    level: MessageLevel | None = None
    template: str | None = None
    values: NameValueMap = {}
    message: str | None = None


_HOLE: Final = re.compile(r"\{(\w+)\}")


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Fill the `{name}` holes of a message template; holes without a value stay as they are."""
    return _HOLE.sub(lambda hole: values.get(hole[1], hole[0]), template)


def message_item(
    kind: str,
    template: str,
    /,
    *,
    time: datetime,
    level: MessageLevel = MessageLevel.INFO,
    **values: object,
) -> MessageItem:
    """Build a message with its template, its values (as strings) and the rendered text.

    Durations and instants are written in their ISO forms, sequences as comma-separated lists.
    """
    strings = {name: _as_text(value) for name, value in values.items()}
    return MessageItem(
        kind=kind,
        time=time,
        level=level,
        template=template,
        values=strings,
        message=render_template(template, strings),
    )


def _as_text(value: object) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, datetime):
        return format_instant(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_as_text(item) for item in value)
    return str(value)


# ------------------------------------------------------------------------- options
class Option(TaggedStruct, frozen=True, kw_only=True):
    """Something the client may change on a component, and how (AbstractOption)."""

    FAMILY: ClassVar[str] = "option"
    path: str
    """The path this option applies to, e.g. `phase`."""


class StringValueOption(Option, frozen=True, tag="uri:string-value-option"):
    """The client may set the string at `path`, matching `pattern` when given."""

    pattern: str | None = None


class EnumValueOption(Option, frozen=True, kw_only=True, tag="uri:enum-value-option"):
    """The client may set the value at `path` to one of `values`."""

    values: list[str]


class IntegerValueOption(Option, frozen=True, tag="uri:integer-value-option"):
    """The client may set the integer at `path` within `[min, max]` (in `units`)."""

    min: int | None = None
    max: int | None = None
    units: str | None = None


class IntegerDeltaOption(Option, frozen=True, tag="uri:integer-delta-option"):
    """The client may change the integer at `path` by a delta within `[min, max]`."""

    min: int | None = None
    max: int | None = None
    units: str | None = None


AnyOption = StringValueOption | EnumValueOption | IntegerValueOption | IntegerDeltaOption


# ------------------------------------------------------------------------- updates
class Update(TaggedStruct, frozen=True, kw_only=True):
    """One change a client asks for on a session (AbstractUpdate)."""

    FAMILY: ClassVar[str] = "update"
    path: str
    """The path to change, e.g. `phase` (`/phase` is accepted too)."""


class StringValueUpdate(Update, frozen=True, kw_only=True, tag="uri:string-value-update"):
    """Set the string at `path`."""

    value: str


class EnumValueUpdate(Update, frozen=True, kw_only=True, tag="uri:enum-value-update"):
    """Set the enumerated value at `path`, e.g. `phase` to `ACCEPTED`."""

    value: str


class IntegerValueUpdate(Update, frozen=True, kw_only=True, tag="uri:integer-value-update"):
    """Set the integer at `path` (in `units`)."""

    value: int
    units: str | None = None


class IntegerDeltaUpdate(Update, frozen=True, kw_only=True, tag="uri:integer-delta-update"):
    """Add `delta` (which may be negative) to the integer at `path`."""

    delta: int
    units: str | None = None


AnyUpdate = StringValueUpdate | EnumValueUpdate | IntegerValueUpdate | IntegerDeltaUpdate


# ------------------------------------------------------------------------- metadata
class ComponentMetadata(WireStruct, frozen=True):
    """The `meta` block of every component.

    The client sets `name` and `description`; the server sets the rest.
    """

    uuid: UUID | None = None
    name: str | None = None
    url: str | None = None
    description: str | None = None
    created: Instant | None = None
    modified: Instant | None = None
    messages: list[MessageItem] = []
    options: list[AnyOption] = []


# ------------------------------------------------------------------------- costs, metrics
class AbstractCostItem(TaggedStruct, frozen=True, tag=KINDS + "costs/abstract-cost-item.yaml"):
    """A cost: `kind` gives the structure, `type` the meaning (money, energy, carbon...)."""

    FAMILY: ClassVar[str] = "cost"
    type: str | None = None
    """A URI for what is counted, e.g. `urn:ivoa:calycopis:cost:monetary`."""
    description: str | None = None


class SimpleMinMaxFloatCost(
    AbstractCostItem, frozen=True, tag=KINDS + "costs/simple-minmax-float-cost.yaml"
):
    """A cost range: the most a client will pay, or what the service quotes."""

    min: float | None = None
    max: float | None = None


AnyCost = AbstractCostItem | SimpleMinMaxFloatCost


class AbstractMetricItem(
    TaggedStruct, frozen=True, tag=KINDS + "metrics/abstract-metric-item.yaml"
):
    """A metric: `kind` gives the structure, `type` the meaning (compute or I/O performance)."""

    FAMILY: ClassVar[str] = "metric"
    type: str | None = None
    """A URI for what is measured, e.g. `urn:ivoa:calycopis:metric:compute-performance`."""
    description: str | None = None


class SimpleMinMaxFloatMetric(
    AbstractMetricItem, frozen=True, tag=KINDS + "metrics/simple-minmax-float-metric.yaml"
):
    """A metric range: the least a client needs, or what the platform provides."""

    min: float | None = None
    max: float | None = None


AnyMetric = AbstractMetricItem | SimpleMinMaxFloatMetric


# ------------------------------------------------------------------------- lifecycle
class LifecyclePhase(StrEnum):
    """The phase of one component (executable, compute, storage, data)."""

    INITIALIZING = "INITIALIZING"
    WAITING = "WAITING"
    PREPARING = "PREPARING"
    AVAILABLE = "AVAILABLE"
    RUNNING = "RUNNING"
    RELEASING = "RELEASING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class LifecycleStartDurationInstant(WireStruct, frozen=True):
    """A step that starts at an instant and lasts a duration (preparing, releasing)."""

    start: Instant | None = None
    duration: Duration | None = None


class LifecycleStartDurationInterval(WireStruct, frozen=True):
    """The available step: a start range (exact when zero-length) and a duration."""

    start: Interval | None = None
    duration: Duration | None = None


class LifecycleSchedule(WireStruct, frozen=True):
    """When a component is prepared, available and released."""

    preparing: LifecycleStartDurationInstant | None = None
    available: LifecycleStartDurationInterval | None = None
    releasing: LifecycleStartDurationInstant | None = None


class Component(TaggedStruct, frozen=True):
    """Fields every component has (AbstractComponent)."""

    meta: ComponentMetadata | None = None
    costs: list[AnyCost] = []
    metrics: list[AnyMetric] = []


class LifecycleComponent(Component, frozen=True):
    """A component with its own lifecycle: phase and schedule are set by the server."""

    phase: LifecyclePhase | None = None
    schedule: LifecycleSchedule | None = None


# ------------------------------------------------------------------------- min/max blocks
Count = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
"""A count of cores, GiB or devices: at least 1."""


class MinMaxCount(WireStruct, frozen=True):
    """A minimum (needed) and maximum (usable) count."""

    min: Count | None = None
    max: Count | None = None


VolumeMode = Literal["READONLY", "READWRITE"]
