"""Builds the one `core.auth.Security` of an app: tokens, OpenID Connect, rate limits.

Built once per `Services` (so the JWKS cache and the rate-limit buckets are shared by the
broker's routes, the catalogue's and the pages) and kept in `services.components["security"]`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from core.auth import Authenticator, JwtVerifier, Security
from core.limits import RateLimiter
from core.settings import Settings

if TYPE_CHECKING:
    from voexec.wiring import Services

__all__ = ["build_security", "security_of"]


def build_security(settings: Settings) -> Security:
    """The security of `settings`; the OpenID Connect keys are fetched on first use only."""
    jwt: JwtVerifier | None = None
    if settings.auth.oidc is not None:
        from core.oidc import OidcVerifier

        jwt = OidcVerifier(settings.auth.oidc)
    return Security(
        auth=Authenticator.from_settings(
            settings.auth, jwt, anonymous_runs=settings.broker.allow_anonymous_runs
        ),
        limiter=RateLimiter(settings.auth.limits, time.monotonic),
        owner_only_reads=settings.auth.owner_only_reads,
    )


def security_of(services: Services) -> Security:
    """The app's security, built on first use (handlers get it as the dependency `security`)."""
    found = services.components.get("security")
    if not isinstance(found, Security):
        found = build_security(services.settings)
        services.provide("security", found)
    return found
