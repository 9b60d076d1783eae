"""Where a session's results go, and whether a platform may write there.

Pure: reads the request's results storage (voexec's `s3-results-storage`,
`http-results-storage` and `file-results-storage` kinds) and a platform's `data.results`
settings, and does no I/O: no probe, no write (the bucket or folder may appear before the
session ends; the upload itself says when it cannot write). Shared by the offer-time check
(`broker.service.data`) and the session plan the upload step is written from (`uploads`).

Credentials for http(s) destinations come from the platform's `data.results.http_credentials`
(per URL prefix, bearer or Basic, values possibly from environment variables), never from the
request: `http_authorization` turns them into the `Authorization` header of the PUTs. A
destination whose credentials name a variable that is not set is refused at offer time.

Every destination becomes one URL, the form the upload step (`session_results.py`) takes:

- `s3+http(s)://ENDPOINT-HOST/BUCKET/PREFIX`: objects `PREFIX<path in the output folder>`;
- `http(s)://...`: each file PUT at `<url>/<path in the output folder>`;
- `file:///folder`: the output folder copied into it.

Imports the broker's model and ports only.
"""

from __future__ import annotations

import base64
import os
import posixpath
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Final

from broker.model import (
    AnyStorage,
    FileResultsStorage,
    HttpResultsStorage,
    S3ResultsStorage,
)
from broker.platforms.port import ResultsTarget
from broker.platforms.url_prefix import depth_under
from core.settings import HttpCredentials, PlatformResultsSettings

__all__ = [
    "ResultsItem",
    "checked_targets",
    "http_authorization",
    "results_items",
    "results_refusals",
    "results_targets",
    "s3_endpoint",
]


@dataclass(frozen=True, slots=True)
class ResultsItem:
    """One results destination of a request."""

    name: str
    kind: str
    """Its kind's short name (`s3-results-storage`, ...)."""
    destination: str | None
    """Where the results go (see the module); None when it cannot be read."""
    why: str = ""
    """Why it cannot be read, when `destination` is None."""

    @property
    def scheme(self) -> str:
        """`s3`, `http` (http and https) or `file`; empty for no destination."""
        if self.destination is None:
            return ""
        scheme = urllib.parse.urlsplit(self.destination).scheme
        return {"s3+http": "s3", "s3+https": "s3", "https": "http"}.get(scheme, scheme)


def s3_endpoint(url: str) -> str | None:
    """`scheme://host[:port]` of an S3 endpoint URL, lower-cased; None when it is not one."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
        return None
    if parts.path.strip("/") or parts.query or parts.fragment:
        return None  # path-style requests go to the endpoint's root
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _name(storage: AnyStorage, index: int) -> str:
    meta = storage.meta
    if meta is not None and meta.name:
        return meta.name
    return str(meta.uuid) if meta is not None and meta.uuid else f"results-{index}"


def _climbs(path: str) -> bool:
    return ".." in PurePosixPath(path).parts


def _s3(storage: S3ResultsStorage) -> tuple[str | None, str]:
    if not storage.endpoint:
        return None, "gives no S3 endpoint"
    if not storage.bucket:
        return None, "gives no S3 bucket"
    endpoint = s3_endpoint(storage.endpoint)
    if endpoint is None:
        return None, f"S3 endpoint {storage.endpoint!r} is not an http(s) URL of a host"
    if _climbs(storage.prefix) or storage.prefix.startswith("/"):
        return None, f"S3 prefix {storage.prefix!r} climbs out of the bucket"
    bucket = urllib.parse.quote(storage.bucket, safe="")
    return f"s3+{endpoint}/{bucket}/{urllib.parse.quote(storage.prefix, safe='/~')}", ""


def _authority_problem(location: str, parts: urllib.parse.SplitResult) -> str:
    """Why the host part of an http(s) results URL cannot be used; empty when it can."""
    if parts.username is not None or parts.password is not None:
        return (
            "location carries a user name or password in its URL; credentials for a "
            "destination come from the platform (data.results.http_credentials), never "
            "from the request"
        )
    if not parts.hostname:
        return f"{location!r} names no host"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"location {location!r} has a port that is not a number from 0 to 65535"
    return ""


def _http(storage: HttpResultsStorage) -> tuple[str | None, str]:
    location = (storage.location or "").strip()
    if not location:
        return None, "gives no location"
    parts = urllib.parse.urlsplit(location)
    if parts.scheme.lower() not in {"http", "https"}:
        scheme = parts.scheme or "no scheme"
        return None, f"cannot PUT results to {location!r} ({scheme}); http and https only"
    authority = _authority_problem(location, parts)
    if authority:
        return None, authority
    plain = not any(c.isspace() for c in location) and not parts.query and not parts.fragment
    if _climbs(urllib.parse.unquote(parts.path)) or not plain:
        return None, f"{location!r} is not a plain URL prefix (no '..', spaces, query or fragment)"
    return location, ""


def _file(storage: FileResultsStorage) -> tuple[str | None, str]:
    path = (storage.path or "").strip()
    if path.startswith("file:"):
        path = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
    if not path:
        return None, "gives no path"
    if not path.startswith("/"):
        return None, f"{path!r} is not an absolute path on the platform"
    if _climbs(path):
        return None, f"{path!r} climbs with '..'"
    return PurePosixPath(posixpath.normpath(path)).as_uri(), ""


def results_items(storage: Sequence[AnyStorage]) -> list[ResultsItem]:
    """The request's results destinations (its other storage is not about results)."""
    items = []
    for index, resource in enumerate(storage):
        match resource:
            case S3ResultsStorage():
                destination, why = _s3(resource)
            case HttpResultsStorage():
                destination, why = _http(resource)
            case FileResultsStorage():
                destination, why = _file(resource)
            case _:
                continue
        kind = str(resource.__struct_config__.tag).rsplit("/", 1)[-1].removesuffix(".yaml")
        items.append(ResultsItem(_name(resource, index), kind, destination, why))
    return items


_HTTP: Final = ("http", "https")


def _under(destination: str, prefix: str) -> int | None:
    """How many path segments `prefix` has when the http(s) `destination` is under it.

    Same scheme, host and port, and the prefix's path a whole-segment start of the
    destination's (`/upload` covers `/upload/run-1`, not `/uploads`); None when not.
    """
    return depth_under(destination, prefix, _HTTP)


def _credentials_for(
    destination: str, settings: PlatformResultsSettings
) -> tuple[int, HttpCredentials] | None:
    """The entry of `http_credentials` (with its index) for a destination: the longest prefix.

    Longest in whole path segments, on the same scheme, host and port (see `_under`).
    """
    found = [
        (depth, index, entry)
        for index, entry in enumerate(settings.http_credentials)
        if (depth := _under(destination, entry.prefix)) is not None
    ]
    if not found:
        return None
    _, index, entry = max(found, key=lambda item: (item[0], -item[1]))
    return index, entry


def http_authorization(
    destination: str,
    settings: PlatformResultsSettings,
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, str]:
    """The `Authorization` header the platform PUTs under `destination` with, or why it has none.

    Returns:
        `(header, "")`; `(None, "")` when no credentials are configured for the destination
        (written without); `(None, why)` when they are but a variable they name is not set.
    """
    env = os.environ if environ is None else environ
    match = _credentials_for(destination, settings)
    if match is None:
        return None, ""
    index, entry = match
    setting = f"data.results.http_credentials[{index}]"
    values: dict[str, str] = {}
    for name in ("bearer", "username", "password"):
        variable = getattr(entry, f"{name}_env")
        value = getattr(entry, name) or (env.get(variable, "") if variable else "")
        if variable and not value:
            return None, (
                f"the credentials for {entry.prefix} ({setting}.{name}_env) are in the "
                f"environment variable {variable}, which is not set where the broker runs"
            )
        values[name] = value
    if values["bearer"]:
        return f"Bearer {values['bearer']}", ""
    pair = f"{values['username']}:{values['password']}".encode()
    return f"Basic {base64.b64encode(pair).decode()}", ""


def _within(path: PurePosixPath, root: str) -> bool:
    folder = PurePosixPath(posixpath.normpath(root))
    return folder.is_absolute() and (path == folder or folder in path.parents)


def _refusal(
    item: ResultsItem, settings: PlatformResultsSettings, environ: Mapping[str, str] | None
) -> str | None:
    where = f"results {item.name!r} ({item.kind})"
    if item.destination is None:
        return f"{where} {item.why}"
    destination = item.destination
    match item.scheme:
        case "s3":
            endpoint = destination.removeprefix("s3+").split("/", 3)
            host = f"{endpoint[0]}//{endpoint[2]}"
            allowed = {s3_endpoint(url) for url in settings.s3} - {None}
            if host not in allowed:
                return (
                    f"{where}: does not write to the S3 endpoint {host}; "
                    f"it writes to {', '.join(sorted(a for a in allowed if a)) or 'none'} "
                    "(data.results.s3)"
                )
        case "http":
            if not any(_under(destination, prefix) is not None for prefix in settings.http):
                return (
                    f"{where}: does not PUT results under {destination}; "
                    f"it does under {', '.join(settings.http) or 'none'} (data.results.http)"
                )
            _, missing = http_authorization(destination, settings, environ)
            if missing:
                return f"{where}: cannot PUT results under {destination}: {missing}"
        case "file":
            path = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(destination).path))
            if not any(_within(path, root) for root in settings.files):
                return (
                    f"{where}: does not write results to {path}; "
                    f"it does under {', '.join(settings.files) or 'no folder'} "
                    "(data.results.files)"
                )
    return None


def results_refusals(
    items: Sequence[ResultsItem],
    settings: PlatformResultsSettings,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Why a platform with `settings` cannot write each destination; empty when it can.

    `environ` (voexec's environment by default) holds the variables credentials name.
    """
    return [why for item in items if (why := _refusal(item, settings, environ)) is not None]


def results_targets(storage: Sequence[AnyStorage]) -> tuple[ResultsTarget, ...]:
    """The destinations a session's upload step writes to (those that can be read)."""
    return tuple(
        ResultsTarget(item.name, item.kind, item.destination)
        for item in results_items(storage)
        if item.destination is not None
    )


def checked_targets(
    targets: Sequence[ResultsTarget],
    settings: PlatformResultsSettings,
    environ: Mapping[str, str] | None = None,
) -> tuple[tuple[ResultsTarget, ...], list[str]]:
    """The targets as the platform's settings allow them now, and why any is not allowed.

    A folder target gets the allowed folder it is under (`ResultsTarget.root`), which the
    upload checks again on the platform, where symbolic links are seen.
    """
    items = [ResultsItem(t.name, t.kind, t.destination) for t in targets]
    why = results_refusals(items, settings, environ)
    checked = []
    for target in targets:
        root = None
        if target.destination.startswith("file:"):
            path = PurePosixPath(
                urllib.parse.unquote(urllib.parse.urlsplit(target.destination).path)
            )
            root = next((r for r in settings.files if _within(path, r)), None)
        checked.append(ResultsTarget(target.name, target.kind, target.destination, root))
    return tuple(checked), why
