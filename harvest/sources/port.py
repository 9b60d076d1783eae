"""The `Source` port the harvest pipeline drives, and the one retry loop every source uses.

A configured harvest source (`core.settings.HarvestSource`: GitLab, OAI-PMH, RegTAP) is run by
an object that satisfies `Source`: `HarvestPipeline.run` picks it by the source's type and asks
it for one run, which it records in the harvest store and returns as a report. GitLab runs live
in the pipeline itself (`harvest.pipeline`), OAI-PMH runs in `harvest.oaipmh.OaiPmhHarvest`,
RegTAP runs in `harvest.sources.regtap.RegTapHarvest`.

Every request a source makes to the outside goes through `with_retries`: the source says which
failures are worth another try and how long to wait before it (`exponential` pauses, or what a
429's `Retry-After` asks), and what to raise when it gives up; the loop counts the attempts and
sleeps through an injected `sleep`, so tests never wait.

Pure: no I/O library.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from harvest.model import HarvestReport, Trigger

__all__ = ["Sleep", "Source", "exponential", "with_retries"]

T = TypeVar("T")
Sleep = Callable[[float], None]


@runtime_checkable
class Source(Protocol):
    """Harvests the configured sources of one type, one run at a time."""

    def run(
        self, source_name: str, *, trigger: Trigger = "manual", full: bool = False
    ) -> HarvestReport:
        """Harvest the source of that name into the catalogue; its report, also stored.

        Args:
            source_name: A configured source of this type.
            trigger: Who asked (manual, schedule, webhook), for the report.
            full: Read and publish everything again, changed or not.

        Raises:
            UnknownSource: no source of this type has that name.
        """
        ...


def exponential(attempt: int, *, first: float = 1.0, longest: float = 60.0) -> float:
    """The pause after failed attempt number `attempt` (from 0): `first`, doubling, capped."""
    return float(min(first * 2.0**attempt, longest))


def with_retries(
    operation: Callable[[], T],
    *,
    retries: int,
    retry_on: tuple[type[Exception], ...],
    wait: Callable[[Exception, int], float | None],
    give_up: Callable[[Exception, int], Exception],
    sleep: Sleep,
) -> T:
    """Run `operation`, asking again after failures that may pass.

    Args:
        operation: One attempt; what it returns is returned.
        retries: Attempts after the first, at most.
        retry_on: The failures `wait` judges; any other exception passes through untouched.
        wait: Given such a failure and the attempt number (from 0), the seconds to wait before
            the next attempt, or None when asking again cannot help.
        give_up: Given the last failure and the number of attempts made, the error to raise
            (chained to that failure).
        sleep: Waits between attempts (`time.sleep`; a recorder in tests).
    """
    attempt = 0
    while True:
        try:
            return operation()
        except retry_on as error:
            delay = wait(error, attempt) if attempt < retries else None
            if delay is None:
                raise give_up(error, attempt + 1) from error
        attempt += 1
        sleep(delay)
