"""Fill the RegTAP `rr` tables of the throwaway DaCHS from a publishing registry's OAI-PMH records.

    python scripts/services/regtap/load.py OAI_URL POSTGRES_URL

Harvests `ListRecords` (`ivo_vor`, following resumption tokens) from OAI_URL, turns each
VOResource record into the rows RegTAP 1.1 defines for it (`q.rd` beside this file holds the
tables), and replaces what the tables held, in one transaction. Deleted records are left out.
It prints one line: how many resources, capabilities and interfaces it loaded.

A test tool run by `scripts/services/dachs regtap URL`, not part of voexec: it reads the
records with defusedxml and writes with psycopg (both voexec dependencies, so the project's
virtual environment runs it). Only what a registry needs for searches is mapped: the resource
core, capabilities and interfaces, subjects, roles, dates, relationships, validation levels,
alternative identifiers, table sets and a few scalar details.
"""

from __future__ import annotations

import io
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

import psycopg
from defusedxml import ElementTree

OAI = "{http://www.openarchives.org/OAI/2.0/}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
# RegTAP stores xsi:type values with these prefixes, whatever prefix a record declares.
CANONICAL_PREFIXES = {
    "http://www.ivoa.net/xml/VOResource/v1.0": "vr",
    "http://www.ivoa.net/xml/VODataService/v1.0": "vs",
    "http://www.ivoa.net/xml/VODataService/v1.1": "vs",
    "http://www.ivoa.net/xml/VORegistry/v1.0": "vg",
    "http://www.ivoa.net/xml/StandardsRegExt/v1.0": "vstd",
    "http://www.ivoa.net/xml/TAPRegExt/v1.0": "tr",
    "http://www.ivoa.net/xml/SIA/v1.0": "sia",
    "http://www.ivoa.net/xml/SIA/v1.1": "sia",
    "http://www.ivoa.net/xml/ConeSearch/v1.0": "cs",
    "http://www.ivoa.net/xml/SSA/v1.0": "ssa",
    "http://www.ivoa.net/xml/SSA/v1.1": "ssa",
    "http://www.ivoa.net/xml/SLAP/v1.0": "slap",
    "http://www.ivoa.net/xml/DocRegExt/v1.0": "doc",
}
# Scalar metadata kept in rr.res_detail: (element path below the resource, RegTAP xpath).
RESOURCE_DETAILS = (
    ("managedAuthority", "/managedauthority"),
    ("full", "/full"),
    ("facility", "/facility"),
    ("instrument", "/instrument"),
    ("coverage/footprint", "/coverage/footprint"),
    ("rights", "/rights"),
)
CAPABILITY_DETAILS = (
    ("maxRecords", "/capability/maxrecords"),
    ("complianceLevel", "/capability/compliancelevel"),
    ("dataModel", "/capability/datamodel"),
    ("language/name", "/capability/language/name"),
)
TABLES = (
    "resource",
    "capability",
    "interface",
    "res_subject",
    "res_role",
    "res_detail",
    "relationship",
    "validation",
    "res_schema",
    "res_table",
    "table_column",
    "res_date",
    "alt_identifier",
)


@dataclass
class Rows:
    """The rows of every rr table, in insertion order."""

    tables: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in TABLES}
    )

    def add(self, table: str, **row: Any) -> None:
        self.tables[table].append(row)


def text(element: Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    value = element.text.strip()
    return value or None


def lower(value: str | None) -> str | None:
    return value.lower() if value else None


def hashed(values: list[str | None]) -> str | None:
    kept = [v for v in values if v]
    return "#".join(kept) if kept else None


def harvest(url: str) -> Iterator[tuple[Element, dict[str, str]]]:
    """Each live record's `ri:Resource`, with the namespace prefixes its page declares."""
    params: dict[str, str] = {"verb": "ListRecords", "metadataPrefix": "ivo_vor"}
    while True:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{url}?{query}", timeout=60) as answer:
            page = answer.read()
        prefixes = {
            prefix: uri
            for _, (prefix, uri) in ElementTree.iterparse(io.BytesIO(page), events=("start-ns",))
        }
        root = ElementTree.fromstring(page)
        error = root.find(f"{OAI}error")
        if error is not None:
            if error.get("code") == "noRecordsMatch":
                return
            raise SystemExit(f"{url}: {error.get('code')}: {error.text}")
        for record in root.iter(f"{OAI}record"):
            header = record.find(f"{OAI}header")
            if header is not None and header.get("status") == "deleted":
                continue
            metadata = record.find(f"{OAI}metadata")
            resource = next(iter(metadata), None) if metadata is not None else None
            if resource is not None:
                yield resource, prefixes
        token = text(root.find(f".//{OAI}resumptionToken"))
        if not token:
            return
        params = {"verb": "ListRecords", "resumptionToken": token}


def xsi_type(element: Element, prefixes: dict[str, str]) -> str | None:
    """The element's xsi:type with RegTAP's canonical prefix, in lower case."""
    value = element.get(XSI_TYPE)
    if not value:
        return None
    prefix, _, name = value.rpartition(":")
    canonical = CANONICAL_PREFIXES.get(prefixes.get(prefix, ""), prefix)
    return f"{canonical}:{name}".lower() if canonical else name.lower()


def texts(parent: Element | None, path: str) -> list[str | None]:
    """The text of every `path` below `parent` (none when there is no parent)."""
    return [] if parent is None else [text(e) for e in parent.findall(path)]


def resource_rows(rows: Rows, resource: Element, prefixes: dict[str, str], source: str) -> None:
    ivoid = lower(text(resource.find("identifier")))
    if ivoid is None:
        return
    content = resource.find("content")
    curation = resource.find("curation")
    coverage = resource.find("coverage")
    source_element = content.find("source") if content is not None else None
    rights = resource.findall("rights")
    regard = text(coverage.find("regionOfRegard")) if coverage is not None else None
    rows.add(
        "resource",
        ivoid=ivoid,
        res_type=xsi_type(resource, prefixes),
        created=resource.get("created"),
        short_name=text(resource.find("shortName")),
        res_title=text(resource.find("title")),
        updated=resource.get("updated"),
        content_level=hashed([lower(v) for v in texts(content, "contentLevel")]),
        res_description=first(texts(content, "description")),
        reference_url=first(texts(content, "referenceURL")),
        creator_seq="; ".join(n for n in texts(curation, "creator/name") if n) or None,
        content_type=hashed([lower(v) for v in texts(content, "type")]),
        source_format=source_element.get("format") if source_element is not None else None,
        source_value=text(source_element),
        res_version=first(texts(curation, "version")),
        region_of_regard=float(regard) if regard else None,
        waveband=hashed([lower(v) for v in texts(coverage, "waveband")]),
        rights=hashed([text(e) for e in rights]),
        rights_uri=hashed([e.get("rightsURI") for e in rights]),
        harvested_from=source,
    )
    if content is not None:
        content_rows(rows, ivoid, content)
    if curation is not None:
        role_rows(rows, ivoid, curation)
        for date in curation.findall("date"):
            rows.add(
                "res_date",
                ivoid=ivoid,
                date_value=text(date),
                value_role=lower(date.get("role")) or "representative",
            )
    for alternative in resource.findall("altIdentifier"):
        rows.add("alt_identifier", ivoid=ivoid, alt_identifier=text(alternative))
    validation_rows(rows, ivoid, resource, None)
    for path, xpath in RESOURCE_DETAILS:
        for value in texts(resource, path):
            if value:
                rows.add(
                    "res_detail",
                    ivoid=ivoid,
                    cap_index=None,
                    detail_xpath=xpath,
                    detail_value=value,
                )
    capability_rows(rows, ivoid, resource, prefixes)
    table_rows(rows, ivoid, resource)


def first(values: list[str | None]) -> str | None:
    return values[0] if values else None


def content_rows(rows: Rows, ivoid: str, content: Element) -> None:
    for subject in texts(content, "subject"):
        if subject:
            rows.add("res_subject", ivoid=ivoid, res_subject=subject)
    for relationship in content.findall("relationship"):
        kind = lower(text(relationship.find("relationshipType")))
        for related in relationship.findall("relatedResource"):
            rows.add(
                "relationship",
                ivoid=ivoid,
                relationship_type=kind,
                related_id=lower(related.get("ivo-id")),
                related_name=text(related),
            )


def validation_rows(rows: Rows, ivoid: str, parent: Element, cap_index: int | None) -> None:
    for level in parent.findall("validationLevel"):
        rows.add(
            "validation",
            ivoid=ivoid,
            validated_by=lower(level.get("validatedBy")),
            val_level=int(text(level) or 0),
            cap_index=cap_index,
        )


def role_rows(rows: Rows, ivoid: str, curation: Element) -> None:
    for base_role in ("publisher", "creator", "contributor", "contact"):
        for seq, element in enumerate(curation.findall(base_role), start=1):
            # A publisher or contributor is a name; a creator or contact holds one.
            name = element.find("name")
            named = name if name is not None else element
            rows.add(
                "res_role",
                ivoid=ivoid,
                role_name=text(named),
                role_ivoid=lower(named.get("ivo-id")),
                street_address=text(element.find("address")),
                email=text(element.find("email")),
                telephone=text(element.find("telephone")),
                logo=text(element.find("logo")),
                base_role=base_role,
                role_seq=seq,
            )


def capability_rows(rows: Rows, ivoid: str, resource: Element, prefixes: dict[str, str]) -> None:
    interface_index = 0
    for cap_index, capability in enumerate(resource.findall("capability"), start=1):
        rows.add(
            "capability",
            ivoid=ivoid,
            cap_index=cap_index,
            cap_type=xsi_type(capability, prefixes),
            cap_description=text(capability.find("description")),
            standard_id=lower(capability.get("standardID")),
        )
        validation_rows(rows, ivoid, capability, cap_index)
        for path, xpath in CAPABILITY_DETAILS:
            for element in capability.findall(path):
                if value := text(element):
                    rows.add(
                        "res_detail",
                        ivoid=ivoid,
                        cap_index=cap_index,
                        detail_xpath=xpath,
                        detail_value=value,
                    )
        for interface in capability.findall("interface"):
            interface_index += 1
            access = interface.find("accessURL")
            methods = interface.findall("securityMethod")
            rows.add(
                "interface",
                ivoid=ivoid,
                cap_index=cap_index,
                intf_index=interface_index,
                intf_type=xsi_type(interface, prefixes),
                intf_role=lower(interface.get("role")),
                std_version=interface.get("version"),
                query_type=hashed([lower(text(e)) for e in interface.findall("queryType")]),
                result_type=text(interface.find("resultType")),
                wsdl_url=text(interface.find("wsdlURL")),
                url_use=lower(access.get("use")) if access is not None else None,
                access_url=text(access),
                mirror_url=hashed([text(e) for e in interface.findall("mirrorURL")]),
                authenticated_only=1
                if methods and all(m.get("standardID") for m in methods)
                else 0,
                security_method_id=hashed([lower(m.get("standardID")) for m in methods]),
            )


def table_rows(rows: Rows, ivoid: str, resource: Element) -> None:
    table_index = 0
    tableset = resource.find("tableset")
    if tableset is None:
        return
    for schema_index, schema in enumerate(tableset.findall("schema"), start=1):
        rows.add(
            "res_schema",
            ivoid=ivoid,
            schema_index=schema_index,
            schema_name=text(schema.find("name")),
            schema_title=text(schema.find("title")),
            schema_description=text(schema.find("description")),
            schema_utype=lower(text(schema.find("utype"))),
        )
        for table in schema.findall("table"):
            table_index += 1
            nrows = text(table.find("nrows"))
            rows.add(
                "res_table",
                ivoid=ivoid,
                schema_index=schema_index,
                table_index=table_index,
                table_name=text(table.find("name")),
                table_title=text(table.find("title")),
                table_description=text(table.find("description")),
                table_utype=lower(text(table.find("utype"))),
                table_type=table.get("type"),
                nrows=int(nrows) if nrows else None,
            )
            for column in table.findall("column"):
                datatype = column.find("dataType")
                rows.add(
                    "table_column",
                    ivoid=ivoid,
                    table_index=table_index,
                    name=text(column.find("name")),
                    ucd=text(column.find("ucd")),
                    unit=text(column.find("unit")),
                    utype=lower(text(column.find("utype"))),
                    std=1 if column.get("std") == "true" else 0,
                    datatype=text(datatype),
                    extended_schema=datatype.get("extendedSchema")
                    if datatype is not None
                    else None,
                    extended_type=datatype.get("extendedType") if datatype is not None else None,
                    arraysize=datatype.get("arraysize") if datatype is not None else None,
                    delim=datatype.get("delim") if datatype is not None else None,
                    type_system=lower(datatype.get(XSI_TYPE)) if datatype is not None else None,
                    flag=hashed([lower(text(e)) for e in column.findall("flag")]),
                    column_description=text(column.find("description")),
                )


def load(rows: Rows, database: str) -> None:
    """Replace the rr tables' rows, all or nothing."""
    with psycopg.connect(database) as connection, connection.cursor() as cursor:
        for table in reversed(TABLES):
            cursor.execute(f"DELETE FROM rr.{table}")  # our own table names
        for table in TABLES:
            for row in rows.tables[table]:
                columns = ", ".join(row)
                marks = ", ".join(["%s"] * len(row))
                cursor.execute(
                    f"INSERT INTO rr.{table} ({columns}) VALUES ({marks})",
                    list(row.values()),
                )


def main(arguments: list[str]) -> int:
    if len(arguments) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    url, database = arguments
    rows = Rows()
    for resource, prefixes in harvest(url):
        resource_rows(rows, resource, prefixes, url)
    load(rows, database)
    counts = {name: len(rows.tables[name]) for name in ("resource", "capability", "interface")}
    print(", ".join(f"{count} {name} rows" for name, count in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
