"""Reading OAI-PMH answers of IVOA registries, and deciding which records are executables."""

from __future__ import annotations

import pytest

from harvest.registry_records import (
    HarvestedRecord,
    OaiAnswerError,
    Runnable,
    Skipped,
    classify,
    description_url,
    parse_identify,
    parse_list,
)

OAI = "http://www.openarchives.org/OAI/2.0/"
RI = "http://www.ivoa.net/xml/RegistryInterface/v1.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def resource(xsi_type: str, subjects=("astronomy-software",), reference="") -> str:
    subject_xml = "".join(f"<subject>{s}</subject>" for s in subjects)
    return (
        f'<ri:Resource xmlns:ri="{RI}" xmlns:xsi="{XSI}" xsi:type="{xsi_type}">'
        f"<title>T</title><content>{subject_xml}<referenceURL>{reference}</referenceURL>"
        "</content></ri:Resource>"
    )


def answer(records: str, token: str | None = None, verb: str = "ListRecords") -> bytes:
    resumption = "" if token is None else f"<oai:resumptionToken>{token}</oai:resumptionToken>"
    return (
        f'<oai:OAI-PMH xmlns:oai="{OAI}"><oai:{verb}>{records}{resumption}</oai:{verb}>'
        "</oai:OAI-PMH>"
    ).encode()


def record(identifier: str, body: str = "", deleted: bool = False) -> str:
    status = ' status="deleted"' if deleted else ""
    metadata = f"<oai:metadata>{body}</oai:metadata>" if body else ""
    return (
        f"<oai:record><oai:header{status}><oai:identifier>{identifier}</oai:identifier>"
        f"<oai:datestamp>2026-03-01</oai:datestamp></oai:header>{metadata}</oai:record>"
    )


def parsed(body: str) -> HarvestedRecord:
    return parse_list(answer(record("ivo://a.test/x", body))).records[0]


def test_a_page_with_records_a_tombstone_and_a_token():
    page = parse_list(
        answer(
            record("ivo://a.test/one", resource("vr:Resource"))
            + record("ivo://a.test/two", deleted=True),
            token="next-page",
        )
    )
    assert [r.identifier for r in page.records] == ["ivo://a.test/one", "ivo://a.test/two"]
    assert page.records[1].deleted
    assert page.records[1].resource is None
    assert page.records[0].xsi_type == "Resource"
    assert page.token == "next-page"
    assert parse_list(answer("", token="")).token is None


def test_errors_and_non_oai_answers():
    error = f'<OAI-PMH xmlns="{OAI}"><error code="noRecordsMatch">none</error></OAI-PMH>'
    assert parse_list(error.encode()).error == ("noRecordsMatch", "none")
    for bad in (b"<html>nope</html>", b"not xml", answer(record("", resource("vr:Resource")))):
        with pytest.raises(OaiAnswerError):
            parse_list(bad)
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(OaiAnswerError):
        parse_list(bomb)


def test_identify_fields():
    fields = "<granularity>YYYY-MM-DD</granularity><description/>"
    data = f'<OAI-PMH xmlns="{OAI}"><Identify>{fields}</Identify></OAI-PMH>'
    assert parse_identify(data.encode()) == {"granularity": "YYYY-MM-DD"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (resource("vg:Registry"), "a vg:Registry record"),
        (resource("vs:CatalogService"), "a vs:CatalogService record"),
        (resource("vr:Resource", subjects=("galaxies",)), "not software"),
        (
            resource("vr:Resource", reference="https://example.org/tool"),
            "names no Execution Broker",
        ),
    ],
)
def test_records_that_are_not_executables_are_skipped_with_the_reason(body, expected):
    decision = classify(parsed(body))
    assert isinstance(decision, Skipped)
    assert expected in decision.reason


def test_software_from_a_voexec_points_to_its_description():
    body = resource(
        "vr:Resource",
        subjects=("Open-Source-Software",),
        reference="https://cat.example.org/voexec/executables/tool-0123456789",
    )
    assert classify(parsed(body)) == Runnable(
        "https://cat.example.org/voexec/catalogue/executables/tool-0123456789"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/executables/",
        "https://example.org/executables/a/b",
        "ftp://example.org/executables/x",
        "https://example.org/executables/x?y=1",
    ],
)
def test_only_entry_pages_have_descriptions(url):
    assert description_url(url) is None
