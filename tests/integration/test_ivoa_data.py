"""IVOA data staged for real: a DataLink `{links}` URL, an `ivo://` publisher dataset identifier.

A local http server answers a real DataLink VOTable (a `#this` row with its access URL,
content_length and content_type, a `#preview` row) and serves the file. The offer sizes the
item from the DataLink row (or an error row is a NO naming the item); the preparation stages
the `#this` access URL and checks its length. An identifier is resolved to its publisher's
DataLink service through the platform's configured resolver (`data.ivoa.datalink`) or a RegTAP
registry (`data.ivoa.regtap`): the real DaCHS of `scripts/services/dachs`, its rr tables filled
from a VOResource record (served over OAI-PMH here) whose DataLink capability points at the
local server; a small TAP endpoint also checks the query and a resource without the capability.
"""

from __future__ import annotations

import hashlib
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from broker import model
from broker.model import SessionPhase as P
from broker.platforms import datalink
from broker.platforms.data_reach import clear_probe_cache
from core.settings import IvoaResolverSettings, PlatformDataSettings
from tests.broker_support import accept_first, tick_until
from tests.data_support import HttpFiles, LocalBroker, said
from tests.integration.test_registry_dachs import dachs_regtap

K = model.KINDS
DATALINK_TYPE = "application/x-votable+xml;content=datalink"
IVOID = "ivo://test.example/archive?obs-1"
PROGRAM = """\
import hashlib, os, pathlib
data = pathlib.Path(os.environ["VOEXEC_DATA"])
lines = [f"{p.relative_to(data).as_posix()} {p.stat().st_size} "
         f"{hashlib.md5(p.read_bytes()).hexdigest()}"
         for p in sorted(data.rglob("*")) if p.is_file()]
pathlib.Path("checksums.txt").write_text("\\n".join(lines) + "\\n")
"""
FITS = b"SIMPLE  =                    T" + b" " * 2850

pytestmark = pytest.mark.usefixtures("fresh_probes")


def votable(fields: list[tuple[str, str]], rows: list[list[str]], status: str = "") -> bytes:
    """A VOTable 1.4 document as DataLink and TAP services write them (TABLEDATA)."""
    info = f'<INFO name="QUERY_STATUS" value="ERROR">{status}</INFO>' if status else ""
    head = "".join(
        f'<FIELD name="{name}" datatype="{kind}"'
        + (' arraysize="*"' if kind == "char" else "")
        + "/>"
        for name, kind in fields
    )
    body = "".join(
        "<TR>" + "".join(f"<TD>{cell}</TD>" if cell else "<TD/>" for cell in row) + "</TR>"
        for row in rows
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
        f'<RESOURCE type="results">{info}<TABLE>{head}'
        f"<DATA><TABLEDATA>{body}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"
    ).encode()


LINK_FIELDS = [
    ("ID", "char"),
    ("access_url", "char"),
    ("service_def", "char"),
    ("error_message", "char"),
    ("description", "char"),
    ("semantics", "char"),
    ("content_type", "char"),
    ("content_length", "long"),
]


def links(ivoid: str, file_url: str, length: int | None) -> bytes:
    this = [ivoid, file_url, "", "", "the observation", "#this", "image/fits", str(length or "")]
    preview = [ivoid, file_url + ".png", "", "", "a preview", "#preview", "image/png", ""]
    return votable(LINK_FIELDS, [this, preview])


def links_key(ivoid: str) -> str:
    return "/links?" + urllib.parse.urlencode({"ID": ivoid})


def ivoa(name: str, **block: Any) -> dict[str, Any]:
    return {"kind": K + "data/ivoa-data-resource.yaml", "meta": {"name": name}, "ivoa": block}


def by_datalink(name: str, url: str) -> dict[str, Any]:
    return ivoa(name, datalink={"access_url": url, "content_type": DATALINK_TYPE})


def test_a_datalink_url_is_resolved_to_its_this_link_sized_and_staged(
    tmp_path: Path, http_files: HttpFiles
) -> None:
    http_files.files["/files/obs-1.fits"] = FITS
    http_files.files[links_key(IVOID)] = links(
        IVOID, f"{http_files.url}/files/obs-1.fits", len(FITS)
    )
    data = PlatformDataSettings(bandwidth={"127.0.0.1:*": 0.001})
    item = by_datalink("obs", http_files.url + links_key(IVOID))
    offers = LocalBroker(tmp_path / "asked", data, PROGRAM).offers(data=[item])
    assert offers.result == "YES", said(offers)
    host = http_files.url.removeprefix("http://")
    assert f"({len(FITS)} bytes) of data from {host} (1) in about 3 s" in said(offers)
    broker = LocalBroker(tmp_path / "run", PlatformDataSettings(), PROGRAM)
    session = broker.run(data=[item])
    assert session.phase is P.COMPLETED, said(session)
    written = (broker.output(session) / "checksums.txt").read_text().split("\n")
    assert f"obs {len(FITS)} {hashlib.md5(FITS).hexdigest()}" in written


def test_an_ivo_identifier_is_resolved_through_the_configured_datalink_service(
    tmp_path: Path, http_files: HttpFiles
) -> None:
    http_files.files["/files/obs-1.fits"] = FITS
    http_files.files[links_key(IVOID)] = links(IVOID, f"{http_files.url}/files/obs-1.fits", None)
    resolver = IvoaResolverSettings(
        datalink={"ivo://test.example/archive": http_files.url + "/links"}
    )
    broker = LocalBroker(tmp_path, PlatformDataSettings(ivoa=resolver), PROGRAM)
    session = broker.run(data=[ivoa("obs", ivoid=IVOID)])
    assert session.phase is P.COMPLETED, said(session)
    written = (broker.output(session) / "checksums.txt").read_text().split("\n")
    assert f"obs {len(FITS)} {hashlib.md5(FITS).hexdigest()}" in written


def test_several_this_links_are_staged_as_a_folder_of_their_files(
    tmp_path: Path, http_files: HttpFiles
) -> None:
    header = b"the header of obs-2\n" * 10
    http_files.files["/files/obs-2.fits"] = FITS
    http_files.files["/files/obs-2.hdr"] = header
    rows = [
        [IVOID, f"{http_files.url}/files/obs-2.fits", "", "", "", "#this", "image/fits", ""],
        [IVOID, f"{http_files.url}/files/obs-2.hdr", "", "", "", "#this", "text/plain", ""],
        [IVOID, f"{http_files.url}/files/obs-2.png", "", "", "", "#preview", "image/png", ""],
    ]
    http_files.files[links_key(IVOID)] = votable(LINK_FIELDS, rows)
    item = by_datalink("obs", http_files.url + links_key(IVOID))
    total = len(FITS) + len(header)
    offers = LocalBroker(tmp_path / "asked", PlatformDataSettings(), PROGRAM).offers(data=[item])
    assert offers.result == "YES", said(offers)
    assert f"({total} bytes) of data" in said(offers)  # sized by HEAD: no content_length
    broker = LocalBroker(tmp_path / "run", PlatformDataSettings(), PROGRAM)
    session = broker.run(data=[item])
    assert session.phase is P.COMPLETED, said(session)
    written = (broker.output(session) / "checksums.txt").read_text().split("\n")
    assert f"obs/obs-2.fits {len(FITS)} {hashlib.md5(FITS).hexdigest()}" in written
    assert f"obs/obs-2.hdr {len(header)} {hashlib.md5(header).hexdigest()}" in written
    assert not any("png" in line for line in written)


def test_a_datalink_error_or_a_missing_service_is_a_no_naming_the_item(
    tmp_path: Path, http_files: HttpFiles
) -> None:
    error_row = [IVOID, "", "", "NotFoundFault: obs-1 was withdrawn", "", "#this", "", ""]
    http_files.files[links_key(IVOID)] = votable(LINK_FIELDS, [error_row])
    http_files.files["/files/page.html"] = b"<html><body>not a table</body></html>"
    broker = LocalBroker(tmp_path, PlatformDataSettings(), PROGRAM)
    offers = broker.offers(
        data=[
            by_datalink("gone", http_files.url + links_key(IVOID)),
            by_datalink("nowhere", http_files.url + "/links?ID=unknown"),
            by_datalink("html", http_files.url + "/files/page.html"),
        ]
    )
    assert offers.result == "NO"
    text = said(offers)
    assert "data 'gone': " in text
    assert "gives no access URL: NotFoundFault: obs-1 was withdrawn" in text
    assert "data 'nowhere': the DataLink service" in text
    assert "answers HTTP 404" in text
    assert "data 'html': the DataLink answer of " in text
    assert "is not a VOTable" in text


def test_a_length_other_than_the_datalink_row_says_fails_the_preparation(
    tmp_path: Path, http_files: HttpFiles
) -> None:
    http_files.send_md5 = False
    http_files.files["/files/obs-1.fits"] = FITS
    http_files.files[links_key(IVOID)] = links(IVOID, f"{http_files.url}/files/obs-1.fits", 100)
    broker = LocalBroker(tmp_path, PlatformDataSettings(), PROGRAM)
    session = broker.run(data=[by_datalink("obs", http_files.url + links_key(IVOID))])
    assert session.phase is P.FAILED
    assert f"the staged file's bytes is {len(FITS)}, its catalogue says 100" in said(session)


# ------------------------------------------------------------------------- RegTAP
class Registry:
    """A TAP `/sync` endpoint answering RegTAP's capability query, as DaCHS's does."""

    def __init__(self) -> None:
        self.services: dict[str, str] = {}
        self.queries: list[str] = []

    def answer(self, query: str) -> bytes:
        self.queries.append(query)
        if "rr.capability" not in query:
            return votable([], [], status="Could not locate table")
        rows = [[url] for ivoid, url in self.services.items() if f"'{ivoid}'" in query]
        return votable([("access_url", "char")], rows)


@pytest.fixture
def registry() -> Iterator[tuple[Registry, str]]:
    state = Registry()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            body = state.answer(form.get("QUERY", [""])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/x-votable+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/tap"
    server.shutdown()
    server.server_close()


def test_an_ivo_identifier_is_resolved_through_a_regtap_registry(
    tmp_path: Path, http_files: HttpFiles, registry: tuple[Registry, str]
) -> None:
    state, tap = registry
    state.services["ivo://test.example/archive"] = http_files.url + "/links"
    http_files.files["/files/obs-1.fits"] = FITS
    http_files.files[links_key(IVOID)] = links(
        IVOID, f"{http_files.url}/files/obs-1.fits", len(FITS)
    )
    found = datalink.resolve_identifier(IVOID, {}, tap, timeout=5)
    assert found == http_files.url + links_key(IVOID)
    (query,) = state.queries
    assert "c.ivoid = 'ivo://test.example/archive'" in query
    assert "LIKE 'ivo://ivoa.net/std/datalink#links-1.%'" in query

    data = PlatformDataSettings(ivoa=IvoaResolverSettings(regtap=tap))
    broker = LocalBroker(tmp_path, data, PROGRAM)
    offers = broker.offers(
        data=[ivoa("obs", ivoid=IVOID), ivoa("other", ivoid="ivo://elsewhere.example/x?1")]
    )
    assert offers.result == "NO"
    text = said(offers)
    assert "data 'obs'" not in text
    assert f"data 'other': the registry {tap} lists no DataLink service for " in text
    assert "ivo://elsewhere.example/x" in text


OAI_PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">
<responseDate>2026-12-07T00:00:00Z</responseDate>
<request verb="ListRecords" metadataPrefix="ivo_vor">{oai}</request>
<ListRecords><record>
<header><identifier>ivo://test.example/archive</identifier>
<datestamp>2026-12-07T00:00:00Z</datestamp></header>
<metadata>
<ri:Resource xmlns="" xmlns:ri="http://www.ivoa.net/xml/RegistryInterface/v1.0"
  xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:type="vs:CatalogService" created="2026-01-01T00:00:00Z"
  updated="2026-01-01T00:00:00Z" status="active">
<title>A test archive</title>
<identifier>ivo://test.example/archive</identifier>
<curation><publisher>voexec tests</publisher></curation>
<content><subject>observations</subject><description>Observations.</description>
<referenceURL>{links}</referenceURL></content>
<capability standardID="ivo://ivoa.net/std/DataLink#links-1.1">
<interface xsi:type="vs:ParamHTTP" role="std"><accessURL use="base">{links}</accessURL></interface>
</capability>
</ri:Resource>
</metadata></record></ListRecords></OAI-PMH>
"""


@pytest.mark.dachs
@pytest.mark.slow
def test_an_ivo_identifier_is_resolved_through_dachs_regtap_to_its_datalink_service(
    tmp_path: Path, http_files: HttpFiles
) -> None:
    oai = f"{http_files.url}/oai"
    page = OAI_PAGE.format(oai=oai, links=f"{http_files.url}/links").encode()
    http_files.files["/oai?verb=ListRecords&metadataPrefix=ivo_vor"] = page
    http_files.files["/files/obs-1.fits"] = FITS
    http_files.files[links_key(IVOID)] = links(
        IVOID, f"{http_files.url}/files/obs-1.fits", len(FITS)
    )
    tap = dachs_regtap(oai)  # the real DaCHS, its rr tables filled from the record above
    assert datalink.resolve_identifier(IVOID, {}, tap, timeout=30) == (
        http_files.url + links_key(IVOID)
    )
    data = PlatformDataSettings(
        ivoa=IvoaResolverSettings(regtap=tap), probe_timeout=timedelta(seconds=30)
    )
    broker = LocalBroker(tmp_path, data, PROGRAM)
    session = broker.run(data=[ivoa("obs", ivoid=IVOID)])
    assert session.phase is P.COMPLETED, said(session)
    written = (broker.output(session) / "checksums.txt").read_text().split("\n")
    assert f"obs {len(FITS)} {hashlib.md5(FITS).hexdigest()}" in written


def test_data_that_no_longer_resolves_when_the_preparation_starts_fails_the_session(
    tmp_path: Path, http_files: HttpFiles
) -> None:
    http_files.files["/files/obs-1.fits"] = FITS
    http_files.files[links_key(IVOID)] = links(
        IVOID, f"{http_files.url}/files/obs-1.fits", len(FITS)
    )
    broker = LocalBroker(tmp_path, PlatformDataSettings(), PROGRAM)
    offers = broker.offers(data=[by_datalink("obs", http_files.url + links_key(IVOID))])
    assert offers.result == "YES", said(offers)
    del http_files.files[links_key(IVOID)]  # withdrawn between the offer and the preparation
    clear_probe_cache()
    session = tick_until(
        broker.service, accept_first(broker.service, offers), *model.TERMINAL_PHASES
    )
    assert session.phase is P.FAILED
    assert "prepare failed: data 'obs': the DataLink service" in said(session)
    assert "answers HTTP 404" in said(session)
