"""The broker's part of the OpenAPI document: its bodies, answers and schemas.

The broker's handlers read raw bodies (to accept YAML, JSON and the older dialects), so
Litestar cannot infer their schemas. `document_openapi()` adds them once the app has started:
the JSON Schemas of every wire document, generated from the Structs by msgspec (so constraints,
descriptions and each tagged union's `discriminator` mapping come from the types), and each
`/broker` operation's request body, responses and `Location` header. When the broker takes
write tokens, its writes also name the bearer scheme and their 401 and 403 answers, so that
the document describes the broker as it is configured.

Imports msgspec, Litestar's OpenAPI spec classes and the `broker.model*` modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

import msgspec
from litestar.openapi.spec import (
    Discriminator,
    OpenAPI,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)

from broker.model import (
    ERROR_RESPONSE_KIND,
    AnySession,
    AnyUpdate,
    AnyVolume,
    ErrorResponse,
    ExecutionRequest,
    OfferSetResponse,
)
from broker.model.kinds import tags_of
from core.time import Duration, Interval

__all__ = [
    "WRITE_SECURITY_SCHEME",
    "add_missing_discriminators",
    "document_openapi",
    "wire_schemas",
]

_MEDIA: Final = ("application/json", "application/yaml")
_REF: Final = "#/components/schemas/{name}"
WRITE_SECURITY_SCHEME: Final = "brokerBearer"
"""The security scheme of the broker's writes, in `components.securitySchemes`."""
_WRITE_SECURITY: Final = SecurityScheme(
    type="http",
    scheme="bearer",
    description="One of the broker's `write_tokens`, as `Authorization: Bearer <token>`; "
    "needed by every write (POST). Reads need none.",
)


def _schema_hook(type_: type) -> dict[str, Any]:
    if type_ is Duration:
        return {
            "type": "string",
            "format": "duration",
            "title": "ISO8601Duration",
            "description": "A fixed-length ISO-8601 duration: weeks, days, hours, minutes, "
            "seconds (PT1H30M, P2D, P2W). Years and months are refused.",
            "examples": ["PT1H"],
        }
    if type_ is Interval:
        return {
            "type": "string",
            "title": "ISO8601Interval",
            "description": "An ISO-8601 interval: start/end, start/duration or duration/end; "
            "a single instant means exactly then. Instants without a zone are read as UTC.",
            "examples": ["2026-09-01T10:00:00Z/PT2H"],
        }
    raise NotImplementedError(f"no schema for {type_}")


def _with_discriminators_for_single_kinds(node: Any, single: Mapping[str, str]) -> Any:
    """Give the one-member families (volume) a discriminator like the schema's."""
    if isinstance(node, list):
        return [_with_discriminators_for_single_kinds(item, single) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) == 1 and ref in single:
        return {
            "anyOf": [{"$ref": ref}],
            "discriminator": {"propertyName": "kind", "mapping": {single[ref]: ref}},
        }
    return {
        key: _with_discriminators_for_single_kinds(value, single) for key, value in node.items()
    }


def wire_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of every broker document, keyed by component name, with discriminators.

    Generated from the Structs by msgspec, so constraints (`minimum`, `pattern`), descriptions
    and every tagged union's `discriminator` come from the types themselves. The two named
    unions get the schema's names, `AbstractExecutionSession` and `AbstractUpdate`.
    """
    (_, _, session, update, _), components = msgspec.json.schema_components(
        [ExecutionRequest, OfferSetResponse, AnySession, AnyUpdate, ErrorResponse],
        schema_hook=_schema_hook,
        ref_template=_REF,
    )
    components["AbstractExecutionSession"] = session
    components["AbstractUpdate"] = update
    single = {_REF.format(name=family.__name__): tags_of(family)[0] for family in (AnyVolume,)}
    return cast(
        "dict[str, dict[str, Any]]", _with_discriminators_for_single_kinds(components, single)
    )


def _content(name: str) -> dict[str, OpenAPIMediaType]:
    return {
        media: OpenAPIMediaType(schema=Reference(ref=_REF.format(name=name))) for media in _MEDIA
    }


def _session_or_error() -> dict[str, OpenAPIMediaType]:
    """A FAILED session or an error body, told apart by `kind` like every other union."""
    members = {
        **{kind: _REF.format(name=cls) for kind, cls in _session_kinds().items()},
        ERROR_RESPONSE_KIND: _REF.format(name="ErrorResponse"),
    }
    schema = Schema(
        one_of=[Reference(ref=ref) for ref in members.values()],
        discriminator=Discriminator(property_name="kind", mapping=members),
    )
    return {media: OpenAPIMediaType(schema=schema) for media in _MEDIA}


def _session_kinds() -> dict[str, str]:
    info = msgspec.inspect.type_info(AnySession)
    assert isinstance(info, msgspec.inspect.UnionType)
    return {
        str(member.tag): member.cls.__name__
        for member in info.types
        if isinstance(member, msgspec.inspect.StructType)
    }


_LOCATION: Final[dict[str, OpenAPIHeader | Reference]] = {
    "Location": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.URI),
        required=True,
        description="Absolute URL of the created resource.",
    )
}
_ERRORS: Final = {
    "400": "Malformed input; `meta.messages` name each JSON path and reason.",
    "404": "No such offer set or session.",
    "409": "The session's phase does not allow the update; the message names the phase and "
    "the allowed updates, `meta.options` lists them.",
    "413": "The body is larger than the server accepts.",
    "415": "The body's Content-Type is neither JSON nor YAML.",
    "401": "No bearer token was sent, and this broker's writes need one.",
    "403": "The bearer token is not one this broker accepts for writes, or its identity may "
    "not do this (only whoever asked, or an operator, updates a session).",
    "429": "Too many requests from this identity; `Retry-After` says when to come back.",
}
_CHALLENGE: Final[dict[str, OpenAPIHeader | Reference]] = {
    "WWW-Authenticate": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING),
        required=True,
        description="`Bearer`: the route takes a bearer token.",
    )
}
_RETRY_AFTER: Final[dict[str, OpenAPIHeader | Reference]] = {
    "Retry-After": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER),
        required=True,
        description="Seconds to wait before the next request.",
    )
}


def _responses(
    ok: Mapping[str, tuple[str, dict[str, OpenAPIMediaType]]], *errors: str
) -> dict[str, OpenAPIResponse]:
    answers = {
        status: OpenAPIResponse(
            description=description,
            content=content,
            headers=_LOCATION if status == "303" else None,
        )
        for status, (description, content) in ok.items()
    }
    for status in errors:
        answers.setdefault(
            status,
            OpenAPIResponse(
                description=_ERRORS[status],
                content=_content("ErrorResponse"),
                headers={"401": _CHALLENGE, "429": _RETRY_AFTER}.get(status),
            ),
        )
    return answers


def _operations() -> dict[tuple[str, str], tuple[str | None, dict[str, OpenAPIResponse]]]:
    offers = {
        "303": (
            "The offer set, also at `Location` (YES with offers, or NO with messages saying why).",
            _content("OfferSetResponse"),
        )
    }
    session = _content("AbstractExecutionSession")
    return {
        ("/broker/requests", "post"): (
            "ExecutionRequest",
            _responses(offers, "400", "413", "415", "429"),
        ),
        ("/broker/offersets", "post"): (
            "ExecutionRequest",
            _responses(offers, "400", "413", "415", "429"),
        ),
        ("/broker/offersets/{uuid}", "get"): (
            None,
            _responses({"200": ("The offer set.", _content("OfferSetResponse"))}, "404"),
        ),
        ("/broker/sessions/{uuid}", "get"): (
            None,
            _responses({"200": ("The session.", session)}, "404"),
        ),
        ("/broker/sessions/{uuid}", "post"): (
            "AbstractUpdate",
            _responses(
                {"200": ("The updated session.", session)},
                *("400", "403", "404", "409", "413", "415"),
            ),
        ),
        ("/broker/direct", "post"): (
            "ExecutionRequest",
            _responses(
                {
                    "303": ("The new session, also at `Location`.", session),
                    "400": (
                        "A FAILED session whose messages say why, or an ErrorResponse for "
                        "malformed input.",
                        _session_or_error(),
                    ),
                },
                "413",
                "415",
                "429",
            ),
        ),
    }


def document_openapi(openapi: OpenAPI, *, writes_need_token: bool = False) -> None:
    """Describe the broker's bodies and answers in the app's OpenAPI document (idempotent).

    Adds `wire_schemas()` to the components and sets each `/broker` operation's request body,
    responses and `uuid` parameter format. Litestar cannot infer these because the handlers
    read raw bodies to accept YAML, JSON and the older dialects.

    Args:
        openapi: the app's document, changed in place.
        writes_need_token: the broker has write tokens: every write (POST) then names the
            `WRITE_SECURITY_SCHEME` bearer scheme and answers 401 and 403.
    """
    components = openapi.components
    schemas = components.schemas if components.schemas is not None else {}
    # Raw JSON Schema dicts are rendered as they are by Litestar's OpenAPI serialiser.
    schemas.update(cast("dict[str, Schema]", wire_schemas()))
    components.schemas = schemas
    if writes_need_token:
        components.security_schemes = {
            **(components.security_schemes or {}),
            WRITE_SECURITY_SCHEME: _WRITE_SECURITY,
        }
    for (path, method), (body, responses) in _operations().items():
        item = (openapi.paths or {}).get(path)
        operation = getattr(item, method, None) if item is not None else None
        if operation is None:
            continue
        if body is not None:
            operation.request_body = RequestBody(content=_content(body), required=True)
        operation.responses = responses
        if writes_need_token and method == "post":
            operation.responses = {**responses, **_responses({}, "401", "403")}
            operation.security = [{WRITE_SECURITY_SCHEME: []}]
        for parameter in operation.parameters or []:
            if getattr(parameter, "name", None) == "uuid":
                parameter.schema = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.UUID)
    add_missing_discriminators(openapi)


def add_missing_discriminators(openapi: OpenAPI) -> None:
    """Give every union Litestar generated from tagged Structs its `discriminator` (idempotent).

    Litestar writes a tagged union as `oneOf` references whose schemas carry the tag as a
    `const` property, but no `discriminator`; clients and code generators need the mapping.
    Applies to the whole document, so other packages' tagged unions get one too.
    """
    components = openapi.components.schemas or {}

    def tag_of(reference: Reference) -> tuple[str, str] | None:
        """The (property, value) pair that tags the referenced schema, if any."""
        target = components.get(reference.ref.rsplit("/", 1)[-1])
        properties = target.properties or {} if isinstance(target, Schema) else {}
        for name, prop in properties.items():
            if isinstance(prop, Schema) and isinstance(prop.const, str):
                return name, prop.const
        return None

    def discriminate(node: Schema, members: Sequence[Schema | Reference]) -> None:
        references = [m for m in members if isinstance(m, Reference)]
        tags = [tag_of(reference) for reference in references]
        properties = {tag[0] for tag in tags if tag is not None}
        if len(references) < len(members) or None in tags or len(properties) != 1:
            return
        mapping = {tag[1]: ref.ref for tag, ref in zip(tags, references, strict=True) if tag}
        node.discriminator = Discriminator(property_name=properties.pop(), mapping=mapping)

    def visit(node: object) -> None:
        if isinstance(node, dict):
            for child in node.values():
                visit(child)
        if not isinstance(node, Schema):
            return
        members = node.one_of or node.any_of or []
        if node.discriminator is None and members:
            discriminate(node, members)
        for child in (
            *(node.properties or {}).values(),
            node.items,
            *members,
            *(node.all_of or []),
        ):
            visit(child)

    visit(components)
    for item in (openapi.paths or {}).values():
        for operation in (item.get, item.put, item.post, item.patch, item.delete):
            if operation is None:
                continue
            for body in (operation.request_body, *(operation.responses or {}).values()):
                for media in (getattr(body, "content", None) or {}).values():
                    visit(media.schema)
