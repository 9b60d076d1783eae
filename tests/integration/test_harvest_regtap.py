"""The RegTAP source (pyvo) against a minimal TAP server on loopback.

No RegTAP service ships with the test services (DaCHS has no `rr` tables loaded), so this
server answers TAP's synchronous endpoint (`POST <base>/sync`, form-encoded REQUEST, LANG,
QUERY, MAXREC) with real VOTables built by astropy from `REGISTRY` below: the rows a RegTAP 1.1
service holds for two Execution Brokers, a software resource voexec can run, software it cannot
run, and a data service. It reads just enough of the ADQL to pick the table the query joins and
the `standard_id` it asks for; the ADQL itself is checked to name the RegTAP columns.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile

from harvest.sources.regtap import RegTapClient, RegTapError

BROKER = "ivo://ivoa.net/std/executionbroker"
REGISTRY: list[dict[str, Any]] = [
    {
        "ivoid": "ivo://far.example/broker",
        "res_title": "Far broker",
        "res_type": "vs:catalogservice",
        "reference_url": "https://far.example/",
        "capabilities": [
            (BROKER, "https://far.example/broker"),
            ("ivo://ivoa.net/std/vosi#capabilities", "https://far.example/broker/capabilities"),
        ],
        "subjects": [],
    },
    {
        "ivoid": "ivo://near.example/eb",
        "res_title": "Near broker",
        "res_type": "vs:catalogservice",
        "reference_url": "https://near.example/",
        "capabilities": [(BROKER, "https://near.example/eb")],
        "subjects": [],
    },
    {
        "ivoid": "ivo://cat.example/executables/alpha",
        "res_title": "alpha",
        "res_type": "vr:resource",
        "reference_url": "https://cat.example/executables/alpha",
        "capabilities": [],
        "subjects": ["astronomy-software", "open-source-software"],
    },
    {
        "ivoid": "ivo://elsewhere.example/tool",
        "res_title": "a tool",
        "res_type": "vr:resource",
        "reference_url": "https://elsewhere.example/tool.html",
        "capabilities": [],
        "subjects": ["astronomy-software"],
    },
    {
        "ivoid": "ivo://data.example/tap",
        "res_title": "Some data",
        "res_type": "vs:catalogservice",
        "reference_url": "https://data.example/",
        "capabilities": [("ivo://ivoa.net/std/tap", "https://data.example/tap")],
        "subjects": ["galaxies"],
    },
]


def votable(columns: list[str], rows: list[tuple[str, ...]]) -> bytes:
    document = VOTableFile()
    resource = Resource(type="results")
    document.resources.append(resource)
    table = TableElement(document)
    resource.tables.append(table)
    table.fields.extend(
        Field(document, name=name, datatype="char", arraysize="*") for name in columns
    )
    table.create_arrays(len(rows))
    for index, row in enumerate(rows):
        table.array[index] = row
    output = io.BytesIO()
    document.to_xml(output)
    return output.getvalue()


def answer(query: str) -> bytes:
    """What a RegTAP service answers `query`, for the two shapes the source asks."""
    if "rr.capability" in query:
        assert re.search(r"SELECT r\.ivoid, r\.res_title, i\.access_url", query)
        wanted = re.search(r"c\.standard_id = '([^']+)'", query)
        assert wanted is not None
        rows = [
            (r["ivoid"], r["res_title"], url)
            for r in REGISTRY
            for standard, url in r["capabilities"]
            if standard == wanted[1]
        ]
        return votable(["ivoid", "res_title", "access_url"], rows)
    if "rr.res_subject" in query:
        subjects = set(re.findall(r"'([a-z-]+)'", query.split(" IN ", 1)[1]))
        rows = [
            (r["ivoid"], r["res_title"], r["reference_url"], subject)
            for r in REGISTRY
            if r["res_type"] == "vr:resource"
            for subject in r["subjects"]
            if subject in subjects
        ]
        return votable(["ivoid", "res_title", "reference_url", "res_subject"], rows)
    raise AssertionError(f"unexpected ADQL: {query}")


class TapHandler(BaseHTTPRequestHandler):
    queries: list[str] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        if self.path.rstrip("/") != "/tap/sync" or form.get("LANG") != ["ADQL"]:
            self.send_error(400, "not a TAP sync query")
            return
        query = form["QUERY"][0]
        self.queries.append(query)
        body = answer(query)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-votable+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tap() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TapHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tap"
    finally:
        server.shutdown()
        server.server_close()


def test_execution_brokers_are_found_by_their_capability(tap):
    found = RegTapClient(tap).brokers()
    assert [(b.ivoid, b.title, b.url) for b in found] == [
        ("ivo://far.example/broker", "Far broker", "https://far.example/broker"),
        ("ivo://near.example/eb", "Near broker", "https://near.example/eb"),
    ]
    assert RegTapClient(tap).brokers("ivo://example.org/std/other") == []


def test_software_resources_say_whether_voexec_can_run_them(tap):
    records = {r.ivoid: r for r in RegTapClient(tap).software()}
    assert set(records) == {"ivo://cat.example/executables/alpha", "ivo://elsewhere.example/tool"}
    alpha = records["ivo://cat.example/executables/alpha"]
    assert alpha.subjects == ("astronomy-software", "open-source-software")
    assert alpha.description_url == "https://cat.example/catalogue/executables/alpha"
    assert records["ivo://elsewhere.example/tool"].description_url is None


def test_an_unreachable_service_is_a_regtap_error():
    with pytest.raises(RegTapError, match=r"127\.0\.0\.1:9"):
        RegTapClient("http://127.0.0.1:9/tap").brokers()
