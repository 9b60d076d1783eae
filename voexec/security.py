"""Builds the one `core.auth.Security` of an app: tokens, OpenID Connect, rate limits.

Built once per `Services` (so the JWKS cache and the rate-limit buckets are shared by the
broker's routes, the catalogue's and the pages) and kept in `services.components["security"]`.
The buckets live in this process; a worker of `voexec serve --workers N` moves them to the
table its siblings share with `share_rate_limits` (see `voexec.shared_limits`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from core.auth import Authenticator, JwtVerifier, Security
from core.limits import BucketStore, RateLimiter
from core.settings import Settings

if TYPE_CHECKING:
    from voexec.wiring import Services

__all__ = ["build_security", "security_of", "share_rate_limits"]


def build_security(settings: Settings) -> Security:
    """The security of `settings`; the OpenID Connect keys are fetched on first use only.

    Its rate-limit buckets are this process's own until `share_rate_limits` moves them.
    """
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


def share_rate_limits(services: Services, buckets: BucketStore) -> None:
    """Keep the rate-limit buckets of `services` in `buckets` (before the app serves)."""
    security_of(services).limiter.store = buckets
