"""A small, safe subset of Markdown for descriptions written by packagers.

Publishers write descriptions in Markdown; the pages show paragraphs, bullet and numbered
lists, `code`, *emphasis*, **strong** and [links](https://...). Everything is escaped first and
only these constructs are turned into tags, so a description can never inject markup or
script; links must be http(s) and open as plain links (`rel="nofollow noopener"`). Anything
else (headings, tables, images, raw HTML) shows as its text.

Pure: no I/O.
"""

from __future__ import annotations

import html
import re
from typing import Final

_CODE: Final = re.compile(r"`([^`]+)`")
_STRONG: Final = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_EMPHASIS: Final = re.compile(r"(?<![\w*])[*_](?=\S)(.+?)(?<=\S)[*_](?![\w*])")
_LINK: Final = re.compile(r"\[([^\]]+)\]\((https?://[^\s)]+)\)")
_BULLET: Final = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED: Final = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_HEADING: Final = re.compile(r"^#{1,6}\s+")


def inline_html(text: str) -> str:
    """One line or paragraph of text with inline Markdown turned into safe HTML."""
    escaped = html.escape(text, quote=True)
    codes: list[str] = []

    def keep_code(match: re.Match[str]) -> str:
        codes.append(f"<code>{match.group(1)}</code>")
        return f"\x00{len(codes) - 1}\x00"

    # Code spans first, so that what is inside them is shown as written.
    escaped = _CODE.sub(keep_code, escaped)
    escaped = _LINK.sub(r'<a href="\2" rel="nofollow noopener">\1</a>', escaped)
    escaped = _STRONG.sub(r"<strong>\1</strong>", escaped)
    escaped = _EMPHASIS.sub(r"<em>\1</em>", escaped)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], escaped)


def markdown_html(text: str) -> str:
    """Paragraphs and lists of a Markdown text as safe HTML."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = ""

    def flush_paragraph() -> None:
        if paragraph:
            blocks.append(f"<p>{inline_html(' '.join(paragraph))}</p>")
            paragraph.clear()

    def flush_list() -> None:
        nonlocal list_tag
        if items:
            body = "".join(f"<li>{inline_html(item)}</li>" for item in items)
            blocks.append(f"<{list_tag}>{body}</{list_tag}>")
            items.clear()
        list_tag = ""

    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        bullet, numbered = _BULLET.match(raw), _NUMBERED.match(raw)
        if not line:
            flush_paragraph()
            flush_list()
        elif bullet or numbered:
            flush_paragraph()
            tag = "ul" if bullet else "ol"
            if list_tag and list_tag != tag:
                flush_list()
            list_tag = tag
            items.append((bullet or numbered).group(1))  # type: ignore[union-attr]
        elif items:
            items[-1] += " " + line  # a wrapped list item
        else:
            paragraph.append(_HEADING.sub("", line))
    flush_paragraph()
    flush_list()
    return "".join(blocks)
