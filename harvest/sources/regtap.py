"""An IVOA registry read over RegTAP (TAP + ADQL on the `rr` schema), with pyvo.

The only pyvo user. Two questions are asked of a RegTAP 1.1 service's synchronous endpoint:

* `brokers`: resources with an Execution Broker capability (`rr.capability.standard_id`, which
  RegTAP keeps in lower case) and the access URL of its interface: candidate `remote`
  platforms, listed for the operator (docs/federation.md); nothing is configured by itself.
* `software`: plain `vr:resource` resources with a UAT software subject and a
  reference URL, the same records the OAI-PMH source turns into catalogue entries
  (`harvest.registry_records`: the subjects decide what is software, the reference URL whether
  voexec can run it).

Values coming from the registry are quoted into ADQL only after checking them against a strict
pattern: ADQL has no parameters.

`RegTapHarvest` runs a `regtap` harvest source (`core.settings.RegTapSource`) for the pipeline
(`harvest.pipeline.HarvestPipeline.run`), into the same harvest store and report as the other
sources: brokers become the report's candidate platforms, each with the settings block an
operator pastes to add it (`adapter: remote`, `remote.url`); software is published as the
OAI-PMH source publishes its records (`harvest.oaipmh.OaiPmhHarvest`, whose HTTP client, with
its retries and allowed hosts, reads each entry's description). A RegTAP answer is a snapshot,
so entries of records the registry no longer lists are withdrawn, but only after a complete
software answer. pyvo speaks HTTP through `requests`; a session with a default timeout bounds
every call.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import pyvo
import requests
import yaml

from core.errors import NotFound
from core.settings import HarvestSettings, RegTapSource
from harvest.model import (
    CandidatePlatform,
    EntryOutcome,
    HarvestReport,
    ProjectReport,
    ReportProblem,
    RunSummary,
    Trigger,
)
from harvest.oaipmh import OaiPmhClient, OaiPmhHarvest, RecordKeeps, RegistryCatalogue
from harvest.registry_records import SOFTWARE_SUBJECTS, HarvestedRecord, description_url
from harvest.runs import source_named, start_run
from harvest.sources.port import exponential, with_retries
from harvest.store_sql import HarvestStore

__all__ = [
    "BROKER_STANDARD",
    "BrokerCandidate",
    "RegTapClient",
    "RegTapError",
    "RegTapHarvest",
    "SoftwareRecord",
    "platform_settings",
]

log = logging.getLogger(__name__)

BROKER_STANDARD: Final = "ivo://ivoa.net/std/executionbroker"
"""The broker capability's standardID as RegTAP stores it (lower case); the Working Draft
fixes none yet, so it is a setting (`registry.broker_standard_id` publishes ours)."""
_SAFE: Final = re.compile(r"^[A-Za-z0-9:/._~#?=&-]+$")


class RegTapError(Exception):
    """The RegTAP service could not answer (unreachable, an ADQL error, not a VOTable)."""


class _TimedSession(requests.Session):
    """A requests session whose calls give up after a default timeout.

    pyvo's synchronous queries take no timeout of their own.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class BrokerCandidate:
    """A resource with an Execution Broker capability: a candidate remote platform."""

    ivoid: str
    title: str
    url: str
    """The capability's access URL (the broker's API root)."""


@dataclass(frozen=True, slots=True)
class SoftwareRecord:
    """A software resource of the registry and whether voexec can run it."""

    ivoid: str
    title: str
    reference_url: str
    subjects: tuple[str, ...]

    @property
    def description_url(self) -> str | None:
        """The voexec Execution Broker description beside its entry page, else None."""
        return description_url(self.reference_url)


class RegTapClient:
    """Asks one RegTAP service (its TAP base URL) over the synchronous endpoint."""

    def __init__(
        self,
        url: str,
        *,
        max_records: int = 10000,
        timeout: float = 60.0,
        max_retries: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.max_records = max_records
        self.max_retries = max_retries
        self.sleep = sleep
        self._session = _TimedSession(timeout)
        self._service = pyvo.dal.TAPService(self.url, session=self._session)

    def close(self) -> None:
        """Release connections."""
        self._session.close()

    def _rows(self, adql: str) -> list[dict[str, Any]]:
        """The rows of one query.

        A network failure, 429 or 5xx is retried with growing pauses (as the OAI-PMH client
        does); an ADQL error is not.
        """
        table = with_retries(
            lambda: self._service.run_sync(adql, maxrec=self.max_records).to_table(),
            retries=self.max_retries,
            # pyvo raises many kinds (network, DAL, VOTable): each is judged by _transient
            retry_on=(Exception,),
            wait=lambda error, attempt: exponential(attempt) if _transient(error) else None,
            give_up=self._failure,
            sleep=self.sleep,
        )
        names = table.colnames
        return [{name: _text(row[name]) for name in names} for row in table]

    def _failure(self, error: Exception, attempts: int) -> RegTapError:
        suffix = f" ({attempts} attempts)" if attempts > 1 else ""
        return RegTapError(f"{self.url}: {type(error).__name__}: {error}{suffix}")

    def brokers(self, standard_id: str = BROKER_STANDARD) -> list[BrokerCandidate]:
        """Resources with an Execution Broker capability, with its access URL."""
        wanted = standard_id.lower()
        if not _SAFE.match(wanted):
            raise ValueError(f"standard id {standard_id!r} has characters ADQL would need quoted")
        rows = self._rows(
            "SELECT r.ivoid, r.res_title, i.access_url FROM rr.resource AS r "  # noqa: S608 - _SAFE
            "NATURAL JOIN rr.capability AS c NATURAL JOIN rr.interface AS i "
            f"WHERE c.standard_id = '{wanted}' ORDER BY r.ivoid"
        )
        found: dict[str, BrokerCandidate] = {}
        for row in rows:
            ivoid, url = row.get("ivoid"), row.get("access_url")
            if ivoid and url and ivoid not in found:
                found[ivoid] = BrokerCandidate(ivoid, row.get("res_title") or ivoid, url)
        return list(found.values())

    def software(self) -> list[SoftwareRecord]:
        """Plain resources with a UAT software subject, with their reference URL."""
        subjects = ", ".join(f"'{s}'" for s in sorted(SOFTWARE_SUBJECTS))
        rows = self._rows(
            "SELECT r.ivoid, r.res_title, r.reference_url, s.res_subject "  # noqa: S608 - constants
            "FROM rr.resource AS r "
            "NATURAL JOIN rr.res_subject AS s "
            f"WHERE r.res_type = 'vr:resource' AND s.res_subject IN ({subjects}) "
            "ORDER BY r.ivoid"
        )
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            if row.get("ivoid"):
                grouped[row["ivoid"]].append(row)
        return [
            SoftwareRecord(
                ivoid=ivoid,
                title=items[0].get("res_title") or ivoid,
                reference_url=items[0].get("reference_url") or "",
                subjects=tuple(sorted({i["res_subject"] for i in items if i.get("res_subject")})),
            )
            for ivoid, items in grouped.items()
        ]


def _transient(error: Exception) -> bool:
    """Whether asking again may help: no answer at all, 429 or a 5xx (not an ADQL error)."""
    if isinstance(error, pyvo.dal.DALQueryError):
        return False
    if isinstance(error, requests.RequestException):
        return True
    code = getattr(error, "code", None)
    if isinstance(error, pyvo.dal.DALServiceError):
        return code is None or code == 429 or (isinstance(code, int) and code >= 500)
    return False


_NAME_CHARACTERS: Final = re.compile(r"[^a-z0-9]+")


def platform_name(ivoid: str) -> str:
    """A platform name from a broker's ivoid: `ivo://org.example/broker` -> `org-example-broker`."""
    tail = ivoid.removeprefix("ivo://").lower()
    return _NAME_CHARACTERS.sub("-", tail).strip("-") or "remote-broker"


def platform_settings(candidate: BrokerCandidate) -> str:
    """The `broker.platforms` block an operator pastes to offer this broker's platforms.

    The capacity is the most this broker books there at once (docs/federation.md): a
    placeholder the operator sets to what the other broker's operator agreed.
    """
    block = {
        "broker": {
            "platforms": [
                {
                    "name": platform_name(candidate.ivoid),
                    "adapter": "remote",
                    "remote": {"url": candidate.url},
                    "capacity": {"cores": 8, "memory": 32},
                }
            ]
        }
    }
    text = yaml.safe_dump(block, sort_keys=False, default_flow_style=False)
    return (
        f"# {candidate.title} ({candidate.ivoid}); set capacity to what you may book there\n{text}"
    )


class RegTapHarvest(OaiPmhHarvest):
    """Runs harvests of the configured `regtap` sources; see the module docstring."""

    def __init__(
        self,
        settings: HarvestSettings,
        catalogue: RegistryCatalogue,
        store: HarvestStore,
        clock: Any,
        *,
        registries: Callable[[RegTapSource], RegTapClient] | None = None,
        keep_runs: int = 100,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(settings, catalogue, store, clock, keep_runs=keep_runs)
        self.sleep = sleep
        self.registries = registries or self._registry

    def _registry(self, source: RegTapSource) -> RegTapClient:
        return RegTapClient(
            source.url,
            max_records=source.max_records,
            timeout=source.timeout.total_seconds(),
            max_retries=self.settings.max_retries,
            sleep=self.sleep,
        )

    def regtap_source(self, name: str) -> RegTapSource:
        """The `regtap` source of that name.

        Raises:
            UnknownSource: no `regtap` source has that name.
        """
        return source_named(self.settings.sources, name, RegTapSource, "RegTAP")

    def run(
        self, source_name: str, *, trigger: Trigger = "manual", full: bool = False
    ) -> HarvestReport:
        """Ask the registry for what the source finds.

        A RegTAP answer is always complete, so `full` changes nothing.

        Raises:
            UnknownSource: no such source.
        """
        source = self.regtap_source(source_name)
        run = start_run(self.store, self.clock, source.name, trigger)
        reports: list[ProjectReport] = []
        registry = self.registries(source)
        try:
            if "brokers" in source.find:
                run.platforms = self._brokers(run, registry, source)
            if "software" in source.find:
                reports = self._software(run, registry, source)
        finally:
            registry.close()
        return self._finish(run, reports)

    @staticmethod
    def _brokers(
        run: RunSummary, registry: RegTapClient, source: RegTapSource
    ) -> list[CandidatePlatform]:
        try:
            found = registry.brokers(source.broker_standard_id)
        except (RegTapError, ValueError) as error:
            run.problems.append(ReportProblem(field="brokers", reason=str(error)))
            return []
        return [
            CandidatePlatform(
                ivoid=broker.ivoid,
                title=broker.title,
                url=broker.url,
                name=platform_name(broker.ivoid),
                settings=platform_settings(broker),
            )
            for broker in found
        ]

    def _software(
        self, run: RunSummary, registry: RegTapClient, source: RegTapSource
    ) -> list[ProjectReport]:
        try:
            records = registry.software()
        except RegTapError as error:
            # Without the whole list nothing is known to be gone: withdraw nothing.
            run.problems.append(ReportProblem(field="software", reason=str(error)))
            return []
        reports: list[ProjectReport] = []
        to_publish: list[tuple[ProjectReport, HarvestedRecord, Any]] = []
        not_runnable: list[RecordKeeps] = []
        client = OaiPmhClient(
            source.url,
            allowed_hosts=self.settings.allowed_hosts,
            max_retries=self.settings.max_retries,
            sleep=self.sleep,
        )
        try:
            for number, record in enumerate(records, start=1):
                report = ProjectReport(
                    project_id=number,
                    path=record.ivoid,
                    web_url=record.reference_url,
                    status="harvested",
                )
                reports.append(report)
                url = record.description_url
                if url is None:
                    report.status = "skipped"
                    report.warnings.append(ReportProblem(field="record", reason=_NOT_RUNNABLE))
                    not_runnable.append(RecordKeeps(report, record.ivoid, keep=frozenset()))
                    continue
                document = self._description(report, client, url)
                if document is not None:
                    harvested = HarvestedRecord(
                        identifier=record.ivoid, datestamp="", deleted=False
                    )
                    to_publish.append((report, harvested, document))
        finally:
            client.close()
        published = self._publish(run, source, to_publish)
        self._withdraw_gone(run, source.name, not_runnable + published)
        listed = {record.ivoid for record in records}
        reports += self._gone(source, listed)
        for report in reports:
            self.store.save_project(run.run_id, report, source=source.name)
        return reports

    def _gone(self, source: RegTapSource, listed: set[str]) -> list[ProjectReport]:
        """Withdraw the entries of records the registry no longer lists as software.

        Records named by earlier reports get a report each; entries of no known record (their
        reports were pruned) are withdrawn under the registry's URL.
        """
        remaining = set(self.catalogue.entry_ids(source.name))
        if not remaining:
            return []
        by_record = self.catalogue.entry_ids_by_repository(source.name, sorted(listed))
        remaining -= {key for keys in by_record.values() for key in keys}
        if not remaining:
            return []
        earlier = {
            project.path
            for previous in self.store.runs(source.name, limit=self.keep_runs)
            for project in self.store.report(previous.run_id).project_reports
        } - listed
        reports: list[ProjectReport] = []
        for ivoid in sorted(earlier):
            ids = set(self.catalogue.entry_ids(source.name, ivoid)) & remaining
            if ids:
                reports.append(self._withdrawn(source, ivoid, ids, len(listed) + len(reports) + 1))
                remaining -= ids
        if remaining:
            reports.append(
                self._withdrawn(source, source.url, remaining, len(listed) + len(reports) + 1)
            )
        return reports

    def _withdrawn(
        self, source: RegTapSource, path: str, entry_ids: set[str], number: int
    ) -> ProjectReport:
        report = ProjectReport(project_id=number, path=path, status="deleted")
        for entry_id in sorted(entry_ids):
            with contextlib.suppress(NotFound):  # withdrawn by hand meanwhile
                self.catalogue.withdraw(entry_id)
            report.counts.withdrawn += 1
            report.entries.append(
                EntryOutcome(id=entry_id, version="", ref=path, change="withdrawn")
            )
        return report


_NOT_RUNNABLE: Final = (
    "software, but it names no Execution Broker executable (its reference URL is not a voexec "
    "entry page), so nothing could run it"
)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    text = "" if value is None else str(value)
    return "" if text == "--" else text  # a masked (null) cell
