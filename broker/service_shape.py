"""Shaping an offer as a wire session: the request's components as offered, with the schedule.

Pure: no I/O, `now` is an argument. Imports the broker's model and offers only.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Final, TypeVar

import msgspec

from broker.isotime import Duration, Interval
from broker.model import (
    AcceleratedComputeResource,
    AcceleratorCount,
    AcceleratorMemory,
    Accelerators,
    AnyCompute,
    AnyCost,
    ComponentMetadata,
    ComputeCapability,
    ExecutionRequest,
    LifecyclePhase,
    LifecycleStartDurationInstant,
    LifecycleStartDurationInterval,
    ScheduledExecutionSchedule,
    ScheduledExecutionSession,
    SessionPhase,
    SimpleComputeCores,
    SimpleComputeMemory,
    SimpleComputeResource,
    SimpleMinMaxFloatCost,
)
from broker.offers import Offer
from broker.resources import PlatformSpec

__all__ = ["RELEASE_TIME", "offered_session"]

RELEASE_TIME: Final = timedelta(seconds=10)
"""How long releasing is announced to take."""

C = TypeVar("C", bound=msgspec.Struct)


def offered_session(
    offer: Offer,
    platform: PlatformSpec,
    *,
    meta: ComponentMetadata,
    phase: SessionPhase,
    expires: datetime | None,
    request: ExecutionRequest,
    now: datetime,
) -> ScheduledExecutionSession:
    """The session for an offer: the request's components as offered, with the slot's schedule."""
    schedule = ScheduledExecutionSchedule(
        preparing=LifecycleStartDurationInstant(
            start=offer.start - platform.preparation, duration=Duration.of(platform.preparation)
        ),
        available=LifecycleStartDurationInterval(
            start=Interval.at(offer.start), duration=Duration.of(offer.end - offer.start)
        ),
        releasing=LifecycleStartDurationInstant(
            start=offer.end, duration=Duration.of(RELEASE_TIME)
        ),
    )
    return ScheduledExecutionSession(
        meta=meta,
        phase=phase,
        expires=expires,
        executable=_offered(request.executable, now) if request.executable else None,
        compute=_offered_compute(offer, platform, request.compute, schedule, now),
        storage=[_offered(storage, now) for storage in request.storage],
        data=[_offered(data, now) for data in request.data],
        schedule=schedule,
        costs=_costs(offer),
    )


def _offered(component: C, now: datetime) -> C:
    """A requested component as offered: a fresh UUID, INITIALIZING, the client's name kept."""
    from uuid import uuid4

    meta = getattr(component, "meta", None) or ComponentMetadata()
    return msgspec.structs.replace(
        component,
        meta=ComponentMetadata(
            uuid=uuid4(), name=meta.name, description=meta.description, created=now
        ),
        phase=LifecyclePhase.INITIALIZING,
    )


def _offered_compute(
    offer: Offer,
    platform: PlatformSpec,
    requested: AnyCompute | None,
    schedule: ScheduledExecutionSchedule,
    now: datetime,
) -> AnyCompute:
    """The compute resource as offered: min = max = what the slot gives."""
    base = requested or SimpleComputeResource(meta=ComponentMetadata(name="Default compute"))
    resources = offer.resources
    memory = math.floor(resources.memory)
    offered = msgspec.structs.replace(
        _offered(base, now),
        cores=SimpleComputeCores(min=resources.cores, max=resources.cores),
        memory=SimpleComputeMemory(min=memory, max=memory),
        schedule=schedule,
    )
    if isinstance(offered, AcceleratedComputeResource) and resources.gpus:
        share = resources.gpus[0]
        gpu = next(g for g in platform.gpus if g.model == share.model)
        capability = gpu.compute_capability
        offered = msgspec.structs.replace(
            offered,
            accelerators=Accelerators(
                count=AcceleratorCount(min=share.count, max=share.count),
                vendor=gpu.vendor,
                models=[gpu.model],
                memory=AcceleratorMemory(min=gpu.memory),
                compute_capability=ComputeCapability(min=capability) if capability else None,
            ),
        )
    return offered


def _costs(offer: Offer) -> list[AnyCost]:
    """What the slot costs, when the platform has a cost model."""
    if offer.cost is None:
        return []
    unit = offer.cost.unit
    currency = len(unit) == 3 and unit.isalpha() and unit.isupper()
    return [
        SimpleMinMaxFloatCost(
            type="urn:ivoa:calycopis:cost:monetary" if currency else "urn:voexec:cost:allocation",
            description=f"{unit} for the whole slot",
            min=round(offer.cost.amount, 4),
            max=round(offer.cost.amount, 4),
        )
    ]
