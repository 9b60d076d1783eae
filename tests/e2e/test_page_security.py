"""Every answer carries the security headers; pages run no inline script; page writes refuse
an opaque origin (`Origin: null`)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.catalogue_support import app_settings
from voexec.app import create_app

pytestmark = pytest.mark.shared

TEMPLATES = Path(__file__).parents[2] / "voexec" / "ui" / "templates"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    settings = app_settings(tmp_path_factory.mktemp("security"), demo=True)
    with TestClient(create_app(settings)) as client:
        yield client


def entry(client: TestClient[Any]) -> str:
    hits = client.get("/catalogue/search", params={"q": "aoflagger"}).json()["hits"]
    return str(hits[0]["id"])


def directives(policy: str) -> dict[str, list[str]]:
    parts = (part.strip().split() for part in policy.split(";") if part.strip())
    return {words[0]: words[1:] for words in parts}


@pytest.mark.parametrize(
    "path",
    ["/", "/platforms", "/sign-in", "/schema", "/catalogue/search", "/health", "/no-such-page"],
)
def test_every_answer_carries_the_security_headers(client, path):
    answer = client.get(path)
    policy = directives(answer.headers["content-security-policy"])
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert policy["object-src"] == ["'none'"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"


def test_the_only_inline_script_is_the_import_map_and_the_policy_allows_exactly_it(client):
    for path in ["/", f"/executables/{entry(client)}", "/platforms", "/sign-in"]:
        page = client.get(path)
        inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>(.*?)</script>", page.text, re.S)
        assert [attributes.strip() for attributes, _ in inline] == ['type="importmap"'], path
        digest = hashlib.sha256(inline[0][1].encode()).digest()
        allowed = directives(page.headers["content-security-policy"])["script-src"]
        assert f"'sha256-{base64.b64encode(digest).decode()}'" in allowed


def test_no_template_has_an_inline_event_handler_or_script():
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"\son[a-z]+\s*=", text), template
        assert not re.search(r"javascript:", text, re.I), template
        for match in re.finditer(r"<script([^>]*)>", text):
            assert "src=" in match.group(1) or "importmap" in match.group(1), template


@pytest.mark.parametrize("origin", ["null", "NULL", "https://elsewhere.example"])
def test_page_writes_refuse_an_opaque_or_foreign_origin(client, origin):
    form = {"cores": "2", "memory": "4", "gpus": "0", "duration": "1", "unit": "h", "data": ""}
    headers = {"Origin": origin}
    writes = [
        client.post("/sign-in", data={"token": "x"}, headers=headers),
        client.post("/sign-out", data={}, headers=headers),
        client.post(f"/executables/{entry(client)}/offers", data=form, headers=headers),
        client.post(
            "/sessions/00000000-0000-4000-8000-000000000000",
            data={"phase": "CANCELLED"},
            headers=headers,
        ),
    ]
    assert [answer.status_code for answer in writes] == [403, 403, 403, 403]


def test_a_same_site_origin_is_still_accepted(client):
    made = client.post(
        f"/executables/{entry(client)}/offers",
        data={"cores": "2", "memory": "4", "gpus": "0", "duration": "1", "unit": "h", "data": ""},
        headers={"Origin": "http://testserver.local"},
        follow_redirects=False,
    )
    assert made.status_code == 303
