"""IVOA data to access URLs: DataLink `{links}` answers, and `ivo://` identifiers via a registry.

- A DataLink `{links}` endpoint (`...links?ID=...`) answers a VOTable whose rows link the
  dataset to its files and services; the rows with `semantics` `#this` are the dataset
  itself: their `access_url`, `content_length` and `content_type` are what is staged. A row
  with an `error_message` (and no `access_url`) says why the dataset cannot be had.
- An `ivo://authority/resource?local-part` publisher dataset identifier is asked of its
  publisher's DataLink service with `?ID=<the identifier>`: the service is the configured one
  for its prefix, else the `{links}` capability (`ivo://ivoa.net/std/DataLink#links-1.x`) that a
  RegTAP registry lists for the resource (the part before `?`).

VOTables are read with astropy's parser (`astropy.io.votable`, which pyvo brings), in this
module only; HTTP with urllib, as the other data probes. Imports `core.settings` only.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy
from astropy.io.votable import parse as parse_votable  # type: ignore[import-untyped]
from astropy.io.votable.exceptions import VOWarning  # type: ignore[import-untyped]

from broker.platforms.url_prefix import depth_under

__all__ = [
    "DataLinkError",
    "Link",
    "links_of",
    "parse_links",
    "read_links",
    "resolve_identifier",
    "this_links",
]

THIS: Final = "#this"
LINKS_STANDARD: Final = "ivo://ivoa.net/std/datalink#links-1."
"""The start of DataLink's `{links}` capability's standard id (1.0, 1.1), lower case."""
DATALINK_TYPE: Final = "content=datalink"
"""What a DataLink answer's media type says (`application/x-votable+xml;content=datalink`)."""
_MAX_ANSWER: Final = 8 << 20
"""Largest DataLink or registry answer read (bytes)."""


class DataLinkError(Exception):
    """The links cannot be had or read; the message says why."""


@dataclass(frozen=True, slots=True)
class Link:
    """One row of a DataLink answer."""

    id: str
    access_url: str | None
    semantics: str
    content_type: str | None = None
    content_length: int | None = None
    error_message: str | None = None
    description: str | None = None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return None if not text or text == "--" else text


def _integer(value: Any) -> int | None:
    text = _text(value)
    try:
        return int(float(text)) if text is not None else None
    except ValueError:
        return None


def _rows(body: bytes, what: str) -> list[dict[str, Any]]:
    """The first table of a VOTable as dicts (column names lower case)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VOWarning)
            document = parse_votable(io.BytesIO(body), verify="ignore")
    except Exception as error:  # astropy raises many kinds for a broken document
        raise DataLinkError(f"{what} is not a VOTable: {error}") from error
    for resource in document.resources:
        if resource.type == "results" or not document.resources[1:]:
            for info in resource.infos:
                if info.name == "QUERY_STATUS" and str(info.value).upper() == "ERROR":
                    raise DataLinkError(f"{what} says: {info.content or 'ERROR'}")
    try:
        table = document.get_first_table()
    except (IndexError, ValueError) as error:
        raise DataLinkError(f"{what} holds no table") from error
    columns = {}
    for field in table.fields:
        values = table.array[field.ID or field.name]
        masked = numpy.ma.getmaskarray(values).tolist()
        data = numpy.ma.getdata(values).tolist()
        columns[field.name.lower()] = [
            None if empty else value for value, empty in zip(data, masked, strict=True)
        ]
    return [
        {name: values[index] for name, values in columns.items()}
        for index in range(len(table.array))
    ]


def parse_links(body: bytes, what: str = "the DataLink answer") -> list[Link]:
    """The rows of a DataLink VOTable.

    Raises:
        DataLinkError: not a VOTable, an error status, or no `ID`/`semantics` columns.
    """
    rows = _rows(body, what)
    if rows and not {"id", "semantics"} <= set(rows[0]):
        raise DataLinkError(f"{what} is not a DataLink table (no ID and semantics columns)")
    return [
        Link(
            id=_text(row.get("id")) or "",
            access_url=_text(row.get("access_url")),
            semantics=_text(row.get("semantics")) or "",
            content_type=_text(row.get("content_type")),
            content_length=_integer(row.get("content_length")),
            error_message=_text(row.get("error_message")),
            description=_text(row.get("description")),
        )
        for row in rows
    ]


def _get(url: str, timeout: float, what: str, data: bytes | None = None) -> bytes:
    host = urllib.parse.urlsplit(url).netloc
    request = urllib.request.Request(url, data=data)  # noqa: S310 - http(s), checked by the callers
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            body = answer.read(_MAX_ANSWER + 1)
    except urllib.error.HTTPError as error:
        raise DataLinkError(f"{what} {url} answers HTTP {error.code} {error.reason}") from error
    except (OSError, ValueError) as error:
        raise DataLinkError(f"cannot reach {host}: {getattr(error, 'reason', error)}") from error
    if len(body) > _MAX_ANSWER:
        raise DataLinkError(f"{what} {url} answers more than {_MAX_ANSWER} bytes")
    return bytes(body)


def read_links(url: str, timeout: float) -> list[Link]:
    """Ask a `{links}` endpoint (its URL with `?ID=`) for its rows."""
    if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
        raise DataLinkError(f"the DataLink URL {url} is not http(s)")
    return parse_links(_get(url, timeout, "the DataLink service"), f"the DataLink answer of {url}")


def this_links(links: list[Link], where: str) -> list[Link]:
    """The `#this` rows with an access URL; the dataset's own error when there are none.

    Raises:
        DataLinkError: no `#this` row gives an access URL (with the service's error message).
    """
    found = [link for link in links if link.semantics == THIS and link.access_url]
    if found:
        return found
    errors = [link.error_message for link in links if link.semantics == THIS and link.error_message]
    if errors:
        raise DataLinkError(f"{where} gives no access URL: {errors[0]}")
    raise DataLinkError(f"{where} lists no #this link with an access URL")


def links_of(url: str, timeout: float) -> list[Link]:
    """The dataset's `#this` access links from its `{links}` URL."""
    return this_links(read_links(url, timeout), f"the DataLink answer of {url}")


def _with_id(service: str, ivoid: str) -> str:
    joiner = "&" if urllib.parse.urlsplit(service).query else "?"
    return f"{service}{joiner}{urllib.parse.urlencode({'ID': ivoid})}"


def _regtap_service(regtap: str, resource: str, timeout: float) -> str | None:
    quoted = resource.lower().replace("'", "''")
    # ADQL for the registry; the one literal has its quotes doubled.
    query = "SELECT i.access_url FROM rr.capability AS c NATURAL JOIN rr.interface AS i "
    query += f"WHERE c.ivoid = '{quoted}' AND c.standard_id LIKE '{LINKS_STANDARD}%'"
    form = urllib.parse.urlencode({"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query})
    url = f"{regtap.rstrip('/')}/sync"
    rows = _rows(_get(url, timeout, "the registry", data=form.encode()), f"the registry {regtap}")
    for row in rows:
        if access := _text(row.get("access_url")):
            return access
    return None


def resolve_identifier(ivoid: str, services: Mapping[str, str], regtap: str, timeout: float) -> str:
    """The `{links}` URL (with `?ID=`) that answers for the publisher dataset `ivoid`.

    Raises:
        DataLinkError: no configured service and no registry, or the registry lists no
            DataLink service for its resource.
    """
    matches = [
        (depth, prefix)
        for prefix in services
        if prefix and (depth := depth_under(ivoid, prefix, ("ivo",))) is not None
    ]
    if matches:
        return _with_id(services[max(matches)[1]], ivoid)
    resource = ivoid.split("?", 1)[0].split("#", 1)[0]
    if not regtap:
        raise DataLinkError(
            f"cannot resolve {ivoid}: no DataLink service is configured for it "
            "(data.ivoa.datalink) and no registry (data.ivoa.regtap)"
        )
    service = _regtap_service(regtap, resource, timeout)
    if service is None:
        raise DataLinkError(f"the registry {regtap} lists no DataLink service for {resource}")
    return _with_id(service, ivoid)
