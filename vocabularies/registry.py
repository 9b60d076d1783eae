"""The loaded vocabularies (`VocabularyRegistry`), how they are loaded, and how they are refreshed.

Loading (at start-up, `load_registry`) never fails because of the network and never refreshes
what is cached; refreshing is an explicit act (`voexec vocab refresh`, `refresh_vocabularies`).
This is the opposite of pyvo's `UAT`, which fetches in a constructor and keeps the result on a
class; here the registry is a plain value built once and injected where it is needed.

For each configured name, in order:

1. `vocabularies.path` set: read `<path>/<name>.desise|.ttl|.rdf`; nothing else is tried.
2. otherwise the cache under `cache_dir` (default `<data_dir>/vocabularies`), if present;
3. otherwise, unless `offline`, fetch `<base_url>/<name>` (content negotiation) and cache it;
4. when that is not possible (`offline`, or the server cannot be reached or fails), the dated
   snapshot shipped in `vocabularies/snapshot/`, for the names it holds. The snapshot is never
   copied into the cache, so the next start tries the network again.

Whatever fails (no network and no snapshot, a damaged file, a 404) is logged as a warning and
listed in `VocabularyRegistry.problems`, and start-up goes on with what did load. Our own
vocabularies (`vocabularies/data/*.ttl`) are always there. Each loaded vocabulary has an
`Origin` saying which copy it is (version, snapshot date or fetch time, and why).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import msgspec

from core.clock import Clock, SystemClock
from core.errors import ConfigError, DomainError, NotFound, Unavailable
from core.settings import VocabularySettings
from vocabularies.fetch import Fetcher, HttpFetcher
from vocabularies.model import BadVocabularyData, UnknownVocabulary, Vocabulary
from vocabularies.sources import (
    SNAPSHOT_DIR,
    Snapshot,
    VocabularyCache,
    builtin_files,
    check_name,
    fetch_vocabulary,
    find_in_folder,
    read_file,
    version_from_url,
    vocabulary_url,
)

logger = logging.getLogger(__name__)

OriginKind = Literal["builtin", "path", "cache", "network", "snapshot"]


class Origin(msgspec.Struct, frozen=True):
    """Where a loaded vocabulary came from, and which copy of it this is."""

    kind: OriginKind
    location: str
    """A file path or a URL."""
    version: str = ""
    """The vocabulary's version (a date) where known: from the snapshot's manifest, or from
    the dated file ivoa.net redirected to."""
    snapshot_date: date | None = None
    """For `snapshot`: when the shipped snapshot was taken."""
    fetched_at: datetime | None = None
    """For `cache` and `network`: when the copy was fetched."""
    url: str = ""
    """For `cache` and `network`: where the copy was fetched from."""
    licence: str = ""
    """For `snapshot`: the data's licence (SPDX identifier)."""
    note: str = ""
    """Why this copy is used rather than a fresh one (for the snapshot: why not fetched)."""

    def describe(self) -> str:
        """Which copy this is, in a few words (`snapshot of 2026-03-19 shipped with voexec`)."""
        match self.kind:
            case "builtin":
                text = "our own, shipped with voexec"
            case "path":
                text = f"read from {self.location}"
            case "snapshot":
                taken = self.snapshot_date.isoformat() if self.snapshot_date else "unknown date"
                text = f"snapshot of {taken} shipped with voexec"
            case _:  # "cache" or "network"
                verb = "cached copy fetched" if self.kind == "cache" else "fetched"
                at = self.fetched_at.astimezone(UTC) if self.fetched_at else None
                when = f" {at:%Y-%m-%d %H:%M} UTC" if at else ""
                text = f"{verb}{when} from {self.url or self.location}"
        return f"{text} ({self.note})" if self.note else text


class VocabularyRegistry:
    """The vocabularies this process knows, by name. Immutable once built."""

    def __init__(
        self,
        vocabularies: Mapping[str, Vocabulary],
        origins: Mapping[str, Origin] | None = None,
        problems: tuple[str, ...] = (),
    ) -> None:
        self._vocabularies = dict(vocabularies)
        self._by_stem = {n.replace("/", "-"): v for n, v in self._vocabularies.items()}
        self._origins = dict(origins or {})
        self.problems = problems
        """What could not be loaded, and why (also logged as warnings)."""

    def get(self, name: str) -> Vocabulary:
        """The vocabulary called `name`.

        A name with `/` may also be written with `-` (`datalink-core` for `datalink/core`), as
        in file names, so that it fits in one URL path segment.

        Raises:
            UnknownVocabulary: (a `NotFound`) no vocabulary of that name is loaded.
        """
        found = self._vocabularies.get(name) or self._by_stem.get(name)
        if found is None:
            raise UnknownVocabulary(name, self.names())
        return found

    def names(self) -> list[str]:
        """Names of the loaded vocabularies, sorted."""
        return sorted(self._vocabularies)

    def origin(self, name: str) -> Origin:
        """Where `name` was loaded from.

        Raises:
            UnknownVocabulary: no vocabulary of that name is loaded.
        """
        return self._origins.get(self.get(name).name, Origin("builtin", ""))

    def __contains__(self, name: object) -> bool:
        return name in self._vocabularies

    def __iter__(self) -> Iterator[Vocabulary]:
        return (self._vocabularies[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._vocabularies)


def cache_folder(settings: VocabularySettings, data_dir: str | Path) -> Path:
    """The vocabulary cache: `cache_dir`, or `<data_dir>/vocabularies`."""
    return Path(settings.cache_dir) if settings.cache_dir else Path(data_dir) / "vocabularies"


def load_registry(
    settings: VocabularySettings,
    data_dir: str | Path,
    fetch: Fetcher | None = None,
    *,
    clock: Clock | None = None,
    snapshot: Path = SNAPSHOT_DIR,
) -> VocabularyRegistry:
    """Load our own vocabularies and the configured IVOA ones; never fails for lack of network.

    Args:
        settings: the `vocabularies` settings.
        data_dir: the data directory (for the default cache folder).
        fetch: how to fetch URLs (default: HTTP with httpx).
        clock: timestamps the cache entries (default: the system clock).
        snapshot: the snapshot folder used when a vocabulary can be neither read from the
            cache nor fetched (default: the one shipped with voexec).

    Returns:
        The registry; `problems` lists the vocabularies that could not be loaded.

    Raises:
        ConfigError: `vocabularies.path` is not a folder, or a name is not a vocabulary name.
    """
    folder = _configured_folder(settings)
    vocabularies: dict[str, Vocabulary] = {}
    origins: dict[str, Origin] = {}
    for path in builtin_files():
        vocabularies[path.stem] = _read_builtin(path)
        origins[path.stem] = Origin("builtin", str(path))

    loader = _NetworkLoader(settings, data_dir, fetch, clock, snapshot)
    problems: list[str] = []
    for name in dict.fromkeys(settings.names):
        check_name(name)
        if name in vocabularies:
            problems.append(f"{name}: our own vocabulary of that name is used instead")
            continue
        try:
            if folder is not None:
                vocabulary, origin = _from_folder(folder, name)
            else:
                vocabulary, origin = loader.load(name)
        except DomainError as error:
            problems.append(f"{name}: {error.message}")
            continue
        vocabularies[name] = vocabulary
        origins[name] = origin
    for problem in problems:
        logger.warning("vocabulary not loaded: %s", problem)
    return VocabularyRegistry(vocabularies, origins, tuple(problems))


def load_vocabulary(
    settings: VocabularySettings,
    data_dir: str | Path,
    name: str,
    fetch: Fetcher | None = None,
    *,
    clock: Clock | None = None,
    snapshot: Path = SNAPSHOT_DIR,
) -> tuple[Vocabulary, Origin]:
    """Load one vocabulary as `load_registry` would (for the CLI: no need to load them all).

    Raises:
        NotFound: it is neither ours nor loadable from the configured sources; the message
            says why.
        ConfigError: as for `load_registry`.
    """
    for path in builtin_files():
        if path.stem == name:
            return _read_builtin(path), Origin("builtin", str(path))
    folder = _configured_folder(settings)
    try:
        if folder is not None:
            return _from_folder(folder, check_name(name))
        loader = _NetworkLoader(settings, data_dir, fetch, clock, snapshot)
        return loader.load(check_name(name))
    except (NotFound, Unavailable, BadVocabularyData) as error:
        raise NotFound(f"vocabulary {name!r} is not available: {error.message}") from error


class RefreshOutcome(msgspec.Struct, frozen=True):
    """What `refresh_vocabularies` did for one vocabulary."""

    name: str
    status: Literal["updated", "unchanged", "failed", "skipped"]
    detail: str = ""


def refresh_vocabularies(
    settings: VocabularySettings,
    data_dir: str | Path,
    names: list[str] | None = None,
    fetch: Fetcher | None = None,
    *,
    clock: Clock | None = None,
) -> list[RefreshOutcome]:
    """Fetch the configured vocabularies again and replace their cached copies.

    A fetch that fails leaves the cached copy in place (it stays in use), so refreshing while
    the server is down loses nothing.

    Args:
        settings: the `vocabularies` settings.
        data_dir: the data directory (for the default cache folder).
        names: which vocabularies (default: `settings.names`).
        fetch: how to fetch URLs (default: HTTP with httpx).
        clock: timestamps the cache entries (default: the system clock).

    Returns:
        One outcome per name.
    """
    wanted = list(dict.fromkeys(names if names is not None else settings.names))
    if settings.path is not None:
        reason = f"read from the folder {settings.path} (vocabularies.path), never fetched"
        return [RefreshOutcome(name, "skipped", reason) for name in wanted]
    if settings.offline:
        reason = "vocabularies.offline is set"
        return [RefreshOutcome(name, "skipped", reason) for name in wanted]
    cache = VocabularyCache(cache_folder(settings, data_dir))
    fetcher = fetch or HttpFetcher()
    now = (clock or SystemClock()).now()
    outcomes = []
    unreachable: str | None = None
    for name in wanted:
        kept = " (the cached copy stays in use)" if cache.path(name).is_file() else ""
        if unreachable is not None:
            outcomes.append(RefreshOutcome(name, "failed", unreachable + kept))
            continue
        url = vocabulary_url(settings.base_url, name)
        try:
            vocabulary, fetched = fetch_vocabulary(url, name, fetcher)
        except DomainError as error:
            if isinstance(error, Unavailable):
                unreachable = f"not tried: {settings.base_url} did not answer for {name!r}"
            outcomes.append(RefreshOutcome(name, "failed", error.message + kept))
            continue
        changed = cache.write(vocabulary, fetched, now)
        detail = f"{len(vocabulary.concepts)} concepts from {fetched.url}"
        outcomes.append(RefreshOutcome(name, "updated" if changed else "unchanged", detail))
    return outcomes


# ---------------------------------------------------------------------------- internals
def _configured_folder(settings: VocabularySettings) -> Path | None:
    if settings.path is None:
        return None
    folder = Path(settings.path)
    if not folder.is_dir():
        raise ConfigError(f"setting vocabularies.path: {folder} is not a folder")
    return folder


def _from_folder(folder: Path, name: str) -> tuple[Vocabulary, Origin]:
    path = find_in_folder(folder, name)
    if path is None:
        raise NotFound(f"no {name}.desise, .ttl or .rdf in {folder}")
    return read_file(path, name), Origin("path", str(path))


@functools.cache
def _read_builtin(path: Path) -> Vocabulary:
    # Our own files ship with the code and vocabularies are immutable values, so one parse
    # per process serves every registry built from them (tests build many apps).
    return read_file(path, path.stem)


@functools.cache
def _read_snapshot(folder: Path, name: str) -> Vocabulary | None:
    # The snapshot ships with the code, like our own files: one parse per process.
    return Snapshot(folder).read(name)


class _NetworkLoader:
    """Cache first, then the network, then the snapshot.

    It stops asking a server once the server proved unreachable.
    """

    def __init__(
        self,
        settings: VocabularySettings,
        data_dir: str | Path,
        fetch: Fetcher | None,
        clock: Clock | None,
        snapshot: Path = SNAPSHOT_DIR,
    ) -> None:
        self.settings = settings
        self.cache = VocabularyCache(cache_folder(settings, data_dir))
        self.fetch = fetch or HttpFetcher()
        self.clock = clock or SystemClock()
        self.snapshot = Snapshot(snapshot)
        self.unreachable: str | None = None

    def load(self, name: str) -> tuple[Vocabulary, Origin]:
        try:
            cached = self.cache.read(name)
        except BadVocabularyData as error:
            logger.warning("ignoring a damaged cache file: %s", error.message)
            cached = None
        if cached is not None:
            meta = self.cache.meta(name)
            return cached, Origin(
                "cache",
                str(self.cache.path(name)),
                version=version_from_url(meta.url) if meta else "",
                fetched_at=meta.fetched_at if meta else None,
                url=meta.url if meta else "",
            )
        try:
            return self._fetch(name)
        except DomainError as error:
            found = self._from_snapshot(name, error.message)
            if found is None:
                raise
            return found

    def _fetch(self, name: str) -> tuple[Vocabulary, Origin]:
        if self.settings.offline:
            raise NotFound("not cached, and vocabularies.offline forbids fetching it")
        if self.unreachable is not None:
            # One timeout per start-up is enough; without this an offline machine would wait
            # for every configured vocabulary in turn.
            raise Unavailable(f"not cached, and {self.unreachable}")
        url = vocabulary_url(self.settings.base_url, name)
        try:
            vocabulary, fetched = fetch_vocabulary(url, name, self.fetch)
        except Unavailable as error:
            self.unreachable = f"{self.settings.base_url} could not be reached"
            raise Unavailable(f"not cached, and {error.message}") from error
        now = self.clock.now()
        self.cache.write(vocabulary, fetched, now)
        origin = Origin(
            "network",
            fetched.url,
            version=version_from_url(fetched.url),
            fetched_at=now,
            url=fetched.url,
        )
        return vocabulary, origin

    def _from_snapshot(self, name: str, why: str) -> tuple[Vocabulary, Origin] | None:
        """The shipped copy of `name`, or None when the snapshot has none."""
        vocabulary = _read_snapshot(self.snapshot.folder, name)
        entry = self.snapshot.entry(name)
        if vocabulary is None or entry is None:
            return None
        taken = self.snapshot.manifest.taken
        if self.settings.offline:
            note = "vocabularies.offline is set"
        else:
            note = self.unreachable or why
            logger.warning(
                "vocabulary %s: using the snapshot of %s shipped with voexec (%s)", name, taken, why
            )
        origin = Origin(
            "snapshot",
            str(self.snapshot.folder / entry.file),
            version=entry.version,
            snapshot_date=taken,
            licence=entry.licence,
            note=note,
        )
        return vocabulary, origin
