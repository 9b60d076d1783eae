"""The scheduling domain: what a demand asks, what a platform has, what is booked or offered.

Owns the value types shared by `broker.scheduling.slots` and `broker.scheduling.offers` (`Demand`,
`PlatformSpec`, `Booking`, `Slot`, `Resources`, `Reason`), building a `PlatformSpec` from the
settings, and the static check `assess` (can this platform ever serve this demand, and if not,
why). Pure: no I/O, no clock; imports `core` and `broker.scheduling.intervals` only — never the
wire model (`broker.model`), which the service translates into these types.

Units: cores are counts, memory and storage are GiB, times are aware UTC datetimes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise

import msgspec

from broker.scheduling.intervals import Interval, format_duration, parse_interval
from core.errors import ConfigError, Invalid, Problem
from core.settings import PlatformSettings

MEMORY_UNITS_PER_GIB = 1024
"""Memory and storage are summed in whole MiB, so that sums of bookings stay exact integers."""

_KIND_VERSION = re.compile(r"-\d+(\.\d+)*$")


def kind_name(kind: str) -> str:
    """The short name of an executable kind, from a short name, a kind URI or an old alias.

    `https://.../kinds/executable/docker-container.yaml`, `.../docker-container-1.0`,
    `uri:docker-container-1.0` and `docker-container` all give `docker-container`.
    """
    name = kind.strip().rstrip("/").rsplit("/", 1)[-1].removeprefix("uri:")
    return _KIND_VERSION.sub("", name.removesuffix(".yaml")).lower()


def memory_units(gib: float) -> int:
    """GiB taken (by a booking or a demand) as whole MiB, rounded up: never undercounted."""
    return math.ceil(round(gib * MEMORY_UNITS_PER_GIB, 6))


def capacity_units(gib: float) -> int:
    """GiB a platform has (or an offer may give at most) as whole MiB, rounded down."""
    return math.floor(round(gib * MEMORY_UNITS_PER_GIB, 6))


def units_to_gib(units: int) -> float:
    """MiB back to GiB."""
    return units / MEMORY_UNITS_PER_GIB


# ------------------------------------------------------------------------- what is asked
class GpuDemand(msgspec.Struct, frozen=True, kw_only=True):
    """Accelerators a demand needs; every field left out accepts anything."""

    count_min: int = 1
    count_max: int | None = None
    """The most the work can use; offers give `count_min` devices, so this only validates."""
    vendor: str | None = None
    models: tuple[str, ...] = ()
    """Acceptable models (case-insensitive); empty means any."""
    memory_min: float = 0.0
    """GiB per device."""
    compute_capability_min: float | None = None

    def accepts(self, gpu: Gpu) -> bool:
        """True when one device of `gpu` meets every requirement but the count."""
        return (
            (self.vendor is None or gpu.vendor.lower() == self.vendor.lower())
            and (not self.models or gpu.model.lower() in {m.lower() for m in self.models})
            and gpu.memory >= self.memory_min
            and (
                self.compute_capability_min is None
                or (
                    gpu.compute_capability is not None
                    and gpu.compute_capability >= self.compute_capability_min
                )
            )
        )

    def describe(self) -> str:
        """The requirement in words: `2 GPUs with >= 40 GiB`."""
        words = [f"{self.count_min} GPU" + ("s" if self.count_min != 1 else "")]
        if self.vendor:
            words.append(f"from {self.vendor}")
        if self.models:
            words.append("of model " + " or ".join(self.models))
        if self.memory_min:
            words.append(f"with >= {self.memory_min:g} GiB")
        if self.compute_capability_min is not None:
            joiner = "and" if self.memory_min else "with"
            words.append(f"{joiner} compute capability >= {self.compute_capability_min:g}")
        return " ".join(words)


class Demand(msgspec.Struct, frozen=True, kw_only=True):
    """What one execution request needs, in the scheduler's terms.

    Cores and memory are ranges: offers give at least the minimum and never more than the
    maximum. `windows` are the ranges in which the session may start (the standard's start
    range(s)); the session then lasts `duration`.
    """

    kind: str
    """Executable kind: a short name (`docker-container`) or a kind URI."""
    duration: timedelta
    windows: tuple[Interval, ...]
    cores_min: int = 1
    cores_max: int | None = None
    memory_min: float = 1.0
    """GiB."""
    memory_max: float | None = None
    storage: float = 0.0
    """GiB of scratch storage, booked on platforms that manage storage."""
    gpus: GpuDemand | None = None

    def __post_init__(self) -> None:
        problems = [
            Problem(field, reason)
            for field, wrong, reason in (
                ("kind", not self.kind.strip(), "names no executable kind"),
                ("duration", self.duration <= timedelta(0), "must be positive"),
                ("windows", not self.windows, "needs at least one start window"),
                ("cores.min", self.cores_min < 1, "must be at least 1"),
                ("cores.max", _below(self.cores_max, self.cores_min), "is below the minimum"),
                ("memory.min", self.memory_min < 0, "must not be negative"),
                ("memory.max", _below(self.memory_max, self.memory_min), "is below the minimum"),
                ("storage", self.storage < 0, "must not be negative"),
                *_gpu_problems(self.gpus),
            )
            if wrong
        ]
        if problems:
            raise Invalid("the demand is not valid", problems)


def _below(maximum: float | None, minimum: float) -> bool:
    return maximum is not None and maximum < minimum


def _gpu_problems(gpus: GpuDemand | None) -> list[tuple[str, bool, str]]:
    if gpus is None:
        return []
    return [
        ("gpus.count.min", gpus.count_min < 1, "must be at least 1"),
        ("gpus.count.max", _below(gpus.count_max, gpus.count_min), "is below the minimum"),
        ("gpus.memory.min", gpus.memory_min < 0, "must not be negative"),
    ]


# ------------------------------------------------------------------------- what is offered
class Gpu(msgspec.Struct, frozen=True, kw_only=True):
    """One accelerator model of a platform."""

    model: str
    memory: float
    """GiB per device."""
    count: int
    vendor: str = "nvidia"
    compute_capability: float | None = None

    def describe(self) -> str:
        """`A10 24 GiB`, or `4 x A10 24 GiB` when there are several."""
        text = f"{self.model} {self.memory:g} GiB"
        return f"{self.count} x {text}" if self.count > 1 else text


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """The most one request may have on a platform; None means no limit beyond capacity."""

    cores: int | None = None
    memory: float | None = None
    gpus: int | None = None
    duration: timedelta | None = None


class Prices(msgspec.Struct, frozen=True, kw_only=True):
    """Price of one hour of each resource, in `unit` (a currency or an allocation unit)."""

    core_hour: float = 0.0
    gib_hour: float = 0.0
    gpu_hour: float = 0.0
    unit: str = "EUR"


class PlatformSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A compute platform as the scheduler sees it: totals, rules, prices, closed periods."""

    name: str
    cores: int
    memory: float
    """GiB in all."""
    gpus: tuple[Gpu, ...] = ()
    storage: float | None = None
    """GiB of storage booked per session; None when the platform does not manage storage."""
    kinds: frozenset[str] = frozenset()
    """Short names of the executable kinds it runs (see `kind_name`)."""
    limits: Limits = Limits()
    prices: Prices | None = None
    maintenance: tuple[Interval, ...] = ()
    preparation: timedelta = timedelta(seconds=30)
    """Time needed before a session's start (image pull, data staging)."""

    def __post_init__(self) -> None:
        models = [gpu.model for gpu in self.gpus]
        if len(set(models)) != len(models):
            raise ValueError(f"platform {self.name} lists a GPU model twice: {models}")

    @classmethod
    def from_settings(cls, settings: PlatformSettings) -> PlatformSpec:
        """The scheduler's view of one configured platform.

        Raises:
            ConfigError: naming the setting, when a maintenance interval does not parse.
        """
        maintenance = []
        for index, window in enumerate(settings.maintenance):
            try:
                maintenance.append(parse_interval(window.interval))
            except ValueError as error:
                raise ConfigError(
                    f"setting broker.platforms[{settings.name}].maintenance[{index}].interval: "
                    f"{error}"
                ) from error
        capacity, limits, cost = settings.capacity, settings.limits, settings.cost
        return cls(
            name=settings.name,
            cores=capacity.cores,
            memory=capacity.memory,
            gpus=tuple(
                Gpu(
                    model=gpu.model,
                    memory=gpu.memory,
                    count=gpu.count,
                    vendor=gpu.vendor,
                    compute_capability=gpu.compute_capability,
                )
                for gpu in capacity.gpus
            ),
            storage=capacity.storage,
            kinds=frozenset(kind_name(kind) for kind in settings.executables),
            limits=Limits(
                cores=limits.cores,
                memory=limits.memory,
                gpus=limits.gpus,
                duration=limits.duration,
            ),
            prices=None
            if cost is None
            else Prices(
                core_hour=cost.core_hour,
                gib_hour=cost.gib_hour,
                gpu_hour=cost.gpu_hour,
                unit=cost.unit,
            ),
            maintenance=tuple(maintenance),
            # Another broker prepares its sessions within the slots it offers.
            preparation=timedelta(0) if settings.adapter == "remote" else settings.preparation,
        )


class GpuShare(msgspec.Struct, frozen=True, order=True):
    """Some devices of one GPU model."""

    model: str
    count: int


class Resources(msgspec.Struct, frozen=True, order=True, kw_only=True):
    """An amount of each resource: what a booking takes or an offer gives."""

    cores: int
    memory: float
    """GiB."""
    storage: float = 0.0
    """GiB."""
    gpus: tuple[GpuShare, ...] = ()


class BookingKind(StrEnum):
    """What a booking is: an offer's hold (until accepted or expired) or an accepted booking."""

    HOLD = "hold"
    BOOKING = "booking"


class Booking(msgspec.Struct, frozen=True, kw_only=True):
    """Capacity taken on one platform for one interval."""

    platform: str
    interval: Interval
    resources: Resources
    kind: BookingKind = BookingKind.BOOKING
    group: str | None = None
    """The offer set a hold belongs to. The offers of one set are alternatives (accepting one
    rejects the others), so their holds take together, per platform, resource and instant, the
    most any one of them takes, not the sum (`counted`). None: counted on its own."""


def most_of(amounts: Iterable[Resources]) -> Resources:
    """Per resource, the largest amount of any of `amounts` (GPUs model by model)."""
    items = list(amounts)
    gpus: dict[str, int] = {}
    for item in items:
        for share in item.gpus:
            gpus[share.model] = max(gpus.get(share.model, 0), share.count)
    return Resources(
        cores=max((item.cores for item in items), default=0),
        memory=max((item.memory for item in items), default=0.0),
        storage=max((item.storage for item in items), default=0.0),
        gpus=tuple(GpuShare(model, count) for model, count in sorted(gpus.items())),
    )


def envelope(holds: Sequence[Booking]) -> list[Booking]:
    """Holds of one set on one platform as what they take together: their pointwise maximum.

    Returns pieces (holds of the same platform and group) with the largest amount of each
    resource any hold takes over each piece; adjacent pieces that take the same are merged.
    """
    if len(holds) < 2:
        return list(holds)
    first = holds[0]
    instants = sorted({at for hold in holds for at in (hold.interval.start, hold.interval.end)})
    pieces: list[Booking] = []
    for start, end in pairwise(instants):
        # Every hold's ends are among the instants: a hold covers all of [start, end) or none.
        covering = [
            hold.resources
            for hold in holds
            if hold.interval.start <= start and hold.interval.end >= end
        ]
        if not covering:
            continue
        most = most_of(covering)
        last = pieces[-1] if pieces else None
        if last is not None and last.resources == most and last.interval.end == start:
            pieces[-1] = msgspec.structs.replace(last, interval=Interval(last.interval.start, end))
        else:
            pieces.append(
                Booking(
                    platform=first.platform,
                    interval=Interval(start, end),
                    resources=most,
                    kind=BookingKind.HOLD,
                    group=first.group,
                )
            )
    return pieces


def counted(bookings: Iterable[Booking]) -> list[Booking]:
    """The bookings as capacity counts them: the holds of each offer set by their envelope.

    Bookings and holds without a group count on their own; the holds of one group on one
    platform count as `envelope` says (a group's holds on two platforms never meet).
    """
    alone: list[Booking] = []
    groups: dict[tuple[str, str], list[Booking]] = {}
    for booking in bookings:
        if booking.group is None or booking.kind is not BookingKind.HOLD:
            alone.append(booking)
        else:
            groups.setdefault((booking.platform, booking.group), []).append(booking)
    for holds in groups.values():
        alone.extend(envelope(holds))
    return alone


class Slot(msgspec.Struct, frozen=True, kw_only=True):
    """A time on a platform where the demand fits.

    `offered` is what the slot can give for `[start, end)` under the policy (at least the
    minimum, never above the maximum); `minimum` is the demand's minimum on this platform (with
    its GPU model); `latest_end` is how long `minimum` could keep running from `start` (at
    least `end`, at most the policy's stretch of the duration).
    """

    platform: str
    start: datetime
    end: datetime
    offered: Resources
    minimum: Resources
    latest_end: datetime


class SlotPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How generous offers are; see `BrokerSettings.offer_above_minimum`."""

    above_minimum: float = 2.0
    """Offer up to this multiple of the minimum cores and memory (never above the maximum)."""
    stretch: float = 2.0
    """A session may be offered up to this multiple of the requested duration."""

    def __post_init__(self) -> None:
        if self.above_minimum < 1 or self.stretch < 1:
            raise ValueError("above_minimum and stretch must be at least 1")


class Reason(msgspec.Struct, frozen=True, kw_only=True):
    """Why a platform says NO, as a message template (messagetemplates.org) with its values."""

    platform: str
    code: str
    """Stable identifier of the template, e.g. `gpu-mismatch`."""
    template: str
    values: dict[str, str]

    @property
    def text(self) -> str:
        """The template with its values filled in."""
        return self.template.format_map(self.values)


def reason(platform: PlatformSpec, code: str, template: str, **values: str) -> Reason:
    """A reason of `platform`, with the platform's name among the values."""
    return Reason(
        platform=platform.name,
        code=code,
        template=template,
        values={"platform": platform.name, **values},
    )


# ------------------------------------------------------------------------- static check
def _kind_phrase(name: str) -> str:
    return name.replace("-", " ") + "s"


def _limit_reasons(platform: PlatformSpec, demand: Demand) -> Iterator[Reason]:
    limits = platform.limits
    asked: list[tuple[str, float, float | None, float]] = [
        ("cores", demand.cores_min, limits.cores, platform.cores),
        ("GiB of memory", demand.memory_min, limits.memory, platform.memory),
    ]
    if platform.storage is not None:
        asked.append(("GiB of storage", demand.storage, None, platform.storage))
    if demand.gpus is not None:
        asked.append(
            ("GPUs", demand.gpus.count_min, limits.gpus, sum(g.count for g in platform.gpus))
        )
    for resource, amount, limit, total in asked:
        if limit is not None and amount > limit:
            yield reason(
                platform,
                "over-limit",
                "{platform}: asks {amount} {resource}, the most one request may have here is "
                "{limit}",
                amount=f"{amount:g}",
                resource=resource,
                limit=f"{limit:g}",
            )
        elif amount > total and resource != "GPUs":  # GPUs are explained model by model
            yield reason(
                platform,
                "over-capacity",
                "{platform}: needs {amount} {resource}, has {total} in all",
                amount=f"{amount:g}",
                resource=resource,
                total=f"{total:g}",
            )
    if limits.duration is not None and demand.duration > limits.duration:
        yield reason(
            platform,
            "over-limit",
            "{platform}: asks for {duration}, the longest one request may have here is {limit}",
            duration=format_duration(demand.duration),
            limit=format_duration(limits.duration),
        )


def _gpu_reasons(platform: PlatformSpec, gpus: GpuDemand) -> Iterator[Reason]:
    if not platform.gpus:
        yield reason(
            platform,
            "gpu-none",
            "{platform}: needs {needed}, has no GPUs",
            needed=gpus.describe(),
        )
    elif not gpu_models(platform, gpus):

        def detail(gpu: Gpu) -> str:
            extras = [gpu.vendor] if gpus.vendor else []
            if gpus.compute_capability_min is not None:
                known = gpu.compute_capability
                extras.append(f"compute capability {'unknown' if known is None else f'{known:g}'}")
            return gpu.describe() + (f" ({', '.join(extras)})" if extras else "")

        yield reason(
            platform,
            "gpu-mismatch",
            "{platform}: needs {needed}, has {available}",
            needed=gpus.describe(),
            available=", ".join(detail(gpu) for gpu in platform.gpus),
        )


def gpu_models(platform: PlatformSpec, gpus: GpuDemand) -> list[Gpu]:
    """The platform's GPU models that can serve `gpus` (features and count)."""
    return [gpu for gpu in platform.gpus if gpus.accepts(gpu) and gpu.count >= gpus.count_min]


def assess(platform: PlatformSpec, demand: Demand) -> list[Reason]:
    """Why the platform could never serve the demand, whatever its calendar; empty if it could.

    Checks the executable kind, the per-request limits, the platform's totals and its GPUs.
    """
    reasons: list[Reason] = []
    kind = kind_name(demand.kind)
    if kind not in platform.kinds:
        reasons.append(
            reason(
                platform,
                "unsupported-kind",
                "{platform}: does not run {kind_text}",
                kind=demand.kind,
                kind_text=_kind_phrase(kind),
            )
        )
    reasons.extend(_limit_reasons(platform, demand))
    if demand.gpus is not None:
        reasons.extend(_gpu_reasons(platform, demand.gpus))
    return reasons
