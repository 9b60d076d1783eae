"""The request's data at offer time: which platforms can stage it, and how long that takes.

Each platform that stages data for real (`data.check`, see docs/platforms.md) asks the
sources for their sizes through `broker.platforms.data_reach` (bounded, cached probes). A
platform that cannot reach an item answers NO naming the item; the others' preparation for
this request grows by the time the data takes to move at their configured bandwidth (nothing
for an item a local mirror holds), so the scheduler's starts, the offers' preparation and the
`nearest-data` strategy all see it. Each platform that moves data says how much and from where
in a message with its values.

The request's results destinations (voexec's results storage kinds) are checked here too, from
the platform's `data.results` settings only (no probe, no write): a platform that may not write
to one answers NO naming it, never YES and then a failed upload.

Called by `broker.service.offers.read_question`, outside any database transaction.
Imports `core`, the broker's model and scheduling types, and the platforms' data modules.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec

from broker.model import AnyData, AnyStorage, MessageItem, MessageLevel, message_item
from broker.platforms.data_plan import data_items, human_bytes
from broker.platforms.data_reach import DataAnswer, assess_data, describe_sources
from broker.platforms.results_plan import results_items, results_refusals
from broker.scheduling.resources import PlatformSpec, Reason, reason
from core.settings import PlatformSettings

__all__ = ["data_ready", "probes_data", "results_writable"]

UPLOADS_RESULTS = frozenset({"local", "slurm", "simulated"})
"""Adapters that write results destinations (the simulated one pretends to); `remote` platforms
are asked by their own broker, which the request is forwarded to."""

log = logging.getLogger(__name__)


def probes_data(settings: PlatformSettings) -> bool:
    """Whether the platform asks the data's sources at offer time (`data.check`)."""
    check = settings.data.check
    return check == "always" or (check == "auto" and settings.adapter in {"local", "slurm"})


def results_writable(
    able: Sequence[PlatformSpec],
    storage: Sequence[AnyStorage],
    settings: Sequence[PlatformSettings],
) -> tuple[list[PlatformSpec], list[Reason]]:
    """Which of `able` may write every results destination of `storage`, and why not the others."""
    items = results_items(storage)
    if not items:
        return list(able), []
    configured = {platform.name: platform for platform in settings}
    writable: list[PlatformSpec] = []
    refusals: list[Reason] = []
    for spec in able:
        platform = configured.get(spec.name)
        if platform is None or platform.adapter == "remote":
            writable.append(spec)
            continue
        if platform.adapter not in UPLOADS_RESULTS:
            why = [f"uploads no results ({platform.adapter} platforms do not yet)"]
        else:
            why = results_refusals(items, platform.data.results)
        if why:
            refusals.extend(
                reason(spec, "results-unwritable", "{platform}: {why}", why=text) for text in why
            )
        else:
            writable.append(spec)
    return writable, refusals


def data_ready(
    able: Sequence[PlatformSpec],
    data: Sequence[AnyData],
    settings: Sequence[PlatformSettings],
    now: datetime,
    *,
    storage: Sequence[AnyStorage] = (),
) -> tuple[list[PlatformSpec], list[Reason], list[MessageItem]]:
    """Which of `able` can stage `data` and write `storage`'s results, with their preparation.

    Returns:
        The platforms that can (their `preparation` now includes the transfer), why each
        other one cannot (one reason per data item it cannot reach or results destination it
        may not write), and, per platform that stages data, a message saying how much moves
        and from where.
    """
    able, unwritable = results_writable(able, storage, settings)
    if not data:
        return able, unwritable, []
    items = data_items(data)
    configured = {platform.name: platform for platform in settings}
    ready: list[PlatformSpec] = []
    refusals: list[Reason] = list(unwritable)
    notes: list[MessageItem] = []
    for spec in able:
        platform = configured.get(spec.name)
        if platform is None or not probes_data(platform):
            ready.append(spec)  # it stages nothing for real: no transfer to count
            continue
        try:
            answer = assess_data(items, platform.data)
        except Exception as error:  # a broken probe refuses; the other platforms still offer
            log.warning("platform %s: the data check failed", spec.name, exc_info=True)
            answer = DataAnswer(refusals=(f"cannot check the data: {type(error).__name__}",))
        if answer.refusals:
            refusals.extend(
                reason(spec, "data-unreachable", "{platform}: {why}", why=text)
                for text in answer.refusals
            )
            continue
        transfer = answer.transfer
        prepared = msgspec.structs.replace(spec, preparation=spec.preparation + transfer)
        ready.append(prepared)
        notes.append(_note(prepared, answer, transfer, now))
    return ready, refusals, notes


def _note(
    spec: PlatformSpec, answer: DataAnswer, transfer: timedelta, now: datetime
) -> MessageItem:
    moved = answer.moved_bytes
    local = sum(1 for move in answer.moves if move.bandwidth is None)
    return message_item(
        "urn:voexec:data-transfer",
        "{platform}: moves {moved} ({bytes} bytes) of data from {sources} in about {seconds} s, "
        "within a preparation of {preparation} s; {local} of {items} data item(s) already "
        "on the platform",
        time=now,
        level=MessageLevel.INFO,
        platform=spec.name,
        moved=human_bytes(moved),
        bytes=str(moved),
        sources=describe_sources(answer.moves),
        seconds=str(int(transfer.total_seconds())),
        preparation=str(int(spec.preparation.total_seconds())),
        local=str(local),
        items=str(len(answer.moves)),
    )
