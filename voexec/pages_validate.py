"""The validator's web page: `GET /validate?url=` runs the non-booking scenarios and shows them.

Only this server's own broker (`<public URL>/broker`) and the brokers listed in
`validate.allowed_urls` may be validated: any other URL answers 403 before a single request is
made, so the page cannot be used to make this server call arbitrary hosts. Checking the local
broker writes to it (offers asked for, then rejected): with `broker.write_tokens` set, that
needs a page sign-in (or a bearer token), and the validator then uses a configured token.
Scenarios that book are never run from here, nor is the expiry wait. Imports Litestar,
`voexec.pages` and `voexec.validate`; not the other page modules.
"""

from __future__ import annotations

import time
from typing import Any, Final

from litestar import Request, Response, get
from litestar.params import FromQuery

from core.auth import bearer_token
from core.errors import Forbidden
from voexec.pages import PagesDependency
from voexec.validate.checks import Options
from voexec.validate.exchange import Credentials
from voexec.validate.report import report_dict
from voexec.validate.suite import run_suite

__all__ = ["validate_page"]

STATUS_TONES: Final = {"pass": "success", "warn": "warning", "fail": "danger", "skip": "info"}
PAGE_OPTIONS: Final = Options(booking=False, books=False, expiry_wait=0)
"""What the page runs: no bookings, no waiting for offers to expire."""


def _local_broker(request: Request[Any, Any, Any], public_url: str | None) -> str:
    return (public_url or str(request.base_url)).rstrip("/") + "/broker"


@get("/validate", sync_to_thread=True, name="page-validate")
def validate_page(
    request: Request[Any, Any, Any],
    pages: PagesDependency,
    url: FromQuery[str | None] = None,
) -> Response[str]:
    """The form, and the report of the broker at `url` when one is given."""
    started = time.perf_counter()
    settings = pages.settings
    local = _local_broker(request, settings.server.public_url)
    allowed = [local, *(u.rstrip("/") for u in settings.validate.allowed_urls)]
    report = None
    chosen = (url or "").strip().rstrip("/")
    if chosen:
        if chosen not in allowed:
            raise Forbidden(
                f"this page validates only the brokers its settings allow ({', '.join(allowed)}),"
                f" not {chosen}: add it to validate.allowed_urls, or run 'voexec validate' yourself"
            )
        credentials = Credentials()
        if chosen == local and pages.auth.required:
            pages.auth.require_write(
                request, to="validate this broker", come_back=f"/validate?url={chosen}"
            )
            # Tokens are kept as hashes: the suite writes with the reader's own bearer token
            # when the request carries one (a cookie sign-in has none to hand on).
            credentials = Credentials(token=bearer_token(request.headers.get("authorization")))
        report = report_dict(run_suite(chosen, credentials=credentials, options=PAGE_OPTIONS))
    return pages.html(
        request,
        started,
        "validate.html",
        page="validate",
        nav="",
        allowed=allowed,
        chosen=chosen or local,
        report=report,
        tones=STATUS_TONES,
    )
