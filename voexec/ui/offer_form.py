"""The "Request offers" form of an entry page: prefilled from the entry, read into a hand-off.

The form asks in people's terms (a number and a unit for the duration, the earliest and
latest start as dates and times in UTC, one data location per line) and becomes the
catalogue's `HandOff` (ISO-8601 durations and start intervals). Problems name the form's own
fields, so the page can show each one beside its input; problems the catalogue finds later
(`start`, `data[2]`...) are mapped to the same fields by `form_field`.

Pure: no I/O, no clock (`now` is an argument).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Final

from catalogue.model import EntryDetail, HandOff
from catalogue.timing import format_duration, format_instant, parse_duration
from core.errors import Problem

UNITS: Final = {"min": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
UNIT_TITLES: Final = {"min": "minutes", "h": "hours", "d": "days"}
MAX_DATA_LINES: Final = 50
_LOCAL_FORMAT: Final = "%Y-%m-%dT%H:%M"
"""What `<input type="datetime-local">` sends (read as UTC: the form says so)."""
_CATALOGUE_FIELDS: Final = {"start": "earliest", "duration": "duration", "version": "version"}


@dataclass(frozen=True)
class OfferForm:
    """The form's values as text, exactly as shown in (and sent from) the inputs."""

    version: str = ""
    cores: str = "1"
    memory: str = "1"
    gpus: str = "0"
    duration: str = "1"
    unit: str = "h"
    earliest: str = ""
    latest: str = ""
    data: str = ""
    results: str = ""
    """Where the results go (empty: they stay on the platform)."""

    @classmethod
    def prefilled(cls, entry: EntryDetail) -> OfferForm:
        """The form for an entry: its declared needs and its example data."""
        needs = entry.spec.needs
        gpus = needs.gpus.count if needs.gpus and not needs.gpus.optional else 0
        amount, unit = _split_duration(needs.duration)
        examples = [location for item in entry.spec.data for location in item.examples]
        return cls(
            version=entry.version,
            cores=str(needs.cores),
            memory=_number(needs.memory),
            gpus=str(gpus),
            duration=amount,
            unit=unit,
            data="\n".join(examples),
        )

    @classmethod
    def from_form(cls, data: Mapping[str, str]) -> OfferForm:
        """The values a browser sent (missing fields are empty)."""
        return cls(**{f.name: str(data.get(f.name, "")).strip() for f in fields(cls)})

    def hand_off(
        self, now: datetime, start_window: timedelta
    ) -> tuple[HandOff | None, list[Problem]]:
        """The hand-off these values ask for, or the problems with them (by form field).

        Args:
            now: the current time (a latest start with no earliest start means "from now").
            start_window: how long the start may float when only the earliest start is given.
        """
        problems: list[Problem] = []
        cores = _integer(self.cores, "cores", 1, problems)
        gpus = _integer(self.gpus, "gpus", 0, problems)
        memory = _positive(self.memory, "memory", problems)
        duration = self._duration(problems)
        start = self._start(now, start_window, problems)
        locations = [line.strip() for line in self.data.splitlines() if line.strip()]
        if len(locations) > MAX_DATA_LINES:
            problems.append(Problem("data", f"at most {MAX_DATA_LINES} locations"))
        if problems:
            return None, problems
        return (
            HandOff(
                version=self.version or None,
                start=start,
                duration=duration,
                cores=cores,
                memory=memory,
                gpus=gpus,
                data=locations,
                results=self.results or None,
            ),
            [],
        )

    def _duration(self, problems: list[Problem]) -> str | None:
        if not self.duration:
            return None
        unit = UNITS.get(self.unit)
        try:
            amount = float(self.duration)
        except ValueError:
            amount = -1.0
        if unit is None or not 0 < amount <= 10_000:
            problems.append(Problem("duration", "give a positive number of minutes, hours or days"))
            return None
        return format_duration(timedelta(seconds=round((unit * amount).total_seconds())))

    def _start(self, now: datetime, window: timedelta, problems: list[Problem]) -> str | None:
        earliest = _instant(self.earliest, "earliest", problems)
        latest = _instant(self.latest, "latest", problems)
        if earliest is None and latest is None:
            return None
        begin = earliest or now.astimezone(UTC).replace(second=0, microsecond=0)
        end = latest or begin + window
        if end < begin:
            problems.append(Problem("latest", "must not be before the earliest start"))
            return None
        return f"{format_instant(begin)}/{format_instant(end)}"


def form_field(problem_field: str) -> str:
    """The form field a catalogue problem is about (`data[1]` -> `data`, `start` -> `earliest`)."""
    name = problem_field.removeprefix("$.").split("[", 1)[0].split(".", 1)[0]
    return _CATALOGUE_FIELDS.get(name, name)


def _number(value: float) -> str:
    return f"{value:g}"


def _split_duration(text: str | None) -> tuple[str, str]:
    """An ISO duration as the form's number and unit (`PT90M` -> `90`, `min`)."""
    try:
        length = parse_duration(text) if text else timedelta(hours=1)
    except ValueError:
        length = timedelta(hours=1)
    for unit in ("d", "h"):
        if length % UNITS[unit] == timedelta(0):
            return str(length // UNITS[unit]), unit
    return _number(length / UNITS["min"]), "min"


def _integer(text: str, name: str, least: int, problems: list[Problem]) -> int | None:
    if not text:
        return None
    if not text.isdigit() or int(text) < least or int(text) > 100_000:
        problems.append(Problem(name, f"must be a whole number, at least {least}"))
        return None
    return int(text)


def _positive(text: str, name: str, problems: list[Problem]) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1_000_000:
        problems.append(Problem(name, "must be a number of GiB above zero"))
        return None
    return value


def _instant(text: str, name: str, problems: list[Problem]) -> datetime | None:
    if not text:
        return None
    for pattern in (_LOCAL_FORMAT, _LOCAL_FORMAT + ":%S"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    problems.append(Problem(name, "give a date and time, e.g. 2026-09-01T10:00 (UTC)"))
    return None
