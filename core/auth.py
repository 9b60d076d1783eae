"""Who is asking and what they may do: named tokens, roles, identities, the page sign-in value.

Every package whose writes need permission (the broker, the catalogue, the pages) asks one
`Authenticator` built from `auth` in the settings, so they all read the header alike, compare
in constant time and name the same identity. The answers are `core.errors` exceptions, which
each router turns into its own error body: `Unauthorized` (401: no credentials, or a JWT that
is expired or not ours: ask again) and `Forbidden` (403: a token that is not configured, or an
identity whose role does not allow this).

**Identities.** A named token (`auth.tokens`: name, SHA-256, role) is matched by hashing what
was presented and comparing with every configured hash; a bearer JWT is checked by the
`JwtVerifier` (`core.oidc`) and names its subject; without credentials the caller is its client
address. An identity's `key` (`token:alice`, `oidc:<sub>`, `address:192.0.2.7`) is what the
broker records as the owner of an offer set and what rate limits count by. Names of different
kinds never collide, since the key carries the kind.

**Roles.** `ROLE_PERMISSIONS` is the whole table: researchers may `RUN` (ask for offers, run
directly, accept, reject and cancel their own); packagers may also `PUBLISH` (to their own
entries); operators may also `OPERATE` (act on anybody's offers, sessions and entries). A
voexec with no tokens and no OpenID Connect is *open*: anybody may `RUN`, as its address; so
may anybody on one with identities and `broker.allow_anonymous_runs`.

**Page sign-in.** A browser that signed in with a token keeps a signed value in a cookie, never
the token: `1.<expiry in Unix seconds>.<MAC>`, the MAC an HMAC-SHA256 of `1.<expiry>` under a
key derived from the token's configured SHA-256, HMAC-SHA256(sha256, `SIGN_IN_PURPOSE`). So
every voexec process behind one load balancer accepts every other's sign-ins with no new
setting, taking a token out of the settings ends every sign-in made with it and only those,
and the value gives nothing away. Whoever can read the settings file could make such a value:
keep it as private as the database password it sits beside.

Pure: no I/O, no web framework; imports the standard library, `core.errors` and the settings
types only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final, Literal, Protocol

from core.errors import Forbidden, Unauthorized
from core.limits import RateLimiter
from core.settings import MIN_TOKEN_CHARS, AuthSettings, NamedToken, Role

__all__ = [
    "BEARER_CHALLENGE",
    "ROLE_PERMISSIONS",
    "SIGN_IN_PURPOSE",
    "TOKEN_PREFIX",
    "Authenticator",
    "Identity",
    "JwtVerifier",
    "Permission",
    "Security",
    "bearer_token",
    "looks_like_jwt",
    "new_token",
    "sign_in_value",
    "signed_in_by",
    "signed_in_until",
    "token_sha256",
]

BEARER_CHALLENGE: Final = "Bearer"
"""The `WWW-Authenticate` value of a 401: this route takes a bearer token (RFC 6750)."""
TOKEN_PREFIX: Final = "vx1_"  # noqa: S105 - a prefix, not a secret
"""Starts every token `new_token` makes, so secret scanners and people can recognise one."""
LONGEST_TOKEN: Final = 8192
"""Longest bearer value looked at (characters); longer is refused without hashing or parsing."""


class Permission(StrEnum):
    """What a request needs; `ROLE_PERMISSIONS` says which role has it."""

    RUN = "run"
    """Ask for offers, run directly; accept, reject and cancel one's own."""
    PUBLISH = "publish"
    """Publish and withdraw one's own catalogue entries."""
    OPERATE = "operate"
    """Act on anybody's offers, sessions and entries."""


ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    "researcher": frozenset({Permission.RUN}),
    "packager": frozenset({Permission.RUN, Permission.PUBLISH}),
    "operator": frozenset({Permission.RUN, Permission.PUBLISH, Permission.OPERATE}),
}
ROLE_ORDER: Final[tuple[Role, ...]] = ("researcher", "packager", "operator")
"""Weakest first: a JWT whose claim maps to several roles gets the strongest."""


@dataclass(frozen=True)
class Identity:
    """Who is asking: a named token, an OpenID Connect subject, or an anonymous address."""

    kind: Literal["token", "oidc", "address"]
    name: str
    role: Role | None = None
    """None for an anonymous caller."""

    @property
    def key(self) -> str:
        """What owners and rate limits record: the kind and the name (`token:alice`)."""
        return f"{self.kind}:{self.name}"

    @property
    def anonymous(self) -> bool:
        """Whether the caller presented no credentials."""
        return self.kind == "address"

    def may(self, permission: Permission) -> bool:
        """Whether the identity's role has `permission` (an anonymous caller has none)."""
        return self.role is not None and permission in ROLE_PERMISSIONS[self.role]

    def describe(self) -> str:
        """How messages name it: `alice (researcher)`, or `an anonymous caller`."""
        return "an anonymous caller" if self.role is None else f"{self.name} ({self.role})"


class JwtVerifier(Protocol):
    """Checks a bearer JWT and names its identity (`core.oidc.OidcVerifier`)."""

    def verify(self, token: str) -> Identity:
        """The identity the token names.

        Raises:
            Unauthorized: the token is malformed, expired, not yet valid, for another issuer or
                audience, or not signed by one of the provider's keys.
            Forbidden: the token is valid but maps to no role.
        """
        ...


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


_JWT_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def looks_like_jwt(token: str) -> bool:
    """Whether `token` has a JWT's shape (three base64url parts); our tokens never do."""
    return _JWT_SHAPE.fullmatch(token) is not None


def token_sha256(token: str) -> str:
    """The lower-case hex SHA-256 of `token`, as `auth.tokens[].sha256` holds it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh token: `vx1_` and 256 random bits, base64url (47 characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Authenticator:
    """Names the caller of a request and checks what it may do."""

    tokens: tuple[NamedToken, ...] = ()
    jwt: JwtVerifier | None = None
    anonymous_runs: bool = False
    """Callers without credentials may run even though identities are configured
    (`broker.allow_anonymous_runs`)."""

    @classmethod
    def from_settings(
        cls, auth: AuthSettings, jwt: JwtVerifier | None = None, *, anonymous_runs: bool = False
    ) -> Authenticator:
        """The authenticator of `auth` (the JWT verifier is built by the caller: it does I/O)."""
        return cls(tokens=tuple(auth.tokens), jwt=jwt, anonymous_runs=anonymous_runs)

    @property
    def open(self) -> bool:
        """Whether nobody is configured: anybody may run, as their address."""
        return not self.tokens and self.jwt is None

    @property
    def anonymous_may_run(self) -> bool:
        """Whether a caller without credentials may run (as its address)."""
        return self.open or self.anonymous_runs

    def named_token(self, token: str) -> NamedToken | None:
        """The configured token `token` is, compared in time that does not say which matched.

        Every configured hash is compared (`hmac.compare_digest`), without stopping at a match;
        a token shorter than `MIN_TOKEN_CHARS` never matches, whatever is configured.
        """
        if not MIN_TOKEN_CHARS <= len(token) <= LONGEST_TOKEN:
            return None
        presented = token_sha256(token).encode("ascii")
        found: NamedToken | None = None
        for candidate in self.tokens:
            if hmac.compare_digest(presented, candidate.sha256.encode("ascii")):
                found = candidate
        return found

    def identify(
        self, authorization: str | None, address: str | None, *, to: str | None = None
    ) -> Identity:
        """Who sent a request with this `Authorization` header from this client address.

        `to` (what the request does) only words the refusal of an unknown token.

        Raises:
            Unauthorized: a JWT that does not verify (see `JwtVerifier.verify`).
            Forbidden: a bearer token that is not configured, or a JWT that maps to no role.
        """
        anonymous = Identity(kind="address", name=address or "unknown")
        token = bearer_token(authorization)
        if token is None:
            return anonymous
        if len(token) > LONGEST_TOKEN:
            raise Forbidden("this bearer token is longer than any this voexec accepts")
        if self.jwt is not None and looks_like_jwt(token):
            return self.jwt.verify(token)
        named = self.named_token(token)
        if named is not None:
            return Identity(kind="token", name=named.name, role=named.role)
        if self.open:
            return anonymous  # nobody is configured: a client's leftover token changes nothing
        doing = f"may not {to}" if to else "is refused"
        raise Forbidden(f"this bearer token {doing}: it is not one of this voexec's tokens")

    def require(
        self,
        authorization: str | None,
        address: str | None,
        permission: Permission,
        *,
        to: str,
    ) -> Identity:
        """The caller, when it may do what needs `permission`.

        Args:
            authorization: the request's `Authorization` header value (None when absent).
            address: the client's address (who an anonymous caller is).
            permission: what the request needs.
            to: what it does, completing "a bearer token is needed to ...".

        Raises:
            Unauthorized: no credentials where some are needed (401), or a JWT that does not
                verify.
            Forbidden: a token that is not configured, or a role without `permission`.
        """
        identity = self.identify(authorization, address, to=to)
        if identity.anonymous:
            if self.anonymous_may_run and permission is Permission.RUN:
                return identity
            raise Unauthorized(f"a bearer token is needed to {to} (Authorization: Bearer <token>)")
        self.check(identity, permission, to=to)
        return identity

    @staticmethod
    def check(identity: Identity, permission: Permission, *, to: str) -> None:
        """Raise `Forbidden` unless `identity`'s role has `permission`."""
        if not identity.may(permission):
            needs = next(role for role in ROLE_ORDER if permission in ROLE_PERMISSIONS[role])
            raise Forbidden(
                f"{identity.describe()} may not {to}: that needs the role {needs} or above"
            )

    def may_act_for(self, identity: Identity, owner: str | None) -> bool:
        """Whether `identity` may change what `owner` asked for.

        The owner itself and operators may; on an open voexec anybody may act on what was
        recorded without an owner (made before owners were kept); otherwise nobody else.
        """
        if identity.may(Permission.OPERATE):
            return True
        if owner is None:
            return self.open
        return hmac.compare_digest(identity.key.encode(), owner.encode())


@dataclass(frozen=True)
class Security:
    """What every router asks before a write: who is asking, how often, who may read what."""

    auth: Authenticator
    limiter: RateLimiter
    owner_only_reads: bool = False
    """Offer sets and sessions are readable by their owner and operators only."""

    def may_read(self, identity: Identity, owner: str | None) -> bool:
        """Whether `identity` may read what `owner` asked for (everybody, unless owner-only)."""
        return not self.owner_only_reads or self.auth.may_act_for(identity, owner)


# ----------------------------------------------------------------------------- page sign-in
# See the module docstring for why the key is derived from the token's configured hash.
SIGN_IN_PURPOSE: Final = b"voexec/page-sign-in/v2"
"""Domain separation for the key of sign-in values: a MAC made for anything else never fits."""
_SIGN_IN_VERSION: Final = "1"
_SIGN_IN_VALUE: Final = re.compile(r"1\.([1-9]\d{0,11})\.([A-Za-z0-9_-]{43})")


def _sign_in_mac(secret: str, expires: int) -> str:
    key = hmac.new(secret.encode("utf-8"), SIGN_IN_PURPOSE, hashlib.sha256).digest()
    mac = hmac.new(key, f"{_SIGN_IN_VERSION}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def sign_in_value(secret: str, expires: datetime) -> str:
    """The value a browser keeps after signing in, valid until `expires`.

    Args:
        secret: the configured SHA-256 of the token the person pasted (already matched).
        expires: when the sign-in ends (time-zone aware; kept to the second).

    Returns:
        `1.<expiry in Unix seconds>.<MAC>`: only characters allowed in a cookie, no token.

    Raises:
        ValueError: `expires` has no time zone.
    """
    if expires.tzinfo is None:
        raise ValueError("expires must be time-zone aware")
    moment = int(expires.timestamp())
    return f"{_SIGN_IN_VERSION}.{moment}.{_sign_in_mac(secret, moment)}"


def signed_in_by(
    value: str | None,
    secrets_: Sequence[str],
    now: datetime,
    *,
    longest: timedelta | None = None,
) -> tuple[int, datetime] | None:
    """Which of `secrets_` made the sign-in `value`, and when it ends, if it has not.

    Every secret is tried, without stopping at a match, and MACs are compared in constant time.

    Args:
        value: the value kept by the browser (None when it sent none).
        secrets_: the configured token hashes now; a value made with any other fails.
        now: the current time (time-zone aware).
        longest: the longest sign-in ever given; a value lasting longer past `now` fails too
            (a clock that ran ahead when it was made, or a lifetime shortened since).

    Returns:
        The index of the matching secret and the expiry (UTC), or None when the value is
        missing, malformed, forged, made with a token no longer configured, expired, or lasts
        longer than `longest`.
    """
    found = _SIGN_IN_VALUE.fullmatch(value or "")
    if found is None:
        return None
    moment, presented = int(found.group(1)), found.group(2).encode("ascii")
    matched: int | None = None
    for index, secret in enumerate(secrets_):
        if hmac.compare_digest(presented, _sign_in_mac(secret, moment).encode("ascii")):
            matched = index
    expires = datetime.fromtimestamp(moment, UTC)
    if matched is None or expires <= now:
        return None
    if longest is not None and expires > now + longest:
        return None
    return matched, expires


def signed_in_until(
    value: str | None,
    secrets_: Iterable[str],
    now: datetime,
    *,
    longest: timedelta | None = None,
) -> datetime | None:
    """When the sign-in `value` ends, if one of `secrets_` made it and it has not.

    `signed_in_by` without saying which secret matched.
    """
    found = signed_in_by(value, list(secrets_), now, longest=longest)
    return None if found is None else found[1]
