"""`create_app(settings)`: the Litestar application, assembled from each package's routes.

Every HTTP answer carries the security headers (`security_headers`): a Content-Security-Policy
that lets pages load scripts, styles and images from this site only (no inline script: the one
inline element, the pages' import map, is allowed by its hash, as is the API reference's style
sheet; style attributes are allowed, `<style>` elements are not), `frame-ancestors 'none'` and
`X-Frame-Options: DENY` (no page can be framed, so none can be clickjacked),
`X-Content-Type-Options: nosniff`, and `Referrer-Policy: same-origin` (offer set and session
URLs are never sent to other sites). A header a handler sets itself wins.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Final

import msgspec
import yaml
from litestar import Litestar, Request, get
from litestar.config.app import AppConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.types import BeforeMessageSendHookHandler, Message, Scope

import voexec
from core.settings import Settings
from voexec.api_reference import STYLE as REFERENCE_STYLE
from voexec.api_reference import ReferenceRenderPlugin
from voexec.openapi import describe_problems
from voexec.problems import EXCEPTION_HANDLERS
from voexec.ui.render import STATIC, STATIC_PATH, Assets
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


def _csp_hash(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


def content_security_policy() -> str:
    """The policy of every answer: this site's own scripts, styles and images only."""
    import_map = Assets(STATIC, STATIC_PATH).import_map()
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {_csp_hash(import_map)}",
            f"style-src 'self' {_csp_hash(REFERENCE_STYLE)}",
            "style-src-attr 'unsafe-inline'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


REFERRER_POLICY: Final = "same-origin"


def security_headers(policy: str) -> BeforeMessageSendHookHandler:
    """A hook adding the security headers (module docstring) to every HTTP answer.

    A `before_send` hook rather than a middleware: Litestar runs it for every answer, those of
    unknown routes and of errors raised before a handler included.
    """
    extra = [
        (b"content-security-policy", policy.encode("ascii")),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", REFERRER_POLICY.encode("ascii")),
    ]

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or [])
            present = {bytes(name).lower() for name, _ in headers}
            headers += [(name, value) for name, value in extra if name not in present]
            message["headers"] = headers

    return add_headers


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
        before_send=[security_headers(content_security_policy())],
        request_max_body_size=settings.server.max_body_bytes,
        on_startup=[services.start, describe_problems],
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
