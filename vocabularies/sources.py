"""Where vocabularies come from: our own files, a local folder, the network, the on-disk cache.

- **Our own** (`vocabularies/data/*.ttl`): always loaded; the file name is the vocabulary name.
- **A folder** (`vocabularies.path`): `<name>.desise`, else `.ttl`, else `.rdf`, with `/` in a
  name written `-` (`datalink/core` -> `datalink-core.desise`), as `../shared/vocabularies/`.
- **The network**: `<base_url>/<name>` with content negotiation, desise first (fast to read,
  what pyvo and DaCHS use), then RDF/XML, then Turtle.
- **The cache** (`<cache_dir>/<name>.desise` plus `<name>.meta.json`): what the network gave,
  always stored as desise. An RDF answer is converted once, so later starts never parse RDF
  (rdflib needs about a second for the UAT, desise about 50 ms).
- **The snapshot** (`vocabularies/snapshot/`): a dated copy of the IVOA vocabularies voexec
  uses (UAT, messenger, product-type), as compact desise JSON, with `manifest.json` giving each
  one's version, licence and attribution. It ships with the package, so a machine that cannot
  reach ivoa.net still has them.

This module reads and writes files and calls a `Fetcher`; deciding *when* to do which is
`vocabularies.registry`'s job.
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Final

import msgspec

from core.errors import ConfigError
from vocabularies import skos
from vocabularies.desise import MEDIA_TYPE as DESISE
from vocabularies.desise import decode_desise, encode_desise
from vocabularies.fetch import Fetched, Fetcher
from vocabularies.model import BadVocabularyData, Vocabulary

BUILTIN_DIR: Final = Path(__file__).parent / "data"
SNAPSHOT_DIR: Final = Path(__file__).parent / "snapshot"
NEGOTIATION: Final = (DESISE, "application/rdf+xml", "text/turtle")
"""What is asked of a vocabulary URL, one request at a time, until an answer is readable."""
FOLDER_SUFFIXES: Final = (".desise", ".ttl", ".rdf")
_DESISE_TYPES: Final = frozenset({DESISE, "application/json"})
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*")
_DATED_FOLDER: Final = re.compile(r"/(\d{4}-\d{2}-\d{2})/[^/]*$")


def check_name(name: str) -> str:
    """A vocabulary name safe to use in a URL and a file name (`uat`, `datalink/core`).

    Raises:
        ConfigError: the name could escape the cache folder or is not an IVOA-style name.
    """
    if not _NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"setting vocabularies.names: {name!r} is not a vocabulary name")
    return name


def file_stem(name: str) -> str:
    """The file name (without suffix) a vocabulary is stored under: `/` becomes `-`."""
    return check_name(name).replace("/", "-")


def read_document(data: bytes, name: str, media_type: str, source: str) -> Vocabulary:
    """Parse bytes in any format we read, chosen by media type.

    Raises:
        BadVocabularyData: unreadable bytes, or a media type we do not read.
    """
    if media_type in _DESISE_TYPES:
        return decode_desise(data, name, source)
    rdf_format = skos.MEDIA_TYPES.get(media_type)
    if rdf_format is None:
        raise BadVocabularyData(source, f"{media_type or 'no media type'} is not a vocabulary")
    return skos.parse_rdf(data, name, rdf_format, source)


def read_file(path: Path, name: str) -> Vocabulary:
    """Parse a `.desise`, `.ttl`, `.rdf` or `.xml` file.

    Raises:
        BadVocabularyData: unreadable content or an unknown suffix.
    """
    suffix = path.suffix.lower()
    if suffix in (".desise", ".json"):
        return decode_desise(path.read_bytes(), name, str(path))
    rdf_format = skos.SUFFIXES.get(suffix)
    if rdf_format is None:
        raise BadVocabularyData(str(path), f"unknown vocabulary file type {suffix!r}")
    return skos.parse_rdf(path.read_bytes(), name, rdf_format, path.resolve().as_uri())


def builtin_files() -> list[Path]:
    """Our own vocabulary files, by name."""
    return sorted(BUILTIN_DIR.glob("*.ttl"))


def find_in_folder(folder: Path, name: str) -> Path | None:
    """The file holding `name` in `folder` (desise preferred), or None."""
    for suffix in FOLDER_SUFFIXES:
        candidate = folder / f"{file_stem(name)}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def vocabulary_url(base_url: str, name: str) -> str:
    """`http://www.ivoa.net/rdf` + `uat` -> `http://www.ivoa.net/rdf/uat`."""
    return f"{base_url.rstrip('/')}/{check_name(name)}"


def version_from_url(url: str) -> str:
    """The version a fetched document's URL names, or `""`.

    ivoa.net answers `/rdf/uat` with a redirect to the dated file of the current version
    (`/rdf/uat/2026-01-02/uat.desise`); that date is the vocabulary's version.
    """
    match = _DATED_FOLDER.search(url)
    return match.group(1) if match else ""


def fetch_vocabulary(url: str, name: str, fetch: Fetcher) -> tuple[Vocabulary, Fetched]:
    """Get a vocabulary from its URL by content negotiation.

    Each media type of `NEGOTIATION` is asked in turn; the first answer we can read wins.
    Servers that ignore `Accept` and send HTML move on to the next type.

    Raises:
        Unavailable: the server cannot be reached or fails.
        NotFound: the server has no such vocabulary.
        BadVocabularyData: it answered, but never in a format we read, or not parseably.
    """
    answered: list[str] = []
    for accept in NEGOTIATION:
        fetched = fetch(url, accept)
        if fetched.media_type in _DESISE_TYPES or fetched.media_type in skos.MEDIA_TYPES:
            vocabulary = read_document(fetched.body, name, fetched.media_type, fetched.url)
            return vocabulary, fetched
        answered.append(fetched.media_type or "nothing")
    raise BadVocabularyData(url, f"answered {', '.join(answered)}; no vocabulary format")


class SnapshotEntry(msgspec.Struct, frozen=True):
    """One vocabulary of the shipped snapshot, as `manifest.json` describes it."""

    file: str
    """The desise file, relative to the snapshot folder."""
    uri: str
    version: str
    """The vocabulary's own version (its publication date upstream)."""
    licence: str
    """SPDX identifier of the licence the data is under."""
    licence_url: str
    attribution: str
    """Whom the data is credited to, as its licence asks."""


class SnapshotManifest(msgspec.Struct, frozen=True):
    """`manifest.json` of the snapshot folder."""

    taken: date
    """When the snapshot was taken from its source."""
    source: str
    vocabularies: dict[str, SnapshotEntry]


class Snapshot:
    """The dated copy of the IVOA vocabularies that ships with voexec (or a test's own folder)."""

    def __init__(self, folder: Path = SNAPSHOT_DIR) -> None:
        self.folder = folder
        self._manifest: SnapshotManifest | None = None

    @property
    def manifest(self) -> SnapshotManifest:
        """The folder's `manifest.json`.

        Raises:
            BadVocabularyData: the manifest is missing or unreadable.
        """
        if self._manifest is None:
            path = self.folder / "manifest.json"
            try:
                self._manifest = msgspec.json.decode(path.read_bytes(), type=SnapshotManifest)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as error:
                reason = f"no readable snapshot manifest ({error})"
                raise BadVocabularyData(str(path), reason) from error
        return self._manifest

    def entry(self, name: str) -> SnapshotEntry | None:
        """What the manifest says of `name`, or None when the snapshot does not hold it."""
        return self.manifest.vocabularies.get(name)

    def path(self, name: str) -> Path | None:
        """The file holding `name`, or None when the snapshot does not hold it."""
        entry = self.entry(name)
        return None if entry is None else self.folder / entry.file

    def read(self, name: str) -> Vocabulary | None:
        """The snapshot's copy of `name`, or None when the snapshot does not hold it.

        Raises:
            BadVocabularyData: the file is missing or damaged (a broken installation).
        """
        path = self.path(name)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError as error:
            raise BadVocabularyData(str(path), f"snapshot file unreadable ({error})") from error
        return decode_desise(data, name, str(path))


class CacheMeta(msgspec.Struct, frozen=True):
    """What the cache remembers about a cached vocabulary."""

    url: str
    """Where the document came from (after redirects)."""
    media_type: str
    """What the server sent; the cache file itself is always desise."""
    fetched_at: datetime


class VocabularyCache:
    """Cached vocabularies in one folder: `<stem>.desise` and `<stem>.meta.json`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        """The desise file of `name` (it may not exist)."""
        return self.folder / f"{file_stem(name)}.desise"

    def _meta_path(self, name: str) -> Path:
        return self.folder / f"{file_stem(name)}.meta.json"

    def read(self, name: str) -> Vocabulary | None:
        """The cached vocabulary, or None when nothing is cached.

        Raises:
            BadVocabularyData: the cache file is damaged.
        """
        path = self.path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return decode_desise(data, name, str(path))

    def meta(self, name: str) -> CacheMeta | None:
        """When and whence `name` was cached, or None if unknown."""
        try:
            data = self._meta_path(name).read_bytes()
            return msgspec.json.decode(data, type=CacheMeta)
        except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
            return None

    def write(self, vocabulary: Vocabulary, fetched: Fetched, now: datetime) -> bool:
        """Store a fetched vocabulary (as the server's desise, or converted to desise).

        Returns:
            True when the stored content changed.
        """
        is_desise = fetched.media_type in _DESISE_TYPES
        body = fetched.body if is_desise else encode_desise(vocabulary)
        path = self.path(vocabulary.name)
        changed = not path.is_file() or path.read_bytes() != body
        meta = CacheMeta(url=fetched.url, media_type=fetched.media_type, fetched_at=now)
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, body)
        _write_atomically(self._meta_path(vocabulary.name), msgspec.json.encode(meta))
        return changed


def _write_atomically(path: Path, data: bytes) -> None:
    # A crash mid-write must never leave a truncated file that a later start would trust.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
