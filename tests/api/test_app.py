import yaml
from litestar.testing import TestClient

from voexec.app import create_app


def test_health_and_problem_details_for_unknown_routes(tmp_settings):
    with TestClient(create_app(tmp_settings)) as client:
        assert client.get("/health").json()["status"] == "ok"
        missing = client.get("/no/such/route")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert missing.json()["status"] == 404
        assert missing.json()["instance"] == "/no/such/route"


def test_openapi_document_is_served_in_json_and_yaml(tmp_settings):
    with TestClient(create_app(tmp_settings)) as client:
        assert client.get("/schema/openapi.json").json()["openapi"].startswith("3.1")
        document = yaml.safe_load(client.get("/schema/openapi.yaml").text)
        assert document["openapi"].startswith("3.1")
