"""Descriptions written by packagers, in Markdown, rendered as safe HTML for the pages.

The one module that imports markdown-it-py. Descriptions are CommonMark with these limits, so
that a description can never inject markup or script, nor make the page load anything:

- raw HTML is off: `<script>` and every other tag show as their text;
- links must be absolute `http`, `https` or `mailto` URLs (anything else, `javascript:`
  included, shows as its text) and carry `rel="nofollow noopener"`;
- images are off: a page loads nothing from another site, so `![alt](url)` shows as a link;
- headings are moved two levels down (`#` becomes `<h3>`), beneath the page's own headings.

CommonMark replaces NUL characters with U+FFFD, so no input makes rendering fail.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

_LINK_SCHEMES: Final = ("http://", "https://", "mailto:")
_LINK_REL: Final = "nofollow noopener"
# The page shows a description under an <h2>, so its top heading is an <h3>.
_HEADING_SHIFT: Final = 2
_DEEPEST_HEADING: Final = 6


class _Descriptions(MarkdownIt):
    """CommonMark whose links must also use one of the schemes we allow."""

    def validateLink(self, url: str) -> bool:  # noqa: N802 (markdown-it's name)
        """Markdown-it's own check (no `javascript:`, `vbscript:`, ...), then our schemes."""
        return super().validateLink(url) and url.strip().lower().startswith(_LINK_SCHEMES)


def _link_open(
    renderer: RendererHTML,
    tokens: Sequence[Token],
    index: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    tokens[index].attrSet("rel", _LINK_REL)
    return renderer.renderToken(tokens, index, options, env)


def _heading(
    renderer: RendererHTML,
    tokens: Sequence[Token],
    index: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    token = tokens[index]
    level = min(int(token.tag.removeprefix("h")) + _HEADING_SHIFT, _DEEPEST_HEADING)
    token.tag = f"h{level}"
    return renderer.renderToken(tokens, index, options, env)


def _markdown() -> MarkdownIt:
    markdown = _Descriptions("commonmark", {"html": False, "linkify": False}).disable("image")
    markdown.add_render_rule("link_open", _link_open)
    markdown.add_render_rule("heading_open", _heading)
    markdown.add_render_rule("heading_close", _heading)
    return markdown


_MARKDOWN: Final = _markdown()


def inline_html(text: str) -> str:
    """One line or paragraph of text with inline Markdown turned into safe HTML."""
    html: str = _MARKDOWN.renderInline(text)
    return html


def markdown_html(text: str) -> str:
    """A Markdown text (paragraphs, lists, code, links, ...) as safe HTML."""
    html: str = _MARKDOWN.render(text)
    return html
