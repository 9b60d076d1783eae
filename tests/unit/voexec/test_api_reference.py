"""The API reference page is built from the OpenAPI document, with every value escaped."""

from voexec.api_reference import reference_page

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "voexec", "version": "0.1.0", "description": "Catalogue & broker"},
    "paths": {
        "/broker/offersets": {
            "post": {
                "tags": ["broker"],
                "summary": "The older name",
                "deprecated": True,
                "security": [{"brokerBearer": []}],
                "requestBody": {"content": {"application/yaml": {"schema": {"$ref": "#/x/Req"}}}},
                "responses": {"303": {"description": "See Other"}},
            }
        },
        "/catalogue/search": {
            "get": {
                "tags": ["catalogue"],
                "summary": "<b>Faceted</b> search",
                "parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "kind",
                        "in": "query",
                        "schema": {"type": "array", "items": {"type": "string"}},
                    },
                ],
                "responses": {
                    "200": {"description": "a page", "content": {"application/json": {}}}
                },
            }
        },
    },
    "components": {"schemas": {"Req": {}, "SearchPage": {}}},
}


def test_operations_are_grouped_by_tag_with_parameters_bodies_and_answers() -> None:
    page = reference_page(DOCUMENT, "/schema/openapi.json", "/schema/openapi.yaml")

    assert page.index("<h2 id='broker'>") < page.index("<h2 id='catalogue'>")
    assert "<code class='deprecated'>/broker/offersets</code>" in page
    assert "Needs: brokerBearer" in page
    assert "<code>application/yaml</code> Req" in page
    assert "<code>kind</code></td><td>query</td><td></td><td><code>list of string</code>" in page
    assert "<td>303</td><td>See Other</td>" in page
    assert "<code>SearchPage</code>" in page
    assert "href='/schema/openapi.yaml'" in page


def test_values_from_the_document_are_escaped() -> None:
    page = reference_page(DOCUMENT, "/j", "/y")

    assert "<b>Faceted</b>" not in page
    assert "&lt;b&gt;Faceted&lt;/b&gt; search" in page
    assert "Catalogue &amp; broker" in page
