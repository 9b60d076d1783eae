"""Who may write from the web pages: the same-site check, and signing in with a broker token.

The pages' writes (asking for offers, which holds capacity; accepting, rejecting, cancelling)
call the broker in-process, so they need the same permission as the broker's own write routes.
When `broker.write_tokens` is empty (local use, the demo) everybody may write and nothing here
shows. When tokens are set, a page write needs either

- a sign-in: the person pastes one of the tokens at `/sign-in`; the browser then keeps a signed
  value (`core.auth.sign_in_value`, never the token) in the cookie `voexec_sign_in`: HttpOnly,
  SameSite=Strict, Path=/, Secure when the page is served over https (or `server.public_url`
  is https), for `LIFETIME`. `POST /sign-out` forgets it; or
- the header `Authorization: Bearer <token>`, as for the broker's API.

The value is signed with a key derived from the token itself (why: `core.auth`), so every
process behind a load balancer accepts it with no new setting, and removing a token from the
settings ends the sign-ins made with it. Nothing is stored on the server.

Without either, a form answers a readable 401 page with a way to sign in (`SignInNeeded`), a
script a 401 problem naming the sign-in page. Every page POST, sign-in and sign-out included, is
refused when the browser says another site sent it (`check_same_site`). SameSite=Strict already
keeps the cookie off such requests; the check also covers voexecs without tokens, whose writes
are open, and `/sign-in` itself, where another site could otherwise sign the reader in with a
token of its own choosing.

Imports Litestar and `core`; not the page modules (`voexec.pages*`), which import this one:
`voexec.pages` for `PageAuth`, and `voexec.pages_router` to hand the sign-in routes the
renderer (`RenderPage`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol
from urllib.parse import quote, urlsplit

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.handlers import HTTPRouteHandler
from litestar.response import Redirect

from core.auth import BEARER_CHALLENGE, bearer_token, sign_in_value, signed_in_until, token_allowed
from core.clock import Clock
from core.errors import Forbidden, Unauthorized
from core.settings import Settings

__all__ = [
    "COOKIE",
    "LIFETIME",
    "PageAuth",
    "RenderPage",
    "SignIn",
    "SignInNeeded",
    "check_same_site",
    "local_path",
    "sign_in_handlers",
]

COOKIE: Final = "voexec_sign_in"
LIFETIME: Final = timedelta(hours=8)
"""How long a sign-in lasts: a working day, after which the token is asked for again."""
LONGEST_TOKEN: Final = 4096
"""Longest token the sign-in form takes (characters); longer is refused without hashing it."""


def check_same_site(request: Request[Any, Any, Any]) -> None:
    """Refuse a form POST another site made the browser send (cross-site request forgery).

    Raises:
        Forbidden: `Sec-Fetch-Site` says another site, or `Origin` names another host.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site in {"cross-site", "same-site"}:
        raise Forbidden("this form can only be sent from voexec's own pages")
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden("this form can only be sent from voexec's own pages")


def local_path(target: str | None, default: str) -> str:
    """`target` when it is a path on this site (never another host), else `default`."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def sign_in_url(come_back: str) -> str:
    """The sign-in page, coming back to `come_back` (a path on this site) afterwards."""
    return f"/sign-in?next={quote(local_path(come_back, '/'), safe='/')}"


class SignInNeeded(Unauthorized):
    """A page write without a sign-in where the broker's writes need a token."""

    def __init__(self, message: str, come_back: str) -> None:
        super().__init__(message)
        self.sign_in_url = sign_in_url(come_back)


@dataclass(frozen=True)
class SignIn:
    """What a page shows about signing in: the header link, and whether writes are enabled."""

    required: bool
    """Whether this voexec's broker writes need a token at all."""
    signed_in: bool
    """Whether this request carries a valid sign-in (or bearer token)."""
    until: datetime | None
    """When the sign-in cookie ends (None without one, or for a bearer token)."""
    here: str
    """The page to come back to after signing in or out."""

    @property
    def can_write(self) -> bool:
        """Whether the page's write buttons work for this reader."""
        return self.signed_in or not self.required

    @property
    def url(self) -> str:
        """The sign-in page, coming back here."""
        return sign_in_url(self.here)


@dataclass(frozen=True)
class PageAuth:
    """Checks and issues page sign-ins against the broker's write tokens."""

    tokens: tuple[str, ...]
    clock: Clock
    public_url: str | None = None
    lifetime: timedelta = LIFETIME

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> PageAuth:
        """The sign-in of an app: `broker.write_tokens`, `server.public_url`, its clock."""
        return cls(
            tokens=tuple(settings.broker.write_tokens),
            clock=clock,
            public_url=settings.server.public_url,
        )

    @property
    def required(self) -> bool:
        """Whether page writes need a sign-in (tokens are configured)."""
        return bool(self.tokens)

    def token_allowed(self, token: str) -> bool:
        """Whether `token` is one of the write tokens (constant time)."""
        return 0 < len(token) <= LONGEST_TOKEN and token_allowed(token, self.tokens)

    def cookie_until(self, request: Request[Any, Any, Any]) -> datetime | None:
        """When the request's sign-in cookie ends, or None when it has no valid one."""
        return signed_in_until(
            request.cookies.get(COOKIE), self.tokens, self.clock.now(), longest=self.lifetime
        )

    def state(self, request: Request[Any, Any, Any], here: str) -> SignIn:
        """What the page answering `request` shows about signing in."""
        if not self.required:
            return SignIn(required=False, signed_in=False, until=None, here=here)
        until = self.cookie_until(request)
        token = bearer_token(request.headers.get("authorization"))
        by_header = token is not None and self.token_allowed(token)
        return SignIn(
            required=True, signed_in=until is not None or by_header, until=until, here=here
        )

    def require_write(self, request: Request[Any, Any, Any], *, to: str, come_back: str) -> None:
        """Let a page write through when tokens are unset, or with a sign-in or bearer token.

        Args:
            request: the page POST.
            to: what the write does, completing "sign in to ...", e.g. "request offers".
            come_back: the page to return to after signing in.

        Raises:
            SignInNeeded: no bearer token and no valid sign-in cookie (401).
            Forbidden: a bearer token that is not one of the write tokens (403).
        """
        if not self.required:
            return
        token = bearer_token(request.headers.get("authorization"))
        if token is not None:
            if not self.token_allowed(token):
                raise Forbidden(f"this bearer token may not {to}")
            return
        if self.cookie_until(request) is not None:
            return
        if request.cookies.get(COOKIE):
            raise SignInNeeded(
                f"your sign-in has expired or is no longer valid: sign in again to {to}",
                come_back,
            )
        raise SignInNeeded(
            f"this voexec asks you to sign in with a broker token to {to}", come_back
        )

    def _secure(self, request: Request[Any, Any, Any]) -> bool:
        # Behind a proxy that ends TLS the request itself says http; the public URL tells.
        public = urlsplit(self.public_url or "").scheme
        return request.url.scheme == "https" or public == "https"

    def sign_in_cookie(self, token: str, request: Request[Any, Any, Any]) -> Cookie:
        """The cookie that keeps a sign-in with `token` (already allowed) for `lifetime`."""
        expires = self.clock.now() + self.lifetime
        return Cookie(
            key=COOKIE,
            value=sign_in_value(token, expires),
            max_age=int(self.lifetime.total_seconds()),
            path="/",
            secure=self._secure(request),
            httponly=True,
            samesite="strict",
        )

    def sign_out_cookie(self, request: Request[Any, Any, Any]) -> Cookie:
        """The cookie that makes the browser forget its sign-in at once."""
        return Cookie(
            key=COOKIE,
            value="",
            max_age=0,
            path="/",
            secure=self._secure(request),
            httponly=True,
            samesite="strict",
        )


class RenderPage(Protocol):
    """Renders a page template (`voexec.pages.Pages.html`)."""

    def __call__(
        self,
        request: Request[Any, Any, Any],
        started: float,
        template: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        here: str | None = None,
        **context: Any,
    ) -> Response[str]:
        """A rendered page, with its server time."""


def sign_in_handlers(auth: PageAuth, render: RenderPage) -> list[HTTPRouteHandler]:
    """The routes `GET /sign-in`, `POST /sign-in` and `POST /sign-out`.

    Args:
        auth: the tokens and the cookie.
        render: renders `sign_in.html` inside the site's frame.
    """

    def page(
        request: Request[Any, Any, Any],
        come_back: str,
        *,
        status: int = 200,
        error: str | None = None,
    ) -> Response[str]:
        return render(
            request,
            time.perf_counter(),
            "sign_in.html",
            status=status,
            headers={"www-authenticate": BEARER_CHALLENGE} if status == 401 else None,
            here=come_back,
            page="sign-in",
            nav="sign-in",
            come_back=come_back,
            error=error,
            lifetime=auth.lifetime,
        )

    @get("/sign-in", name="page-sign-in", sync_to_thread=False)
    def sign_in_page(request: Request[Any, Any, Any]) -> Response[str]:
        """The sign-in form (or, without tokens, a note that nobody needs to sign in)."""
        return page(request, local_path(request.query_params.get("next"), "/"))

    @post("/sign-in", name="page-sign-in-post")
    async def sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
        """Check the pasted token; 303 to `next` with the sign-in cookie, or the form again."""
        check_same_site(request)
        sent = await request.form()
        come_back = local_path(str(sent.get("next", "")), "/")
        if not auth.required:
            return Redirect(come_back, status_code=303)
        token = str(sent.get("token", "")).strip()
        if not token:
            return page(request, come_back, status=400, error="Paste one of the broker's tokens.")
        if not auth.token_allowed(token):
            return page(
                request,
                come_back,
                status=401,
                error="That is not one of this broker's write tokens. Check it with whoever "
                "runs this voexec, and paste it whole.",
            )
        return Redirect(come_back, status_code=303, cookies=[auth.sign_in_cookie(token, request)])

    @post("/sign-out", name="page-sign-out")
    async def sign_out(request: Request[Any, Any, Any]) -> Response[Any]:
        """Forget the sign-in in this browser; 303 to `next`."""
        check_same_site(request)
        sent = await request.form()
        come_back = local_path(str(sent.get("next", "")), "/")
        return Redirect(come_back, status_code=303, cookies=[auth.sign_out_cookie(request)])

    return [sign_in_page, sign_in, sign_out]
