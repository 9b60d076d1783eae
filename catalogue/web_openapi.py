"""The catalogue's part of the OpenAPI document: its bodies, security and error answers.

Publishing and the hand-off read raw bodies (YAML or JSON), so Litestar cannot infer their
schemas. `document_openapi()` adds them once the app has started, as the broker does: the
publisher document (one executable, or several under `executables`) and the hand-off's
overrides, generated from the Structs by msgspec; the bearer scheme on the writes; and every
error answer a route can give, as problem details (`voexec/problems.py`).

Imports msgspec and Litestar's OpenAPI spec classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, cast

import msgspec
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)

from catalogue.model import ExecutableList, ExecutableSpec, HandOff

__all__ = ["SECURITY_SCHEME", "document_openapi"]

SECURITY_SCHEME: Final = "catalogueBearer"
"""The security scheme of the catalogue's writes, in `components.securitySchemes`."""
_SCHEME: Final = SecurityScheme(
    type="http",
    scheme="bearer",
    description="A token of this voexec (`auth.tokens`) or an OpenID Connect JWT, as "
    "`Authorization: Bearer <token>`. Publishing and withdrawing need a packager or operator; "
    "asking for offers needs a researcher or above unless anonymous runs are allowed.",
)
_REF: Final = "#/components/schemas/{name}"
_BODY_MEDIA: Final = ("application/json", "application/yaml")
PROBLEM: Final = "ProblemDetails"
"""The problem-details schema every error answer has; the app, which shapes those answers
(`voexec/problems.py`), puts it in the components (`voexec/openapi.py`)."""
_ERRORS: Final = {
    "400": "Malformed input; `problems` names each field and reason.",
    "401": "No bearer token was sent, and this route needs one.",
    "403": "The token is not one of this voexec's, or its role may not do this (a packager "
    "withdraws only what it published).",
    "404": "No such entry (or version).",
    "409": "The entry is withdrawn: it cannot be run.",
    "413": "The body is larger than the server accepts.",
    "429": "Too many requests from this identity; `Retry-After` says when to come back.",
}
_HEADERS: Final[dict[str, dict[str, OpenAPIHeader | Reference]]] = {
    "401": {
        "WWW-Authenticate": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.STRING),
            required=True,
            description="`Bearer`: the route takes a bearer token.",
        )
    },
    "429": {
        "Retry-After": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.INTEGER),
            required=True,
            description="Seconds to wait before the next request.",
        )
    },
}


def _ref(name: str) -> Reference:
    return Reference(ref=_REF.format(name=name))


def _errors(*statuses: str) -> dict[str, OpenAPIResponse]:
    content = {"application/problem+json": OpenAPIMediaType(schema=_ref(PROBLEM))}
    return {
        status: OpenAPIResponse(
            description=_ERRORS[status], content=content, headers=_HEADERS.get(status)
        )
        for status in statuses
    }


def _body(schema: Schema | Reference, *, required: bool, description: str) -> RequestBody:
    return RequestBody(
        content={media: OpenAPIMediaType(schema=schema) for media in _BODY_MEDIA},
        required=required,
        description=description,
    )


def _schemas() -> dict[str, Any]:
    """JSON Schemas of the documents the catalogue reads, keyed by component name."""
    _, components = msgspec.json.schema_components(
        (ExecutableSpec, ExecutableList, HandOff), ref_template=_REF
    )
    return components


def document_openapi(openapi: OpenAPI, *, anonymous_may_run: bool) -> None:
    """Describe the catalogue's bodies, security and errors in the app's document (idempotent).

    Args:
        openapi: the app's document, changed in place.
        anonymous_may_run: callers without credentials may ask for offers: the hand-off's
            security requirement is then optional.
    """
    components = openapi.components
    # Raw JSON Schema dicts are rendered as they are by Litestar's OpenAPI serialiser.
    components.schemas = {**(components.schemas or {}), **cast("dict[str, Schema]", _schemas())}
    components.security_schemes = {
        **(components.security_schemes or {}),
        SECURITY_SCHEME: _SCHEME,
    }
    needs_token: list[dict[str, list[str]]] = [{SECURITY_SCHEME: []}]
    publish = Schema(any_of=[_ref(ExecutableSpec.__name__), _ref(ExecutableList.__name__)])
    changes: Mapping[tuple[str, str], dict[str, Any]] = {
        ("/catalogue/executables", "post"): {
            "request_body": _body(
                publish,
                required=True,
                description="An `ivoa-executable.yaml` document, as YAML or JSON: one "
                "executable, or several under `executables`.",
            ),
            "security": needs_token,
            "errors": ("400", "401", "403", "413", "429"),
        },
        ("/catalogue/executables/{entry_id}", "delete"): {
            "security": needs_token,
            "errors": ("401", "403", "404", "429"),
        },
        ("/catalogue/executables/{entry_id}", "get"): {"errors": ("404",)},
        ("/catalogue/executables/{entry_id}/versions/{version}", "get"): {"errors": ("404",)},
        ("/catalogue/executables/{entry_id}/offers", "post"): {
            "request_body": _body(
                _ref(HandOff.__name__),
                required=False,
                description="Optional overrides of the entry's schedule, resources, version, "
                "data and results.",
            ),
            "security": [*needs_token, {}] if anonymous_may_run else needs_token,
            "errors": ("400", "401", "403", "404", "409", "413", "429"),
        },
    }
    for (path, method), change in changes.items():
        item = (openapi.paths or {}).get(path)
        operation = getattr(item, method, None) if item is not None else None
        if operation is None:
            continue
        if "request_body" in change:
            operation.request_body = change["request_body"]
        if "security" in change:
            operation.security = change["security"]
        # A status Litestar inferred (a validation 400) gives way to the problem-details one.
        operation.responses = {**(operation.responses or {}), **_errors(*change["errors"])}
    _also_unchanged(openapi)


def _also_unchanged(openapi: OpenAPI) -> None:
    """Publishing answers 200 (with the same report) when nothing changed, 201 otherwise."""
    item = (openapi.paths or {}).get("/catalogue/executables")
    operation = item.post if item is not None else None
    created = (operation.responses or {}).get("201") if operation is not None else None
    if operation is None or not isinstance(created, OpenAPIResponse):
        return
    created.description = "An entry was created or changed; `Location` names the first."
    operation.responses = {
        "200": OpenAPIResponse(
            description="Every entry of the document was already published unchanged.",
            content=created.content,
        ),
        **(operation.responses or {}),
    }
