"""VOResource records: what a registry client reads about entries, the broker and the registry."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from catalogue import voresource
from catalogue.model import EntryVersion, ExecutableSpec, Provenance, content_hash
from catalogue.voresource import RegistryIdentity, Stamps
from tests.catalogue_support import executable

XSI_TYPE = f"{{{voresource.XSI}}}type"
CREATED = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
UPDATED = CREATED + timedelta(days=2, seconds=7)
STAMPS = Stamps(CREATED, UPDATED)
IDENTITY = RegistryIdentity(
    authority="data.example.org",
    base_url="https://voexec.example.org",
    title="Example executables",
    description="Executables for tests.",
    publisher="Example Data Centre",
    contact_name="Software desk",
    contact_email="software@example.org",
    page_size=25,
    broker_standard_id="ivo://ivoa.net/std/ExecutionBroker",
)
ENTRY_ID = "cube-finder-0123456789"


def version(**changes) -> EntryVersion:
    spec = msgspec.convert(executable(**changes), ExecutableSpec)
    return EntryVersion(
        version=spec.version,
        spec=spec,
        content_hash=content_hash(spec),
        provenance=Provenance(source="api"),
        published_at=CREATED,
        updated_at=UPDATED,
    )


def texts(resource: ET.Element, path: str) -> list[str | None]:
    return [element.text for element in resource.iterfind(path)]


def capability(resource: ET.Element, standard_id: str) -> ET.Element:
    found = [c for c in resource.iterfind("capability") if c.get("standardID") == standard_id]
    assert len(found) == 1, [c.get("standardID") for c in resource.iterfind("capability")]
    return found[0]


def test_an_entry_is_a_plain_resource_under_our_authority():
    resource = voresource.entry_resource(IDENTITY, ENTRY_ID, version(), STAMPS)
    assert resource.tag == f"{{{voresource.RI}}}Resource"
    assert resource.get(XSI_TYPE) == "vr:Resource"
    assert resource.findtext("identifier") == f"ivo://data.example.org/{ENTRY_ID}"
    assert resource.get("status") == "active"
    assert resource.get("created") == "2026-03-01T12:00:00Z"
    assert resource.get("updated") == "2026-03-03T12:00:07Z"
    assert resource.findtext("title") == "Cube source finder"
    assert resource.findtext("curation/version") == "1.0.0"
    assert resource.findtext("curation/publisher") == "Example Data Centre"
    assert resource.find("curation/publisher").get("ivo-id") == "ivo://data.example.org"
    assert texts(resource, "curation/contact/email") == ["software@example.org"]
    assert texts(resource, "content/type") == ["Other"]


def test_an_entry_carries_its_subjects_as_uat_terms_plus_astronomy_software():
    resource = voresource.entry_resource(
        IDENTITY, ENTRY_ID, version(subjects=["radio-interferometry", "astronomy-software"]), STAMPS
    )
    assert texts(resource, "content/subject") == ["astronomy-software", "radio-interferometry"]


def test_an_entry_is_served_by_the_broker():
    resource = voresource.entry_resource(IDENTITY, ENTRY_ID, version(), STAMPS)
    relationship = resource.find("content/relationship")
    assert relationship.findtext("relationshipType") == "IsServedBy"
    related = relationship.find("relatedResource")
    assert related.get("ivo-id") == "ivo://data.example.org/broker"
    broker = voresource.broker_resource(IDENTITY, STAMPS)
    assert related.get("ivo-id") == broker.findtext("identifier")
    assert related.text == broker.findtext("title")


def test_an_entry_names_its_authors_doi_and_description():
    resource = voresource.entry_resource(
        IDENTITY,
        ENTRY_ID,
        version(
            authors=[{"name": "Doe, J.", "orcid": "0000-0002-1825-0097"}, {"name": "Roe, R."}],
            links={"doi": "10.5281/zenodo.123", "documentation": "https://docs.example.org/cf"},
        ),
        STAMPS,
    )
    creators = list(resource.iterfind("curation/creator"))
    assert [c.findtext("name") for c in creators] == ["Doe, J.", "Roe, R."]
    assert creators[0].findtext("altIdentifier") == "https://orcid.org/0000-0002-1825-0097"
    assert creators[1].find("altIdentifier") is None
    assert texts(resource, "altIdentifier") == ["doi:10.5281/zenodo.123"]
    assert resource.findtext("content/referenceURL") == (
        f"https://voexec.example.org/executables/{ENTRY_ID}"
    )
    description = resource.findtext("content/description")
    assert description.startswith("Finds sources in radio data cubes.")
    assert "Finds *sources* in cubes." in description


def test_an_entry_refers_to_its_catalogue_page():
    resource = voresource.entry_resource(
        IDENTITY, ENTRY_ID, version(links={"homepage": "https://example.org/cf"}), STAMPS
    )
    assert resource.findtext("content/referenceURL") == (
        f"https://voexec.example.org/executables/{ENTRY_ID}"
    )


def test_a_long_name_is_cut_to_the_sixteen_characters_a_short_name_allows():
    resource = voresource.entry_resource(
        IDENTITY, ENTRY_ID, version(name="a-very-long-executable-name"), STAMPS
    )
    assert resource.findtext("shortName") == "a-very-long-exec"


def test_the_broker_is_found_by_its_capability():
    broker = voresource.broker_resource(IDENTITY, STAMPS)
    assert broker.get(XSI_TYPE) == "vr:Service"
    assert broker.findtext("identifier") == "ivo://data.example.org/broker"
    found = capability(broker, "ivo://ivoa.net/std/ExecutionBroker")
    access = found.find("interface/accessURL")
    assert access.text == "https://voexec.example.org/broker"
    assert access.get("use") == "base"


def test_the_broker_standard_id_comes_from_configuration():
    identity = msgspec.structs.replace(IDENTITY, broker_standard_id="ivo://ivoa.net/std/EB#1.0")
    capability(voresource.broker_resource(identity, STAMPS), "ivo://ivoa.net/std/EB#1.0")


def test_the_registry_record_has_the_oai_harvest_capability():
    registry = voresource.registry_resource(IDENTITY, STAMPS)
    assert registry.get(XSI_TYPE) == "vg:Registry"
    assert registry.findtext("identifier") == "ivo://data.example.org/registry"
    harvest = capability(registry, "ivo://ivoa.net/std/Registry")
    assert harvest.get(XSI_TYPE) == "vg:Harvest"
    interface = harvest.find("interface")
    assert interface.get(XSI_TYPE) == "vg:OAIHTTP"
    assert interface.find("accessURL").text == "https://voexec.example.org/registry/oai"
    assert interface.find("accessURL").get("use") == "base"
    assert harvest.findtext("maxRecords") == "25"
    assert texts(registry, "managedAuthority") == ["data.example.org"]
    assert registry.findtext("full") == "false"
    vosi = capability(registry, "ivo://ivoa.net/std/VOSI#capabilities")
    assert (
        vosi.findtext("interface/accessURL") == "https://voexec.example.org/registry/capabilities"
    )


def test_the_authority_record_names_the_authority_itself():
    authority = voresource.authority_resource(IDENTITY, STAMPS)
    assert authority.get(XSI_TYPE) == "vg:Authority"
    assert authority.findtext("identifier") == "ivo://data.example.org"
    assert authority.findtext("managingOrg") == "Example Data Centre"


def test_fixed_records_are_keyed_by_identifier():
    fixed = voresource.fixed_resources(IDENTITY, STAMPS)
    assert set(fixed) == {
        "ivo://data.example.org",
        "ivo://data.example.org/registry",
        "ivo://data.example.org/broker",
    }
    assert all(fixed[key].findtext("identifier") == key for key in fixed)


def test_fixed_digests_follow_content_not_dates():
    digests = voresource.fixed_digests(IDENTITY)
    assert digests == voresource.fixed_digests(IDENTITY)
    retitled = voresource.fixed_digests(msgspec.structs.replace(IDENTITY, title="Renamed"))
    registry = "ivo://data.example.org/registry"
    assert retitled[registry] != digests[registry]
    assert retitled["ivo://data.example.org/broker"] == digests["ivo://data.example.org/broker"]


@pytest.mark.parametrize(
    ("identifier", "key"),
    [
        (f"ivo://data.example.org/{ENTRY_ID}", ENTRY_ID),
        (f"IVO://Data.Example.ORG/{ENTRY_ID}", ENTRY_ID),
        ("ivo://data.example.org", ""),
        ("ivo://data.example.org/", None),
        (f"ivo://other.example.org/{ENTRY_ID}", None),
        (f"ivo://data.example.org.evil/{ENTRY_ID}", None),
        ("not an identifier", None),
    ],
)
def test_entry_key_compares_identifiers_case_insensitively(identifier, key):
    assert voresource.entry_key(IDENTITY, identifier) == key


def test_timestamps_are_utc_at_seconds_granularity():
    east = timezone(timedelta(hours=2))
    assert voresource.timestamp(datetime(2026, 1, 1, 1, 30, 5, 999_999, tzinfo=east)) == (
        "2025-12-31T23:30:05Z"
    )


def test_dublin_core_rendering_of_an_entry():
    resource = voresource.entry_resource(IDENTITY, ENTRY_ID, version(), STAMPS)
    dc = voresource.dublin_core(resource)
    assert dc.tag == f"{{{voresource.OAI_DC}}}dc"

    def values(name: str) -> list[str | None]:
        return texts(dc, f"{{{voresource.DC}}}{name}")

    assert values("title") == ["Cube source finder"]
    assert values("creator") == ["A. Packager"]
    assert values("subject") == ["astronomy-software", "radio-interferometry"]
    assert values("identifier")[0] == f"ivo://data.example.org/{ENTRY_ID}"
    assert values("date") == ["2026-03-03T12:00:07Z"]


def test_vosi_documents():
    registry = voresource.registry_resource(IDENTITY, STAMPS)
    capabilities = voresource.capabilities_document(registry)
    assert capabilities.tag == f"{{{voresource.VOSI_CAPABILITIES}}}capabilities"
    assert [c.get("standardID") for c in capabilities.iterfind("capability")] == [
        c.get("standardID") for c in registry.iterfind("capability")
    ]
    available = voresource.availability_document(False, "down for maintenance")
    ns = f"{{{voresource.VOSI_AVAILABILITY}}}"
    assert available.findtext(f"{ns}available") == "false"
    assert available.findtext(f"{ns}note") == "down for maintenance"


def test_serialised_records_declare_the_prefixes_their_types_use():
    data = voresource.to_bytes(voresource.registry_resource(IDENTITY, STAMPS))
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    parsed = ET.fromstring(data)
    assert parsed.get(XSI_TYPE) == "vg:Registry"
    for prefix in (
        b'xmlns:vg="http://www.ivoa.net/xml/VORegistry/v1.0"',
        b"xmlns:vr=",
        b"xmlns:vs=",
    ):
        assert prefix in data
