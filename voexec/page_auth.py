"""Who may write from the web pages: the same-site check, and signing in with a named token.

The pages' writes (asking for offers, which holds capacity; accepting, rejecting, cancelling)
call the broker in-process, so they need the same permission as the broker's own write routes
(`core.auth.Security`). On a voexec without identities (local use, the demo) everybody may
write, as their address, and nothing here shows. Otherwise a page write needs either

- a sign-in: the person pastes their token at `/sign-in`; the browser then keeps a signed value
  (`core.auth.sign_in_value`, never the token) in the cookie `voexec_sign_in`: HttpOnly,
  SameSite=Strict, Path=/, Secure when the page is served over https (or `server.public_url`
  is https), for `LIFETIME`. `POST /sign-out` forgets it; or
- the header `Authorization: Bearer <token or JWT>`, as for the broker's API.

The value is signed with a key derived from the token's configured hash (why: `core.auth`), so
every process behind a load balancer accepts it with no new setting, and removing a token from
the settings ends the sign-ins made with it. Nothing is stored on the server. Sign-in attempts
are rate-limited per client address (`auth.limits.sign_in`: 429 past it).

Without either, a form answers a readable 401 page with a way to sign in (`SignInNeeded`), a
script a 401 problem naming the sign-in page. Every page POST, sign-in and sign-out included, is
refused when the browser says another site sent it, or an opaque origin (`Origin: null`: a
sandboxed frame, a `data:` page) did (`check_same_site`). SameSite=Strict already keeps the
cookie off such requests; the check also covers voexecs without identities, whose writes are
open, and `/sign-in` itself, where another site could otherwise sign the reader in with a
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

from core.auth import (
    BEARER_CHALLENGE,
    Identity,
    Permission,
    Security,
    sign_in_value,
    signed_in_by,
)
from core.clock import Clock
from core.errors import Forbidden, TooManyRequests, Unauthorized

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
        Forbidden: `Sec-Fetch-Site` says another site, or `Origin` names another host or is
            opaque (`null`: a sandboxed frame, a `data:` or `file:` page, a cross-origin
            redirect), which could be anybody's.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site in {"cross-site", "same-site"}:
        raise Forbidden("this form can only be sent from voexec's own pages")
    origin = request.headers.get("origin")
    if origin is not None and (
        origin.strip().lower() == "null" or urlsplit(origin).netloc != request.headers.get("host")
    ):
        raise Forbidden("this form can only be sent from voexec's own pages")


def _address(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


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
    name: str | None = None
    """Who is signed in (the token's name or the JWT's subject)."""

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
    """Checks and issues page sign-ins against the configured named tokens."""

    security: Security
    clock: Clock
    public_url: str | None = None
    lifetime: timedelta = LIFETIME

    @property
    def required(self) -> bool:
        """Whether page writes need a sign-in (anonymous callers may not run)."""
        return not self.security.auth.anonymous_may_run

    def cookie_identity(self, request: Request[Any, Any, Any]) -> tuple[Identity, datetime] | None:
        """Who the request's sign-in cookie names and when it ends, or None without a valid one."""
        tokens = self.security.auth.tokens
        found = signed_in_by(
            request.cookies.get(COOKIE),
            [token.sha256 for token in tokens],
            self.clock.now(),
            longest=self.lifetime,
        )
        if found is None:
            return None
        token = tokens[found[0]]
        return Identity(kind="token", name=token.name, role=token.role), found[1]

    def _header_identity(self, request: Request[Any, Any, Any]) -> Identity | None:
        if request.headers.get("authorization") is None:
            return None
        try:
            identity = self.security.auth.identify(
                request.headers.get("authorization"), _address(request)
            )
        except (Unauthorized, Forbidden):
            return None
        return None if identity.anonymous else identity

    def state(self, request: Request[Any, Any, Any], here: str) -> SignIn:
        """What the page answering `request` shows about signing in."""
        if not self.required:
            return SignIn(required=False, signed_in=False, until=None, here=here)
        cookie = self.cookie_identity(request)
        who = self._header_identity(request) or (cookie[0] if cookie else None)
        return SignIn(
            required=True,
            signed_in=who is not None,
            until=cookie[1] if cookie else None,
            here=here,
            name=who.name if who else None,
        )

    def require_write(
        self, request: Request[Any, Any, Any], *, to: str, come_back: str
    ) -> Identity:
        """Who may make this page write: anybody when open, else a sign-in or bearer token.

        Args:
            request: the page POST.
            to: what the write does, completing "sign in to ...", e.g. "request offers".
            come_back: the page to return to after signing in.

        Returns:
            The identity (the client's address on a voexec without identities).

        Raises:
            SignInNeeded: no bearer token and no valid sign-in cookie (401).
            Forbidden: a bearer token that is not configured, or a role that may not run (403).
            Unauthorized: a bearer JWT that does not verify (401).
        """
        auth = self.security.auth
        authorization = request.headers.get("authorization")
        if not self.required or authorization is not None:  # as the broker's API would
            return auth.require(authorization, _address(request), Permission.RUN, to=to)
        cookie = self.cookie_identity(request)
        if cookie is not None:
            auth.check(cookie[0], Permission.RUN, to=to)
            return cookie[0]
        if request.cookies.get(COOKIE):
            raise SignInNeeded(
                f"your sign-in has expired or is no longer valid: sign in again to {to}",
                come_back,
            )
        raise SignInNeeded(
            f"this voexec asks you to sign in with a broker token to {to}", come_back
        )

    def reader(self, request: Request[Any, Any, Any]) -> Identity:
        """Who reads a page: the bearer token's or the sign-in's identity, else the address."""
        found = self._header_identity(request)
        if found is None:
            cookie = self.cookie_identity(request)
            found = cookie[0] if cookie else None
        return found or Identity(kind="address", name=_address(request) or "unknown")

    def require_owner(self, identity: Identity, owner: str | None, *, to: str) -> None:
        """Raise `Forbidden` unless `identity` asked for it (`owner`) or is an operator."""
        if not self.security.auth.may_act_for(identity, owner):
            raise Forbidden(
                f"{identity.describe()} may not {to}: only whoever asked for it, or an "
                "operator, may"
            )

    def require_reader(
        self, request: Request[Any, Any, Any], owner: str | None, *, come_back: str
    ) -> None:
        """With `auth.owner_only_reads`, let only `owner` or an operator read a page.

        Raises:
            SignInNeeded: nobody signed in (401, with a way to sign in).
            Forbidden: another identity (403).
        """
        if not self.security.owner_only_reads:
            return
        identity = self.reader(request)
        if self.security.may_read(identity, owner):
            return
        if identity.anonymous and self.required:
            raise SignInNeeded("sign in to see this page: only its owner may", come_back)
        raise Forbidden(f"{identity.describe()} may not read this: only its owner or an operator")

    def _secure(self, request: Request[Any, Any, Any]) -> bool:
        # Behind a proxy that ends TLS the request itself says http; the public URL tells.
        public = urlsplit(self.public_url or "").scheme
        return request.url.scheme == "https" or public == "https"

    def sign_in_cookie(self, sha256: str, request: Request[Any, Any, Any]) -> Cookie:
        """The cookie that keeps a sign-in with the token of hash `sha256` for `lifetime`."""
        expires = self.clock.now() + self.lifetime
        return Cookie(
            key=COOKIE,
            value=sign_in_value(sha256, expires),
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
        headers: Mapping[str, str] | None = None,
    ) -> Response[str]:
        answer = {"www-authenticate": BEARER_CHALLENGE} if status == 401 else {}
        answer.update(headers or {})
        return render(
            request,
            time.perf_counter(),
            "sign_in.html",
            status=status,
            headers=answer,
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
        try:
            auth.security.limiter.take("sign_in", f"address:{_address(request)}")
        except TooManyRequests as error:
            return page(
                request,
                come_back,
                status=429,
                error=f"Too many attempts from here. Wait {error.retry_after} s and try again.",
                headers={"retry-after": str(error.retry_after)},
            )
        token = str(sent.get("token", "")).strip()
        if not token:
            return page(request, come_back, status=400, error="Paste your voexec token.")
        named = auth.security.auth.named_token(token) if len(token) <= LONGEST_TOKEN else None
        if named is None:
            return page(
                request,
                come_back,
                status=401,
                error="That is not one of this voexec's tokens. Check it with whoever runs "
                "this voexec, and paste it whole.",
            )
        return Redirect(
            come_back, status_code=303, cookies=[auth.sign_in_cookie(named.sha256, request)]
        )

    @post("/sign-out", name="page-sign-out")
    async def sign_out(request: Request[Any, Any, Any]) -> Response[Any]:
        """Forget the sign-in in this browser; 303 to `next`."""
        check_same_site(request)
        sent = await request.form()
        come_back = local_path(str(sent.get("next", "")), "/")
        return Redirect(come_back, status_code=303, cookies=[auth.sign_out_cookie(request)])

    return [sign_in_page, sign_in, sign_out]
