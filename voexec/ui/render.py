"""Renders the page templates with Jinja and names static files by their content.

The only module that imports jinja2. Templates live in `voexec/ui/templates`, static files in
`voexec/ui/static`; both ship inside the package, so the pages work with no network at all (no
CDN, no web fonts).

Static URLs carry a digest of the file (`/static/css/app.css?v=1a2b3c4d5e`), computed once at
start-up, so browsers may cache them for a year and still see a new version at once.
Templates are compiled once and cached (no reloading): rendering a page costs a few
milliseconds, which matters for the 300 ms page budget.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from voexec.ui import formats, text

UI_FOLDER: Final = Path(__file__).resolve().parent
TEMPLATES: Final = UI_FOLDER / "templates"
STATIC: Final = UI_FOLDER / "static"
STATIC_PATH: Final = "/static"


class Assets:
    """Fingerprinted URLs of the static files under one folder."""

    def __init__(self, folder: Path = STATIC, prefix: str = STATIC_PATH) -> None:
        self.folder = folder
        self.prefix = prefix.rstrip("/")
        self.digests: dict[str, str] = {
            path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:10]
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }

    def import_map(self) -> str:
        """A JSON import map that gives every script module its fingerprinted URL.

        Scripts import each other by plain relative paths (`./common.js`); the map sends those
        to the same versioned URLs the pages use, so each module loads once, and a new
        version is never hidden behind a cached old one.
        """
        imports = {
            f"{self.prefix}/{name}": self.url(name) for name in self.digests if name.endswith(".js")
        }
        return json.dumps({"imports": imports}, separators=(",", ":"))

    def url(self, name: str) -> str:
        """The URL of a static file, e.g. `css/app.css`.

        Raises:
            KeyError: no such file (a template names a file that is not shipped).
        """
        return f"{self.prefix}/{name}?v={self.digests[name]}"


FILTERS: Final = {
    "duration": formats.duration_text,
    "instant": formats.instant_text,
    "iso": formats.iso,
    "number": formats.number_text,
    "gib": formats.gib_text,
    "plural": formats.plural,
    "short_hash": formats.short_hash,
    # `text.markdown_html` escapes everything it does not turn into one of its own tags.
    "markdown": lambda source: Markup(text.markdown_html(str(source or ""))),  # noqa: S704
}


class PageRenderer:
    """Renders the page templates; one instance per process."""

    def __init__(self, assets: Assets | None = None, globals_: Mapping[str, Any] | None = None):
        self.assets = assets or Assets()
        self.environment = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(("html", "svg"), default_for_string=True),
            # A missing variable is a bug in a page, not an empty string to show people.
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.environment.filters.update(FILTERS)
        self.environment.globals.update(
            {
                "static": self.assets.url,
                "import_map": Markup(self.assets.import_map()),  # noqa: S704 - our own JSON
                "countdown": formats.countdown_text,
                **(globals_ or {}),
            }
        )

    def compile_all(self) -> None:
        """Compile every template now (at start-up), so that no reader waits for it."""
        for name in self.environment.list_templates(extensions=("html",)):
            self.environment.get_template(name)

    def render(self, template: str, **context: Any) -> str:
        """The HTML of one template with `context`."""
        return self.environment.get_template(template).render(**context)
