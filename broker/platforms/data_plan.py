"""Where a request's data comes from, and how long moving it to a platform takes.

Pure: reads the request's data resources and a platform's data settings, does no I/O (the
probes are `broker.platforms.data_reach`). Shared by the offer-time check (which kinds and
places a platform can reach, the transfer's share of the preparation) and the preparation's
script (`broker.platforms.recipe`, which stages each item from where this module says).

Every data item becomes one *source*, written as a URL:

- `http(s)://...`: simple data, an IVOA resource's ObsCore or DataLink `access_url`, the first
  http(s) replica of a SKAO object;
- `file:///path`: a file on the platform (simple data given as a path or `file:` URL, or a
  configured local mirror holding a replica);
- `s3+http(s)://ENDPOINT-HOST/BUCKET/KEY`: an S3 object, path-style at its endpoint; a key
  ending in `/` (or none: the whole bucket) is a prefix, staged as a folder;
- `rucio:SCOPE/NAME[?server=URL]` (each part URL-quoted): a Rucio file, resolved to a replica
  through the Rucio server the platform has an account on (`broker.platforms.rucio_client`);
- `datalink+http(s)://...`: a DataLink `{links}` URL (an IVOA item whose DataLink row has the
  DataLink media type, `content=datalink`), resolved to its `#this` access URL;
- `ivo://...`: an IVOA publisher dataset identifier without an access URL, resolved through its
  publisher's DataLink service (`broker.platforms.datalink`).

The last three are *logical*: `broker.platforms.data_reach` resolves them at offer time (and
again when the session is prepared) to a concrete http(s) or `file://` URL carrying the checks
the source gives (`with_checks`: bytes, adler32, md5 in a `#voexec:` fragment, which the
staging step verifies and never sends). A logical source standing for several files (a Rucio
dataset, several DataLink `#this` links) resolves to `voexec-files:` followed by the files'
names and URLs (`files_bundle`), staged as a folder.

A platform's `data.mirrors` maps URL prefixes to local folders that hold replicas: a source
under a mirrored prefix is read from the mirror and moves nothing over the network. Everything
else moves at the bandwidth `data.bandwidth` gives its host (first matching pattern, MiB/s), or
`data.default_bandwidth`.

Imports `core.settings` and the broker's model only.
"""

from __future__ import annotations

import fnmatch
import math
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Final

from broker.model import (
    AnyData,
    IvoaDataLinkItem,
    IvoaDataResource,
    RucioDataResource,
    S3DataResource,
    SimpleDataResource,
    SkaoDataResource,
)
from broker.platforms.url_prefix import depth_under, url_parts

__all__ = [
    "CHECKS_MARK",
    "DataItem",
    "Move",
    "RucioDid",
    "S3Parts",
    "data_items",
    "files_bundle",
    "files_of",
    "from_mirror",
    "human_bytes",
    "is_logical",
    "moves_of",
    "rucio_did",
    "s3_parts",
    "source_host",
    "transfer_time",
    "with_checks",
]

MIB: Final = 1 << 20
SIMPLE_SCHEMES: Final = ("http", "https", "file")
S3_SCHEMES: Final = ("s3+http", "s3+https")
RUCIO_PREFIX: Final = "rucio:"
DATALINK_PREFIX: Final = "datalink+"
IVO_PREFIX: Final = "ivo://"
DATALINK_TYPE: Final = "content=datalink"
"""What the DataLink media type says (`application/x-votable+xml;content=datalink`)."""
FILES_PREFIX: Final = "voexec-files:"
"""Starts a resolved source of several files staged into one folder (`files_bundle`)."""
CHECKS_MARK: Final = "#voexec:"
"""Starts the fragment of a resolved source that carries its checks (`with_checks`)."""


@dataclass(frozen=True, slots=True)
class DataItem:
    """One data resource of a request, as a platform would stage it."""

    name: str
    """Its name in the request (the file name under `data/`), or `data-<n>`."""
    kind: str
    """Its kind's short name (`simple-data-resource`, `S3-data-resource`, ...)."""
    source: str | None
    """Where it is (see the module), or None when no platform can stage it."""
    why: str = ""
    """Why it cannot be staged, when `source` is None."""
    size: int | None = None
    """Bytes, when the request says (SKAO `datasize`, DataLink `content_length`)."""


@dataclass(frozen=True, slots=True)
class S3Parts:
    """An S3 source taken apart."""

    endpoint: str
    bucket: str
    key: str

    @property
    def is_prefix(self) -> bool:
        """True when the source names every object under a prefix (a folder)."""
        return self.key == "" or self.key.endswith("/")


@dataclass(frozen=True, slots=True)
class RucioDid:
    """A Rucio source taken apart."""

    scope: str
    name: str
    server: str | None
    """The Rucio server the request names; None: the platform's first."""

    @property
    def did(self) -> str:
        """`scope:name`."""
        return f"{self.scope}:{self.name}"


@dataclass(frozen=True, slots=True)
class Move:
    """What staging one data item costs a platform."""

    name: str
    source: str
    """Where the item is read from: the mirror's `file://` URL when there is a replica."""
    host: str
    """The host the bytes come from; `local` for a replica or a file on the platform."""
    size: int | None
    """Bytes; None when the source does not say."""
    bandwidth: float | None
    """MiB/s to `host`; None when nothing moves over the network."""

    @property
    def seconds(self) -> int:
        """Whole seconds the transfer takes (rounded up), 0 when nothing moves."""
        if self.bandwidth is None or not self.size:
            return 0
        return math.ceil(self.size / (self.bandwidth * MIB))


def item_name(data: AnyData, index: int) -> str:
    """The data item's name in the request, its UUID, or `data-<index>`."""
    meta = data.meta
    if meta is not None and meta.name:
        return meta.name
    if meta is not None and meta.uuid:
        return str(meta.uuid)
    return f"data-{index}"


def _kind(data: AnyData) -> str:
    return str(data.__struct_config__.tag).rsplit("/", 1)[-1].removesuffix(".yaml")


def _simple(location: str) -> tuple[str | None, str]:
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme in {"http", "https"}:
        return (location, "") if parsed.netloc else (None, f"{location} names no host")
    if parsed.scheme == "file":
        return location, ""
    if parsed.scheme == "" and location.startswith("/"):
        return PurePosixPath(location).as_uri(), ""
    if parsed.scheme == "":
        return None, f"{location!r} is neither a URL nor an absolute path"
    return None, f"cannot fetch {parsed.scheme}: URLs ({location}); http, https and file only"


def _s3(data: S3DataResource) -> tuple[str | None, str]:
    if not data.endpoint:
        return None, "gives no S3 endpoint"
    if not data.bucket:
        return None, "gives no S3 bucket"
    endpoint = urllib.parse.urlsplit(data.endpoint)
    if endpoint.scheme not in {"http", "https"} or not endpoint.netloc:
        return None, f"S3 endpoint {data.endpoint!r} is not an http(s) URL"
    base = data.endpoint.rstrip("/")
    key = urllib.parse.quote(data.object or "", safe="/~")
    return f"s3+{base}/{urllib.parse.quote(data.bucket, safe='')}/{key}", ""


def _datalink(link: IvoaDataLinkItem, url: str) -> tuple[str | None, str, int | None]:
    if DATALINK_TYPE not in (link.content_type or "").replace(" ", "").lower():
        return (*_simple(url), link.content_length)  # the row's access URL is the data itself
    source, why = _simple(url)
    if source is not None and not source.startswith("http"):
        return None, f"the DataLink URL {url} is not http(s)", None
    return (DATALINK_PREFIX + source if source else None), why, None


def _ivoa(data: IvoaDataResource | SkaoDataResource) -> tuple[str | None, str, int | None]:
    ivoa = data.ivoa
    if ivoa is not None and ivoa.obscore is not None and ivoa.obscore.access_url:
        return (*_simple(ivoa.obscore.access_url), None)
    if ivoa is not None and ivoa.datalink is not None and ivoa.datalink.access_url:
        return _datalink(ivoa.datalink, ivoa.datalink.access_url)
    if ivoa is not None and ivoa.ivoid:
        if not ivoa.ivoid.startswith(IVO_PREFIX) or len(ivoa.ivoid) <= len(IVO_PREFIX):
            return None, f"the identifier {ivoa.ivoid!r} is not an ivo:// URI", None
        return ivoa.ivoid, "", None
    return None, "gives no ivoid and no access_url", None


def _rucio(data: RucioDataResource) -> tuple[str | None, str]:
    block = data.rucio
    if block is None or not block.scope:
        return None, "gives no Rucio scope"
    if not block.object:
        return None, "gives no Rucio object (the name in its scope)"
    if block.endpoint and not block.endpoint.startswith(("http://", "https://")):
        return None, f"the Rucio endpoint {block.endpoint!r} is not an http(s) URL"
    source = (
        f"{RUCIO_PREFIX}{urllib.parse.quote(block.scope, safe='')}"
        f"/{urllib.parse.quote(block.object, safe='')}"
    )
    if block.endpoint:
        source += "?server=" + urllib.parse.quote(block.endpoint.rstrip("/"), safe="")
    return source, ""


def _skao(data: SkaoDataResource) -> tuple[str | None, str, int | None]:
    skao = data.skao
    size = skao.datasize if skao is not None else None
    urls = [r.dataurl for r in (skao.replicas if skao is not None else []) if r.dataurl]
    for url in urls:
        source, _ = _simple(url)
        if source is not None:
            return source, "", size
    if urls:
        return None, f"none of its replicas can be fetched: {', '.join(urls)}", size
    source, why, _ = _ivoa(data)
    return source, why, size


def _source(data: AnyData) -> tuple[str | None, str, int | None]:
    match data:
        case SimpleDataResource(location=location) if location:
            return (*_simple(location), None)
        case SimpleDataResource():
            return None, "gives no location", None
        case S3DataResource():
            return (*_s3(data), None)
        case RucioDataResource():
            return (*_rucio(data), None)
        case SkaoDataResource():
            return _skao(data)
        case IvoaDataResource():
            return _ivoa(data)


def data_items(data: Sequence[AnyData]) -> list[DataItem]:
    """The request's data items, each with its source or why it has none."""
    items = []
    for index, resource in enumerate(data):
        source, why, size = _source(resource)
        items.append(DataItem(item_name(resource, index), _kind(resource), source, why, size))
    return items


def s3_parts(source: str) -> S3Parts:
    """The endpoint, bucket and key of an `s3+http(s)://` source.

    Raises:
        ValueError: not an S3 source.
    """
    scheme, _, rest = source.partition("://")
    if scheme not in S3_SCHEMES:
        raise ValueError(f"not an S3 source: {source}")
    host, _, path = rest.partition("/")
    bucket, _, key = path.partition("/")
    if not bucket:
        raise ValueError(f"an S3 source names no bucket: {source}")
    return S3Parts(
        f"{scheme.removeprefix('s3+')}://{host}",
        urllib.parse.unquote(bucket),
        urllib.parse.unquote(key),
    )


def is_logical(source: str) -> bool:
    """True for a source resolved before it is read (Rucio, DataLink, an `ivo://` identifier)."""
    return source.startswith((RUCIO_PREFIX, DATALINK_PREFIX, IVO_PREFIX))


def rucio_did(source: str) -> RucioDid:
    """The scope, name and server of a `rucio:` source.

    Raises:
        ValueError: not a Rucio source.
    """
    if not source.startswith(RUCIO_PREFIX):
        raise ValueError(f"not a Rucio source: {source}")
    path, _, query = source[len(RUCIO_PREFIX) :].partition("?")
    scope, slash, name = path.partition("/")
    if not slash or not scope or not name:
        raise ValueError(f"a Rucio source names no scope and name: {source}")
    server = urllib.parse.parse_qs(query).get("server", [None])[0]
    return RucioDid(urllib.parse.unquote(scope), urllib.parse.unquote(name), server)


def with_checks(
    url: str, size: int | None = None, adler32: str | None = None, md5: str | None = None
) -> str:
    """`url` with the checks its source gives, in a `#voexec:` fragment the staging verifies."""
    checks = {"bytes": size, "adler32": adler32, "md5": md5}
    given = {name: str(value).lower() for name, value in checks.items() if value is not None}
    if not given:
        return url
    return url.split("#", 1)[0] + CHECKS_MARK + urllib.parse.urlencode(given)


def files_bundle(files: Sequence[tuple[str, str]]) -> str:
    """One source for several files staged into a folder: (name in the folder, URL) each."""
    return FILES_PREFIX + urllib.parse.urlencode([("f", f"{name}\n{url}") for name, url in files])


def files_of(source: str) -> list[tuple[str, str]]:
    """The (name, URL) of each file of a `files_bundle` source; [] for any other source."""
    if not source.startswith(FILES_PREFIX):
        return []
    found = []
    for _, value in urllib.parse.parse_qsl(source[len(FILES_PREFIX) :]):
        name, newline, url = value.partition("\n")
        if newline:
            found.append((name, url))
    return found


def source_host(source: str) -> str:
    """The host (with its port) the bytes of `source` come from; `local` for files.

    For several files, the first one's host.
    """
    if files := files_of(source):
        return source_host(files[0][1])
    parsed = urllib.parse.urlsplit(source)
    return "local" if parsed.scheme == "file" else parsed.netloc


def from_mirror(source: str, mirrors: Mapping[str, str]) -> str | None:
    """The `file://` URL of a local replica of `source`, when a mirror holds it.

    A mirror's prefix covers a source on the same scheme, host and port whose path starts with
    the prefix's path in whole segments (`.../data` covers `.../data/x`, not `.../database/x`;
    see `url_prefix`). The longest prefix wins; the rest of the source's path (URL-decoded) is
    the path below the mirror's folder. A rest that would climb out of the folder (`..`) is no
    replica.
    """
    matches = [
        (depth, prefix)
        for prefix in mirrors
        if prefix and (depth := depth_under(source, prefix)) is not None
    ]
    if not matches:
        return None
    depth, prefix = max(matches)
    parts = url_parts(source)
    assert parts is not None
    rest = PurePosixPath("/".join(parts.segments[depth:]))
    if ".." in rest.parts:
        return None
    folder = PurePosixPath(mirrors[prefix])
    target = folder / rest if rest.parts else folder
    return target.as_uri() if target.is_absolute() else None


def bandwidth_to(host: str, patterns: Mapping[str, float], default: float) -> float:
    """MiB/s to `host`: the first pattern (fnmatch, on `host` or `host:port`) that matches."""
    bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    for pattern, bandwidth in patterns.items():
        if fnmatch.fnmatchcase(host, pattern) or fnmatch.fnmatchcase(bare, pattern):
            return bandwidth
    return default


def moves_of(
    items: Sequence[tuple[DataItem, str, int | None]],
    patterns: Mapping[str, float],
    default: float,
) -> list[Move]:
    """What staging each item costs: (item, where it is read from, its size) -> a `Move`."""
    moves = []
    for item, source, size in items:
        host = source_host(source)
        bandwidth = None if host == "local" else bandwidth_to(host, patterns, default)
        moves.append(Move(item.name, source, host, size, bandwidth))
    return moves


def transfer_time(moves: Sequence[Move]) -> timedelta:
    """How long staging takes: the items are fetched one after the other."""
    return timedelta(seconds=sum(move.seconds for move in moves))


def human_bytes(size: int) -> str:
    """`2.0 GiB`, `512 KiB`, `17 B`."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns
