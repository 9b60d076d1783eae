"""Bearer tokens for write routes: reading the `Authorization` header, checking the token.

Shared by every package whose writes need a configured token (the broker's `write_tokens`, the
catalogue's `publish_tokens`), so that they all read the header alike and all compare in
constant time. The answers are `core.errors` exceptions, which each router turns into its own
error body: `Unauthorized` (401, no token: ask for one) and `Forbidden` (403, a token that is
not allowed here).

Pure: no I/O, no web framework; imports the standard library and `core.errors` only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Final

from core.errors import Forbidden, Unauthorized

__all__ = ["BEARER_CHALLENGE", "bearer_token", "require_bearer", "token_allowed"]

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
