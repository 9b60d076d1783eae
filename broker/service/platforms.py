"""The service's side of the `Platform` port: session plans, safe calls, offer-time refusals.

Builds the `SessionPlan` an adapter gets from a stored session; carries out one platform effect
of the lifecycle, turning an adapter that raises into the session's failure (with the error as
its reason) instead of a lost session; and asks each platform at offer time whether it can run
the requested executable at all, so that a platform without a container engine answers NO with
its reason before anything is booked.

Imports `core`, the broker's model, lifecycle, ports and resources, and the store's record type;
no I/O of its own (the adapters do theirs), except that a preparation's logical data (Rucio,
DataLink, `ivo://`) is resolved to the URLs staged through `broker.platforms.data_reach`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final, TypeAlias

import msgspec

from broker.lifecycle import Failed, ObservePlatform, Release, StartPreparation, StartWork, StopWork
from broker.model import (
    AnyExecutable,
    MessageItem,
    MessageLevel,
    message_item,
)
from broker.platforms.data_plan import data_items
from broker.platforms.data_reach import resolve_sources
from broker.platforms.port import (
    DataSource,
    Platform,
    PlatformError,
    PlatformReport,
    SessionPlan,
    remote_session_of,
)
from broker.platforms.results_plan import results_targets
from broker.scheduling.resources import PlatformSpec, Reason, kind_name, reason
from broker.store.port import SessionRecord
from core.settings import PlatformDataSettings

__all__ = [
    "ACTIONS",
    "PlatformEffect",
    "accepting_platforms",
    "action_of",
    "call_platform",
    "session_plan",
]

log = logging.getLogger(__name__)

PlatformEffect: TypeAlias = StartPreparation | StartWork | ObservePlatform | Release | StopWork


def session_plan(record: SessionRecord) -> SessionPlan:
    """What the platform must know to run a stored session.

    Raises:
        ValueError: the session has no executable (it could not have been offered).
    """
    document = record.document
    if document.executable is None:
        raise ValueError(f"session {record.id} has no executable")
    # Where each item is, as `broker.platforms.data_plan` says (S3 objects included).
    data = tuple(
        DataSource(name=item.name, kind=str(resource.__struct_config__.tag), location=item.source)
        for item, resource in zip(data_items(document.data), document.data, strict=True)
    )
    return SessionPlan(
        session_id=record.id,
        executable=document.executable,
        cores=record.resources.cores,
        memory=record.resources.memory,
        gpus=sum(share.count for share in record.resources.gpus),
        start=record.state.start,
        end=record.state.end,
        data=data,
        results=results_targets(document.storage),
        remote=remote_session_of(document.meta.messages if document.meta else ()),
    )


ACTIONS: Final[Mapping[type[PlatformEffect], str]] = {
    StartPreparation: "prepare",
    StartWork: "start",
    ObservePlatform: "observe",
    Release: "release",
    StopWork: "stop",
}
"""The port's method for each platform effect: what the outbox stores."""


def action_of(effect: PlatformEffect) -> str:
    """The name of the platform call an effect stands for (`prepare`, `start`...)."""
    return ACTIONS[type(effect)]


def with_connectors(
    record: SessionRecord, reports: Sequence[PlatformReport]
) -> SessionRecord | None:
    """The session with the connectors its platform reported last; None when none did."""
    reported = [report.connectors for report in reports if report.connectors is not None]
    if not reported:
        return None
    document = msgspec.structs.replace(record.document, connectors=list(reported[-1]))
    return dataclasses.replace(record, document=document)


def call_platform(
    platform: Platform,
    effect: PlatformEffect | str,
    record: SessionRecord,
    now: datetime,
    *,
    data: PlatformDataSettings | None = None,
) -> tuple[Sequence[PlatformReport], MessageItem | None]:
    """Carry out one platform call for a session (an effect, or its action's name).

    With `data` (the settings of a platform that stages data for real), a preparation gets its
    Rucio, DataLink and `ivo://` data resolved to the URLs (and checks) it stages; an item that
    cannot be resolved fails the session naming it.

    Returns:
        The platform's reports, and None; or, when the adapter raised, one `Failed` report
        due now saying what failed, and a warning message for the session (kept even when the
        session has already ended, e.g. a release that failed during a cancel).
    """
    action = effect if isinstance(effect, str) else action_of(effect)
    try:
        plan = session_plan(record)
        if action == "prepare" and data is not None:
            plan = dataclasses.replace(plan, data=resolve_sources(plan.data, data))
        call = {
            "prepare": platform.prepare,
            "start": platform.start,
            "observe": platform.observe,
            "release": platform.release,
            "stop": platform.stop,
        }[action]
        return list(call(plan, now)), None
    except Exception as error:  # any adapter failure fails the session; it never loses it
        log.warning("platform %s: %s of session %s failed", platform.name, action, record.id)
        log.debug("platform call failed", exc_info=True)
        said = (
            str(error) if isinstance(error, PlatformError) else f"{type(error).__name__}: {error}"
        )
        why = f"{platform.name}: {action} failed: {said}"
        note = message_item(
            "urn:voexec:platform-error",
            "{platform}: {action} failed: {error}",
            time=now,
            level=MessageLevel.WARN,
            platform=platform.name,
            action=action,
            error=said,
        )
        return [PlatformReport(now, Failed(reason=why))], note


def accepting_platforms(
    platforms: Mapping[str, Platform],
    specs: Sequence[PlatformSpec],
    executable: AnyExecutable,
    gpus: int = 0,
) -> tuple[list[PlatformSpec], list[Reason]]:
    """The platforms that can run `executable` (with `gpus` GPUs), and why the others cannot.

    Only platforms configured for the executable's kind are asked: for the others the
    scheduler already says that they do not run it.
    """
    kind = kind_name(str(executable.__struct_config__.tag))
    able: list[PlatformSpec] = []
    refusals: list[Reason] = []
    for spec in specs:
        adapter = platforms.get(spec.name)
        why: list[str] = []
        if adapter is not None and kind in spec.kinds:
            try:
                why = list(adapter.accepts(executable, gpus))
            except Exception as error:  # a broken adapter refuses; the others still offer
                log.warning("platform %s: accepts failed", spec.name, exc_info=True)
                why = [f"cannot check the request: {type(error).__name__}: {error}"]
        if why:
            refusals.extend(
                reason(spec, "platform-cannot-run", "{platform}: {why}", why=text) for text in why
            )
        else:
            able.append(spec)
    return able, refusals
