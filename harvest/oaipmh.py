"""Harvest an IVOA publishing registry over OAI-PMH into the catalogue, with a report per record.

A run over one `OaiPmhSource`:

1. asks `Identify` (the registry answers, and says its datestamp granularity);
2. lists `ListRecords` (`ivo_vor`, the source's set) page by page, following resumption tokens.
   After a finished run, only what changed since it started (less `OVERLAP`) is listed;
   `full=True` lists everything;
3. decides per record (`harvest.registry_records.classify`): deleted records withdraw what was
   harvested from that identifier; records that are not executables are *skipped*, with the
   reason; executables have their Execution Broker description read (`readers` at once) and
   published through the catalogue (`publish_all`, once per `PUBLISH_BATCH` records, while the
   next page's descriptions are read), with the record's identifier as provenance and the
   SHA-256 of the description's bytes as its commit. What the batch's records published before
   is found in one call (`published_by_repository`): a description whose digest is the commit
   of every entry its record has is not checked nor published again (its entries are
   unchanged), and what a record no longer publishes is withdrawn in one call (`withdraw_all`).
   A description read before in the process is asked for conditionally (`DescriptionCache`:
   `If-None-Match`, `If-Modified-Since`); a 304 stands for the bytes read then;
4. records one report per record in the harvest store, as the GitLab pipeline does per project:
   what changed (new, updated, unchanged, withdrawn entries) and what was wrong, by field.

One record's failure (a description that cannot be read, a document the catalogue refuses) is
reported and the run goes on. The registry failing half-way stops the run as `partial`.

Entries are identified by (source name, record identifier, executable name), so harvesting the
same registry again finds the same entries; a name that the record no longer publishes is
withdrawn. The HTTP client (`harvest.http_get`: kept-alive connections, bounded answers) only
contacts the source's host and `harvest.allowed_hosts`, and follows no redirect.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, runtime_checkable
from urllib.parse import urlencode, urlsplit

import msgspec

from catalogue.model import Provenance, PublishReport
from core.clock import Clock
from core.errors import DomainError
from core.settings import HarvestSettings, HarvestSource, OaiPmhSource
from harvest.http_get import Answer, KeepAlive, NoAnswer, TooLarge, Transport, Unsendable
from harvest.model import (
    EntryOutcome,
    HarvestReport,
    ProjectReport,
    ReportProblem,
    RunSummary,
    SourceError,
    SourceNotFound,
    SourceUnavailable,
    Trigger,
)
from harvest.registry_records import (
    HarvestedRecord,
    OaiAnswerError,
    Page,
    Runnable,
    classify,
    parse_identify,
    parse_list,
)
from harvest.runs import source_named, start_run
from harvest.sources.port import exponential, with_retries
from harvest.store_sql import HarvestStore

log = logging.getLogger(__name__)

OVERLAP: Final = timedelta(minutes=10)
"""How far before the last run's start an incremental run lists from: a record written while
that run was listing may carry a datestamp from just before it (and clocks drift)."""
MAX_ANSWER_BYTES: Final = 64 * 1024 * 1024
MAX_PAGES: Final = 100_000
"""A registry that never ends its list stops the run here instead of looping for ever."""
PUBLISH_BATCH: Final = 500
"""Records published together: one catalogue transaction and one index commit per batch."""


@runtime_checkable
class RegistryCatalogue(Protocol):
    """What a registry harvest needs of the catalogue (`catalogue.service.CatalogueService`)."""

    def publish_all(
        self, documents: Iterable[tuple[str | bytes | Mapping[str, Any], Provenance]]
    ) -> list[PublishReport]:
        """Publish each document all-or-nothing, one report each."""
        ...

    def withdraw(self, entry_id: str) -> object:
        """Withdraw an entry; raises `NotFound` when there is none."""
        ...

    def withdraw_all(self, entry_ids: Sequence[str]) -> list[str]:
        """Withdraw several entries at once; the ids of those that exist."""
        ...

    def entry_ids(self, source: str, repository: str | None = None) -> list[str]:
        """Ids of the searchable entries harvested from a source (and record)."""
        ...

    def entry_ids_by_repository(
        self, source: str, repositories: Sequence[str]
    ) -> dict[str, list[str]]:
        """`entry_ids` of many records of a source at once."""
        ...


@runtime_checkable
class DescribedCatalogue(RegistryCatalogue, Protocol):
    """A catalogue that also tells which description each entry was published from."""

    def published_by_repository(
        self, source: str, repositories: Sequence[str]
    ) -> Mapping[str, Sequence[tuple[str, str, str | None, bool]]]:
        """Every entry of these records, withdrawn too: (id, version, commit, withdrawn)."""
        ...


# ----------------------------------------------------------------------------- the client
class _Busy(Exception):
    """No answer, a 429 or a 5xx: asking again may help."""


@dataclass(frozen=True)
class Validators:
    """What a server said identifies a version of an answer (`ETag`, `Last-Modified`)."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        """The request headers of a conditional GET."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True)
class Fetched:
    """A conditional GET's outcome: the body, or None when the server said it is unchanged."""

    body: bytes | None
    validators: Validators


class OaiPmhClient:
    """OAI-PMH over HTTP: GET with retries, bounded answers, allowed hosts only, no redirects.

    Requests go through a `harvest.http_get.Transport` (kept-alive connections, at most
    `connections` per host at once).
    """

    def __init__(
        self,
        base_url: str,
        *,
        allowed_hosts: Iterable[str] = (),
        max_retries: int = 5,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        connections: int = 4,
    ) -> None:
        self.base_url = base_url
        self.hosts = {urlsplit(base_url).hostname or "", *allowed_hosts}
        self.max_retries = max_retries
        self.sleep = sleep
        self._keep_alive = (
            KeepAlive(limit=MAX_ANSWER_BYTES, per_host=connections) if transport is None else None
        )
        self.transport: Transport = transport or self._keep_alive  # type: ignore[assignment]

    def close(self) -> None:
        """Release connections."""
        if self._keep_alive is not None:
            self._keep_alive.close()

    def get(self, url: str, params: Mapping[str, str] | None = None, **headers: str) -> bytes:
        """One GET, retried on 429, 5xx and network failures with growing pauses.

        Raises:
            SourceNotFound: 404 (or 410).
            SourceUnavailable: another failure after every retry, a host not allowed, a
                redirect (never followed), an answer over `MAX_ANSWER_BYTES`.
        """
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        answer = self._answer(url, {_header(name): value for name, value in headers.items()})
        return answer.body

    def fetch(self, url: str, validators: Validators | None = None, **headers: str) -> Fetched:
        """A GET that, given the validators of an earlier answer, may hear it is unchanged.

        Raises:
            SourceNotFound, SourceUnavailable: as `get`.
        """
        sent = {_header(name): value for name, value in headers.items()}
        if validators is not None:
            sent.update(validators.headers())
        answer = self._answer(url, sent, not_modified=validators is not None)
        found = Validators(answer.headers.get("etag"), answer.headers.get("last-modified"))
        if answer.status != 304 or validators is None:
            return Fetched(answer.body, found)
        # A 304 may leave out a validator that has not changed.
        return Fetched(
            None,
            Validators(
                found.etag or validators.etag, found.last_modified or validators.last_modified
            ),
        )

    def _answer(self, url: str, headers: Mapping[str, str], not_modified: bool = False) -> Answer:
        host = urlsplit(url).hostname or ""
        if host not in self.hosts:
            raise SourceUnavailable(f"{host!r} is not the registry's host nor an allowed host")

        def attempt() -> Answer:
            try:
                answer = self.transport(url, headers)
            except NoAnswer as error:
                raise _Busy(f"{url} did not answer: {error}") from error
            except TooLarge as error:
                raise SourceUnavailable(f"{error} (at most {MAX_ANSWER_BYTES} bytes)") from error
            except Unsendable as error:
                raise SourceUnavailable(str(error)) from error
            status = answer.status
            if status in {404, 410}:
                raise SourceNotFound(f"{url} answered {status}", 404)
            if status == 429 or status >= 500:
                raise _Busy(f"{url} answered {status}")
            if status == 304:
                if not_modified:
                    return answer
                raise SourceUnavailable(f"{url} answered 304 to a GET that was not conditional")
            if 300 <= status < 400:
                where = answer.headers.get("location", "nowhere")
                raise SourceUnavailable(
                    f"{url} answered {status}, a redirect to {where}: the harvest follows no "
                    "redirects (name the final URL)",
                    status,
                )
            if status >= 400 or status < 200:
                raise SourceUnavailable(f"{url} answered {status}", status)
            if len(answer.body) > MAX_ANSWER_BYTES:
                raise SourceUnavailable(f"{url} answered more than {MAX_ANSWER_BYTES} bytes")
            return answer

        return with_retries(
            attempt,
            retries=self.max_retries,
            retry_on=(_Busy,),
            wait=lambda _error, number: exponential(number),
            give_up=lambda error, attempts: SourceUnavailable(f"{error} ({attempts} attempts)"),
            sleep=self.sleep,
        )

    def identify(self) -> dict[str, str]:
        """The registry's Identify fields (`granularity`, `baseURL`...)."""
        try:
            return parse_identify(self.get(self.base_url, {"verb": "Identify"}))
        except OaiAnswerError as error:
            raise SourceUnavailable(f"Identify: {error}") from error

    def pages(self, arguments: Mapping[str, str]) -> Iterator[Page]:
        """ListRecords pages; an empty list (`noRecordsMatch`) gives no page."""
        params = {"verb": "ListRecords", **arguments}
        for _ in range(MAX_PAGES):
            try:
                page = parse_list(self.get(self.base_url, params))
            except OaiAnswerError as error:
                raise SourceUnavailable(f"ListRecords: {error}") from error
            if page.error is not None:
                code, message = page.error
                if code == "noRecordsMatch":
                    return
                raise SourceUnavailable(f"ListRecords answered {code}: {message}")
            yield page
            if page.token is None:
                return
            params = {"verb": "ListRecords", "resumptionToken": page.token}
        raise SourceUnavailable(f"the list did not end after {MAX_PAGES} pages")


class DescriptionCache:
    """The validators and digest of the descriptions read lately, by URL.

    What a conditional GET sends, and what a 304 stands for; bounded, shared by threads.
    Only an HTTP cache: whether a description is published again is decided against what the
    catalogue holds (the digest kept as each version's commit), never against this.
    """

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._items: dict[str, tuple[Validators, str]] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> tuple[Validators, str] | None:
        """The validators of the last answer read from `url`, and its body's digest."""
        with self._lock:
            return self._items.get(url)

    def put(self, url: str, validators: Validators, digest: str) -> None:
        """Remember an answer (the oldest remembered is forgotten past `size`)."""
        with self._lock:
            self._items.pop(url, None)
            if len(self._items) >= self.size:
                del self._items[next(iter(self._items))]
            self._items[url] = (validators, digest)

    def forget(self, url: str) -> None:
        """Forget what was read from `url`."""
        with self._lock:
            self._items.pop(url, None)


DESCRIPTIONS: Final = DescriptionCache()
"""The process's descriptions read: the pipeline builds a harvest object per run, and a run
after another sends conditional GETs for what the one before read."""


def _unchanged(entries: Sequence[tuple[str, str, str | None, bool]], digest: str) -> bool:
    """Whether a record's entries are what a description of that digest published.

    Its searchable entries were all published from it, and none it published was withdrawn
    since (publishing it again would restore that one).
    """
    searchable = [commit for _, _, commit, withdrawn in entries if not withdrawn]
    if not searchable or any(commit != digest for commit in searchable):
        return False
    return not any(withdrawn and commit == digest for _, _, commit, withdrawn in entries)


def _header(name: str) -> str:
    """A header's name from a keyword argument's (`if_none_match` -> `If-None-Match`)."""
    return "-".join(part.capitalize() for part in name.split("_"))


ClientFactory = Callable[[OaiPmhSource], OaiPmhClient]


# ----------------------------------------------------------------------------- the harvest
@dataclass(frozen=True)
class RecordKeeps:
    """A record whose earlier entries, but those it `keep`s, are withdrawn (`_withdraw_gone`)."""

    report: ProjectReport
    identifier: str
    keep: frozenset[str]


@dataclass(frozen=True)
class _Read:
    """A description read for a record: its document, its bytes' digest, where it was read.

    The document is None when the registry said it had not changed (a 304).
    """

    document: dict[str, Any] | None
    digest: str
    url: str


@dataclass
class _PageWork:
    """A listed page: its records' reports, and the descriptions being read for them."""

    reports: list[ProjectReport] = field(default_factory=list)
    gone: list[RecordKeeps] = field(default_factory=list)
    """Deleted records: everything they published is withdrawn."""
    reads: list[tuple[list[tuple[ProjectReport, HarvestedRecord]], Future[list[_Read | None]]]] = (
        field(default_factory=list)
    )
    """Records whose descriptions are read, a few at a time (one task each), and the reads."""


class OaiPmhHarvest:
    """Runs harvests of the configured OAI-PMH sources; see the module docstring."""

    def __init__(
        self,
        settings: HarvestSettings,
        catalogue: RegistryCatalogue,
        store: HarvestStore,
        clock: Clock,
        *,
        clients: ClientFactory | None = None,
        keep_runs: int = 100,
        readers: int | None = None,
        descriptions: DescriptionCache = DESCRIPTIONS,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.store = store
        self.clock = clock
        self.clients = clients or self._client
        self.keep_runs = keep_runs
        self.readers = max(1, settings.readers if readers is None else readers)
        self.descriptions = descriptions
        self._had_entries = True
        """Whether the source had entries when the current run started."""
        self._conditional = False
        """Whether this run's reads are conditional GETs (`_read`)."""

    def _client(self, source: OaiPmhSource) -> OaiPmhClient:
        return OaiPmhClient(
            source.url,
            allowed_hosts=self.settings.allowed_hosts,
            max_retries=self.settings.max_retries,
            connections=self.readers,
        )

    def source(self, name: str) -> OaiPmhSource:
        """The OAI-PMH source of that name.

        Raises:
            UnknownSource: no OAI-PMH source has that name.
        """
        return source_named(self.settings.sources, name, OaiPmhSource, "OAI-PMH")

    def run(
        self, source_name: str, *, trigger: Trigger = "manual", full: bool = False
    ) -> HarvestReport:
        """Harvest one registry; records are reported one by one in the harvest store.

        Raises:
            UnknownSource: no such source.
        """
        source = self.source(source_name)
        since = None if full else self._last_start(source.name)
        run = start_run(self.store, self.clock, source.name, trigger)
        reports: list[ProjectReport] = []
        client = self.clients(source)
        # Whether the source has entries at all: on a first harvest no record can have
        # published anything before, so nothing is looked up to withdraw.
        self._had_entries = bool(self.catalogue.entry_ids(source.name))
        # A 304 is worth something only when the catalogue can say what it holds of a record.
        self._conditional = self._had_entries and isinstance(self.catalogue, DescribedCatalogue)
        # Descriptions are read by a few threads, each request mostly waiting for the registry
        # (the client's connections are shared). A batch is published only once the next page
        # is listed and its reads are under way, so reading overlaps publishing.
        pool = ThreadPoolExecutor(self.readers, thread_name_prefix="oai-read")
        pending: list[_PageWork] = []
        listed = 0
        try:
            try:
                identify = client.identify()
                arguments = {"metadataPrefix": "ivo_vor"}
                if source.set_spec:
                    arguments["set"] = source.set_spec
                if since is not None:
                    day = identify.get("granularity") == "YYYY-MM-DD"
                    arguments["from"] = since.strftime("%Y-%m-%d" if day else "%Y-%m-%dT%H:%M:%SZ")
                for page in client.pages(arguments):
                    pending.append(self._start_page(pool, client, source, page.records, listed))
                    listed += len(page.records)
                    waiting = sum(len(work.reports) for work in pending[:-1])
                    if waiting >= PUBLISH_BATCH:
                        reports += self._settle(run, source, client, pending[:-1])
                        pending = pending[-1:]
            except SourceError as error:
                run.problems.append(ReportProblem(field="registry", reason=error.message))
            # what was listed before any failure
            reports += self._settle(run, source, client, pending)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            client.close()
        return self._finish(run, reports)

    def _last_start(self, source: str) -> datetime | None:
        for previous in self.store.runs(source, limit=self.keep_runs):
            if previous.status in {"succeeded", "partial"} and previous.finished_at:
                return previous.started_at - OVERLAP
        return None

    # ------------------------------------------------------------------------ one page
    def _start_page(
        self,
        pool: ThreadPoolExecutor,
        client: OaiPmhClient,
        source: OaiPmhSource,
        records: list[HarvestedRecord],
        listed: int,
    ) -> _PageWork:
        """Report the page's records, note the deleted ones, start reading descriptions."""
        work = _PageWork()
        wanted: list[tuple[ProjectReport, HarvestedRecord, str]] = []
        for number, record in enumerate(records, start=listed + 1):
            report = ProjectReport(project_id=number, path=record.identifier, status="harvested")
            work.reports.append(report)
            if record.deleted:
                report.status = "deleted"
                work.gone.append(RecordKeeps(report, record.identifier, keep=frozenset()))
                continue
            report.web_url = record.reference_url
            decision = classify(record)
            if not isinstance(decision, Runnable):
                report.status = "skipped"
                report.warnings.append(ReportProblem(field="record", reason=decision.reason))
                continue
            wanted.append((report, record, decision.description_url))
        # One task per reader and page rather than per record: a task costs more than a read.
        size = max(1, -(-len(wanted) // self.readers))
        for start in range(0, len(wanted), size):
            chunk = wanted[start : start + size]
            reading = pool.submit(self._read_all, client, [(r, u) for r, _, u in chunk])
            work.reads.append(([(r, record) for r, record, _ in chunk], reading))
        return work

    def _read_all(
        self, client: OaiPmhClient, wanted: list[tuple[ProjectReport, str]]
    ) -> list[_Read | None]:
        return [self._read(report, client, url) for report, url in wanted]

    def _settle(
        self,
        run: RunSummary,
        source: OaiPmhSource,
        client: OaiPmhClient,
        pages: list[_PageWork],
    ) -> list[ProjectReport]:
        """Publish what these pages read as one batch, withdraw what is gone, store the reports.

        Gone: what a record no longer publishes; everything a deleted record published. A
        description whose bytes are those the catalogue's entries of the record were published
        from (their commit) is not checked nor published again: its entries are unchanged.
        """
        reads = [
            (report, record, read)
            for work in pages
            for records, reading in work.reads
            for (report, record), read in zip(records, reading.result(), strict=True)
            if read is not None
        ]
        gone = [gone for work in pages for gone in work.gone]
        identifiers = [record.identifier for _, record, _ in reads]
        before = self._published_before(source.name, identifiers + [g.identifier for g in gone])
        kept: list[RecordKeeps] = []
        to_publish: list[tuple[ProjectReport, HarvestedRecord, Any]] = []
        commits: list[str | None] = []
        # A record read twice in the batch is published each time: its last listing must win.
        once = {key for key, count in Counter(identifiers).items() if count == 1}
        for report, record, read in reads:
            entries = before.get(record.identifier, ()) if before is not None else ()
            if record.identifier in once and _unchanged(entries, read.digest):
                kept.append(self._keep_unchanged(report, record, entries))
                continue
            if read.document is None:  # a 304, but the catalogue no longer holds what it gave
                again = self._read(report, client, read.url, conditional=False, count=False)
                if again is None or again.document is None:
                    continue
                to_publish.append((report, record, again.document))
                commits.append(again.digest)
                continue
            to_publish.append((report, record, read.document))
            commits.append(read.digest)
        published = self._publish(run, source, to_publish, commits=commits)
        # In listing order across the pages (a report's number is its place in the listing),
        # so that a record listed twice is judged by its last listing, deleted or published.
        listed = sorted(gone + kept + published, key=lambda record: record.report.project_id)
        searchable = None
        if before is not None:  # and what the batch published: a later listing may drop it
            searchable = {
                identifier: [key for key, _, _, withdrawn in entries if not withdrawn]
                for identifier, entries in before.items()
            }
            for done in published:
                keys = searchable.setdefault(done.identifier, [])
                keys += sorted(done.keep.difference(keys))
        self._withdraw_gone(run, source.name, listed, before=searchable)
        reports = [report for work in pages for report in work.reports]
        self.store.save_reports(run.run_id, reports)
        return reports

    def _published_before(
        self, source: str, identifiers: list[str]
    ) -> Mapping[str, Sequence[tuple[str, str, str | None, bool]]] | None:
        """What the records published before this batch, when the catalogue can say."""
        if not self._had_entries or not identifiers:
            return {}
        if not isinstance(self.catalogue, DescribedCatalogue):
            return None
        return self.catalogue.published_by_repository(source, list(dict.fromkeys(identifiers)))

    @staticmethod
    def _keep_unchanged(
        report: ProjectReport,
        record: HarvestedRecord,
        entries: Sequence[tuple[str, str, str | None, bool]],
    ) -> RecordKeeps:
        """Report a record's entries unchanged, without checking its description again."""
        ref = record.identifier
        for key, version, _, _ in entries:
            report.counts.count("unchanged")
            report.entries.append(
                EntryOutcome(id=key, version=version, ref=ref, change="unchanged")
            )
        return RecordKeeps(report, ref, keep=frozenset(key for key, _, _, _ in entries))

    def _read(
        self,
        report: ProjectReport,
        client: OaiPmhClient,
        url: str,
        *,
        conditional: bool = True,
        count: bool = True,
    ) -> _Read | None:
        """Read a record's description: a conditional GET when it was read before.

        None after reporting why it could not be read.
        """
        if count:
            report.counts.found += 1
        known = self.descriptions.get(url) if conditional and self._conditional else None
        try:
            fetched = client.fetch(url, known[0] if known else None, accept="application/json")
        except SourceError as error:
            self.descriptions.forget(url)
            self._fail(report, "referenceURL", error.message)
            return None
        if fetched.body is None and known is not None:
            return _Read(None, known[1], url)
        body = fetched.body or b""
        digest = hashlib.sha256(body).hexdigest()
        document = self._document(report, url, body)
        if document is None:
            self.descriptions.forget(url)
            return None
        if fetched.validators.etag or fetched.validators.last_modified:
            self.descriptions.put(url, fetched.validators, digest)
        return _Read(document, digest, url)

    def _description(
        self, report: ProjectReport, client: OaiPmhClient, url: str
    ) -> dict[str, Any] | None:
        """The executable's publisher document, read from its voexec entry description."""
        report.counts.found += 1
        try:
            body = client.get(url, accept="application/json")
        except SourceError as error:
            self._fail(report, "referenceURL", error.message)
            return None
        return self._document(report, url, body)

    def _document(self, report: ProjectReport, url: str, body: bytes) -> dict[str, Any] | None:
        """The `spec` of a description's bytes; None after reporting why there is none."""
        try:
            detail = msgspec.json.decode(body)
        except msgspec.DecodeError as error:
            self._fail(report, "referenceURL", f"{url} is not JSON: {error}")
            return None
        spec = detail.get("spec") if isinstance(detail, dict) else None
        if not isinstance(spec, dict):
            self._fail(report, "referenceURL", f"{url} holds no executable `spec`")
            return None
        return spec

    @staticmethod
    def _fail(report: ProjectReport, field: str, reason: str) -> None:
        report.status = "failed"
        report.problems.append(ReportProblem(field=field, reason=reason, ref=report.path))

    def _publish(
        self,
        run: RunSummary,
        source: HarvestSource,
        items: list[tuple[ProjectReport, HarvestedRecord, Any]],
        *,
        commits: Sequence[str | None] = (),
    ) -> list[RecordKeeps]:
        """Publish the documents; each published record with the entries it keeps.

        `commits`, one per item when given: the digest of the description each was read from,
        kept as its versions' provenance commit.
        """
        if not items:
            return []
        now = self.clock.now()
        digests = list(commits) or [None] * len(items)
        documents = [
            (
                document,
                Provenance(
                    source=source.name,
                    repository=record.identifier,
                    harvested_at=now,
                    commit=digest,
                ),
            )
            for (_, record, document), digest in zip(items, digests, strict=True)
        ]
        try:
            answers = self.catalogue.publish_all(documents)
        except DomainError as error:  # the catalogue failed: every record of the page did
            reason = error.message
            for report, _, _ in items:
                self._fail(report, "catalogue", f"not stored: {reason}")
            log.warning("harvest %s: the catalogue refused a page: %s", run.run_id, reason)
            return []
        published: list[RecordKeeps] = []
        for (report, record, _), answer in zip(items, answers, strict=True):
            ref = record.identifier
            report.problems += [
                ReportProblem(field=p.field, reason=p.reason, ref=ref, suggestions=p.suggestions)
                for p in answer.problems
            ]
            report.warnings += [
                ReportProblem(field=w.field, reason=w.reason, ref=ref) for w in answer.warnings
            ]
            if not answer.ok:
                report.counts.invalid += 1
                continue
            for outcome in answer.entries:
                report.counts.count(outcome.status)
                report.entries.append(
                    EntryOutcome(
                        id=outcome.id, version=outcome.version, ref=ref, change=outcome.status
                    )
                )
            kept = frozenset(outcome.id for outcome in answer.entries)
            published.append(RecordKeeps(report, record.identifier, keep=kept))
        return published

    def _withdraw_gone(
        self,
        run: RunSummary,
        source: str,
        records: Sequence[RecordKeeps],
        *,
        before: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Withdraw what these records published before and publish no more.

        One query for the entries of every record (none when `before`, the searchable entries
        of each record before the batch, is given), one withdrawal of them all (a full re-run
        of an unchanged registry withdraws nothing). `records` come in listing order: a record
        listed twice is judged by its last listing.
        """
        if not self._had_entries or not records:
            return  # a first harvest: no record can have published anything before
        last = {gone.identifier: gone for gone in records}
        if before is None:
            before = self.catalogue.entry_ids_by_repository(source, list(last))
        doomed = {
            identifier: [key for key in before.get(identifier, []) if key not in gone.keep]
            for identifier, gone in last.items()
        }
        everything = [key for keys in doomed.values() for key in keys]
        if not everything:
            return
        try:
            withdrawn = set(self.catalogue.withdraw_all(everything))
        except DomainError as error:
            log.warning("harvest %s: could not withdraw entries: %s", run.run_id, error.message)
            for identifier, keys in doomed.items():
                if keys:
                    self._fail(
                        last[identifier].report, "catalogue", f"not withdrawn: {error.message}"
                    )
            return
        for identifier, keys in doomed.items():
            report = last[identifier].report
            for key in keys:
                if key not in withdrawn:
                    continue  # withdrawn by hand meanwhile
                report.counts.withdrawn += 1
                report.entries.append(
                    EntryOutcome(id=key, version="", ref=identifier, change="withdrawn")
                )

    # ------------------------------------------------------------------------ the end
    def _finish(self, run: RunSummary, reports: list[ProjectReport]) -> HarvestReport:
        run.projects.found = len(reports)
        for report in reports:
            run.projects.count(report.status)
            run.counts.add(report.counts)
        if run.problems and not reports:
            run.status = "failed"
        elif run.problems or run.projects.failed:
            run.status = "partial"
        else:
            run.status = "succeeded"
        run.finished_at = self.clock.now()
        self.store.finish_run(run)
        self.store.prune(run.source, self.keep_runs)
        reports.sort(key=lambda r: (not r.problems, r.path))
        return HarvestReport(**msgspec.structs.asdict(run), project_reports=reports)
