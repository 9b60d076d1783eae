"""Bearer tokens for write routes, and the signed sign-in a web page keeps instead of one.

Shared by every package whose writes need a configured token (the broker's `write_tokens`, the
catalogue's `publish_tokens`), so that they all read the header alike and all compare in
constant time. The answers are `core.errors` exceptions, which each router turns into its own
error body: `Unauthorized` (401, no token: ask for one) and `Forbidden` (403, a token that is
not allowed here).

**Page sign-in.** A browser that signed in with a write token keeps a signed value in a
cookie, never the token: `1.<expiry in Unix seconds>.<MAC>`, the MAC an HMAC-SHA256 of
`1.<expiry>` under a key derived from the token itself, HMAC-SHA256(token, `SIGN_IN_PURPOSE`).
Deriving the key from the configured token, rather than from a secret of its own, means that

- every voexec process behind one load balancer accepts every other's sign-ins with no new
  setting to share and keep in step: they all read the same `write_tokens`;
- taking a token out of the settings ends every sign-in made with it (its key is gone), and
  only those: sign-ins made with the other tokens stay valid;
- the value gives nothing away about the token (HMAC is one-way) and cannot be made without
  it; and whoever knows the token may sign in anyway.

The purpose string keeps these MACs apart from any other use of the same token. A sign-in
cannot be revoked on its own before it expires, since nothing is stored on the server: signing
out forgets it in that browser, removing its token ends it everywhere.

Pure: no I/O, no web framework; imports the standard library and `core.errors` only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from core.errors import Forbidden, Unauthorized

__all__ = [
    "BEARER_CHALLENGE",
    "SIGN_IN_PURPOSE",
    "bearer_token",
    "require_bearer",
    "sign_in_value",
    "signed_in_until",
    "token_allowed",
]

BEARER_CHALLENGE: Final = "Bearer"
"""The `WWW-Authenticate` value of a 401: this route takes a bearer token (RFC 6750)."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value.

    Args:
        authorization: the header's value, or None when the request has none.

    Returns:
        The token, or None when the header is missing, names another scheme (`Basic ...`), or
        carries no token. The scheme is matched without regard to case (RFC 9110 §11.1).
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def token_allowed(token: str, allowed: Iterable[str]) -> bool:
    """True when `token` is one of `allowed`, in time that does not depend on which matched.

    Both sides are hashed first so that `hmac.compare_digest` compares equal-length values and
    the time taken says nothing about the length of a configured token either; every allowed
    token is compared, without stopping at a match.
    """
    presented = _digest(token)
    matched = False
    for candidate in allowed:
        matched |= hmac.compare_digest(presented, _digest(candidate))
    return matched


def require_bearer(authorization: str | None, allowed: Iterable[str], *, to: str) -> None:
    """Let the request through only with one of the `allowed` bearer tokens.

    Args:
        authorization: the request's `Authorization` header value (None when absent).
        allowed: the configured tokens; none allowed means no token will do.
        to: what the token lets a caller do, completing "a bearer token is needed to ...",
            e.g. "publish to the catalogue".

    Raises:
        Unauthorized: no bearer token was sent (answer 401 with `WWW-Authenticate: Bearer`).
        Forbidden: the token is not one of `allowed` (answer 403).
    """
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized(f"a bearer token is needed to {to} (Authorization: Bearer <token>)")
    if not token_allowed(token, allowed):
        raise Forbidden(f"this bearer token may not {to}")


# ----------------------------------------------------------------------------- page sign-in
# See the module docstring for why the key is derived from the token.
SIGN_IN_PURPOSE: Final = b"voexec/page-sign-in/v1"
"""Domain separation for the key of sign-in values: a MAC made for anything else never fits."""
_SIGN_IN_VERSION: Final = "1"
_SIGN_IN_VALUE: Final = re.compile(r"1\.([1-9]\d{0,11})\.([A-Za-z0-9_-]{43})")


def _sign_in_mac(token: str, expires: int) -> str:
    key = hmac.new(token.encode("utf-8"), SIGN_IN_PURPOSE, hashlib.sha256).digest()
    mac = hmac.new(key, f"{_SIGN_IN_VERSION}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def sign_in_value(token: str, expires: datetime) -> str:
    """The value a browser keeps after signing in with `token`, valid until `expires`.

    Args:
        token: the write token the person pasted (already checked with `token_allowed`).
        expires: when the sign-in ends (time-zone aware; kept to the second).

    Returns:
        `1.<expiry in Unix seconds>.<MAC>`: only characters allowed in a cookie, no token.

    Raises:
        ValueError: `expires` has no time zone.
    """
    if expires.tzinfo is None:
        raise ValueError("expires must be time-zone aware")
    moment = int(expires.timestamp())
    return f"{_SIGN_IN_VERSION}.{moment}.{_sign_in_mac(token, moment)}"


def signed_in_until(
    value: str | None,
    allowed: Iterable[str],
    now: datetime,
    *,
    longest: timedelta | None = None,
) -> datetime | None:
    """When the sign-in `value` ends, if one of the `allowed` tokens made it and it has not.

    Every allowed token is tried, without stopping at a match, and MACs are compared in
    constant time (`hmac.compare_digest`), as in `token_allowed`.

    Args:
        value: the value kept by the browser (None when it sent none).
        allowed: the tokens configured now; a value made with any other token fails.
        now: the current time (time-zone aware).
        longest: the longest sign-in ever given; a value lasting longer past `now` fails too
            (a clock that ran ahead when it was made, or a lifetime shortened since).

    Returns:
        The expiry (UTC), or None when the value is missing, malformed, forged, made with a
        token no longer allowed, expired, or lasts longer than `longest`.
    """
    found = _SIGN_IN_VALUE.fullmatch(value or "")
    if found is None:
        return None
    moment, presented = int(found.group(1)), found.group(2).encode("ascii")
    matched = False
    for token in allowed:
        matched |= hmac.compare_digest(presented, _sign_in_mac(token, moment).encode("ascii"))
    expires = datetime.fromtimestamp(moment, UTC)
    if not matched or expires <= now:
        return None
    if longest is not None and expires > now + longest:
        return None
    return expires
