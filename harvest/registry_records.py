"""OAI-PMH answers of an IVOA registry, read as records, and which of them are executables.

Pure: bytes in, records and decisions out. XML from outside is parsed with defusedxml (no
entities, no external references). Imports no I/O library.

A record becomes a catalogue entry only when it is software the Execution Broker can run:

1. a deleted header: the entries harvested from that identifier are withdrawn;
2. `xsi:type` other than `vr:Resource` (services, registries, authorities, documents, data
   collections): skipped, with its type as the reason;
3. no software subject (`astronomy-software`, its UAT narrower terms, or a software-licensing
   term): skipped, "not software";
4. software whose `referenceURL` is not a voexec entry page (`<base>/executables/<id>`):
   skipped, since VOResource has no place for an executable's image, notebook or program, and
   without one there is nothing to run. A voexec entry page has its Execution Broker description
   beside it, at `<base>/catalogue/executables/<id>`, which the harvest reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

OAI: Final = "{http://www.openarchives.org/OAI/2.0/}"
RI_RESOURCE: Final = "{http://www.ivoa.net/xml/RegistryInterface/v1.0}Resource"
XSI_TYPE: Final = "{http://www.w3.org/2001/XMLSchema-instance}type"
SOFTWARE_SUBJECTS: Final = frozenset(
    {
        "astronomy-software",
        "astronomical-simulations",
        "educational-software",
        "software-licensing",
        "open-source-software",
        "public-domain-software",
        "publicly-available-software",
        "private-software",
        "software-available-on-request",
    }
)
"""UAT terms that make a record software (`astronomy-software` and its narrower terms, but not
`software-documentation`, `astronomy-web-services`; the software-licensing family)."""
_ENTRY_PAGE: Final = re.compile(
    r"^(?P<base>https?://[^?#]+?)/executables/(?P<id>[A-Za-z0-9._~-]+)$"
)


class OaiAnswerError(ValueError):
    """The answer is not OAI-PMH (not XML, no OAI-PMH root, an unreadable record)."""


@dataclass(frozen=True)
class HarvestedRecord:
    """One OAI-PMH record: its header, and its VOResource unless it is deleted."""

    identifier: str
    datestamp: str
    deleted: bool
    resource: Element | None = None

    @property
    def xsi_type(self) -> str:
        """The resource's `xsi:type` without its prefix (`Resource`, `Registry`...)."""
        if self.resource is None:
            return ""
        return (self.resource.get(XSI_TYPE) or "").rsplit(":", 1)[-1]

    @property
    def title(self) -> str:
        """The resource title, or its identifier."""
        found = self.resource.findtext("title") if self.resource is not None else None
        return (found or self.identifier).strip()

    @property
    def reference_url(self) -> str:
        """The resource's `content/referenceURL` (empty when absent)."""
        if self.resource is None:
            return ""
        return (self.resource.findtext("content/referenceURL") or "").strip()

    @property
    def subjects(self) -> list[str]:
        """The subjects, lower-cased as RegTAP does."""
        if self.resource is None:
            return []
        return [(s.text or "").strip().lower() for s in self.resource.iterfind("content/subject")]


@dataclass(frozen=True)
class Page:
    """One OAI-PMH list answer."""

    records: list[HarvestedRecord]
    token: str | None
    """The resumption token of the next page; None on the last page."""
    error: tuple[str, str] | None = None
    """(code, message) when the answer is an OAI-PMH error."""


@dataclass(frozen=True)
class Runnable:
    """A software record with an Execution Broker description to read."""

    description_url: str


@dataclass(frozen=True)
class Skipped:
    """A record that is not an executable, and why."""

    reason: str


def _root(data: bytes) -> Element:
    try:
        root: Element = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException) as error:
        raise OaiAnswerError(f"the answer is not XML the harvest accepts: {error}") from error
    if root.tag != f"{OAI}OAI-PMH":
        raise OaiAnswerError(f"the answer is not OAI-PMH (its root is {root.tag!r})")
    return root


def _error(root: Element) -> tuple[str, str] | None:
    error = root.find(f"{OAI}error")
    if error is None:
        return None
    return error.get("code") or "unknown", (error.text or "").strip()


def parse_list(data: bytes, verb: str = "ListRecords") -> Page:
    """Read one ListRecords (or ListIdentifiers) answer.

    Raises:
        OaiAnswerError: not an OAI-PMH answer, or a record without identifier or datestamp.
    """
    root = _root(data)
    error = _error(root)
    if error is not None:
        return Page(records=[], token=None, error=error)
    body = root.find(f"{OAI}{verb}")
    if body is None:
        raise OaiAnswerError(f"the answer has no {verb} element")
    records = []
    for record in body.iter(f"{OAI}record"):
        header = record.find(f"{OAI}header")
        if header is None:
            raise OaiAnswerError("a record without a header")
        identifier = (header.findtext(f"{OAI}identifier") or "").strip()
        datestamp = (header.findtext(f"{OAI}datestamp") or "").strip()
        if not identifier or not datestamp:
            raise OaiAnswerError("a record header without identifier or datestamp")
        deleted = header.get("status") == "deleted"
        resource = None if deleted else record.find(f"{OAI}metadata/{RI_RESOURCE}")
        records.append(HarvestedRecord(identifier, datestamp, deleted, resource))
    token_element = body.find(f"{OAI}resumptionToken")
    token = (token_element.text or "").strip() if token_element is not None else ""
    return Page(records=records, token=token or None)


def parse_identify(data: bytes) -> dict[str, str]:
    """The simple fields of an Identify answer (`baseURL`, `granularity`...).

    Raises:
        OaiAnswerError: not an OAI-PMH Identify answer, or an OAI-PMH error.
    """
    root = _root(data)
    error = _error(root)
    if error is not None:
        raise OaiAnswerError(f"Identify answered {error[0]}: {error[1]}")
    identify = root.find(f"{OAI}Identify")
    if identify is None:
        raise OaiAnswerError("the answer has no Identify element")
    return {
        child.tag.removeprefix(OAI): (child.text or "").strip()
        for child in identify
        if child.tag != f"{OAI}description"
    }


def classify(record: HarvestedRecord) -> Runnable | Skipped:
    """Whether a (not deleted) record is an executable the harvest can publish; see above."""
    if record.resource is None:
        return Skipped("the record has no VOResource metadata (ri:Resource)")
    if record.xsi_type != "Resource":
        kind = record.resource.get(XSI_TYPE) or "untyped"
        return Skipped(f"not an executable: a {kind} record")
    if not SOFTWARE_SUBJECTS & set(record.subjects):
        return Skipped("not software: none of its subjects is a UAT software term")
    url = description_url(record.reference_url)
    if url is None:
        return Skipped(
            "software, but it names no Execution Broker executable (its referenceURL "
            f"{record.reference_url!r} is not a voexec entry page), so nothing could run it"
        )
    return Runnable(url)


def description_url(reference_url: str) -> str | None:
    """The Execution Broker description beside a voexec entry page, else None."""
    match = _ENTRY_PAGE.match(reference_url)
    if match is None:
        return None
    return f"{match['base']}/catalogue/executables/{match['id']}"
