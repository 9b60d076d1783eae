"""The API reference at `/schema`: the app's OpenAPI document as one plain HTML page.

Litestar's viewers (Swagger UI, Redoc, RapiDoc, Scalar, Elements) load their JavaScript from a
CDN, so they show a blank page on a machine without Internet access, and they would make every
visitor's browser call a third party. This page is rendered on the server from the same
document, needs no script, and links the machine-readable forms (`/schema/openapi.json`,
`/schema/openapi.yaml`).

`reference_page(document)` is pure (document in, HTML out; every value from the document is
escaped); `ReferenceRenderPlugin` serves it through Litestar's OpenAPI router.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, Final

from litestar import Request
from litestar.enums import MediaType
from litestar.openapi.plugins import OpenAPIRenderPlugin

METHODS: Final = ("get", "post", "put", "patch", "delete", "head", "options")
UNTAGGED: Final = "other"
STYLE: Final = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 64rem; padding: 1rem 2rem;
       color: #1d2330; }
h1 { margin-bottom: 0; } h2 { border-bottom: 1px solid #ccd; margin-top: 2.5rem; }
details { border: 1px solid #dde; border-radius: 6px; margin: .5rem 0; padding: .25rem .75rem; }
summary { cursor: pointer; } code, pre { font: 13px/1.4 ui-monospace, monospace; }
.method { display: inline-block; min-width: 4.5rem; font-weight: 700; text-transform: uppercase; }
.deprecated { text-decoration: line-through; color: #667; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { text-align: left; padding: .2rem .6rem; border-bottom: 1px solid #eef; }
th, td { vertical-align: top; }
pre { white-space: pre-wrap; margin: .25rem 0; }
"""


def _text(value: object) -> str:
    return escape(str(value)) if value is not None else ""


def _schema_name(schema: Mapping[str, Any] | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for combiner in ("oneOf", "anyOf"):
        if combiner in schema:
            return " | ".join(_schema_name(part) for part in schema[combiner])
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items'))}"
    kind = schema.get("type", "")
    return " | ".join(kind) if isinstance(kind, list) else str(kind)


def _parameters(parameters: Sequence[Mapping[str, Any]]) -> str:
    if not parameters:
        return ""
    rows = "".join(
        f"<tr><td><code>{_text(p.get('name'))}</code></td><td>{_text(p.get('in'))}</td>"
        f"<td>{'yes' if p.get('required') else ''}</td>"
        f"<td><code>{_text(_schema_name(p.get('schema')))}</code></td>"
        f"<td>{_text(p.get('description'))}</td></tr>"
        for p in parameters
    )
    return (
        "<table><thead><tr><th>parameter</th><th>in</th><th>required</th><th>type</th>"
        f"<th>description</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _media(content: Mapping[str, Any] | None) -> str:
    return ", ".join(
        f"<code>{_text(media)}</code> {_text(_schema_name(body.get('schema')))}"
        for media, body in (content or {}).items()
    )


def _operation(path: str, method: str, operation: Mapping[str, Any]) -> str:
    deprecated = " class='deprecated'" if operation.get("deprecated") else ""
    parts = [
        f"<details><summary><span class='method'>{method}</span>"
        f"<code{deprecated}>{_text(path)}</code> {_text(operation.get('summary'))}</summary>"
    ]
    if operation.get("description"):
        parts.append(f"<pre>{_text(operation['description'])}</pre>")
    if operation.get("security"):
        schemes = sorted({name for item in operation["security"] for name in item})
        parts.append(f"<p>Needs: {_text(', '.join(schemes))}</p>")
    parts.append(_parameters(operation.get("parameters", [])))
    body = operation.get("requestBody")
    if body:
        parts.append(f"<p>Body: {_media(body.get('content'))}</p>")
    responses = "".join(
        f"<tr><td>{_text(status)}</td><td>{_text(answer.get('description'))}</td>"
        f"<td>{_media(answer.get('content'))}</td></tr>"
        for status, answer in operation.get("responses", {}).items()
    )
    if responses:
        parts.append(
            "<table><thead><tr><th>status</th><th>meaning</th><th>body</th></tr></thead>"
            f"<tbody>{responses}</tbody></table>"
        )
    parts.append("</details>")
    return "".join(parts)


def reference_page(document: Mapping[str, Any], json_url: str, yaml_url: str) -> str:
    """The OpenAPI `document` as an HTML page: operations grouped by tag, then the schemas."""
    info = document.get("info", {})
    by_tag: dict[str, list[str]] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            tag = (operation.get("tags") or [UNTAGGED])[0]
            by_tag.setdefault(tag, []).append(_operation(path, method, operation))
    sections = "".join(
        f"<h2 id='{_text(tag)}'>{_text(tag)}</h2>{''.join(operations)}"
        for tag, operations in sorted(by_tag.items())
    )
    schemas = sorted(document.get("components", {}).get("schemas", {}))
    schema_list = ", ".join(f"<code>{_text(name)}</code>" for name in schemas)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # The site's icon, so that browsers do not ask for /favicon.ico (a 404) instead.
        "<link rel='icon' href='/static/img/favicon.svg' type='image/svg+xml'>"
        f"<title>{_text(info.get('title', 'API'))} API reference</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<p><a href='/'>← {_text(info.get('title', 'home'))}</a></p>"
        f"<h1>{_text(info.get('title'))} API reference</h1>"
        f"<p>Version {_text(info.get('version'))} · OpenAPI {_text(document.get('openapi'))} · "
        f"<a href='{_text(json_url)}'>openapi.json</a> · "
        f"<a href='{_text(yaml_url)}'>openapi.yaml</a></p>"
        f"<p>{_text(info.get('description'))}</p>"
        f"<nav>{' · '.join(f'<a href=#{_text(t)}>{_text(t)}</a>' for t in sorted(by_tag))}</nav>"
        f"{sections}<h2 id='schemas'>Schemas</h2><p>{schema_list}</p>"
        "<p>The full schemas are in the machine-readable document above.</p></body></html>"
    )


class ReferenceRenderPlugin(OpenAPIRenderPlugin):
    """Serve `reference_page` at the OpenAPI root (`/schema`) and `/schema/reference`."""

    def __init__(self, json_path: str = "/openapi.json", yaml_path: str = "/openapi.yaml") -> None:
        super().__init__(path=["/", "/reference"], media_type=MediaType.HTML)
        self.json_path = json_path
        self.yaml_path = yaml_path

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The reference page for the app's current OpenAPI document."""
        config = request.app.openapi_config
        root = config.path if config and config.path else "/schema"
        page = reference_page(openapi_schema, root + self.json_path, root + self.yaml_path)
        return page.encode("utf-8")
