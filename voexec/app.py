"""`create_app(settings)`: the Litestar application, assembled from each package's routes."""

from __future__ import annotations

from typing import Any

import msgspec
import yaml
from litestar import Litestar, Request, get
from litestar.config.app import AppConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin

import voexec
from core.settings import Settings
from voexec.api_reference import ReferenceRenderPlugin
from voexec.problems import EXCEPTION_HANDLERS
from voexec.wiring import Services, build_services


class PlainYamlRenderPlugin(YamlRenderPlugin):
    """Serve /schema/openapi.yaml as plain YAML that any client can read.

    Litestar's plugin uses `yaml.dump`, which writes Python tuples (defaults of frozen Structs)
    as `!!python/tuple`; going through JSON first leaves only standard types.
    """

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The document as safe YAML, keys in the order the JSON document has them."""
        plain = msgspec.json.decode(self.render_json(request, openapi_schema))
        return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True).encode("utf-8")


@get("/health", sync_to_thread=False, include_in_schema=False)
def health() -> dict[str, str]:
    """Liveness probe for load balancers and compose healthchecks."""
    return {"status": "ok", "version": voexec.__version__}


def create_app(settings: Settings, services: Services | None = None) -> Litestar:
    """Build the web application for `settings` (services are built if not given)."""
    services = services or build_services(settings)
    config = AppConfig(
        route_handlers=[health, *services.route_handlers],
        dependencies=dict(services.dependencies),
        exception_handlers=dict(EXCEPTION_HANDLERS),  # type: ignore[arg-type]
        request_max_body_size=settings.server.max_body_bytes,
        on_startup=[services.start],
        on_shutdown=[services.stop],
        openapi_config=OpenAPIConfig(
            title="voexec",
            version=voexec.__version__,
            description="Catalogue of astronomy executables and IVOA Execution Broker.",
            path="/schema",
            # The page at /schema is rendered here: Litestar's viewers need a CDN.
            render_plugins=[ReferenceRenderPlugin(), JsonRenderPlugin(), PlainYamlRenderPlugin()],
        ),
    )
    app = Litestar.from_config(config)
    app.state.services = services
    return app
