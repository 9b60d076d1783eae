"""A first, simple offer planner: checks a request, finds the first free slot on a platform.

Provisional: `broker.scheduling` (capacity timelines over every platform) and `broker.offers`
(ranked offers) replace it. It is conservative, so it never promises what the platform lacks:
a slot is free when the platform's capacity minus *every* hold overlapping the slot still
covers the request's minimum.

Pure: time arrives as an argument, capacity from settings; no I/O.

`plan_offer()` tries the platforms in order and returns the messages for the offer set and,
when some platform can serve the request, one `OfferPlan`. Every reason for a NO is a message
with its template, values and rendered text.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, TypeVar

import msgspec

from broker.isotime import Interval
from broker.model import (
    AcceleratedComputeResource,
    AcceleratorCount,
    Accelerators,
    DockerContainer,
    ExecutionRequest,
    JupyterNotebook,
    MessageItem,
    MessageLevel,
    MinMaxCount,
    SimpleDataResource,
    SingularityContainer,
    UnknownKind,
    message_item,
)
from core.settings import BrokerSettings, GpuModel, PlatformSettings

__all__ = ["OfferPlan", "plan_offer"]

C = TypeVar("C", bound=msgspec.Struct)

ERROR: Final = MessageLevel.ERROR
DEFAULT_RELEASE: Final = timedelta(seconds=10)


@dataclass(frozen=True)
class OfferPlan:
    """One concrete slot on one platform, and what it offers."""

    platform: str
    start: datetime
    duration: timedelta
    cores: int
    memory: int
    """GiB."""
    preparation: timedelta
    gpu: GpuModel | None = None
    gpus: int = 0
    cost: float | None = None
    cost_unit: str | None = None

    @property
    def end(self) -> datetime:
        """When the slot ends."""
        return self.start + self.duration

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """True when the slot (with its preparation) overlaps `[start, end)`."""
        return self.start - self.preparation < end and start < self.end


def kind_of(component: msgspec.Struct) -> str:
    """The kind URI of a tagged wire Struct."""
    return str(component.__struct_config__.tag)


def short_name(kind: str) -> str:
    """`docker-container` for `.../kinds/executable/docker-container.yaml`."""
    return kind.rstrip("/").rsplit("/", 1)[-1].removesuffix(".yaml")


# ------------------------------------------------------------------------- checking a request
@dataclass
class _Notes:
    """The messages of an answer; any ERROR makes it a NO."""

    now: datetime
    messages: list[MessageItem] = field(default_factory=list)
    failed: bool = False

    def add(self, kind: str, template: str, level: MessageLevel, /, **values: object) -> None:
        self.messages.append(message_item(kind, template, time=self.now, level=level, **values))
        self.failed = self.failed or level is ERROR

    def error(self, kind: str, template: str, /, **values: object) -> None:
        self.add(kind, template, ERROR, **values)


@dataclass(frozen=True)
class _Need:
    """The least a slot must have and the most worth offering."""

    cores: int
    cores_wanted: int
    memory: int
    memory_wanted: int
    gpus: int = 0
    gpus_wanted: int = 0
    gpu_models: tuple[GpuModel, ...] = ()


def _range(
    notes: _Notes, block: MinMaxCount | None, what: str, path: str, default_min: int
) -> tuple[int, int | None]:
    low = block.min if block and block.min is not None else default_min
    high = block.max if block else None
    if high is not None and high < low:
        notes.error(
            "urn:invalid-value",
            "{path}: the minimum {what} ({min}) is above the maximum ({max})",
            path=path,
            what=what,
            min=low,
            max=high,
        )
    return low, high


def _wanted(low: int, high: int | None, limit: float, factor: float) -> int:
    """Offer up to `factor` x the minimum, never above the maximum or the platform's limit."""
    return max(low, int(min(math.floor(low * factor), high or math.inf, limit)))


def _gpu_need(
    notes: _Notes, compute: AcceleratedComputeResource, platform: PlatformSettings
) -> tuple[int, int, tuple[GpuModel, ...]]:
    wanted = compute.accelerators or Accelerators()
    count = wanted.count or AcceleratorCount()
    low = count.min if count.min is not None else 1
    high = count.max
    if high is not None and high < low:
        notes.error(
            "urn:invalid-value",
            "$.compute.accelerators.count: the minimum ({min}) is above the maximum ({max})",
            min=low,
            max=high,
        )
    models = {m.lower() for m in wanted.models}
    fits = tuple(
        gpu
        for gpu in platform.capacity.gpus
        if (wanted.vendor is None or gpu.vendor.lower() == wanted.vendor.lower())
        and (not models or gpu.model.lower() in models)
        and (wanted.memory is None or gpu.memory >= (wanted.memory.min or 0))
        and (
            wanted.compute_capability is None
            or wanted.compute_capability.min is None
            or (gpu.compute_capability or 0) >= wanted.compute_capability.min
        )
        and gpu.count >= low
    )
    limit = platform.limits.gpus
    if low and not fits:
        has = ", ".join(f"{g.count} x {g.model} {g.memory:g} GiB" for g in platform.capacity.gpus)
        notes.error(
            "urn:resource-limit",
            "{platform}: no accelerator matches the request ({count} device(s)); it has {has}",
            platform=platform.name,
            count=low,
            has=has or "no accelerators",
        )
    elif limit is not None and low > limit:
        notes.error(
            "urn:resource-limit",
            "{platform}: at most {limit} accelerators per request; {count} requested",
            platform=platform.name,
            limit=limit,
            count=low,
        )
    most = min(high if high is not None else low, limit if limit is not None else math.inf)
    return low, int(most), fits


def _needs(
    notes: _Notes, request: ExecutionRequest, platform: PlatformSettings, settings: BrokerSettings
) -> _Need:
    compute = request.compute
    cores, cores_max = _range(
        notes, compute.cores if compute else None, "cores", "$.compute.cores", 1
    )
    memory, memory_max = _range(
        notes, compute.memory if compute else None, "memory", "$.compute.memory", 1
    )
    limits, capacity = platform.limits, platform.capacity
    core_limit = min(limits.cores or math.inf, capacity.cores)
    memory_limit = math.floor(min(limits.memory or math.inf, capacity.memory))
    if cores > core_limit:
        notes.error(
            "urn:resource-limit",
            "{platform} offers at most {limit} cores per request; the request needs {needed}",
            platform=platform.name,
            limit=core_limit,
            needed=cores,
        )
    if memory > memory_limit:
        notes.error(
            "urn:resource-limit",
            "{platform} offers at most {limit} GiB of memory per request; "
            "the request needs {needed} GiB",
            platform=platform.name,
            limit=memory_limit,
            needed=memory,
        )
    for index, storage in enumerate(request.storage):
        _range(notes, storage.size, "size", f"$.storage[{index}].size", 1)
    gpus, gpus_wanted, models = 0, 0, tuple[GpuModel, ...]()
    if isinstance(compute, AcceleratedComputeResource):
        gpus, gpus_wanted, models = _gpu_need(notes, compute, platform)
    factor = settings.offer_above_minimum
    return _Need(
        cores=cores,
        cores_wanted=_wanted(cores, cores_max, core_limit, factor),
        memory=memory,
        memory_wanted=_wanted(memory, memory_max, memory_limit, factor),
        gpus=gpus,
        gpus_wanted=max(gpus, gpus_wanted),
        gpu_models=models,
    )


def _check_components(
    notes: _Notes,
    request: ExecutionRequest,
    unknown: Sequence[UnknownKind],
    platform: PlatformSettings,
) -> None:
    for item in unknown:
        notes.error(
            "uri:unknown-type",
            "Unknown {family} kind [{kind}] at {path}",
            family=item.family,
            kind=item.kind,
            path=item.path,
        )
    executable = request.executable
    if executable is None:
        if not any(item.family == "executable" for item in unknown):
            notes.error("urn:executable-required", "Description of the executable is required")
    else:
        kind = kind_of(executable)
        if kind not in platform.executables and short_name(kind) not in platform.executables:
            notes.error(
                "urn:voexec:kind-not-supported",
                "{platform} does not run {name} executables ({kind})",
                platform=platform.name,
                name=short_name(kind),
                kind=kind,
            )
    match executable:
        case DockerContainer(image=image) if image is None or not image.locations:
            notes.error("urn:missing-required-value", "DockerContainer - image location required")
        case DockerContainer(privileged=True):
            notes.error("urn:not-supported", "DockerContainer - Privileged execution not supported")
        case SingularityContainer(location=None) | JupyterNotebook(location=None):
            notes.error(
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
            notes.error(
                "urn:missing-required-value", "$.data[{index}]: data location required", index=index
            )
    for index, volume in enumerate(request.compute.volumes if request.compute else []):
        if volume.resource is None or volume.resource not in names:
            notes.error(
                "uri:resource-not-found",
                "$.compute.volumes[{index}]: unable to locate resource [{resource}] for volume "
                "[{path}]; name a data or storage resource of this request",
                index=index,
                resource=volume.resource or "",
                path=volume.path or "",
            )


@dataclass(frozen=True)
class _Timing:
    earliest: datetime
    latest: datetime
    duration: timedelta


def _timing(
    notes: _Notes,
    request: ExecutionRequest,
    platform: PlatformSettings,
    settings: BrokerSettings,
    now: datetime,
) -> _Timing:
    wanted = request.schedule.requested if request.schedule else None
    duration: timedelta = (wanted.duration if wanted else None) or settings.default_duration
    window = (wanted.start if wanted else None) or Interval.starting(
        now, settings.default_start_window
    )
    if window.assumed_utc:
        notes.add(
            "urn:voexec:timezone-assumed",
            "The requested start range gave no timezone; read as UTC: {start}",
            MessageLevel.WARN,
            start=window.iso(),
        )
    if duration <= timedelta(0):
        notes.error("urn:invalid-value", "The requested duration must be longer than PT0S")
    longest = platform.limits.duration
    if longest is not None and duration > longest:
        notes.error(
            "urn:resource-limit",
            "{platform} runs sessions of at most {limit}; {duration} requested",
            platform=platform.name,
            limit=longest,
            duration=duration,
        )
    earliest = max(window.start, now + platform.preparation)
    latest = min(window.end, now + settings.horizon)
    if earliest > latest:
        notes.error(
            "urn:voexec:start-out-of-range",
            "{platform} cannot start in the requested range {range}: the earliest start is "
            "{earliest} (it needs {preparation} to prepare) and offers start before {horizon}",
            platform=platform.name,
            range=window.iso(),
            earliest=now + platform.preparation,
            preparation=platform.preparation,
            horizon=now + settings.horizon,
        )
    return _Timing(earliest, latest, duration)


# ------------------------------------------------------------------------- finding a slot
def _first_fit(
    need: _Need, timing: _Timing, platform: PlatformSettings, held: Sequence[OfferPlan]
) -> OfferPlan | None:
    mine = [plan for plan in held if plan.platform == platform.name]
    starts = sorted(
        {timing.earliest}
        | {plan.end for plan in mine if timing.earliest < plan.end <= timing.latest}
    )
    for start in starts:
        end = start + timing.duration
        busy = [plan for plan in mine if plan.overlaps(start, end)]
        free_cores = platform.capacity.cores - sum(plan.cores for plan in busy)
        free_memory = math.floor(platform.capacity.memory - sum(plan.memory for plan in busy))
        if free_cores < need.cores or free_memory < need.memory:
            continue
        gpu, gpus = None, 0
        if need.gpus:
            free = {
                model.model: model.count
                - sum(p.gpus for p in busy if p.gpu and p.gpu.model == model.model)
                for model in need.gpu_models
            }
            gpu = next((m for m in need.gpu_models if free[m.model] >= need.gpus), None)
            if gpu is None:
                continue
            gpus = min(need.gpus_wanted, free[gpu.model])
        return OfferPlan(
            platform=platform.name,
            start=start,
            duration=timing.duration,
            cores=min(need.cores_wanted, free_cores),
            memory=min(need.memory_wanted, free_memory),
            preparation=platform.preparation,
            gpu=gpu,
            gpus=gpus,
        )
    return None


def _priced(plan: OfferPlan, platform: PlatformSettings) -> OfferPlan:
    cost = platform.cost
    if cost is None:
        return plan
    hours = plan.duration / timedelta(hours=1)
    total = hours * (
        plan.cores * cost.core_hour + plan.memory * cost.gib_hour + plan.gpus * cost.gpu_hour
    )
    return dataclasses.replace(plan, cost=total, cost_unit=cost.unit)


def _plan_on(
    request: ExecutionRequest,
    unknown: Sequence[UnknownKind],
    *,
    platform: PlatformSettings,
    held: Sequence[OfferPlan],
    settings: BrokerSettings,
    now: datetime,
) -> tuple[list[MessageItem], OfferPlan | None]:
    notes = _Notes(now)
    _check_components(notes, request, unknown, platform)
    need = _needs(notes, request, platform, settings)
    timing = _timing(notes, request, platform, settings, now)
    if notes.failed:
        return notes.messages, None
    plan = _first_fit(need, timing, platform, held)
    if plan is None:
        notes.error(
            "urn:voexec:no-capacity",
            "{platform} has no free slot of {duration} with {cores} cores and {memory} GiB "
            "starting between {earliest} and {latest}",
            platform=platform.name,
            duration=timing.duration,
            cores=need.cores,
            memory=need.memory,
            earliest=timing.earliest,
            latest=timing.latest,
        )
        return notes.messages, None
    return notes.messages, _priced(plan, platform)


def plan_offer(
    request: ExecutionRequest,
    unknown: Sequence[UnknownKind],
    *,
    platforms: Sequence[PlatformSettings],
    held: Sequence[OfferPlan],
    settings: BrokerSettings,
    now: datetime,
) -> tuple[list[MessageItem], OfferPlan | None]:
    """Check a request against each platform in turn and take the first free slot found.

    Args:
        request: the decoded request.
        unknown: components set aside by the codec because their kind is unknown.
        platforms: the configured platforms, in the order they are tried.
        held: slots already promised (unexpired offers, accepted sessions) on any platform.
        settings: the broker's settings (defaults, offer policy, horizon).
        now: the current instant.

    Returns:
        The messages for the answer, and the slot (None when the answer is NO). A NO carries
        every platform's reasons, each said once.
    """
    if not platforms:
        notes = _Notes(now)
        notes.error("urn:voexec:no-platform", "This broker has no compute platform configured")
        return notes.messages, None
    reasons: dict[tuple[str | None, str | None], MessageItem] = {}
    for platform in platforms:
        messages, plan = _plan_on(
            request, unknown, platform=platform, held=held, settings=settings, now=now
        )
        if plan is not None:
            return [m for m in messages if m.level is not ERROR], plan
        for message in messages:
            reasons.setdefault((message.kind, message.message), message)
    return list(reasons.values()), None
