"""Wires the web pages (`voexec/ui`, `voexec/pages*.py`) into the app (see `voexec/wiring.py`).

Mounts the page routes at `/` and the static files at `/static` (cached for a year: their
URLs carry a digest of their content). Templates are rendered by `voexec.ui.render`, not by
Litestar's template engine, so nothing needs configuring on the app itself. Built last: the
pages read the catalogue, broker and harvest services through their dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from voexec.pages import Pages
from voexec.pages_router import page_router
from voexec.security import security_of
from voexec.ui.render import STATIC, STATIC_PATH, Assets, PageRenderer

if TYPE_CHECKING:
    from voexec.wiring import Services

STATIC_MAX_AGE: Final = 365 * 24 * 3600


def build(services: Services) -> None:
    """Mount the pages and the static files."""
    renderer = PageRenderer(Assets(STATIC, STATIC_PATH))
    services.on_startup.append(renderer.compile_all)
    pages = Pages(
        renderer=renderer,
        settings=services.settings,
        clock=services.clock,
        security=security_of(services),
    )
    services.components["pages"] = pages
    services.route_handlers.append(page_router(pages))
    services.route_handlers.append(
        create_static_files_router(
            path=STATIC_PATH,
            directories=[STATIC],
            cache_control=CacheControlHeader(max_age=STATIC_MAX_AGE, public=True),
            include_in_schema=False,
        )
    )
