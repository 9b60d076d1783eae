"""Harvesting IVOA registries over OAI-PMH into the catalogue.

- from another voexec, a real OAI-PMH server on a loopback port: its executables become entries
  here, everything else is skipped with a reason, and a withdrawal there withdraws here;
- from crafted answers (a `harvest.http_get.Transport` function): what the report says about bad
  records;
- from the throwaway DaCHS of `scripts/services/dachs` (marker `dachs`): a registry with no
  executables, harvested page by page, every record skipped with its reason.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest
import uvicorn
import yaml

from core.clock import SystemClock
from core.settings import OaiPmhSource, RegistrySettings, Settings
from harvest.http_get import Answer, Transport
from harvest.oaipmh import DescriptionCache, OaiPmhClient, OaiPmhHarvest
from harvest.store_sql import HarvestStore
from tests.catalogue_support import app_settings, executable
from tests.conftest import require_service
from voexec.app import create_app
from voexec.wiring import Services, build_services

YAML = {
    "authorization": "Bearer s3cret-publisher-token-for-the-tests-only",
    "content-type": "application/yaml",
}
DACHS_URL_ENV = "DACHS_TEST_OAI_URL"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def with_registry(settings: Settings, public_url: str, authority: str) -> Settings:
    return msgspec.structs.replace(
        settings,
        server=msgspec.structs.replace(settings.server, public_url=public_url),
        registry=RegistrySettings(authority=authority, page_size=2),
    )


@pytest.fixture
def remote(tmp_path) -> Iterator[str]:
    """Another voexec, serving its registry over HTTP; yields its base URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(with_registry(app_settings(tmp_path / "remote"), base, "remote.test"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the remote voexec did not start"
        time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(timeout=30)


def local_services(tmp_path: Path, source: OaiPmhSource) -> Services:
    settings = app_settings(tmp_path / "local")
    harvest = msgspec.structs.replace(settings.harvest, sources=[source], max_retries=0)
    return build_services(msgspec.structs.replace(settings, harvest=harvest))


def harvester(services: Services, **kwargs) -> OaiPmhHarvest:
    return OaiPmhHarvest(
        services.settings.harvest,
        services.components["catalogue"],
        HarvestStore(services.components["engine"]),
        SystemClock(),
        **kwargs,
    )


def by_path(report) -> dict:
    return {record.path: record for record in report.project_reports}


def test_executables_of_another_voexec_become_entries_here(remote, tmp_path):
    with httpx.Client(base_url=remote, timeout=30) as client:
        published = {}
        for name in ("alpha", "beta"):
            body = yaml.safe_dump(executable(name=name, title=f"{name.title()} tool"))
            answer = client.post("/catalogue/executables", content=body, headers=YAML)
            assert answer.status_code == 201, answer.text
            published[name] = answer.json()["entries"][0]["id"]
    ivoid = {name: f"ivo://remote.test/{entry_id}" for name, entry_id in published.items()}
    services = local_services(tmp_path, OaiPmhSource(name="remote", url=f"{remote}/registry/oai"))
    harvest = harvester(services)
    catalogue = services.components["catalogue"]

    first = services.components["harvest"].run("remote")  # the pipeline `voexec harvest` runs
    assert first.status == "succeeded", first.problems
    records = by_path(first)
    assert records[ivoid["alpha"]].status == "harvested"
    assert records[ivoid["alpha"]].counts.new == 1
    assert records[ivoid["alpha"]].web_url == f"{remote}/executables/{published['alpha']}"
    skipped = {path: r for path, r in records.items() if r.status == "skipped"}
    assert set(skipped) == {
        "ivo://remote.test",
        "ivo://remote.test/registry",
        "ivo://remote.test/broker",
    }
    assert "vg:Registry" in skipped["ivo://remote.test/registry"].warnings[0].reason
    assert first.projects.skipped == 3
    assert first.counts.new == 2
    local_ids = catalogue.entry_ids("remote")
    assert len(local_ids) == 2
    alpha = catalogue.get(catalogue.entry_ids("remote", ivoid["alpha"])[0])
    assert alpha.spec.title == "Alpha tool"
    assert alpha.provenance.source == "remote"
    assert alpha.provenance.repository == ivoid["alpha"]
    assert alpha.spec.executable == executable()["executable"]

    # there: one withdrawn, one changed; here, incrementally: the same
    with httpx.Client(base_url=remote, timeout=30) as client:
        assert client.delete(f"/catalogue/executables/{published['beta']}", headers=YAML).is_success
        body = yaml.safe_dump(executable(name="alpha", title="Alpha tool", summary="Now faster."))
        assert client.post("/catalogue/executables", content=body, headers=YAML).is_success
    second = harvest.run("remote")
    assert second.status == "succeeded", second.problems
    records = by_path(second)
    assert records[ivoid["beta"]].status == "deleted"
    assert records[ivoid["beta"]].counts.withdrawn == 1
    assert records[ivoid["alpha"]].counts.updated == 1
    assert catalogue.entry_ids("remote") == catalogue.entry_ids("remote", ivoid["alpha"])
    assert catalogue.get(catalogue.entry_ids("remote")[0]).spec.summary == "Now faster."

    stored = HarvestStore(services.components["engine"]).report(second.run_id)
    assert {r.path for r in stored.project_reports} == set(records)
    services.stop()


# ----------------------------------------------------------------------------- crafted answers
OAI = "http://www.openarchives.org/OAI/2.0/"


def _record(identifier: str, reference: str, subject: str = "astronomy-software") -> str:
    return (
        f"<record><header><identifier>{identifier}</identifier>"
        "<datestamp>2026-03-01T12:00:00Z</datestamp></header><metadata>"
        # xmlns="": VOResource children are unqualified, inside a default-namespace envelope
        '<ri:Resource xmlns="" xmlns:ri="http://www.ivoa.net/xml/RegistryInterface/v1.0" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="vr:Resource">'
        f"<title>{identifier}</title><identifier>{identifier}</identifier>"
        f"<content><subject>{subject}</subject><description>x</description>"
        f"<referenceURL>{reference}</referenceURL></content></ri:Resource></metadata></record>"
    )


def xml(body: str) -> Answer:
    return Answer(200, {"content-type": "text/xml"}, body.encode())


def as_json(document: object, **headers: str) -> Answer:
    return Answer(
        200, {"content-type": "application/json", **headers}, msgspec.json.encode(document)
    )


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def crafted_registry(url: str, headers: Mapping[str, str]) -> Answer:
    """A registry whose records go wrong in every way a report should explain."""
    host = "http://registry.test"
    path = urlsplit(url).path
    if path == "/oai":
        verb = query(url).get("verb")
        if verb == "Identify":
            identify = "<Identify><granularity>YYYY-MM-DD</granularity></Identify>"
            body = f'<OAI-PMH xmlns="{OAI}">{identify}</OAI-PMH>'
        else:
            records = "".join(
                (
                    _record("ivo://registry.test/invalid", f"{host}/executables/invalid-1"),
                    _record("ivo://registry.test/missing", f"{host}/executables/missing-1"),
                    _record("ivo://registry.test/elsewhere", "http://other.test/executables/x-1"),
                    _record("ivo://registry.test/manual", "https://example.org/manual.html"),
                    _record("ivo://registry.test/catalogue", "https://example.org/", "galaxies"),
                )
            )
            body = f'<OAI-PMH xmlns="{OAI}"><ListRecords>{records}</ListRecords></OAI-PMH>'
        return xml(body)
    if path == "/catalogue/executables/invalid-1":
        spec = executable(name="Not A Slug", licence="")
        return as_json({"spec": spec})
    return Answer(404)


def test_the_report_says_what_was_wrong_with_each_record(tmp_path):
    services = local_services(
        tmp_path, OaiPmhSource(name="crafted", url="http://registry.test/oai")
    )

    def client(source: OaiPmhSource) -> OaiPmhClient:
        return OaiPmhClient(source.url, max_retries=0, transport=crafted_registry)

    report = harvester(services, clients=client).run("crafted")
    records = by_path(report)
    invalid = records["ivo://registry.test/invalid"]
    assert invalid.status == "harvested", invalid.warnings
    assert invalid.counts.invalid == 1
    assert {p.field for p in invalid.problems} >= {"name", "licence"}
    missing = records["ivo://registry.test/missing"]
    assert missing.status == "failed"
    assert missing.problems[0].field == "referenceURL"
    assert "404" in missing.problems[0].reason
    elsewhere = records["ivo://registry.test/elsewhere"]
    assert elsewhere.status == "failed"
    assert "not the registry's host" in elsewhere.problems[0].reason
    assert records["ivo://registry.test/manual"].status == "skipped"
    assert (
        "names no Execution Broker executable"
        in records["ivo://registry.test/manual"].warnings[0].reason
    )
    assert "not software" in records["ivo://registry.test/catalogue"].warnings[0].reason
    assert report.status == "partial"
    assert services.components["catalogue"].entry_ids("crafted") == []
    services.stop()


def test_a_registry_that_does_not_answer_fails_the_run(tmp_path):
    services = local_services(tmp_path, OaiPmhSource(name="down", url="http://down.test/oai"))

    def client(source: OaiPmhSource) -> OaiPmhClient:
        return OaiPmhClient(
            source.url,
            max_retries=1,
            transport=lambda url, headers: Answer(503),
            sleep=lambda s: None,
        )

    report = harvester(services, clients=client).run("down")
    assert report.status == "failed"
    assert report.problems[0].field == "registry"
    assert "503" in report.problems[0].reason
    services.stop()


# ----------------------------------------------------------------------------- DaCHS
@pytest.mark.dachs
def test_a_dachs_registry_is_harvested_and_its_records_skipped(tmp_path):
    url = os.environ.get(DACHS_URL_ENV, "")
    require_service(
        "DaCHS", bool(url), f"start it with `scripts/services/dachs start` ({DACHS_URL_ENV})"
    )
    services = local_services(tmp_path, OaiPmhSource(name="dachs", url=url))
    report = harvester(services).run("dachs")
    assert report.status == "succeeded", report.problems
    records = by_path(report)
    assert "ivo://dachs.test" in records
    assert all(r.status == "skipped" for r in records.values())
    reasons = {r.warnings[0].reason for r in records.values()}
    assert any("vg:Registry" in reason for reason in reasons)
    assert any("vg:Authority" in reason for reason in reasons)
    assert report.counts.new == 0
    services.stop()


# ----------------------------------------------------------------------------- many records
PAGED = OaiPmhSource(name="paged", url="http://registry.test/oai")


class Registry:
    """A registry's transport that a test swaps between runs, and the clients reading it."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def client(self, source: OaiPmhSource) -> OaiPmhClient:
        return OaiPmhClient(source.url, max_retries=0, transport=self.transport)


def paged_registry(
    count: int,
    deleted: frozenset[int] = frozenset(),
    changed: Mapping[int, dict] | None = None,
    again: Mapping[int, int] | None = None,
) -> Transport:
    """`count` executable records, 10 a page, each with its description; some deleted, some
    `changed` (fields of their description replaced), some listing `again` an earlier one
    (record number -> the number of the record it lists again)."""
    host = "http://registry.test"

    def answer(url: str, headers: Mapping[str, str]) -> Answer:
        path = urlsplit(url).path
        if path == "/oai":
            params = query(url)
            if params.get("verb") == "Identify":
                identify = "<Identify><granularity>YYYY-MM-DDThh:mm:ssZ</granularity></Identify>"
                body = f'<OAI-PMH xmlns="{OAI}">{identify}</OAI-PMH>'
            else:
                start = int(params.get("resumptionToken", "0"))
                records = ""
                for listing in range(start, min(start + 10, count)):
                    number = (again or {}).get(listing, listing)
                    identifier = f"ivo://registry.test/tool-{number:02d}"
                    if listing in deleted:
                        records += (
                            f'<record><header status="deleted"><identifier>{identifier}'
                            "</identifier><datestamp>2026-03-02T12:00:00Z</datestamp></header>"
                            "</record>"
                        )
                    else:
                        reference = f"{host}/executables/tool-{number:02d}"
                        records += _record(identifier, reference)
                token = str(start + 10) if start + 10 < count else ""
                body = (
                    f'<OAI-PMH xmlns="{OAI}"><ListRecords>{records}'
                    f"<resumptionToken>{token}</resumptionToken></ListRecords></OAI-PMH>"
                )
            return xml(body)
        name = path.rsplit("/", 1)[1]
        spec = {"name": name, "title": f"Tool {name}", **(changed or {}).get(int(name[-2:]), {})}
        return as_json({"spec": executable(**spec)})

    return answer


def test_records_read_several_at_once_are_reported_in_order_and_withdrawn_when_deleted(tmp_path):
    services = local_services(tmp_path, PAGED)
    catalogue = services.components["catalogue"]
    registry = Registry(paged_registry(25))

    harvest = harvester(services, clients=registry.client, readers=4)
    first = harvest.run("paged")
    assert first.status == "succeeded", first.problems
    assert first.counts.new == 25
    stored = HarvestStore(services.components["engine"]).report(first.run_id)
    listed = sorted(stored.project_reports, key=lambda r: r.project_id)
    assert [r.path for r in listed] == [f"ivo://registry.test/tool-{n:02d}" for n in range(25)]
    assert all(r.counts.new == 1 for r in listed)
    assert len(catalogue.entry_ids("paged")) == 25

    again = harvest.run("paged", full=True)
    assert (again.counts.unchanged, again.counts.withdrawn) == (25, 0)

    registry.transport = paged_registry(25, deleted=frozenset({3, 17}))
    later = harvest.run("paged", full=True)
    assert later.counts.withdrawn == 2
    assert len(catalogue.entry_ids("paged")) == 23
    assert catalogue.entry_ids("paged", "ivo://registry.test/tool-03") == []
    services.stop()


def test_a_record_listed_twice_in_one_batch_is_judged_by_its_last_listing(tmp_path):
    services = local_services(tmp_path, PAGED)
    catalogue = services.components["catalogue"]
    registry = Registry(paged_registry(25))

    harvest = harvester(services, clients=registry.client)
    assert harvest.run("paged").counts.new == 25
    # tool-03: published on page 1, deleted on page 3; tool-04: deleted on page 1, published
    # again on page 3. Both listings fall in one batch; the later one wins, whatever its kind.
    registry.transport = paged_registry(25, deleted=frozenset({4, 23}), again={23: 3, 24: 4})
    later = harvest.run("paged", full=True)
    assert later.counts.withdrawn == 1, later
    assert catalogue.entry_ids("paged", "ivo://registry.test/tool-03") == []
    assert len(catalogue.entry_ids("paged", "ivo://registry.test/tool-04")) == 1
    services.stop()


def test_what_a_record_published_earlier_in_its_batch_goes_when_it_is_deleted_later(tmp_path):
    services = local_services(tmp_path, PAGED)
    catalogue = services.components["catalogue"]
    registry = Registry(paged_registry(25))

    harvest = harvester(services, clients=registry.client)
    assert harvest.run("paged").counts.new == 25
    # tool-03 now publishes another name (a new entry, the old one withdrawn), and is deleted
    # later in the same batch: the new entry goes too
    registry.transport = paged_registry(
        25, deleted=frozenset({23}), again={23: 3}, changed={3: {"name": "tool-03-new"}}
    )
    later = harvest.run("paged", full=True)
    records = [r for r in later.project_reports if r.path == "ivo://registry.test/tool-03"]
    assert sorted(e.change for r in records for e in r.entries) == ["new", "withdrawn", "withdrawn"]
    assert catalogue.entry_ids("paged", "ivo://registry.test/tool-03") == []
    services.stop()


class CountingCatalogue:
    """The catalogue, counting the calls a harvest makes of it."""

    def __init__(self, catalogue) -> None:
        self.catalogue = catalogue
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str):
        method = getattr(self.catalogue, name)

        def counted(*args, **kwargs):
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


def test_a_full_rerun_writes_only_what_changed_and_asks_once_a_batch(tmp_path):
    services = local_services(tmp_path, PAGED)
    catalogue = services.components["catalogue"]
    counting = CountingCatalogue(catalogue)
    registry = Registry(paged_registry(25))

    harvest = OaiPmhHarvest(
        services.settings.harvest,
        counting,
        HarvestStore(services.components["engine"]),
        SystemClock(),
        clients=registry.client,
    )
    assert harvest.run("paged").counts.new == 25
    ids = catalogue.entry_ids("paged")
    stamps = {key: catalogue.get(key).updated_at for key in ids}
    generation = catalogue.index.generation()
    counting.calls.clear()

    again = harvest.run("paged", full=True)

    assert (again.counts.unchanged, again.counts.new, again.counts.updated) == (25, 0, 0)
    assert {key: catalogue.get(key).updated_at for key in ids} == stamps  # nothing written
    assert catalogue.index.generation() == generation  # nor indexed
    # one lookup of earlier entries for the whole batch, not one per record; the descriptions'
    # bytes are those the entries were published from: nothing checked again, nor withdrawn
    assert counting.calls["published_by_repository"] == 1
    assert counting.calls["entry_ids_by_repository"] == 0
    assert counting.calls["publish_all"] == 0
    assert counting.calls["withdraw_all"] == 0
    assert counting.calls["withdraw"] == 0
    assert {e.change for r in again.project_reports for e in r.entries} == {"unchanged"}

    # one record changes, another now publishes under another name, a third is deleted
    registry.transport = paged_registry(
        25,
        deleted=frozenset({9}),
        changed={5: {"title": "Tool five, faster"}, 7: {"name": "tool-07-renamed"}},
    )
    later = harvest.run("paged", full=True)

    records = by_path(later)
    five = records["ivo://registry.test/tool-05"]
    assert [e.change for e in five.entries] == ["updated"]
    seven = records["ivo://registry.test/tool-07"]
    assert sorted(e.change for e in seven.entries) == ["new", "withdrawn"]
    assert records["ivo://registry.test/tool-09"].counts.withdrawn == 1
    assert (later.counts.unchanged, later.counts.withdrawn) == (22, 2)
    [five_id] = catalogue.entry_ids("paged", "ivo://registry.test/tool-05")
    assert catalogue.get(five_id).spec.title == "Tool five, faster"
    [renamed] = catalogue.entry_ids("paged", "ivo://registry.test/tool-07")
    assert catalogue.get(renamed).name == "tool-07-renamed"
    assert counting.calls["withdraw_all"] == 1  # both withdrawals at once
    assert len(catalogue.entry_ids("paged")) == 24
    services.stop()


# ----------------------------------------------------------------------------- conditional GETs
def validating(transport: Transport, asked: list[tuple[str, Mapping[str, str]]]) -> Transport:
    """`transport`, its descriptions with an ETag (their bytes' digest), answering 304 to an
    If-None-Match that names it; every request noted in `asked`."""

    def answer(url: str, headers: Mapping[str, str]) -> Answer:
        asked.append((url, headers))
        found = transport(url, headers)
        if "/catalogue/executables/" not in url:
            return found
        tag = '"' + hashlib.sha256(found.body).hexdigest() + '"'
        if headers.get("If-None-Match") == tag:
            return Answer(304, {"etag": tag})
        return Answer(200, {**found.headers, "etag": tag}, found.body)

    return answer


def descriptions_asked(asked: list[tuple[str, Mapping[str, str]]]) -> list[Mapping[str, str]]:
    return [headers for url, headers in asked if "/catalogue/executables/" in url]


def test_a_rerun_asks_for_descriptions_conditionally_and_reuses_what_did_not_change(tmp_path):
    services = local_services(tmp_path, PAGED)
    catalogue = services.components["catalogue"]
    counting = CountingCatalogue(catalogue)
    asked: list[tuple[str, Mapping[str, str]]] = []
    registry = Registry(validating(paged_registry(25), asked))

    def harvest() -> OaiPmhHarvest:  # one per run, as the pipeline does
        return OaiPmhHarvest(
            services.settings.harvest,
            counting,
            HarvestStore(services.components["engine"]),
            SystemClock(),
            clients=registry.client,
            descriptions=cache,
        )

    cache = DescriptionCache()
    assert harvest().run("paged").counts.new == 25
    assert all("If-None-Match" not in headers for headers in descriptions_asked(asked))
    ids = catalogue.entry_ids("paged")
    stamps = {key: catalogue.get(key).updated_at for key in ids}
    asked.clear()
    counting.calls.clear()

    again = harvest().run("paged", full=True)

    assert again.status == "succeeded", again.problems
    assert (again.counts.unchanged, again.counts.new, again.counts.updated) == (25, 0, 0)
    sent = descriptions_asked(asked)
    assert len(sent) == 25
    assert all(headers["If-None-Match"].startswith('"') for headers in sent)  # all 304s
    assert counting.calls["publish_all"] == 0
    assert {key: catalogue.get(key).updated_at for key in ids} == stamps

    # one description changes: only it is read in full, checked and published again
    asked.clear()
    registry.transport = validating(
        paged_registry(25, changed={6: {"title": "Tool six, renamed"}}), asked
    )
    later = harvest().run("paged", full=True)
    assert (later.counts.unchanged, later.counts.updated) == (24, 1)
    [six] = catalogue.entry_ids("paged", "ivo://registry.test/tool-06")
    assert catalogue.get(six).spec.title == "Tool six, renamed"
    services.stop()


def test_a_304_for_what_the_catalogue_no_longer_holds_is_read_again_in_full(tmp_path):
    services = local_services(tmp_path, PAGED)
    catalogue = services.components["catalogue"]
    asked: list[tuple[str, Mapping[str, str]]] = []
    transport = validating(paged_registry(25), asked)

    def client(source: OaiPmhSource) -> OaiPmhClient:
        return OaiPmhClient(source.url, max_retries=0, transport=transport)

    harvest = harvester(services, clients=client, descriptions=DescriptionCache())
    assert harvest.run("paged").counts.new == 25
    [two] = catalogue.entry_ids("paged", "ivo://registry.test/tool-02")
    catalogue.withdraw(two)  # by hand, meanwhile
    asked.clear()

    again = harvest.run("paged", full=True)

    # the registry said tool-02 had not changed, but the catalogue had withdrawn what it gave:
    # its description is read again without condition and published, which restores the entry
    two_asked = [h for u, h in asked if u.endswith("/executables/tool-02")]
    assert ["If-None-Match" in headers for headers in two_asked] == [True, False]
    assert (again.counts.unchanged, again.counts.updated) == (24, 1)
    assert not catalogue.get(two).withdrawn
    services.stop()


def test_descriptions_that_cannot_be_read_fail_their_record_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr("harvest.oaipmh.MAX_ANSWER_BYTES", 4096)
    services = local_services(tmp_path, PAGED)
    listing = paged_registry(5)

    def transport(url: str, headers: Mapping[str, str]) -> Answer:
        if url.endswith("/tool-01"):
            return Answer(301, {"location": "http://registry.test/elsewhere/tool-01"})
        if url.endswith("/tool-02"):
            return Answer(200, {"content-type": "application/json"}, b"[" * 5000)
        if url.endswith("/tool-03"):
            return Answer(200, {"content-type": "application/json"}, b"<html>no</html>")
        if url.endswith("/tool-04"):
            return as_json({"name": "no spec here"})
        return listing(url, headers)

    def client(source: OaiPmhSource) -> OaiPmhClient:
        return OaiPmhClient(source.url, max_retries=0, transport=transport)

    report = harvester(services, clients=client).run("paged")
    records = by_path(report)
    reasons = {
        path.rsplit("/", 1)[1]: record.problems[0].reason
        for path, record in records.items()
        if record.status == "failed"
    }
    assert records["ivo://registry.test/tool-00"].counts.new == 1
    assert "301, a redirect to http://registry.test/elsewhere/tool-01" in reasons["tool-01"]
    assert "more than 4096 bytes" in reasons["tool-02"]
    assert "is not JSON" in reasons["tool-03"]
    assert "holds no executable `spec`" in reasons["tool-04"]
    assert all(r.problems[0].field == "referenceURL" for r in records.values() if r.problems)
    assert report.status == "partial"
    services.stop()
