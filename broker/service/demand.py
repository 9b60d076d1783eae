"""Reading a wire `ExecutionRequest` as the scheduler's `Demand`, with what is wrong with it.

Owns the request-level checks that do not depend on any platform (unknown kinds, a missing or
incomplete executable, a minimum above its maximum, volumes naming no resource, a start range
read as UTC) and the translation to `Demand`. What a platform cannot give is the scheduler's
business (`broker.scheduling.resources.assess`, `broker.scheduling.explain_no_slots`).

Pure: time arrives as an argument; no I/O. Imports `core` and the pure `broker` modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import msgspec

from broker.model import (
    AcceleratedComputeResource,
    AcceleratorCount,
    Accelerators,
    DockerContainer,
    ExecutionRequest,
    MessageItem,
    MessageLevel,
    MinMaxCount,
    SimpleDataResource,
    SingularityContainer,
    UnknownKind,
    message_item,
)
from broker.scheduling.intervals import Interval as SchedulingInterval
from broker.scheduling.resources import Demand, GpuDemand
from core.settings import BrokerSettings
from core.time import Interval, format_instant

__all__ = ["Reading", "kind_of", "read_request"]

ERROR: Final = MessageLevel.ERROR


def kind_of(component: msgspec.Struct) -> str:
    """The kind URI of a tagged wire Struct."""
    return str(component.__struct_config__.tag)


@dataclass
class Reading:
    """The messages about a request, and its demand when nothing is wrong with it."""

    now: datetime
    messages: list[MessageItem] = field(default_factory=list)
    demand: Demand | None = None

    @property
    def failed(self) -> bool:
        """True when some message is an error: the answer is NO whatever the platforms have."""
        return any(message.level is ERROR for message in self.messages)

    def add(self, kind: str, template: str, level: MessageLevel, /, **values: object) -> None:
        """Record a message with its template and values."""
        self.messages.append(message_item(kind, template, time=self.now, level=level, **values))

    def error(self, kind: str, template: str, /, **values: object) -> None:
        """Record an error: the request cannot be served."""
        self.add(kind, template, ERROR, **values)


def _range(
    reading: Reading, block: MinMaxCount | None, what: str, path: str, default: int = 1
) -> tuple[int, int | None]:
    high = block.max if block else None
    # Without a minimum, the default, but never above a maximum the client did give.
    low = default if high is None else min(default, high)
    if block and block.min is not None:
        low = block.min
    if high is not None and high < low:
        reading.error(
            "urn:invalid-value",
            "{path}: the minimum {what} ({min}) is above the maximum ({max})",
            path=path,
            what=what,
            min=low,
            max=high,
        )
    return low, high


def _gpu_demand(reading: Reading, compute: AcceleratedComputeResource) -> GpuDemand:
    wanted = compute.accelerators or Accelerators()
    count = wanted.count or AcceleratorCount()
    low = count.min if count.min is not None else 1
    if count.max is not None and count.max < low:
        reading.error(
            "urn:invalid-value",
            "$.compute.accelerators.count: the minimum ({min}) is above the maximum ({max})",
            min=low,
            max=count.max,
        )
    capability = wanted.compute_capability
    return GpuDemand(
        count_min=max(low, 1),
        count_max=count.max if count.max is None or count.max >= low else None,
        vendor=wanted.vendor,
        models=tuple(wanted.models),
        memory_min=float(wanted.memory.min or 0) if wanted.memory else 0.0,
        compute_capability_min=capability.min if capability else None,
    )


def _check_components(
    reading: Reading, request: ExecutionRequest, unknown: Sequence[UnknownKind]
) -> None:
    for item in unknown:
        reading.error(
            "uri:unknown-type",
            "Unknown {family} kind [{kind}] at {path}",
            family=item.family,
            kind=item.kind,
            path=item.path,
        )
    executable = request.executable
    if executable is None and not any(item.family == "executable" for item in unknown):
        reading.error("urn:executable-required", "Description of the executable is required")
    match executable:
        case DockerContainer(image=image) if image is None or not image.locations:
            reading.error("urn:missing-required-value", "DockerContainer - image location required")
        case DockerContainer(privileged=True):
            reading.error(
                "urn:not-supported", "DockerContainer - Privileged execution not supported"
            )
        # A notebook without a location is an interactive session: a Jupyter server to work
        # in, for the platforms that start one (docs/platforms.md); the others say NO.
        case SingularityContainer(location=None):
            reading.error(
                "urn:missing-required-value",
                "{name} - location is required",
                name=type(executable).__name__,
            )
    names = {
        str(value)
        for resource in (*request.data, *request.storage)
        if resource.meta is not None
        for value in (resource.meta.name, resource.meta.uuid)
        if value is not None
    }
    for index, data in enumerate(request.data):
        if isinstance(data, SimpleDataResource) and not data.location:
            reading.error(
                "urn:missing-required-value",
                "$.data[{index}]: data location required",
                index=index,
            )
    for index, volume in enumerate(request.compute.volumes if request.compute else []):
        if volume.resource is None or volume.resource not in names:
            reading.error(
                "uri:resource-not-found",
                "$.compute.volumes[{index}]: unable to locate resource [{resource}] for volume "
                "[{path}]; name a data or storage resource of this request",
                index=index,
                resource=volume.resource or "",
                path=volume.path or "",
            )


def read_request(
    request: ExecutionRequest,
    unknown: Sequence[UnknownKind],
    settings: BrokerSettings,
    now: datetime,
) -> Reading:
    """Check a request and, when nothing is wrong with it, translate it into a `Demand`.

    Args:
        request: the decoded request.
        unknown: components the codec set aside because their kind is unknown.
        settings: the broker's settings (default duration and start range).
        now: the current instant.

    Returns:
        The messages (errors make the answer NO; warnings go along with the offers) and the
        demand, None when some message is an error.
    """
    reading = Reading(now)
    _check_components(reading, request, unknown)
    compute = request.compute
    # A blank compute resource is the broker's default one (settings `default_cores`,
    # `default_memory`): the talks' two cores and 2 GiB.
    cores, cores_max = _range(
        reading,
        compute.cores if compute else None,
        "cores",
        "$.compute.cores",
        settings.default_cores,
    )
    memory, memory_max = _range(
        reading,
        compute.memory if compute else None,
        "memory",
        "$.compute.memory",
        settings.default_memory,
    )
    for index, volume in enumerate(request.storage):
        _range(reading, volume.size, "size", f"$.storage[{index}].size")
    gpus = (
        _gpu_demand(reading, compute) if isinstance(compute, AcceleratedComputeResource) else None
    )
    wanted = request.schedule.requested if request.schedule else None
    duration: timedelta = (wanted.duration if wanted else None) or settings.default_duration
    window = (wanted.start if wanted else None) or Interval.starting(
        now, settings.default_start_window
    )
    if window.assumed_utc:
        reading.add(
            "urn:voexec:timezone-assumed",
            "The requested start range gave no timezone; read as UTC: {start}",
            MessageLevel.WARN,
            start=window.iso(),
        )
    if duration <= timedelta(0):
        reading.error("urn:invalid-value", "The requested duration must be longer than PT0S")
    if window.end <= now:
        # Every platform would say "too early"; the request itself is what is wrong.
        reading.error(
            "urn:voexec:start-in-the-past",
            "$.schedule.requested.start: the requested start range ({start}) ended before now "
            "({now}); ask for a start range in the future",
            start=window.iso(),
            now=format_instant(now),
        )
    if reading.failed or request.executable is None:
        return reading
    reading.demand = Demand(
        kind=kind_of(request.executable),
        duration=duration,
        windows=(SchedulingInterval(window.start, window.end),),
        cores_min=cores,
        cores_max=cores_max,
        memory_min=float(memory),
        memory_max=float(memory_max) if memory_max is not None else None,
        gpus=gpus,
    )
    return reading
