"""The RegTAP source (pyvo) against a minimal TAP server on loopback, and against DaCHS.

The minimal server answers TAP's synchronous endpoint (`POST <base>/sync`, form-encoded REQUEST,
LANG, QUERY, MAXREC) with real VOTables built by astropy from `REGISTRY` below: the rows a RegTAP
1.1 service holds for two Execution Brokers, a software resource voexec can run, software it
cannot run, and a data service. It reads just enough of the ADQL to pick the table the query
joins and the `standard_id` it asks for; the ADQL itself is checked to name the RegTAP columns.
It makes failures (503s, a dead service) easy to stage.

The last test asks a real RegTAP service: the throwaway DaCHS of `scripts/services/dachs`, whose
rr tables `scripts/services/dachs regtap URL` fills from a publishing voexec's OAI-PMH records
(marker `dachs`; it skips without DaCHS, and fails under `VOEXEC_REQUIRE_SERVICES=1`).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import msgspec
import pytest
import yaml
from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile
from litestar.testing import TestClient

from core.settings import BrokerSettings, RegTapSource, Settings
from harvest.cli import format_report
from harvest.sources.regtap import RegTapClient, RegTapError
from tests.catalogue_support import app_settings, executable
from tests.integration.test_registry_dachs import dachs_regtap
from tests.live_server import free_port, serving_in_thread
from voexec.app import create_app
from voexec.wiring import build_services

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


def answer(query: str, registry: list[dict[str, Any]] = REGISTRY) -> bytes:
    """What a RegTAP service answers `query`, for the two shapes the source asks."""
    if "rr.capability" in query:
        assert re.search(r"SELECT r\.ivoid, r\.res_title, i\.access_url", query)
        wanted = re.search(r"c\.standard_id = '([^']+)'", query)
        assert wanted is not None
        rows = [
            (r["ivoid"], r["res_title"], url)
            for r in registry
            for standard, url in r["capabilities"]
            if standard == wanted[1]
        ]
        return votable(["ivoid", "res_title", "access_url"], rows)
    if "rr.res_subject" in query:
        subjects = set(re.findall(r"'([a-z-]+)'", query.split(" IN ", 1)[1]))
        rows = [
            (r["ivoid"], r["res_title"], r["reference_url"], subject)
            for r in registry
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
        if getattr(self.server, "failures", 0):
            self.server.failures -= 1  # type: ignore[attr-defined]
            self.send_error(503, "busy")
            return
        body = answer(query, getattr(self.server, "registry", REGISTRY))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-votable+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tap_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TapHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tap(tap_server) -> str:
    return f"http://127.0.0.1:{tap_server.server_address[1]}/tap"


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


# ------------------------------------------------------------------ the harvest source
YAML = {
    "authorization": "Bearer s3cret-publisher-token-for-the-tests-only",
    "content-type": "application/yaml",
}


@pytest.fixture
def publisher(tmp_path) -> Iterator[str]:
    """A voexec whose entry pages the registry's software records point at; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = app_settings(tmp_path / "publisher")
    settings = msgspec.structs.replace(
        settings, server=msgspec.structs.replace(settings.server, public_url=base)
    )
    with serving_in_thread(create_app(settings), port) as url:
        yield url


def publish(base: str, name: str) -> str:
    with httpx.Client(base_url=base, timeout=30) as client:
        body = yaml.safe_dump(executable(name=name, title=f"{name.title()} tool"))
        answer = client.post("/catalogue/executables", content=body, headers=YAML)
        assert answer.status_code == 201, answer.text
        entry_id: str = answer.json()["entries"][0]["id"]
        return entry_id


def software(ivoid: str, reference_url: str) -> dict[str, Any]:
    return {
        "ivoid": ivoid,
        "res_title": ivoid.rsplit("/", 1)[-1],
        "res_type": "vr:resource",
        "reference_url": reference_url,
        "capabilities": [],
        "subjects": ["astronomy-software"],
    }


def harvest_settings(tmp_path: Path, tap: str, **source: Any) -> Settings:
    settings = app_settings(tmp_path / "harvester")
    regtap = RegTapSource(name="registry", url=tap, **source)
    harvest = msgspec.structs.replace(settings.harvest, sources=[regtap], max_retries=2)
    return msgspec.structs.replace(settings, harvest=harvest)


def test_a_regtap_source_lists_brokers_and_publishes_software(tap_server, tap, publisher, tmp_path):
    alpha = publish(publisher, "alpha")
    alpha_ivoid = "ivo://publisher.test/alpha"
    tap_server.registry = [  # type: ignore[attr-defined]
        *REGISTRY[:2],
        software(alpha_ivoid, f"{publisher}/executables/{alpha}"),
        REGISTRY[3],
    ]
    settings = harvest_settings(tmp_path, tap)
    services = build_services(settings)
    pipeline = services.components["harvest"]
    catalogue = services.components["catalogue"]

    report = pipeline.run("registry")  # what `voexec harvest --source registry` runs
    assert report.status == "succeeded", report.problems
    assert [(p.ivoid, p.url, p.name) for p in report.platforms] == [
        ("ivo://far.example/broker", "https://far.example/broker", "far-example-broker"),
        ("ivo://near.example/eb", "https://near.example/eb", "near-example-eb"),
    ]
    # the block is what an operator pastes: it is valid broker settings for a remote platform
    pasted = yaml.safe_load(report.platforms[0].settings)
    broker = msgspec.convert(pasted["broker"], BrokerSettings)
    assert broker.platforms[0].adapter == "remote"
    assert broker.platforms[0].remote is not None
    assert broker.platforms[0].remote.url == "https://far.example/broker"

    records = {r.path: r for r in report.project_reports}
    assert records[alpha_ivoid].status == "harvested"
    assert records[alpha_ivoid].counts.new == 1
    assert records["ivo://elsewhere.example/tool"].status == "skipped"
    [entry_id] = catalogue.entry_ids("registry", alpha_ivoid)
    assert catalogue.get(entry_id).spec.title == "Alpha tool"

    # the stored report keeps the candidates; the CLI and the page show them
    stored = pipeline.store.report(report.run_id)
    assert [p.ivoid for p in stored.platforms] == [p.ivoid for p in report.platforms]
    text = format_report(stored)
    assert "candidate remote platforms: 2" in text
    assert "url: https://near.example/eb" in text
    assert "adapter: remote" in text
    with TestClient(create_app(settings)) as client:
        page = client.get("/harvest", params={"run": report.run_id})
    assert page.status_code == 200
    assert "2 candidate remote platforms" in page.text
    assert "https://far.example/broker" in page.text
    assert "RegTAP" in page.text

    # gone from the registry: withdrawn here
    tap_server.registry = REGISTRY[:2]  # type: ignore[attr-defined]
    again = pipeline.run("registry")
    assert again.status == "succeeded", again.problems
    gone = {r.path: r for r in again.project_reports}[alpha_ivoid]
    assert gone.status == "deleted"
    assert gone.counts.withdrawn == 1
    assert catalogue.entry_ids("registry") == []


def test_a_busy_registry_is_asked_again_and_a_dead_one_reported(tap_server, tap, tmp_path):
    tap_server.failures = 2  # type: ignore[attr-defined]
    services = build_services(harvest_settings(tmp_path, tap, find=["brokers"]))
    harvest = services.components["harvest"]._regtap_harvest()
    harvest.sleep = lambda seconds: None
    report = harvest.run("registry")
    assert report.status == "succeeded", report.problems
    assert len(report.platforms) == 2

    dead = harvest_settings(tmp_path / "dead", "http://127.0.0.1:9/tap")
    services = build_services(dead)
    harvest = services.components["harvest"]._regtap_harvest()
    harvest.sleep = lambda seconds: None
    report = harvest.run("registry")
    assert report.status == "failed"
    assert {p.field for p in report.problems} == {"brokers", "software"}
    assert all("127.0.0.1:9" in p.reason for p in report.problems)


@pytest.mark.dachs
def test_a_regtap_source_reads_dachs_holding_a_publishers_records(publisher, tmp_path):
    alpha = publish(publisher, "alpha")
    alpha_ivoid = f"ivo://voexec.example/{alpha}"
    tap = dachs_regtap(f"{publisher}/registry/oai")
    services = build_services(harvest_settings(tmp_path, tap))
    pipeline = services.components["harvest"]
    catalogue = services.components["catalogue"]

    report = pipeline.run("registry")
    assert report.status == "succeeded", report.problems
    assert [(p.ivoid, p.url) for p in report.platforms] == [
        ("ivo://voexec.example/broker", f"{publisher}/broker")
    ]
    # the broker and registry records are services, not plain software resources
    records = {r.path: r for r in report.project_reports}
    assert set(records) == {alpha_ivoid}
    assert records[alpha_ivoid].status == "harvested", records[alpha_ivoid].problems
    assert records[alpha_ivoid].counts.new == 1
    [entry_id] = catalogue.entry_ids("registry", alpha_ivoid)
    assert catalogue.get(entry_id).spec.title == "Alpha tool"

    # withdrawn by its publisher: once the registry no longer lists it, withdrawn here
    with httpx.Client(base_url=publisher, timeout=30) as client:
        gone = client.delete(f"/catalogue/executables/{alpha}", headers=YAML)
        assert gone.status_code in {200, 204}, gone.text
    dachs_regtap(f"{publisher}/registry/oai")
    again = pipeline.run("registry")
    assert again.status == "succeeded", again.problems
    assert {r.path: r for r in again.project_reports}[alpha_ivoid].status == "deleted"
    assert catalogue.entry_ids("registry") == []
