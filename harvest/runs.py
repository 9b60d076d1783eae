"""What every harvest source does alike before its own work: find its source, record a run.

`source_named` picks the configured source of one type by name (an `UnknownSource` listing the
sources of that type otherwise); `start_run` records a new run as running in the harvest store
and returns it, so its id can be shown at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from core.clock import Clock
from core.settings import HarvestSource
from harvest.model import RunSummary, Trigger, UnknownSource

if TYPE_CHECKING:
    from harvest.store_sql import HarvestStore

S = TypeVar("S")


def source_named(sources: Sequence[HarvestSource], name: str, kind: type[S], label: str) -> S:
    """The source of type `kind` named `name`; `label` names the type in the error.

    Raises:
        UnknownSource: no source of that type has that name.
    """
    for source in sources:
        if source.name == name and isinstance(source, kind):
            return source
    known = [s.name for s in sources if isinstance(s, kind)]
    raise UnknownSource(
        f"no {label} source {name!r} (known: {', '.join(known) or 'none configured'})"
    )


def start_run(store: HarvestStore, clock: Clock, source: str, trigger: Trigger) -> RunSummary:
    """A new run of `source`, recorded as running."""
    run = RunSummary(
        run_id=str(uuid.uuid4()),
        source=source,
        trigger=trigger,
        status="running",
        started_at=clock.now(),
    )
    store.start_run(run)
    return run
