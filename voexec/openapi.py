"""The error answers of the whole OpenAPI document, as `voexec/problems.py` gives them.

Every route outside `/broker` answers errors as RFC 9457 problem details
(`application/problem+json`), but Litestar documents only a validation 400 in a shape of its own
(`status_code`, `detail`, `extra`). `describe_problems(app)` runs at start-up and puts right:
the `ProblemDetails` schema in the components, every such 400 as problem details, a 404 on
every operation with a path parameter (an unknown name or id), and the GitLab webhook's body and
its 401, 403 and 429. The broker answers in its own `ErrorResponse` shape and documents it
(`broker/web_openapi.py`); the catalogue documents its bodies and writes
(`catalogue/web_openapi.py`) with this module's `ProblemDetails`.
"""

from __future__ import annotations

from typing import Any, Final, cast

from litestar import Litestar
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    RequestBody,
    Schema,
)

from voexec.problems import PROBLEM_JSON

PROBLEM: Final = "ProblemDetails"
"""The component name of the problem-details schema."""
PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "title": PROBLEM,
    "description": "RFC 9457 problem details; `problems` names each field at fault.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "reason": {"type": "string"},
                    "suggestions": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["field", "reason"],
            },
        },
    },
    "required": ["title", "status", "detail"],
}
_LITESTAR_400: Final = "Bad request syntax or unsupported method"
"""The description Litestar gives the validation 400 it adds to every operation."""
_WEBHOOK: Final = ("/harvest/webhooks/gitlab/{source}", "post")
_REPORTS: Final = ("/harvest/reports", "get")
"""Its `source` query parameter names a source, which may not exist."""
_GITLAB_EVENT: Final = Schema(
    type=OpenAPIType.OBJECT,
    description="A GitLab push or tag push event; only `object_kind`, `project_id` (or "
    "`project.id`) and `ref` are read.",
)


def problem_response(description: str, headers: dict[str, Any] | None = None) -> OpenAPIResponse:
    """An error answer as problem details."""
    return OpenAPIResponse(
        description=description,
        content={
            PROBLEM_JSON: OpenAPIMediaType(schema=Reference(ref=f"#/components/schemas/{PROBLEM}"))
        },
        headers=headers,
    )


def _header(name: str, kind: OpenAPIType, description: str) -> dict[str, OpenAPIHeader | Reference]:
    return {name: OpenAPIHeader(schema=Schema(type=kind), required=True, description=description)}


def document_problems(openapi: OpenAPI) -> None:
    """Describe the problem-details errors in `openapi`, in place (idempotent)."""
    components = openapi.components
    schemas = {**(components.schemas or {}), PROBLEM: cast("Schema", PROBLEM_SCHEMA)}
    components.schemas = schemas
    for path, item in (openapi.paths or {}).items():
        if path.startswith("/broker/"):
            continue  # the broker's own ErrorResponse shape, documented by the broker
        for method in ("get", "put", "post", "patch", "delete"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = dict(operation.responses or {})
            current = responses.get("400")
            if isinstance(current, OpenAPIResponse) and current.description == _LITESTAR_400:
                responses["400"] = problem_response(
                    "Malformed input; `problems` names each field and reason."
                )
            has_path_parameter = any(
                getattr(parameter, "param_in", None) == "path"
                for parameter in operation.parameters or []
            )
            if has_path_parameter or (path, method) == _REPORTS:
                responses.setdefault("404", problem_response("Nothing by that name or id."))
            if (path, method) == _WEBHOOK:
                operation.request_body = RequestBody(
                    content={"application/json": OpenAPIMediaType(schema=_GITLAB_EVENT)},
                    required=True,
                )
                accepted = responses.get("202")
                if isinstance(accepted, OpenAPIResponse):
                    responses.setdefault(
                        "200",
                        OpenAPIResponse(
                            description="An event that changes no published file: ignored.",
                            content=accepted.content,
                        ),
                    )
                responses.setdefault(
                    "401",
                    problem_response(
                        "The `X-Gitlab-Token` header is missing.",
                        _header("WWW-Authenticate", OpenAPIType.STRING, "`Bearer`."),
                    ),
                )
                responses.setdefault(
                    "403",
                    problem_response("Webhooks are off for the source, or the token is wrong."),
                )
                responses.setdefault(
                    "429",
                    problem_response(
                        "Too many calls from this address.",
                        _header("Retry-After", OpenAPIType.INTEGER, "Seconds to wait."),
                    ),
                )
            operation.responses = responses


def describe_problems(app: Litestar) -> None:
    """Start-up hook: `document_problems` on the app's document."""
    if app.openapi_config is not None:
        document_problems(app.openapi_schema)
