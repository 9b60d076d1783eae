"""voexec's publishing registry checked with DaCHS's tools: the IVOA XML schemas and a real
OAI-PMH harvester.

- Every kind of response (each verb, deleted records, errors, VOSI) validates against the
  OAI-PMH, RegistryInterface, VOResource, VORegistry, VODataService, oai_dc and VOSI schemas
  that Debian's DaCHS (`python3-gavo`) ships, with `xmllint --nonet` (libxml2-utils) and an
  XML catalog that maps the schemas' remote locations to the local files.
- DaCHS's OAI-PMH client (`gavo.protocols.oaiclient`, run by the system Python that has DaCHS)
  harvests a live voexec over HTTP, following resumption tokens.
- The throwaway DaCHS of `scripts/services/dachs` becomes a RegTAP 1.1 service holding a live
  voexec's records (`scripts/services/dachs regtap URL`), and pyvo's own registry search, run
  against that TAP service, finds the broker by its capability and the entries by subject.

The first two need `python3-gavo` and `libxml2-utils` (installed by `scripts/services/dachs`),
the last a running DaCHS (`scripts/services/dachs start`, DACHS_TEST_OAI_URL); without them the
tests skip, and fail under `VOEXEC_REQUIRE_SERVICES=1`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import pyvo
import yaml
from defusedxml import ElementTree
from litestar.testing import TestClient
from pyvo.registry import regtap

from core.settings import RegistrySettings, Settings
from tests.catalogue_support import app_settings, executable
from tests.conftest import require_service
from tests.live_server import free_port, serving_in_thread
from voexec.app import create_app

pytestmark = pytest.mark.dachs

REPOSITORY = Path(__file__).resolve().parents[2]
DACHS_URL_ENV = "DACHS_TEST_OAI_URL"
BROKER_STANDARD = "ivo://ivoa.net/std/executionbroker"  # as RegTAP stores it: lower case
SCHEMATA = Path("/usr/lib/python3/dist-packages/gavo/resources/schemata")
DACHS_PYTHON = Path("/usr/bin/python3")
SCHEMA_HOSTS = ("http://docs.g-vo.org/schemata/", "http://vo.ari.uni-heidelberg.de/docs/schemata/")
NAMESPACES = {
    "http://www.openarchives.org/OAI/2.0/": "OAI-PMH.xsd",
    "http://www.openarchives.org/OAI/2.0/oai_dc/": "oai_dc.xsd",
    "http://www.ivoa.net/xml/RegistryInterface/v1.0": "RegistryInterface.xsd",
    "http://www.ivoa.net/xml/VOResource/v1.0": "VOResource.xsd",
    "http://www.ivoa.net/xml/VORegistry/v1.0": "VORegistry.xsd",
    "http://www.ivoa.net/xml/VODataService/v1.1": "VODataService.xsd",
    "http://www.ivoa.net/xml/VOSICapabilities/v1.0": "VOSICapabilities.xsd",
    "http://www.ivoa.net/xml/VOSIAvailability/v1.0": "VOSIAvailability.xsd",
}
OAI = "{http://www.openarchives.org/OAI/2.0/}"
YAML = {
    "authorization": "Bearer s3cret-publisher-token-for-the-tests-only",
    "content-type": "application/yaml",
}
HOW = "install DaCHS's schemas and xmllint with `scripts/services/dachs install`"


def require_dachs_tools() -> None:
    available = (SCHEMATA / "OAI-PMH.xsd").exists() and shutil.which("xmllint") is not None
    require_service("DaCHS (python3-gavo) and xmllint", available, HOW)


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A wrapper schema importing every namespace, and an XML catalog to the local files."""
    require_dachs_tools()
    folder = tmp_path_factory.mktemp("xsd")
    rewrites = "".join(
        f'<rewriteURI uriStartString="{host}" rewritePrefix="{SCHEMATA.as_uri()}/"/>'
        f'<rewriteSystem systemIdStartString="{host}" rewritePrefix="{SCHEMATA.as_uri()}/"/>'
        for host in SCHEMA_HOSTS
    )
    catalog = folder / "catalog.xml"
    catalog.write_text(
        f'<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">{rewrites}</catalog>'
    )
    # Import through the same remote locations the schemas use among themselves, so each
    # namespace is loaded once (xmllint skips a second location for a namespace).
    imports = "".join(
        f'<xs:import namespace="{namespace}" schemaLocation="{SCHEMA_HOSTS[0]}{file}"/>'
        for namespace, file in NAMESPACES.items()
    )
    wrapper = folder / "all.xsd"
    wrapper.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        f'targetNamespace="urn:voexec:all">{imports}</xs:schema>'
    )
    return wrapper, catalog


def validate(schema: tuple[Path, Path], document: bytes, folder: Path, name: str) -> None:
    wrapper, catalog = schema
    path = folder / f"{name}.xml"
    path.write_bytes(document)
    result = subprocess.run(
        ["xmllint", "--nonet", "--noout", "--schema", str(wrapper), str(path)],
        capture_output=True,
        text=True,
        env={"XML_CATALOG_FILES": str(catalog)},
        check=False,
        timeout=60,
    )
    errors = [line for line in result.stderr.splitlines() if "warning" not in line]
    assert result.returncode == 0, f"{name}:\n" + "\n".join(errors)


def registry_settings(data_dir: Path, public_url: str, page_size: int = 2) -> Settings:
    settings = app_settings(data_dir)
    return msgspec.structs.replace(
        settings,
        server=msgspec.structs.replace(settings.server, public_url=public_url),
        registry=RegistrySettings(authority="voexec.test", page_size=page_size),
    )


def test_every_response_validates_against_the_ivoa_schemas(schema, tmp_path):
    settings = registry_settings(tmp_path / "var", "http://127.0.0.1:8000")
    with TestClient(create_app(settings)) as client:
        ids = []
        for name in ("cube-finder", "line-fitter"):
            document = executable(
                name=name,
                authors=[{"name": "Doe, J.", "orcid": "0000-0002-1825-0097"}],
                links={"doi": "10.5281/zenodo.123", "homepage": "https://example.org/x"},
            )
            response = client.post(
                "/catalogue/executables", content=yaml.safe_dump(document), headers=YAML
            )
            ids.append(response.json()["entries"][0]["id"])
        client.delete(f"/catalogue/executables/{ids[1]}", headers=YAML)
        requests = {
            "identify": "verb=Identify",
            "formats": "verb=ListMetadataFormats",
            "formats-of-one": f"verb=ListMetadataFormats&identifier=ivo://voexec.test/{ids[0]}",
            "sets": "verb=ListSets",
            "records-vor": "verb=ListRecords&metadataPrefix=ivo_vor",
            "records-dc": "verb=ListRecords&metadataPrefix=oai_dc&set=ivo_managed",
            "identifiers": "verb=ListIdentifiers&metadataPrefix=ivo_vor&from=2000-01-01",
            "record": f"verb=GetRecord&metadataPrefix=ivo_vor&identifier=ivo://voexec.test/{ids[0]}",
            "deleted": f"verb=GetRecord&metadataPrefix=ivo_vor&identifier=ivo://voexec.test/{ids[1]}",
            "broker": "verb=GetRecord&metadataPrefix=ivo_vor&identifier=ivo://voexec.test/broker",
            "bad-verb": "verb=Nope",
            "bad-argument": "verb=Identify&x=1",
            "no-records": "verb=ListRecords&metadataPrefix=ivo_vor&until=2000-01-01",
            "bad-token": "verb=ListRecords&resumptionToken=abc",
        }
        for name, query in requests.items():
            validate(schema, client.get(f"/registry/oai?{query}").content, tmp_path, name)
        # the last page of a list: an empty resumptionToken with its cursor
        page = client.get("/registry/oai?verb=ListIdentifiers&metadataPrefix=ivo_vor").content
        while (token := ElementTree.fromstring(page).find(f".//{OAI}resumptionToken")) is not None:
            if not token.text:
                break
            page = client.get(
                "/registry/oai", params={"verb": "ListIdentifiers", "resumptionToken": token.text}
            ).content
        validate(schema, page, tmp_path, "last-page")
        for service in ("registry", "broker"):
            for name in ("capabilities", "availability"):
                document = client.get(f"/{service}/{name}").content
                validate(schema, document, tmp_path, f"{service}-{name}")


def test_the_schema_check_catches_a_broken_record(schema, tmp_path):
    settings = registry_settings(tmp_path / "var", "http://127.0.0.1:8000")
    with TestClient(create_app(settings)) as client:
        document = client.get(
            "/registry/oai?verb=GetRecord&metadataPrefix=ivo_vor&identifier=ivo://voexec.test"
        ).content
    broken = document.replace(b"<managingOrg>", b"<managingOrganisation>").replace(
        b"</managingOrg>", b"</managingOrganisation>"
    )
    with pytest.raises(AssertionError, match="managingOrganisation"):
        validate(schema, broken, tmp_path, "broken")


# ----------------------------------------------------------------------------- a real harvester
@pytest.fixture
def live_voexec(tmp_path) -> Iterator[str]:
    """voexec serving over HTTP on a loopback port; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving_in_thread(create_app(registry_settings(tmp_path / "var", base)), port) as url:
        yield url


HARVESTER = """
import json, sys
from gavo.protocols import oaiclient
url = sys.argv[1]
props = oaiclient.getServerProperties(url)
records = oaiclient.getRecords(url, set="ivo_managed")
one = oaiclient.parseRecord(oaiclient.getRecord(url, sys.argv[2]))
print(json.dumps({
    "identify": {
        "repositoryName": props.repositoryName, "baseURL": props.baseURL,
        "granularity": props.granularity, "deletedRecord": props.deletedRecord,
        "adminEmails": props.adminEmails,
    },
    "records": [{"id": r["id"], "title": r.get("title"), "accessURL": r.get("accessURL")}
                for r in records],
    "one": {"id": one["id"], "title": one.get("title")},
}))
"""


def test_dachs_harvests_voexec_over_oai_pmh(live_voexec):
    require_dachs_tools()
    available = (
        DACHS_PYTHON.exists()
        and subprocess.run(
            [str(DACHS_PYTHON), "-c", "import gavo.protocols.oaiclient"],
            capture_output=True,
            check=False,
            timeout=120,
        ).returncode
        == 0
    )
    require_service("DaCHS's OAI-PMH client", available, HOW)
    titles = {"alpha-tool": "Alpha tool", "beta-tool": "Beta tool", "gamma-tool": "Gamma tool"}
    ids = []
    with httpx.Client(base_url=live_voexec, timeout=30) as client:
        for name, title in titles.items():
            response = client.post(
                "/catalogue/executables",
                content=yaml.safe_dump(executable(name=name, title=title)),
                headers=YAML,
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["entries"][0]["id"])
    url = f"{live_voexec}/registry/oai"
    result = subprocess.run(
        [str(DACHS_PYTHON), "-c", HARVESTER, url, f"ivo://voexec.test/{ids[0]}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    harvested = json.loads(result.stdout)
    assert harvested["identify"]["baseURL"] == url
    assert harvested["identify"]["granularity"] == "YYYY-MM-DDThh:mm:ssZ"
    assert harvested["identify"]["deletedRecord"] == "persistent"
    # 3 fixed records + 3 entries at 2 a page: DaCHS followed two resumption tokens
    by_id = {record["id"]: record for record in harvested["records"]}
    assert set(by_id) == {
        "ivo://voexec.test",
        "ivo://voexec.test/registry",
        "ivo://voexec.test/broker",
        *(f"ivo://voexec.test/{entry_id}" for entry_id in ids),
    }
    assert {by_id[f"ivo://voexec.test/{i}"]["title"] for i in ids} == set(titles.values())
    assert by_id["ivo://voexec.test/broker"]["accessURL"] == [
        f"{live_voexec}/broker",
        f"{live_voexec}/broker/capabilities",
        f"{live_voexec}/broker/availability",
    ]
    assert harvested["one"] == {"id": f"ivo://voexec.test/{ids[0]}", "title": "Alpha tool"}


# ----------------------------------------------------------------------------- found over RegTAP
def dachs_regtap(oai_url: str) -> str:
    """Load a registry's records into the running DaCHS's rr tables; its TAP endpoint."""
    require_service(
        "DaCHS",
        bool(os.environ.get(DACHS_URL_ENV)),
        f"start it with `scripts/services/dachs start` ({DACHS_URL_ENV})",
    )
    result = subprocess.run(
        ["bash", str(REPOSITORY / "scripts/services/dachs"), "regtap", oai_url],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    tap: str = result.stdout.strip().splitlines()[-1]
    return tap


def registry_search(tap: str, **constraints: object) -> regtap.RegistryResults:
    """pyvo's `registry.search`, sent to this TAP service instead of the default registry."""
    service = pyvo.dal.TAPService(tap)
    query = regtap.get_RegTAP_query(service=service, **constraints)
    return regtap.RegistryQuery(service.baseurl, query).execute()


def test_pyvo_finds_voexec_through_a_regtap_service(live_voexec):
    entries = {}
    with httpx.Client(base_url=live_voexec, timeout=30) as client:
        for name, subject in (
            ("radio-finder", "radio-interferometry"),
            ("line-fitter", "spectroscopy"),
        ):
            document = executable(name=name, title=f"{name} tool", subjects=[subject])
            response = client.post(
                "/catalogue/executables", content=yaml.safe_dump(document), headers=YAML
            )
            assert response.status_code == 201, response.text
            entries[subject] = f"ivo://voexec.test/{response.json()['entries'][0]['id']}"
    tap = dachs_regtap(f"{live_voexec}/registry/oai")

    brokers = registry_search(tap, servicetype=BROKER_STANDARD)
    assert [(r.ivoid, r.res_type, r.access_url) for r in brokers] == [
        ("ivo://voexec.test/broker", "vr:service", f"{live_voexec}/broker")
    ]
    assert brokers[0].res_title == "voexec Execution Broker"
    # the registry itself is found as the standard says: by its OAI-PMH harvesting capability
    registries = registry_search(tap, servicetype="ivo://ivoa.net/std/registry")
    assert [(r.ivoid, r.access_url) for r in registries] == [
        ("ivo://voexec.test/registry", f"{live_voexec}/registry/oai")
    ]

    radio = registry_search(tap, keywords=["radio-interferometry"])
    assert [r.ivoid for r in radio] == [entries["radio-interferometry"]]
    assert radio[0].res_type == "vr:resource"
    assert radio[0].res_title == "radio-finder tool"
    spectra = registry_search(tap, keywords=["spectroscopy"])
    assert [r.ivoid for r in spectra] == [entries["spectroscopy"]]
    software = registry_search(tap, keywords=["astronomy-software"])
    assert {r.ivoid for r in software} == {
        "ivo://voexec.test/broker",
        "ivo://voexec.test/registry",
        *entries.values(),
    }
