"""Named tokens for test settings: each test token with its hashed `auth.tokens` entry."""

from __future__ import annotations

from typing import Any

from core.auth import token_sha256


def named(name: str, token: str, role: str = "researcher") -> dict[str, Any]:
    """The `auth.tokens` entry of `token`, held by `name` with `role`."""
    return {"name": name, "sha256": token_sha256(token), "role": role}


def researchers(*tokens: str) -> list[dict[str, Any]]:
    """One researcher entry per token, named `researcher-<n>`."""
    return [named(f"researcher-{number}", token) for number, token in enumerate(tokens)]


PUBLISH_TOKEN = "s3cret-publisher-token-for-the-tests-only"
"""The packager's token of `tests.catalogue_support.app_settings`."""
