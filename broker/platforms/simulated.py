"""The simulated platform: runs nothing, walks every phase with configured delays and outcomes.

For the demo and the tests. Its behaviour comes from `PlatformSettings.simulated`: how long
preparing and releasing take, how long the work runs (`run`, or until the offered end), a
scripted failure in one phase (`fail_in`), and the Python it pretends to have (`python_version`).
It keeps no state: every answer is a report of what will happen and when, which the service
queues in the database, so it is never asked to `observe`. It runs every executable kind it is
configured for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from broker.lifecycle import Failed, ReleaseDone, ResourcesReady, WorkFinished
from broker.model import AnyExecutable, PythonProgram, python_version_allows
from broker.platforms.port import PlatformReport, SessionPlan
from core.settings import PlatformSettings

__all__ = ["SimulatedPlatform"]


class SimulatedPlatform:
    """A `Platform` that pretends, on the timetable of its settings."""

    def __init__(self, settings: PlatformSettings) -> None:
        self.name = settings.name
        self._behaviour = settings.simulated
        self.stopped: list[str] = []
        """Sessions stopped by a cancel, for inspection (this process only)."""

    def _failure(self, phase: str, at: datetime) -> list[PlatformReport]:
        reason = f"{self.name}: the simulated session failed while {phase}"
        return [PlatformReport(at, Failed(reason=reason))]

    def accepts(self, executable: AnyExecutable, gpus: int = 0) -> Sequence[str]:
        """It pretends to run anything, with the Python it is configured to pretend to have."""
        have = self._behaviour.python_version
        match executable:
            case PythonProgram(python_version=wanted) if (
                wanted and have and not python_version_allows(wanted, have)
            ):
                return [f"runs Python {have}, not Python {wanted} as the program asks"]
        return []

    def prepare(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Ready after the preparation delay (or failed then, when scripted)."""
        ready = now + self._behaviour.prepare
        if self._behaviour.fail_in == "PREPARING":
            return self._failure("preparing", ready)
        reports = [PlatformReport(ready, ResourcesReady())]
        if self._behaviour.fail_in == "AVAILABLE":
            reports += self._failure("available", ready)
        return reports

    def start(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """The work finishes after `run`; without `run` it runs to the offered end."""
        if self._behaviour.fail_in == "RUNNING":
            return self._failure("running", now + (self._behaviour.run or self._behaviour.prepare))
        if self._behaviour.run is None:
            return []
        return [PlatformReport(now + self._behaviour.run, WorkFinished())]

    def observe(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Nothing new: every report was given in advance."""
        return []

    def release(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Released after the release delay (or failed then, when scripted)."""
        done = now + self._behaviour.release
        if self._behaviour.fail_in == "RELEASING":
            return self._failure("releasing", done)
        return [PlatformReport(done, ReleaseDone())]

    def stop(self, plan: SessionPlan, now: datetime) -> Sequence[PlatformReport]:
        """Stopped at once; nothing more will be reported."""
        self.stopped.append(plan.session_id)
        return []
