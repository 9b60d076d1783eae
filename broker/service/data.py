"""The request's data at offer time: which platforms can stage it, and how long that takes.

Each platform that stages data for real (`data.check`, see docs/platforms.md) asks the
sources for their sizes through `broker.platforms.data_reach` (bounded, cached probes). A
platform that cannot reach an item answers NO naming the item; the others' preparation for
this request grows by the time the data takes to move at their configured bandwidth (nothing
for an item a local mirror holds), so the scheduler's starts, the offers' preparation and the
`nearest-data` strategy all see it. Each platform that moves data says how much and from where
in a message with its values.

Called by `broker.service.offers.read_question`, outside any database transaction.
Imports `core`, the broker's model and scheduling types, and the platforms' data modules.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec

from broker.model import AnyData, MessageItem, MessageLevel, message_item
from broker.platforms.data_plan import data_items, human_bytes
from broker.platforms.data_reach import DataAnswer, assess_data, describe_sources
from broker.scheduling.resources import PlatformSpec, Reason, reason
from core.settings import PlatformSettings

__all__ = ["data_ready", "probes_data"]

log = logging.getLogger(__name__)


def probes_data(settings: PlatformSettings) -> bool:
    """Whether the platform asks the data's sources at offer time (`data.check`)."""
    check = settings.data.check
    return check == "always" or (check == "auto" and settings.adapter in {"local", "slurm"})


def data_ready(
    able: Sequence[PlatformSpec],
    data: Sequence[AnyData],
    settings: Sequence[PlatformSettings],
    now: datetime,
) -> tuple[list[PlatformSpec], list[Reason], list[MessageItem]]:
    """Which of `able` can stage `data`, with their preparation for it.

    Returns:
        The platforms that can (their `preparation` now includes the transfer), why each
        other one cannot (one reason per data item it cannot reach), and, per platform that
        stages data, a message saying how much moves and from where.
    """
    if not data:
        return list(able), [], []
    items = data_items(data)
    configured = {platform.name: platform for platform in settings}
    ready: list[PlatformSpec] = []
    refusals: list[Reason] = []
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
