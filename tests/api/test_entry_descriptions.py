"""Entry descriptions: Markdown written by packagers, shown on the entry page as safe HTML.

Whatever a description holds (control characters, raw HTML, script links), its page answers
and carries no markup but the Markdown's own; lists, emphasis, code and http(s) links render.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import TestClient

from tests.catalogue_support import app_settings, executable
from voexec.app import create_app
from voexec.ui import text

TOKEN = {"authorization": "Bearer s3cret-publisher-token-for-the-tests-only"}
YAML = {**TOKEN, "content-type": "application/yaml"}
DESCRIPTION = re.compile(r'<div class="description">(.*?)</div>', re.DOTALL)

# What Markdown may produce, and the attributes each tag may carry.
PLAIN_TAGS = [
    "p",
    "ul",
    "li",
    "em",
    "strong",
    "pre",
    "blockquote",
    "hr",
    "br",
    "h3",
    "h4",
    "h5",
    "h6",
]
ALLOWED: dict[str, set[str]] = {
    **{tag: set() for tag in PLAIN_TAGS},
    "a": {"href", "title", "rel"},
    "ol": {"start"},
    "code": {"class"},
}


class _Markup(HTMLParser):
    """Every tag of a piece of HTML with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def markup(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Markup()
    parser.feed(html)
    parser.close()
    return parser.tags


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(app_settings(tmp_path))) as client:
        yield client


def entry_page_description(client: TestClient[Any], description: str) -> str:
    """Publish an entry with this description; the HTML its page shows for it."""
    body = yaml.safe_dump(executable(description=description))
    published = client.post("/catalogue/executables", content=body, headers=YAML)
    assert published.status_code == 201, published.text
    entry = published.json()["entries"][0]["id"]
    page = client.get(f"/executables/{entry}")
    assert page.status_code == 200, page.text
    [shown] = DESCRIPTION.findall(page.text)
    return str(shown)


def test_a_description_with_nul_characters_is_shown(client):
    shown = entry_page_description(client, "Finds a\x007\x00 source\x00 in `x\x000\x00`.")
    assert "Finds a" in shown
    assert "\x00" not in shown
    assert "<code>" in shown


def test_a_description_cannot_inject_markup_or_script_links(client):
    shown = entry_page_description(
        client,
        "<script>alert(1)</script>\n\n[bad](javascript:alert(1)) <img src=x onerror=alert(1)>",
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown
    assert [tag for tag, _ in markup(shown)] == ["p", "p"]


def test_lists_emphasis_code_and_links_render_on_the_page(client):
    shown = entry_page_description(
        client,
        "Finds *sources* in **cubes**; see [the docs](https://x.org/d) or `sofia -p`.\n\n"
        "- one\n- two\n\n1. first\n2. second",
    )
    assert "<em>sources</em>" in shown
    assert "<strong>cubes</strong>" in shown
    assert '<a href="https://x.org/d" rel="nofollow noopener">the docs</a>' in shown
    assert "<code>sofia -p</code>" in shown
    assert re.search(r"<ul>\s*<li>one</li>\s*<li>two</li>\s*</ul>", shown)
    assert re.search(r"<ol>\s*<li>first</li>\s*<li>second</li>\s*</ol>", shown)


def test_only_web_and_mail_links_images_and_headings_stay_below_the_page():
    html = text.markdown_html(
        "# Usage\n\n[relative](docs/a.md) [data](data:text/html,x) [mail](mailto:a@b.org) "
        "![logo](https://x.org/logo.png)"
    )
    assert "<h3>Usage</h3>" in html
    assert "<h1>" not in html
    assert "[relative](docs/a.md)" in html
    assert 'href="data:' not in html
    assert '<a href="mailto:a@b.org" rel="nofollow noopener">mail</a>' in html
    assert "<img" not in html
    assert '<a href="https://x.org/logo.png" rel="nofollow noopener">logo</a>' in html


def test_inline_text_renders_without_a_paragraph():
    assert text.inline_html("*a* <i>b</i>") == "<em>a</em> &lt;i&gt;b&lt;/i&gt;"


# Pieces that make Markdown constructs, and the ones an attacker would try, joined at random.
MARKDOWNISH = st.lists(
    st.sampled_from(
        [*"ab <>&\"'`*_[]()!#-+.:/\\\n\x00\t=1", "javascript:", "https://", "mailto:", "<script>"]
    ),
    max_size=80,
).map("".join)


@given(st.one_of(st.text(max_size=200), MARKDOWNISH))
def test_descriptions_never_carry_other_markup_through(source):
    html = text.markdown_html(source)
    for tag, attributes in markup(html):
        assert tag in ALLOWED, (tag, source)
        assert set(attributes) <= ALLOWED[tag], (tag, attributes, source)
        if tag == "a":
            assert re.match(r"(https?:|mailto:)", attributes["href"] or ""), source
            assert attributes["rel"] == "nofollow noopener"
