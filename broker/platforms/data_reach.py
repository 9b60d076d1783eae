"""Offer-time data checks: can a platform reach each data item, and how much must move?

For each data item of a request (`broker.platforms.data_plan.DataItem`) a platform that stages
data for real asks its source how big it is: an HTTP `HEAD` (a one-byte ranged `GET` when
`HEAD` is refused), an S3 `HeadObject` (a listing for a prefix), a `stat` for a file. A missing
object, an unreachable host or an unknown scheme is a refusal naming the item; otherwise the
sizes and the platform's bandwidth to each host give the transfer's time, which the offer adds
to the platform's preparation. A platform whose configured mirror holds a replica moves
nothing.

Rucio data (`scope:name`), a DataLink `{links}` URL and an `ivo://` identifier are resolved
first (`resolve`): Rucio through the server the platform has an account on
(`broker.platforms.rucio_client`): a replica on an RSE the platform is close to
(`data.rucio[].close_rses`) is read in place and moves nothing, else the first replica with an
http(s) URL is downloaded; DataLink through its `#this` link (`broker.platforms.datalink`),
an identifier through its publisher's DataLink service (`data.ivoa`). An unknown identifier,
no replica the platform can read, or a DataLink error is a refusal naming the item. The same
resolution gives the preparation its concrete URLs (`resolve_sources`), with the checksums and
size the source gives, which the staging verifies.

Probes are bounded: each waits at most `data.probe_timeout`, the distinct sources of one
request are asked at once (a few threads), as are the replicas of a Rucio dataset's files,
all within the server's `probe_budget` and for at most its `max_files` files; answers
(failures too) are kept for `data.probe_cache`, so a burst of requests for the same data asks
once. The preparation resolves a session's items at once too. The service calls this
outside any database transaction.

Imports `core.settings`, the pure `data_plan`, `session_s3` (S3 requests), `rucio_client`,
`datalink` and the platform port's types; urllib for HTTP.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Final, TypeVar

import msgspec

from broker.platforms import datalink, rucio_client, session_s3
from broker.platforms.data_plan import (
    DATALINK_PREFIX,
    IVO_PREFIX,
    RUCIO_PREFIX,
    DataItem,
    Move,
    files_bundle,
    from_mirror,
    is_logical,
    moves_of,
    rucio_did,
    s3_parts,
    source_host,
    transfer_time,
    with_checks,
)
from broker.platforms.port import DataSource, PlatformError
from core.settings import PlatformDataSettings, RucioServer

__all__ = [
    "DataAnswer",
    "Probe",
    "assess_data",
    "clear_probe_cache",
    "resolve",
    "resolve_sources",
    "s3_credentials",
]

GIB: Final = 1 << 30
_THREADS: Final = 8
_GRACE: Final = 1.0
"""Seconds past a deadline that a probe under way is waited for (its own timeout ends it)."""


@dataclass(frozen=True, slots=True)
class Probe:
    """What a source said about itself."""

    size: int | None = None
    """Bytes; None when the source does not say."""
    error: str | None = None
    """Why it cannot be read (missing, unreachable, refused)."""
    resolved: str | None = None
    """For a logical source: the concrete URL it is read from (with its checks)."""
    near: bool = False
    """Read in place (a replica on an RSE the platform is close to): nothing moves."""


@dataclass(frozen=True, slots=True)
class DataAnswer:
    """A platform's answer for a request's data."""

    refusals: tuple[str, ...] = ()
    """Why it cannot stage some item, each naming the item; empty when it can stage all."""
    moves: tuple[Move, ...] = ()

    @property
    def transfer(self) -> timedelta:
        """How long staging the data takes (the items one after the other)."""
        return transfer_time(self.moves)

    @property
    def moved_bytes(self) -> int:
        """Bytes moved over the network (known sizes only)."""
        return sum(move.size or 0 for move in self.moves if move.bandwidth is not None)


# ------------------------------------------------------------------------- the cache
_cache: dict[Hashable, tuple[float, Probe]] = {}
_cache_lock = threading.Lock()


def clear_probe_cache() -> None:
    """Forget every kept answer (tests; an operator's change to the data)."""
    with _cache_lock:
        _cache.clear()


def _cached(key: Hashable, keep: float, ask: Callable[[], Probe]) -> Probe:
    now = time.monotonic()
    with _cache_lock:
        kept = _cache.get(key)
        if kept is not None and now - kept[0] < keep:
            return kept[1]
    answer = ask()
    with _cache_lock:
        if len(_cache) > 4096:  # bounded: old answers go first
            for stale in sorted(_cache, key=lambda k: _cache[k][0])[:1024]:
                del _cache[stale]
        _cache[key] = (time.monotonic(), answer)
    return answer


_UNANSWERED: Final = Probe(error="no answer in time")
_T = TypeVar("_T")


def _ask_all(
    asked: Sequence[_T],
    ask: Callable[[_T], Probe],
    deadline: float | None = None,
    late: Probe = _UNANSWERED,
) -> list[Probe]:
    """`ask` of each of `asked`, a few at once, in their order.

    Past `deadline` (`time.monotonic`) the unanswered ones are `late`; their threads end on
    their own, each probe bounded by its timeout.
    """
    if len(asked) <= 1:
        return [ask(one) for one in asked]
    pool = ThreadPoolExecutor(min(_THREADS, len(asked)), thread_name_prefix="data-probe")
    try:
        futures = [pool.submit(ask, one) for one in asked]
        left = None if deadline is None else max(0.0, deadline - time.monotonic()) + _GRACE
        wait(futures, timeout=left)
        return [future.result() if future.done() else late for future in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------------- the probes
def s3_credentials(settings: PlatformDataSettings) -> session_s3.Credentials:
    """The platform's S3 credentials: its settings, else the environment's AWS variables."""
    from_env = session_s3.Credentials.from_environment()
    s3 = settings.s3
    if s3.access_key and s3.secret_key:
        return session_s3.Credentials(
            s3.access_key, s3.secret_key, s3.session_token, s3.region or from_env.region
        )
    return from_env


def _http(url: str, timeout: float) -> Probe:
    host = urllib.parse.urlsplit(url).netloc
    for method, headers in (("HEAD", {}), ("GET", {"Range": "bytes=0-0"})):
        request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
                ranged = answer.headers.get("Content-Range", "")
                length = (
                    ranged.rpartition("/")[2] if ranged else answer.headers.get("Content-Length")
                )
                size = int(length) if length and length.isdigit() else None
                return Probe(size=size)
        except urllib.error.HTTPError as error:
            if method == "HEAD" and error.code in {405, 501}:
                continue  # the server does not answer HEAD: ask for one byte instead
            return Probe(error=f"{url} answers HTTP {error.code} {error.reason}")
        except (OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            return Probe(error=f"cannot reach {host}: {reason}")
    return Probe(error=f"{url} answers neither HEAD nor a ranged GET")  # pragma: no cover


def _file(url: str) -> Probe:
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    try:
        if path.is_dir():
            return Probe(size=sum(f.stat().st_size for f in path.rglob("*") if f.is_file()))
        return Probe(size=path.stat().st_size)
    except FileNotFoundError:
        return Probe(error=f"no such file on the platform: {path}")
    except OSError as error:
        return Probe(error=f"cannot read {path}: {error.strerror}")


def _s3(source: str, credentials: session_s3.Credentials, timeout: float) -> Probe:
    parts = s3_parts(source)
    try:
        if parts.is_prefix:
            found = session_s3.list_objects(
                parts.endpoint, parts.bucket, parts.key, credentials, timeout=timeout
            )
            if not found:
                where = f"bucket {parts.bucket!r} at {parts.endpoint}"
                return Probe(error=f"no object under {parts.key!r} in {where}")
            return Probe(size=sum(item.size for item in found))
        head = session_s3.head_object(parts.endpoint, parts.bucket, parts.key, credentials, timeout)
        return Probe(size=head.size)
    except session_s3.S3Error as error:
        text = str(error)
        if error.status == 404:
            text += " (no such object or bucket)"
        elif error.status == 403:
            text += " (access denied with this platform's credentials)"
        return Probe(error=text)


def _rucio_server(settings: PlatformDataSettings, wanted: str | None) -> RucioServer:
    if not settings.rucio:
        raise rucio_client.RucioError("this platform has no Rucio account (data.rucio is empty)")
    if wanted is None:
        return settings.rucio[0]
    for server in settings.rucio:
        if server.url.rstrip("/") == wanted.rstrip("/"):
            return server
    raise rucio_client.RucioError(f"this platform has no account on the Rucio server {wanted}")


_READABLE: Final = ("https://", "http://")


_LATE: Final = Probe(error="the probe budget ran out")
"""What `_replica` says when the item's time to probe ran out before a replica answered."""


def _replica(
    found: rucio_client.RucioFile, server: RucioServer, timeout: float, deadline: float
) -> Probe:
    """The replica of one file to stage: the first that answers, a close RSE's first.

    Each probe waits at most `timeout`, and none goes past `deadline` (`time.monotonic`).
    """
    did = f"{found.scope}:{found.name}"
    # Replicas on a close RSE first (a `file` PFN before an http(s) one), then the others'
    # http(s) PFNs; the first that answers is the one staged.
    by_rse = {replica.rse: replica for replica in found.replicas}
    candidates: list[tuple[str, bool]] = []
    for rse in server.close_rses:
        pfns = by_rse[rse].pfns if rse in by_rse else ()
        candidates += [(pfn, True) for pfn in pfns if pfn.startswith("file://")]
        candidates += [(pfn, True) for pfn in pfns if pfn.startswith(_READABLE)]
    for replica in found.replicas:
        if replica.rse not in server.close_rses:
            candidates += [(pfn, False) for pfn in replica.pfns if pfn.startswith(_READABLE)]
    failures = []
    for pfn, near in candidates:
        left = deadline - time.monotonic()
        if left <= 0:
            return _LATE
        answer = _file(pfn) if pfn.startswith("file://") else _http(pfn, min(timeout, left))
        if answer.error is not None and time.monotonic() >= deadline:
            return _LATE  # it may have failed only for want of time
        if answer.error is None:
            size = found.bytes if found.bytes is not None else answer.size
            url = with_checks(pfn, found.bytes, found.adler32, found.md5)
            return Probe(size=size, resolved=url, near=near)
        failures.append(answer.error)
    if failures:
        return Probe(error=f"no replica of {did} answers: {'; '.join(failures)}")
    where = ", ".join(
        f"{replica.rse} ({', '.join(replica.pfns) or 'no URL'})" for replica in found.replicas
    )
    return Probe(error=f"no replica of {did} this platform can read: {where or 'none'}")


def _file_names(names: Sequence[str]) -> list[str]:
    """Plain, distinct file names for the files of one folder (no `/`, no leading dot)."""
    found: list[str] = []
    taken: set[str] = set()
    for index, name in enumerate(names):
        plain = name.replace("/", "_").lstrip(".") or f"file-{index}"
        if plain in taken:
            plain = f"{index}-{plain}"
        taken.add(plain)
        found.append(plain)
    return found


def _together(parts: Sequence[tuple[str, Probe]]) -> Probe:
    """One probe for several files staged as a folder: the first error, else their sum."""
    for _, part in parts:
        if part.error is not None:
            return part
    if len(parts) == 1:
        return parts[0][1]
    sizes = [part.size for _, part in parts]
    names = _file_names([name for name, _ in parts])
    return Probe(
        size=None if None in sizes else sum(size or 0 for size in sizes),
        resolved=files_bundle(
            [(name, part.resolved or "") for name, (_, part) in zip(names, parts, strict=True)]
        ),
        near=all(part.near for _, part in parts),
    )


def _rucio(source: str, settings: PlatformDataSettings, timeout: float) -> Probe:
    did = rucio_did(source)
    try:
        server = _rucio_server(settings, did.server)
        files = rucio_client.file_replicas(server, did.scope, did.name, timeout)
    except rucio_client.RucioError as error:
        return Probe(error=str(error))
    if not files:
        return Probe(error=f"Rucio lists no available replica of {did.did}")
    # A dataset or container: its files, each from its own replica, into one folder. Their
    # replicas are probed a few at once, all within the server's budget for one item.
    budget = server.probe_budget.total_seconds()
    deadline = time.monotonic() + budget
    probes = _ask_all(
        files, lambda found: _replica(found, server, timeout, deadline), deadline, _LATE
    )
    if any(answer is _LATE for answer in probes):
        return Probe(
            error=f"probing the replicas of {did.did}'s {len(files)} files took longer than "
            f"this platform allows ({budget:g} s, data.rucio[].probe_budget)"
        )
    return _together([(found.name, answer) for found, answer in zip(files, probes, strict=True)])


def _datalink(source: str, settings: PlatformDataSettings, timeout: float) -> Probe:
    ivoa = settings.ivoa
    try:
        if source.startswith(IVO_PREFIX):
            url = datalink.resolve_identifier(source, ivoa.datalink, ivoa.regtap, timeout)
        else:
            url = source.removeprefix(DATALINK_PREFIX)
        links = datalink.links_of(url, timeout)
    except datalink.DataLinkError as error:
        return Probe(error=str(error))
    parts = []
    for index, link in enumerate(links):
        access = link.access_url or ""
        if not access.startswith(_READABLE):
            return Probe(error=f"the DataLink #this access URL {access} is not http(s)")
        size = link.content_length
        if size is None:
            answer = _http(access, timeout)
            if answer.error is not None:
                return answer
            size = answer.size
        name = urllib.parse.unquote(urllib.parse.urlsplit(access).path.rsplit("/", 1)[-1])
        resolved = with_checks(access, size=link.content_length)
        parts.append((name or f"file-{index}", Probe(size=size, resolved=resolved)))
    # A dataset in several files (several links to itself): all of them, into one folder.
    return _together(parts)


def resolve(source: str, settings: PlatformDataSettings) -> Probe:
    """A logical source's concrete URL and size, through the cache (a plain one is itself)."""
    timeout = settings.probe_timeout.total_seconds()
    keep = settings.probe_cache.total_seconds()
    if source.startswith(RUCIO_PREFIX):
        # Every setting of the platform's servers can change the answer (its account, the RSEs
        # it is close to, `max_files`, `probe_budget`...): one platform never gets another's.
        servers = msgspec.json.encode(settings.rucio)
        return _cached((source, servers, timeout), keep, lambda: _rucio(source, settings, timeout))
    if source.startswith((DATALINK_PREFIX, IVO_PREFIX)):
        ivoa = settings.ivoa
        key = f"{sorted(ivoa.datalink.items())};{ivoa.regtap}"
        return _cached((source, key), keep, lambda: _datalink(source, settings, timeout))
    return Probe(resolved=source)


def probe(source: str, settings: PlatformDataSettings) -> Probe:
    """Ask `source` for its size, through the cache."""
    timeout = settings.probe_timeout.total_seconds()
    keep = settings.probe_cache.total_seconds()
    if is_logical(source):
        return resolve(source, settings)
    scheme = urllib.parse.urlsplit(source).scheme
    if scheme == "file":
        return _file(source)  # cheap, and it must see the file as it is now
    if scheme.startswith("s3+"):
        credentials = s3_credentials(settings)
        return _cached(
            (source, credentials.access_key), keep, lambda: _s3(source, credentials, timeout)
        )
    if scheme in {"http", "https"}:
        return _cached((source, ""), keep, lambda: _http(source, timeout))
    return Probe(error=f"cannot fetch {scheme}: URLs")


# ------------------------------------------------------------------------- the answer
def assess_data(
    items: Sequence[DataItem], settings: PlatformDataSettings, *, probes: bool = True
) -> DataAnswer:
    """Whether a platform with `settings` can stage `items`, and what moving them costs.

    Args:
        items: the request's data.
        settings: the platform's `data` settings.
        probes: ask the sources (platforms that stage for real); without, sizes are the ones
            the request gives and nothing is refused for being missing.
    """
    refusals: list[str] = []
    wanted: list[tuple[DataItem, str]] = []
    for item in items:
        if item.source is None:
            refusals.append(f"data {item.name!r} ({item.kind}) {item.why}")
            continue
        replica = from_mirror(item.source, settings.mirrors)
        wanted.append((item, replica or item.source))
    answers: dict[str, Probe] = {}
    if probes:
        distinct = sorted({where for _, where in wanted})
        said = _ask_all(distinct, lambda source: probe(source, settings))
        answers = dict(zip(distinct, said, strict=True))
    limit = int(settings.max_size * GIB) if settings.max_size else None
    sized: list[tuple[DataItem, str, int | None]] = []
    near: list[bool] = []
    for item, where in wanted:
        found = answers.get(where, Probe(size=item.size))
        if found.error is not None:
            refusals.append(f"data {item.name!r}: {found.error}")
            continue
        if found.resolved is not None:
            where = from_mirror(found.resolved, settings.mirrors) or found.resolved  # noqa: PLW2901
        size = found.size if found.size is not None else item.size
        if limit is not None and size is not None and size > limit:
            refusals.append(
                f"data {item.name!r} is {size} bytes, more than this platform stages "
                f"({settings.max_size:g} GiB, data.max_size)"
            )
            continue
        sized.append((item, where, size))
        near.append(found.near)
    if refusals:
        return DataAnswer(refusals=tuple(refusals))
    moves = [
        replace(move, host="local", bandwidth=None) if in_place else move
        for move, in_place in zip(
            moves_of(sized, settings.bandwidth, settings.default_bandwidth), near, strict=True
        )
    ]
    return DataAnswer(moves=tuple(moves))


def resolve_sources(
    data: Sequence[DataSource], settings: PlatformDataSettings
) -> tuple[DataSource, ...]:
    """The session's data with each logical source (Rucio, DataLink, `ivo://`) made concrete.

    Raises:
        PlatformError: an item cannot be resolved now, naming it and why.
    """
    logical = sorted(
        {item.location for item in data if item.location is not None and is_logical(item.location)}
    )
    answers = dict(
        zip(logical, _ask_all(logical, lambda source: resolve(source, settings)), strict=True)
    )
    resolved = []
    for item in data:
        if item.location is None or not is_logical(item.location):
            resolved.append(item)
            continue
        found = answers[item.location]
        if found.error is not None or found.resolved is None:
            raise PlatformError(f"data {item.name!r}: {found.error or 'cannot be resolved'}")
        resolved.append(replace(item, location=found.resolved))
    return tuple(resolved)


def describe_sources(moves: Sequence[Move]) -> str:
    """`archive.example.org (2), local replica (1)`: where the moved bytes come from."""
    counts: dict[str, int] = {}
    for move in moves:
        local = move.bandwidth is None or source_host(move.source) == "local"
        host = "local replica" if local else move.host
        counts[host] = counts.get(host, 0) + 1
    return ", ".join(f"{host} ({count})" for host, count in counts.items())
