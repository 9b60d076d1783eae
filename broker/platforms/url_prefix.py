"""Whether a URL lies under a configured URL prefix: same origin, whole path segments.

Settings name places by URL prefix (where results may go, which credentials a destination
gets, which local folder mirrors a data archive). A plain `startswith` is wrong for all of
them: `https://store.example.org` would cover `https://store.example.org.evil.net/` and
`https://store.example.org@evil.net/`, and `/data` would cover `/database`. Here a URL is
under a prefix when scheme, host and port are the same (case and a trailing dot in the host
ignored, the scheme's default port filled in) and the prefix's path segments start the URL's.
A URL with a user name or password matches nothing.

Pure: no I/O.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Collection
from typing import Final, NamedTuple

DEFAULT_PORTS: Final = {"http": 80, "https": 443, "s3+http": 80, "s3+https": 443}
"""The port a URL of each scheme means when it names none."""


class UrlParts(NamedTuple):
    """A URL cut for prefix matching."""

    scheme: str
    host: str
    port: int | None
    segments: tuple[str, ...]
    """The path's non-empty segments, URL-decoded."""


def url_parts(url: str, schemes: Collection[str] | None = None) -> UrlParts | None:
    """`url` cut into its origin and path segments; None when it cannot be matched.

    None for a scheme outside `schemes` (when given), no host, a port that is not a number,
    or a user name or password.
    """
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if schemes is not None and scheme not in schemes:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port
    except ValueError:
        return None
    if not host:
        return None
    segments = tuple(urllib.parse.unquote(s) for s in parts.path.split("/") if s)
    return UrlParts(scheme, host, DEFAULT_PORTS.get(scheme) if port is None else port, segments)


def depth_under(url: str, prefix: str, schemes: Collection[str] | None = None) -> int | None:
    """How many path segments `prefix` has when `url` is under it; None when it is not."""
    inside, root = url_parts(url, schemes), url_parts(prefix, schemes)
    if inside is None or root is None or inside[:3] != root[:3]:
        return None
    depth = len(root.segments)
    return depth if inside.segments[:depth] == root.segments else None
