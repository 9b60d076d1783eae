"""OpenID Connect bearer JWTs: check one against the provider's published keys, name its identity.

`OidcVerifier(settings.auth.oidc).verify(token)` checks the signature with a key from the
provider's JWKS (`jwks_url`), that `iss` is the configured issuer, that `aud` names the
configured audience, and `exp` (required) and `nbf` with `leeway`; the identity's name is the
`name_claim` (default `sub`) and its role comes from `role_claim` through `roles`.

**Keys.** The JWKS is fetched on first use and kept for `jwks_cache`. A token signed by a key
the cached set does not hold (a `kid` it does not know: the provider rotated its keys) fetches
the set again at once, but at most once every `jwks_refetch_after`, so tokens naming made-up
keys cannot make voexec hammer the provider. A failed fetch keeps the keys it had. Fetches
block the caller for at most `timeout` and read at most `MAX_JWKS_BYTES`.

The only module that imports joserfc (the JOSE library); fetches with the standard library.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError, MissingClaimError
from joserfc.jwk import KeySet

from core.auth import ROLE_ORDER, Identity
from core.errors import Forbidden, Unauthorized, Unavailable
from core.settings import OidcSettings, Role

__all__ = ["MAX_JWKS_BYTES", "OidcVerifier", "fetch_jwks"]

log = logging.getLogger(__name__)

MAX_JWKS_BYTES: Final = 1_048_576
"""Largest key set read from the provider."""
NEVER_ACCEPTED: Final = frozenset({"none", "HS256", "HS384", "HS512"})
"""Algorithms refused whatever the settings say: unsigned, or keyed by a shared secret that a
public key set would hand to anybody."""


def fetch_jwks(url: str, timeout: float) -> dict[str, Any]:
    """The key set published at `url` (JSON), read with a time and size bound.

    Raises:
        Unavailable: the provider does not answer, answers an error, or too much, or not JSON.
    """
    import json

    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            body = answer.read(MAX_JWKS_BYTES + 1)
    except OSError as error:
        raise Unavailable(f"the OpenID Connect keys at {url} could not be read: {error}") from error
    if len(body) > MAX_JWKS_BYTES:
        raise Unavailable(f"the OpenID Connect key set at {url} is larger than voexec reads")
    try:
        document = json.loads(body)
    except ValueError as error:
        raise Unavailable(f"the OpenID Connect key set at {url} is not JSON") from error
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise Unavailable(f"the OpenID Connect key set at {url} has no `keys` list")
    return document


class OidcVerifier:
    """Checks bearer JWTs of one OpenID Connect provider (`core.auth.JwtVerifier`)."""

    def __init__(
        self,
        settings: OidcSettings,
        *,
        fetch: Callable[[str, float], dict[str, Any]] = fetch_jwks,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        """Keep the settings; nothing is fetched until the first token.

        Args:
            settings: `auth.oidc`.
            fetch: reads a key set (URL, timeout in seconds); tests may count calls.
            clock: monotonic seconds, for the key cache.
            now: Unix seconds, for `exp` and `nbf`.
        """
        self.settings = settings
        self._fetch = fetch
        self._clock = clock
        self._now = now
        self._algorithms = [a for a in settings.algorithms if a not in NEVER_ACCEPTED]
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()
        self.fetches = 0
        """How many times the key set was fetched (for tests and logs)."""

    # ----------------------------------------------------------------------- keys
    def _refresh(self, *, unknown_key: bool) -> KeySet:
        """Fetch the key set again when it is stale, or for an unknown key when allowed."""
        with self._lock:
            age = self._clock() - self._fetched_at
            stale = age >= self.settings.jwks_cache.total_seconds()
            may_refetch = age >= self.settings.jwks_refetch_after.total_seconds()
            if self._keys is not None and not stale and not (unknown_key and may_refetch):
                return self._keys
            self._fetched_at = self._clock()
            self.fetches += 1
            try:
                document = self._fetch(
                    self.settings.jwks_url, self.settings.timeout.total_seconds()
                )
                self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (Unavailable, JoseError, ValueError) as error:
                log.warning("OpenID Connect keys not refreshed: %s", error)
                if self._keys is None:
                    if isinstance(error, Unavailable):
                        raise
                    raise Unavailable(
                        f"the OpenID Connect key set at {self.settings.jwks_url} is not usable"
                    ) from error
            assert self._keys is not None  # fetched now, or kept from before
            return self._keys

    # ----------------------------------------------------------------------- tokens
    def verify(self, token: str) -> Identity:
        """The identity `token` names (see `core.auth.JwtVerifier.verify`)."""
        keys = self._refresh(unknown_key=False)
        try:
            decoded = jwt.decode(token, keys, algorithms=self._algorithms)
        except InvalidKeyIdError:
            keys = self._refresh(unknown_key=True)
            try:
                decoded = jwt.decode(token, keys, algorithms=self._algorithms)
            except InvalidKeyIdError as error:
                raise Unauthorized(
                    "the bearer token is signed by a key the OpenID Connect provider does not "
                    "publish"
                ) from error
            except JoseError as error:
                raise Unauthorized(f"the bearer token is not valid: {error.description}") from error
        except JoseError as error:
            raise Unauthorized(f"the bearer token is not valid: {error.description}") from error
        claims = decoded.claims
        self._check_claims(claims)
        name = claims.get(self.settings.name_claim)
        if not isinstance(name, str) or not name:
            raise Unauthorized(
                f"the bearer token has no {self.settings.name_claim!r} naming who it is for"
            )
        role = self._role(claims)
        if role is None:
            raise Forbidden(f"{name} has no role on this voexec (claim {self.settings.role_claim})")
        return Identity(kind="oidc", name=name, role=role)

    def _check_claims(self, claims: dict[str, Any]) -> None:
        settings = self.settings
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._now()),
            leeway=int(settings.leeway.total_seconds()),
            iss={"essential": True, "value": settings.issuer},
            aud={"essential": True, "value": settings.audience},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as error:
            raise Unauthorized("the bearer token has expired: get a new one") from error
        except MissingClaimError as error:
            raise Unauthorized(f"the bearer token is not valid: {error.description}") from error
        except JoseError as error:
            claim = getattr(error, "claim", "") or ""
            if claim == "iss":
                raise Unauthorized("the bearer token was issued by another provider") from error
            if claim == "aud":
                raise Unauthorized("the bearer token is meant for another service") from error
            raise Unauthorized(f"the bearer token is not valid: {error.description}") from error

    def _role(self, claims: dict[str, Any]) -> Role | None:
        settings = self.settings
        if settings.role_claim is None:
            return settings.default_role
        raw = claims.get(settings.role_claim)
        values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
        mapped = {settings.roles[v] for v in values if isinstance(v, str) and v in settings.roles}
        for role in reversed(ROLE_ORDER):
            if role in mapped:
                return role
        return settings.default_role
