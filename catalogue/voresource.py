"""Catalogue entries and voexec's own services as IVOA VOResource 1.1 records (pure).

What a registry client harvests from `/registry/oai`: one `ri:Resource` element per record,
built with `xml.etree.ElementTree` from data handed in (no I/O, no clock, no settings loading).

Record shapes (identifiers are `ivo://<authority>/<key>`, compared case-insensitively by
clients):

| record | xsi:type | identifier |
|---|---|---|
| a catalogue entry | `vr:Resource` | `ivo://<authority>/<entry id>` |
| the Execution Broker | `vr:Service` with an Execution Broker capability | `.../broker` |
| this registry | `vg:Registry` with the OAI-PMH `vg:Harvest` capability | `.../registry` |
| the naming authority | `vg:Authority` | `ivo://<authority>` |

Entry ids always end in a 10-digit hex digest (`catalogue.model.entry_id`), so the fixed keys
`broker` and `registry` never collide with an entry.

Why `vr:Resource` for an executable: no IVOA resource type for software exists (VOResource 1.2,
VODataService, VORegistry and DocRegExt define none; VOApplication never became a
Recommendation). `vr:Service` would claim the executable itself answers at an access URL, which
it does not: it runs through the Execution Broker, which has its own `vr:Service` record with
the capability a client looks for. So each entry is a plain `vr:Resource` with content type
`Other`; its catalogue page as `referenceURL` (the page links the homepage, documentation and
source, and another voexec finds the entry's Execution Broker description beside it); the UAT
subject `astronomy-software` plus its own UAT subjects (as IVOA UAT term identifiers, the form
RegTAP and pyvo's `UAT` constraint match); its version in `curation/version`; its DOI as
`altIdentifier`; and the relationship `IsServedBy` pointing at the broker's record: "this
executable is run by that service".

The broker capability's `standardID` comes from the caller (`RegistrySettings.
broker_standard_id`). The Execution Broker Working Draft fixes no registry identifier yet;
the default `ivo://ivoa.net/std/ExecutionBroker` follows the IVOA pattern
`ivo://ivoa.net/std/<standard short name>` (TAP, SIA, Registry...), so a client can already
search for it, and an operator can switch to the final id by configuration once the standard
names one.

Imports nothing of ours but `catalogue.model`; no I/O library.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET  # builds XML only; external XML is parsed with defusedxml
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from catalogue.model import EntryVersion

RI: Final = "http://www.ivoa.net/xml/RegistryInterface/v1.0"
VR: Final = "http://www.ivoa.net/xml/VOResource/v1.0"
VG: Final = "http://www.ivoa.net/xml/VORegistry/v1.0"
VS: Final = "http://www.ivoa.net/xml/VODataService/v1.1"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
VOSI_CAPABILITIES: Final = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
VOSI_AVAILABILITY: Final = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"
OAI_DC: Final = "http://www.openarchives.org/OAI/2.0/oai_dc/"
DC: Final = "http://purl.org/dc/elements/1.1/"

REGISTRY_STANDARD: Final = "ivo://ivoa.net/std/Registry"
VOSI_CAPABILITIES_STANDARD: Final = "ivo://ivoa.net/std/VOSI#capabilities"
VOSI_AVAILABILITY_STANDARD: Final = "ivo://ivoa.net/std/VOSI#availability"
SOFTWARE_SUBJECT: Final = "astronomy-software"
"""UAT term every entry carries, so `UAT("astronomy-software")` finds the whole catalogue."""

REGISTRY_KEY: Final = "registry"
BROKER_KEY: Final = "broker"
OAI_PATH: Final = "/registry/oai"
CAPABILITIES_PATH: Final = "/registry/capabilities"
AVAILABILITY_PATH: Final = "/registry/availability"
BROKER_PATH: Final = "/broker"
BROKER_CAPABILITIES_PATH: Final = "/broker/capabilities"
BROKER_AVAILABILITY_PATH: Final = "/broker/availability"
ENTRY_PAGE_PATH: Final = "/executables/"
"""The entry's web page; its Execution Broker description is `/catalogue/executables/<id>`."""

# Prefixes serialised for these namespaces (ElementTree otherwise writes ns0, ns1...).
for _prefix, _uri in {
    "ri": RI,
    "xsi": XSI,
    "vosi": VOSI_CAPABILITIES,
    "avail": VOSI_AVAILABILITY,
    "oai_dc": OAI_DC,
    "dc": DC,
}.items():
    ET.register_namespace(_prefix, _uri)

# xsi:type values name these prefixes; ElementTree only declares namespaces used in tag or
# attribute names, so the record declares them itself.
_TYPE_PREFIXES: Final = {"xmlns:vr": VR, "xmlns:vg": VG, "xmlns:vs": VS}
_PLACEHOLDER_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)

Status = Literal["active", "inactive", "deleted"]


class RegistryIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Who publishes the records and where the services answer."""

    authority: str
    """IVOA authority id, without `ivo://`."""
    base_url: str
    """Public base URL of this voexec, without a trailing slash."""
    title: str
    description: str
    publisher: str
    contact_name: str
    contact_email: str
    page_size: int
    """OAI-PMH page size, advertised as `maxRecords` of the harvest capability."""
    broker_standard_id: str


class Stamps(msgspec.Struct, frozen=True):
    """When a record was created and last changed (aware UTC)."""

    created: datetime
    updated: datetime


# ----------------------------------------------------------------------------- identifiers
def ivoid(authority: str, key: str = "") -> str:
    """The IVOA identifier `ivo://<authority>[/<key>]`."""
    return f"ivo://{authority}/{key}" if key else f"ivo://{authority}"


def entry_key(identity: RegistryIdentity, identifier: str) -> str | None:
    """The resource key of one of our identifiers (`""` for the authority), else None.

    Identifiers compare case-insensitively (IVOA Identifiers 2.0), so any case is accepted.
    """
    prefix = ivoid(identity.authority).lower()
    lowered = identifier.strip().lower()
    if lowered == prefix:
        return ""
    if not lowered.startswith(prefix + "/"):
        return None
    return identifier.strip()[len(prefix) + 1 :] or None


def timestamp(moment: datetime) -> str:
    """UTC at seconds granularity, `YYYY-MM-DDThh:mm:ssZ` (OAI-PMH and VOResource both)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------- building blocks
def _child(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _resource(xsi_type: str, stamps: Stamps) -> ET.Element:
    return ET.Element(
        f"{{{RI}}}Resource",
        {
            **_TYPE_PREFIXES,
            f"{{{XSI}}}type": xsi_type,
            "created": timestamp(stamps.created),
            "updated": timestamp(stamps.updated),
            "status": "active",
        },
    )


def _curation(
    parent: ET.Element,
    identity: RegistryIdentity,
    *,
    creators: Iterable[tuple[str, str | None]] = (),
    dates: Stamps | None = None,
    version: str | None = None,
) -> None:
    curation = _child(parent, "curation")
    _child(curation, "publisher", identity.publisher, **{"ivo-id": ivoid(identity.authority)})
    for name, orcid in creators:
        creator = _child(curation, "creator")
        _child(creator, "name", name)
        if orcid:
            _child(creator, "altIdentifier", f"https://orcid.org/{orcid}")
    if dates is not None:
        _child(curation, "date", timestamp(dates.created), role="Created")
        _child(curation, "date", timestamp(dates.updated), role="Updated")
    if version:
        _child(curation, "version", version)
    contact = _child(curation, "contact")
    _child(contact, "name", identity.contact_name)
    _child(contact, "email", identity.contact_email)


def _content(
    parent: ET.Element,
    *,
    subjects: Sequence[str],
    description: str,
    reference_url: str,
    content_type: str,
    relationships: Sequence[tuple[str, str, str]] = (),
) -> None:
    content = _child(parent, "content")
    for subject in dict.fromkeys(subjects):  # de-duplicated, order kept
        _child(content, "subject", subject)
    _child(content, "description", description)
    _child(content, "referenceURL", reference_url)
    _child(content, "type", content_type)
    _child(content, "contentLevel", "Research")
    for relationship_type, related_id, related_name in relationships:
        relationship = _child(content, "relationship")
        _child(relationship, "relationshipType", relationship_type)
        _child(relationship, "relatedResource", related_name, **{"ivo-id": related_id})


def _capability(
    parent: ET.Element,
    standard_id: str,
    access_url: str,
    *,
    xsi_type: str | None = None,
    interface_type: str = "vs:ParamHTTP",
    url_use: Literal["base", "full"] = "full",
    description: str | None = None,
) -> ET.Element:
    attributes = {"standardID": standard_id}
    if xsi_type:
        attributes[f"{{{XSI}}}type"] = xsi_type
    capability = _child(parent, "capability", **attributes)
    if description:
        _child(capability, "description", description)
    interface = _child(capability, "interface", **{f"{{{XSI}}}type": interface_type, "role": "std"})
    _child(interface, "accessURL", access_url, use=url_use)
    return capability


# ----------------------------------------------------------------------------- records
def entry_resource(
    identity: RegistryIdentity, entry_id: str, version: EntryVersion, stamps: Stamps
) -> ET.Element:
    """The `vr:Resource` record of a catalogue entry's current version (see the docstring)."""
    spec = version.spec
    resource = _resource("vr:Resource", stamps)
    _child(resource, "title", spec.title)
    _child(resource, "shortName", spec.name[:16])
    _child(resource, "identifier", ivoid(identity.authority, entry_id))
    if spec.links.doi:
        _child(resource, "altIdentifier", f"doi:{spec.links.doi}")
    _curation(
        resource,
        identity,
        creators=[(author.name, author.orcid) for author in spec.authors],
        dates=stamps,
        version=spec.version,
    )
    description = spec.summary if not spec.description else f"{spec.summary}\n\n{spec.description}"
    _content(
        resource,
        subjects=[SOFTWARE_SUBJECT, *spec.subjects],
        description=description,
        reference_url=entry_page(identity, entry_id),
        content_type="Other",
        relationships=[
            (
                "IsServedBy",
                ivoid(identity.authority, BROKER_KEY),
                _broker_title(identity),
            )
        ],
    )
    return resource


def entry_page(identity: RegistryIdentity, entry_id: str) -> str:
    """The entry's web page, its `referenceURL` (homepage, documentation and source link on)."""
    return f"{identity.base_url}{ENTRY_PAGE_PATH}{entry_id}"


def _broker_title(identity: RegistryIdentity) -> str:
    return f"{identity.publisher} Execution Broker"


def broker_resource(identity: RegistryIdentity, stamps: Stamps) -> ET.Element:
    """The `vr:Service` record of the built-in Execution Broker, found by its capability."""
    resource = _resource("vr:Service", stamps)
    _child(resource, "title", _broker_title(identity))
    _child(resource, "shortName", "voexec broker")
    _child(resource, "identifier", ivoid(identity.authority, BROKER_KEY))
    _curation(resource, identity)
    _content(
        resource,
        subjects=[SOFTWARE_SUBJECT, "astronomy-web-services"],
        description=(
            "An IVOA Execution Broker: asked to run an executable (container image, notebook, "
            "Python program) with given resources and data, it answers with offers from the "
            "compute platforms it knows, and runs the offer a client accepts."
        ),
        reference_url=f"{identity.base_url}{BROKER_PATH}",
        content_type="Transformation",
    )
    capability = _capability(
        resource,
        identity.broker_standard_id,
        f"{identity.base_url}{BROKER_PATH}",
        url_use="base",
        description="Execution Broker API: POST /requests for offers, then /sessions/{uuid}.",
    )
    interface = capability.find("interface")
    assert interface is not None  # just built
    _child(interface, "queryType", "POST")
    _child(interface, "resultType", "application/json")
    base = identity.base_url
    _capability(resource, VOSI_CAPABILITIES_STANDARD, f"{base}{BROKER_CAPABILITIES_PATH}")
    _capability(resource, VOSI_AVAILABILITY_STANDARD, f"{base}{BROKER_AVAILABILITY_PATH}")
    return resource


def registry_capabilities(identity: RegistryIdentity, parent: ET.Element) -> None:
    """Append the registry's capabilities: OAI-PMH harvesting and VOSI."""
    harvest = _capability(
        parent,
        REGISTRY_STANDARD,
        f"{identity.base_url}{OAI_PATH}",
        xsi_type="vg:Harvest",
        interface_type="vg:OAIHTTP",
        url_use="base",
        description="OAI-PMH 2.0: ivo_vor and oai_dc records, set ivo_managed.",
    )
    interface = harvest.find("interface")
    assert interface is not None  # just built
    interface.set("version", "1.0")
    _child(harvest, "maxRecords", str(identity.page_size))
    _capability(parent, VOSI_CAPABILITIES_STANDARD, f"{identity.base_url}{CAPABILITIES_PATH}")
    _capability(parent, VOSI_AVAILABILITY_STANDARD, f"{identity.base_url}{AVAILABILITY_PATH}")


def registry_resource(identity: RegistryIdentity, stamps: Stamps) -> ET.Element:
    """The `vg:Registry` record: what Identify carries and what a harvester looks for."""
    resource = _resource("vg:Registry", stamps)
    _child(resource, "title", identity.title)
    _child(resource, "shortName", "voexec registry")
    _child(resource, "identifier", ivoid(identity.authority, REGISTRY_KEY))
    _curation(resource, identity)
    _content(
        resource,
        subjects=["virtual-observatories", SOFTWARE_SUBJECT],
        description=identity.description,
        reference_url=f"{identity.base_url}{OAI_PATH}?verb=Identify",
        content_type="Registry",
    )
    registry_capabilities(identity, resource)
    _child(resource, "full", "false")
    _child(resource, "managedAuthority", identity.authority)
    return resource


def authority_resource(identity: RegistryIdentity, stamps: Stamps) -> ET.Element:
    """The `vg:Authority` record of the authority every identifier here uses."""
    resource = _resource("vg:Authority", stamps)
    _child(resource, "title", f"{identity.publisher} naming authority")
    _child(resource, "identifier", ivoid(identity.authority))
    _curation(resource, identity)
    _content(
        resource,
        subjects=["virtual-observatories"],
        description=f"The authority of the records published by {identity.publisher}.",
        reference_url=f"{identity.base_url}{OAI_PATH}?verb=Identify",
        content_type="Other",
    )
    _child(resource, "managingOrg", identity.publisher)
    return resource


def fixed_resources(identity: RegistryIdentity, stamps: Stamps) -> dict[str, ET.Element]:
    """The records that come from configuration, not from the catalogue, by identifier."""
    built = (
        authority_resource(identity, stamps),
        registry_resource(identity, stamps),
        broker_resource(identity, stamps),
    )
    return {_identifier_of(element): element for element in built}


def fixed_digests(identity: RegistryIdentity) -> dict[str, str]:
    """A content digest of each fixed record, dates left out: it changes when the record does.

    The store keeps each record's datestamp and moves it on when this digest changes, so a
    harvester's `from=` picks up a changed configuration.
    """
    placeholder = Stamps(_PLACEHOLDER_TIME, _PLACEHOLDER_TIME)
    return {
        identifier: hashlib.sha256(to_bytes(element)).hexdigest()
        for identifier, element in fixed_resources(identity, placeholder).items()
    }


def _identifier_of(resource: ET.Element) -> str:
    identifier = resource.findtext("identifier")
    assert identifier is not None  # every record built here has one
    return identifier


# ----------------------------------------------------------------------------- other renderings
def dublin_core(resource: ET.Element) -> ET.Element:
    """The `oai_dc` rendering of a VOResource record (what non-IVOA harvesters read)."""
    record = ET.Element(f"{{{OAI_DC}}}dc")

    def add(name: str, value: str | None) -> None:
        if value:
            _child(record, f"{{{DC}}}{name}", value)

    add("title", resource.findtext("title"))
    for creator in resource.iterfind("curation/creator/name"):
        add("creator", creator.text)
    for subject in resource.iterfind("content/subject"):
        add("subject", subject.text)
    add("description", resource.findtext("content/description"))
    add("publisher", resource.findtext("curation/publisher"))
    add("date", resource.get("updated"))
    for content_type in resource.iterfind("content/type"):
        add("type", content_type.text)
    add("identifier", resource.findtext("identifier"))
    add("identifier", resource.findtext("content/referenceURL"))
    return record


def capabilities_document(resource: ET.Element) -> ET.Element:
    """A VOSI capabilities document listing a service record's capabilities."""
    document = ET.Element(f"{{{VOSI_CAPABILITIES}}}capabilities", dict(_TYPE_PREFIXES))
    document.extend(resource.iterfind("capability"))
    return document


def availability_document(available: bool, note: str | None = None) -> ET.Element:
    """A VOSI availability document."""
    document = ET.Element(f"{{{VOSI_AVAILABILITY}}}availability")
    _child(document, f"{{{VOSI_AVAILABILITY}}}available", "true" if available else "false")
    if note:
        _child(document, f"{{{VOSI_AVAILABILITY}}}note", note)
    return document


def to_bytes(element: ET.Element) -> bytes:
    """UTF-8 XML with its declaration."""
    data: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return data
