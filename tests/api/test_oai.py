"""The OAI-PMH publishing registry through the real app: every verb, every error, paging with
writes in between, withdrawn entries as deleted records, from/until, VOSI.

The store is the real SQL store (SQLite here; the paging test also runs on PostgreSQL), the
clock a manual one so datestamps are known.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from xml.etree.ElementTree import Element

import msgspec
import pytest
import yaml
from defusedxml import ElementTree
from litestar.testing import TestClient

from catalogue import oai, voresource
from core.clock import ManualClock
from core.settings import RegistrySettings, Settings
from tests.catalogue_support import app_settings, executable
from tests.integration.conftest import fresh_postgres_database, postgres_server_url
from voexec.app import create_app
from voexec.wiring import build_services

OAI_URL = "/registry/oai"
NS = f"{{{oai.OAI}}}"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
YAML = {
    "authorization": "Bearer s3cret-publisher-token-for-the-tests-only",
    "content-type": "application/yaml",
}
BASE = "http://127.0.0.1:8000"


class Registry:
    """A running app with a manual clock, and helpers to publish and to ask."""

    def __init__(self, client: TestClient, clock: ManualClock) -> None:
        self.client = client
        self.clock = clock

    def publish(self, name: str, **changes) -> str:
        response = self.client.post(
            "/catalogue/executables",
            content=yaml.safe_dump(executable(name=name, **changes)),
            headers=YAML,
        )
        assert response.status_code in {200, 201}, response.text
        return response.json()["entries"][0]["id"]

    def withdraw(self, entry_id: str) -> None:
        response = self.client.delete(f"/catalogue/executables/{entry_id}", headers=YAML)
        assert response.status_code == 200, response.text

    def get(self, **arguments: str) -> Element:
        response = self.client.get(OAI_URL, params=arguments)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/xml; charset=utf-8"
        return ElementTree.fromstring(response.content)

    def post(self, **arguments: str) -> Element:
        response = self.client.post(
            OAI_URL, data=arguments, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 200
        return ElementTree.fromstring(response.content)

    def harvest(self, verb: str = "ListIdentifiers", between=None, **arguments: str):
        """Headers (or records) of every page; `between(page)` runs after each page but the last."""
        items, page = [], self.get(verb=verb, **arguments)
        pages = 0
        while True:
            assert code(page) is None, ElementTree.tostring(page)
            items += page.findall(
                f"{NS}{verb}/{NS}{'header' if verb == 'ListIdentifiers' else 'record'}"
            )
            pages += 1
            token = page.find(f".//{NS}resumptionToken")
            if token is None or not token.text:
                return items, pages
            if between:
                between(pages)
            page = self.get(verb=verb, resumptionToken=token.text)


def code(document: Element) -> str | None:
    error = document.find(f"{NS}error")
    return None if error is None else error.get("code")


def identifier_of(item: Element) -> str:
    return item.findtext(f".//{NS}identifier")


def settings_for(tmp_path, database_url: str | None = None, page_size: int = 2) -> Settings:
    settings = app_settings(tmp_path)
    database = msgspec.structs.replace(settings.database, url=database_url or "")
    server = msgspec.structs.replace(settings.server, public_url=BASE)
    return msgspec.structs.replace(
        settings,
        database=database,
        server=server,
        registry=RegistrySettings(authority="test.example", page_size=page_size),
    )


def running(settings: Settings) -> Iterator[Registry]:
    clock = ManualClock(T0)
    services = build_services(settings, clock)
    with TestClient(create_app(settings, services)) as client:
        yield Registry(client, clock)


@pytest.fixture
def registry(tmp_path) -> Iterator[Registry]:
    yield from running(settings_for(tmp_path))


# ----------------------------------------------------------------------------- verbs
def test_identify_describes_the_registry(registry):
    for document in (registry.get(verb="Identify"), registry.post(verb="Identify")):
        identify = document.find(f"{NS}Identify")
        assert identify.findtext(f"{NS}baseURL") == BASE + OAI_URL
        assert document.findtext(f"{NS}request") == BASE + OAI_URL
        assert identify.findtext(f"{NS}protocolVersion") == "2.0"
        assert identify.findtext(f"{NS}deletedRecord") == "persistent"
        assert identify.findtext(f"{NS}granularity") == "YYYY-MM-DDThh:mm:ssZ"
        assert identify.findtext(f"{NS}earliestDatestamp") == "2026-03-01T12:00:00Z"
        resource = identify.find(f"{NS}description/{{{voresource.RI}}}Resource")
        assert resource.get(f"{{{voresource.XSI}}}type") == "vg:Registry"
        harvest = resource.find("capability[@standardID='ivo://ivoa.net/std/Registry']")
        assert harvest.findtext("interface/accessURL") == BASE + OAI_URL
        assert resource.findtext("managedAuthority") == "test.example"


def test_list_metadata_formats_and_sets(registry):
    formats = registry.get(verb="ListMetadataFormats")
    assert [f.text for f in formats.iter(f"{NS}metadataPrefix")] == ["ivo_vor", "oai_dc"]
    entry_id = registry.publish("cube-finder")
    known = registry.get(verb="ListMetadataFormats", identifier=f"ivo://test.example/{entry_id}")
    assert code(known) is None
    unknown = registry.get(verb="ListMetadataFormats", identifier="ivo://test.example/nothing")
    assert code(unknown) == "idDoesNotExist"
    sets = registry.get(verb="ListSets")
    assert [s.text for s in sets.iter(f"{NS}setSpec")] == ["ivo_managed"]
    assert code(registry.get(verb="ListSets", resumptionToken="anything")) == "badResumptionToken"


def test_get_record_in_both_formats(registry):
    entry_id = registry.publish("cube-finder")
    identifier = f"ivo://test.example/{entry_id}"
    vor = registry.get(verb="GetRecord", identifier=identifier, metadataPrefix="ivo_vor")
    resource = vor.find(f".//{NS}metadata/{{{voresource.RI}}}Resource")
    assert resource.findtext("identifier") == identifier
    assert identifier_of(vor.find(f".//{NS}header")) == identifier  # RI3.1.3
    dc = registry.post(verb="GetRecord", identifier=identifier.upper(), metadataPrefix="oai_dc")
    assert dc.find(f".//{NS}metadata/{{{voresource.OAI_DC}}}dc") is not None
    broker = registry.get(
        verb="GetRecord", identifier="ivo://test.example/broker", metadataPrefix="ivo_vor"
    )
    capability = broker.find(f".//{{{voresource.RI}}}Resource/capability")
    assert capability.get("standardID") == "ivo://ivoa.net/std/ExecutionBroker"
    assert capability.findtext("interface/accessURL") == BASE + "/broker"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "badVerb"),
        ({"verb": "Explain"}, "badVerb"),
        ({"verb": "Identify", "extra": "1"}, "badArgument"),
        ({"verb": "ListRecords"}, "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from": "last week"}, "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": "marc21"}, "cannotDisseminateFormat"),
        (
            {
                "verb": "GetRecord",
                "identifier": "ivo://test.example/registry",
                "metadataPrefix": "x",
            },
            "cannotDisseminateFormat",
        ),
        (
            {"verb": "GetRecord", "identifier": "ivo://elsewhere/x", "metadataPrefix": "ivo_vor"},
            "idDoesNotExist",
        ),
        ({"verb": "ListIdentifiers", "resumptionToken": "forged.token"}, "badResumptionToken"),
        (
            {"verb": "ListIdentifiers", "metadataPrefix": "ivo_vor", "set": "local"},
            "noRecordsMatch",
        ),
    ],
)
def test_every_error_code_over_get_and_post(registry, arguments, expected):
    assert code(registry.get(**arguments)) == expected
    assert code(registry.post(**arguments)) == expected


def test_a_repeated_argument_is_bad(registry):
    response = registry.client.get(
        f"{OAI_URL}?verb=ListRecords&metadataPrefix=ivo_vor&metadataPrefix=ivo_vor"
    )
    assert code(ElementTree.fromstring(response.content)) == "badArgument"
    response = registry.client.get(f"{OAI_URL}?verb=Identify&verb=Identify")
    assert code(ElementTree.fromstring(response.content)) == "badVerb"


# ----------------------------------------------------------------------------- lists
def test_list_records_holds_the_registry_the_authority_the_broker_and_every_entry(registry):
    ids = [registry.publish(name) for name in ("alpha", "beta")]
    records, pages = registry.harvest("ListRecords", metadataPrefix="ivo_vor", set="ivo_managed")
    assert pages == 3
    assert [identifier_of(r) for r in records] == [
        "ivo://test.example",
        "ivo://test.example/broker",
        "ivo://test.example/registry",
        *(f"ivo://test.example/{entry_id}" for entry_id in ids),
    ]
    types = [
        r.find(f".//{{{voresource.RI}}}Resource").get(f"{{{voresource.XSI}}}type") for r in records
    ]
    assert types == ["vg:Authority", "vr:Service", "vg:Registry", "vr:Resource", "vr:Resource"]


def test_a_harvest_with_publications_between_pages_loses_nothing(registry):
    first = [registry.publish(f"tool-{n}") for n in range(3)]
    later: list[str] = []

    def write(page: int) -> None:
        registry.clock.advance(timedelta(seconds=10))
        if page == 2:
            later.append(registry.publish("newcomer"))
            registry.publish("tool-0", summary="A changed summary.")

    headers, _ = registry.harvest(between=write, metadataPrefix="ivo_vor")
    sent = [identifier_of(h) for h in headers]
    assert {f"ivo://test.example/{i}" for i in [*first, *later]} <= set(sent)
    assert sent[-2:] == sorted([f"ivo://test.example/{later[0]}", f"ivo://test.example/{first[0]}"])


def test_withdrawn_entries_come_out_as_deleted_records(registry):
    entry_id = registry.publish("retired")
    registry.clock.advance(timedelta(hours=1))
    registry.withdraw(entry_id)
    identifier = f"ivo://test.example/{entry_id}"
    record = registry.get(verb="GetRecord", identifier=identifier, metadataPrefix="ivo_vor")
    header = record.find(f".//{NS}header")
    assert header.get("status") == "deleted"
    assert header.findtext(f"{NS}datestamp") == "2026-03-01T13:00:00Z"
    assert record.find(f".//{NS}metadata") is None
    records, _ = registry.harvest(
        "ListRecords", metadataPrefix="ivo_vor", **{"from": "2026-03-01T13:00:00Z"}
    )
    assert [identifier_of(r) for r in records] == [identifier]
    assert records[0].find(f"{NS}metadata") is None


def test_from_and_until_are_inclusive_at_seconds_granularity(registry):
    early = registry.publish("early")
    registry.clock.set(T0 + timedelta(days=1, seconds=5, microseconds=700_000))
    late = registry.publish("late")
    headers, _ = registry.harvest(metadataPrefix="oai_dc", **{"from": "2026-03-02T12:00:05Z"})
    assert [identifier_of(h) for h in headers] == [f"ivo://test.example/{late}"]
    headers, _ = registry.harvest(
        metadataPrefix="oai_dc", until="2026-03-02T12:00:05Z", **{"from": "2026-03-02T00:00:00Z"}
    )
    assert [identifier_of(h) for h in headers] == [f"ivo://test.example/{late}"]
    headers, _ = registry.harvest(metadataPrefix="oai_dc", until="2026-03-01")
    assert f"ivo://test.example/{early}" in [identifier_of(h) for h in headers]
    assert f"ivo://test.example/{late}" not in [identifier_of(h) for h in headers]
    assert code(
        registry.get(verb="ListIdentifiers", metadataPrefix="oai_dc", **{"from": "2026-03-03"})
    ) == ("noRecordsMatch")


# ----------------------------------------------------------------------------- VOSI
def test_vosi_capabilities_and_availability(registry):
    capabilities = ElementTree.fromstring(registry.client.get("/registry/capabilities").content)
    ids = [c.get("standardID") for c in capabilities.iter("capability")]
    assert ids == [
        "ivo://ivoa.net/std/Registry",
        "ivo://ivoa.net/std/VOSI#capabilities",
        "ivo://ivoa.net/std/VOSI#availability",
    ]
    availability = ElementTree.fromstring(registry.client.get("/registry/availability").content)
    assert availability.findtext(f"{{{voresource.VOSI_AVAILABILITY}}}available") == "true"


def test_the_broker_has_vosi_too_and_its_record_points_there(registry):
    capabilities = ElementTree.fromstring(registry.client.get("/broker/capabilities").content)
    urls = {
        c.get("standardID"): c.findtext("interface/accessURL")
        for c in capabilities.iter("capability")
    }
    assert list(urls) == [
        "ivo://ivoa.net/std/ExecutionBroker",
        "ivo://ivoa.net/std/VOSI#capabilities",
        "ivo://ivoa.net/std/VOSI#availability",
    ]
    assert urls["ivo://ivoa.net/std/ExecutionBroker"].endswith("/broker")
    assert urls["ivo://ivoa.net/std/VOSI#capabilities"].endswith("/broker/capabilities")
    assert urls["ivo://ivoa.net/std/VOSI#availability"].endswith("/broker/availability")
    availability = ElementTree.fromstring(registry.client.get("/broker/availability").content)
    assert availability.findtext(f"{{{voresource.VOSI_AVAILABILITY}}}available") == "true"
    # The broker's record in the registry lists the same capabilities.
    record = registry.get(
        verb="GetRecord", metadataPrefix="ivo_vor", identifier="ivo://test.example/broker"
    )
    listed = [c.get("standardID") for c in record.iter("capability")]
    assert listed == list(urls)


# ----------------------------------------------------------------------------- PostgreSQL
@pytest.mark.postgres
def test_paging_with_writes_and_tombstones_on_postgresql(tmp_path):
    with fresh_postgres_database(postgres_server_url(), prefix="voexec_oai") as url:
        for registry in running(settings_for(tmp_path, url)):
            ids = [registry.publish(f"pg-tool-{n}") for n in range(3)]
            registry.clock.advance(timedelta(minutes=1))
            registry.withdraw(ids[1])

            def write(page: int, registry: Registry = registry) -> None:
                if page == 1:
                    registry.clock.advance(timedelta(minutes=1))
                    registry.publish("pg-tool-0", summary="Changed on PostgreSQL.")

            records, _ = registry.harvest("ListRecords", between=write, metadataPrefix="ivo_vor")
            by_id = {identifier_of(r): r for r in records}
            assert {f"ivo://test.example/{i}" for i in ids} <= set(by_id)
            deleted = by_id[f"ivo://test.example/{ids[1]}"]
            assert deleted.find(f"{NS}header").get("status") == "deleted"
            assert identifier_of(records[-1]) == f"ivo://test.example/{ids[0]}"
