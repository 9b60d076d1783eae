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


def test_an_unexpected_error_is_a_logged_500_without_a_stack(tmp_settings, caplog):
    from litestar import get

    from voexec.wiring import build_services

    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret internals")

    services = build_services(tmp_settings)
    services.route_handlers.append(boom)
    with TestClient(create_app(tmp_settings, services)) as client:
        answer = client.get("/boom")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "secret internals" not in answer.text
    assert "unexpected error on /boom" in caplog.text
