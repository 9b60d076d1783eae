"""The OAI-PMH 2.0 publishing registry: request arguments in, an OAI-PMH XML document out.

What IVOA registry clients harvest (IVOA Registry Interfaces 1.1): the six verbs, metadata
formats `ivo_vor` (VOResource records in `ri:Resource`) and `oai_dc`, the one set
`ivo_managed`, deleted records for withdrawn entries (kept for ever: `deletedRecord` is
`persistent`), datestamps in UTC at seconds granularity, and resumption tokens.

Listing order and resumption. A list is the fixed records (registry, authority, broker; from
configuration) by identifier, then the catalogue entries by (datestamp, id). A resumption token
holds the request's arguments and the position of the last record sent, so the next page is
"everything after it": an entry written between two pages moves to the end of the list (its
datestamp is newer) and is sent then, never skipped, and the token never expires. The token is
base64url JSON plus an HMAC, so a token that was edited or cut is `badResumptionToken`; it grants
nothing that `from`/`until` would not, so the HMAC key need not be secret.

`from` and `until` are inclusive and accept `YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ssZ` (both the
same granularity); a day-granularity `until` covers that whole day. A set other than
`ivo_managed` matches nothing (`noRecordsMatch`); `noSetHierarchy` never applies, since this
repository has sets.

Pure request logic over the `RegistryStore` port (`catalogue.store_sql.SqlCatalogueStore`) and
`catalogue.voresource`; imports no I/O library. The HTTP route is `catalogue.web_oai`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import xml.etree.ElementTree as ET  # builds XML only
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol

import msgspec

from catalogue import voresource
from catalogue.model import EntryVersion

OAI: Final = "http://www.openarchives.org/OAI/2.0/"
OAI_SCHEMA: Final = "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd"
ET.register_namespace("oai", OAI)

IVO_VOR: Final = "ivo_vor"
OAI_DC: Final = "oai_dc"
MANAGED_SET: Final = "ivo_managed"
METADATA_FORMATS: Final = {
    IVO_VOR: (
        "http://www.ivoa.net/xml/RegistryInterface/v1.0",
        "http://www.ivoa.net/xml/RegistryInterface/v1.0",
    ),
    OAI_DC: (voresource.OAI_DC, "http://www.openarchives.org/OAI/2.0/oai_dc.xsd"),
}
"""prefix -> (metadataNamespace, schema)."""

ErrorCode = Literal[
    "badArgument",
    "badResumptionToken",
    "badVerb",
    "cannotDisseminateFormat",
    "idDoesNotExist",
    "noRecordsMatch",
    "noMetadataFormats",
    "noSetHierarchy",
]

TOKEN_ARGUMENT: Final = "resumptionToken"  # noqa: S105  (an argument name, not a secret)
LIST_VERBS: Final = ("ListIdentifiers", "ListRecords")
_VERBS: Final[Mapping[str, tuple[frozenset[str], frozenset[str]]]] = {
    # verb: (required arguments, optional arguments); resumptionToken is handled apart
    "Identify": (frozenset(), frozenset()),
    "ListMetadataFormats": (frozenset(), frozenset({"identifier"})),
    "ListSets": (frozenset(), frozenset()),
    "ListIdentifiers": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set"})),
    "ListRecords": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set"})),
    "GetRecord": (frozenset({"identifier", "metadataPrefix"}), frozenset()),
}
_RESUMABLE: Final = frozenset({"ListSets", *LIST_VERBS})
_DAY: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SECOND: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


# ----------------------------------------------------------------------------- the port
class ChangedEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A catalogue entry as the registry lists it."""

    id: str
    created_at: datetime
    updated_at: datetime
    """The OAI datestamp (full precision; shown at seconds granularity)."""
    withdrawn: bool
    version: EntryVersion | None = None
    """The current version, when asked for and not withdrawn."""


class FixedRecordStamp(msgspec.Struct, frozen=True, kw_only=True):
    """Datestamps of a record built from configuration (registry, authority, broker)."""

    identifier: str
    created_at: datetime
    updated_at: datetime
    deleted: bool


class RegistryStore(Protocol):
    """What the registry reads (and, for the fixed records, writes)."""

    def changed_entries(
        self,
        *,
        after: tuple[datetime, str] | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        with_versions: bool,
    ) -> list[ChangedEntry]:
        """Entries, withdrawn ones too, by (updated_at, id), after a position, in a window."""
        ...

    def changed_entry(self, entry_id: str) -> ChangedEntry | None:
        """One entry with its current version, withdrawn or not."""
        ...

    def registry_records(self) -> list[FixedRecordStamp]:
        """Every fixed record ever published, deleted ones too."""
        ...

    def sync_registry_records(
        self, digests: Mapping[str, str], *, now: datetime
    ) -> list[FixedRecordStamp]:
        """New datestamps where a digest changed; records no longer given become deleted."""
        ...


# ----------------------------------------------------------------------------- requests
class OaiError(Exception):
    """An OAI-PMH error condition, answered as `<error code=...>` (HTTP 200)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Window(msgspec.Struct, frozen=True, kw_only=True):
    """What a list request selects; carried unchanged through its resumption tokens."""

    prefix: str
    set: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    """Inclusive: already moved to the last microsecond of its second or day."""


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """Where a list stopped: after a fixed record, or after an entry (None: before the first)."""

    phase: Literal["fixed", "entries"]
    identifier: str | None = None
    datestamp: datetime | None = None
    entry_id: str | None = None
    sent: int = 0
    """Records sent in earlier pages (the token's `cursor` attribute)."""


class _Token(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    window: Window
    position: Position


def parse_arguments(pairs: Sequence[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    """Check a request's arguments against its verb.

    Returns:
        The verb and its other arguments.

    Raises:
        OaiError: badVerb (missing, repeated or unknown verb) or badArgument (repeated,
            unknown or missing argument, or a resumption token beside other arguments).
    """
    verbs = [value for name, value in pairs if name == "verb"]
    if len(verbs) != 1:
        raise OaiError("badVerb", "give the verb exactly once")
    verb = verbs[0]
    if verb not in _VERBS:
        raise OaiError("badVerb", f"unknown verb {verb!r}; use one of {', '.join(_VERBS)}")
    arguments: dict[str, str] = {}
    for name, value in pairs:
        if name == "verb":
            continue
        if name in arguments:
            raise OaiError("badArgument", f"argument {name!r} is repeated")
        arguments[name] = value
    required, optional = _VERBS[verb]
    if TOKEN_ARGUMENT in arguments and verb in _RESUMABLE:
        if len(arguments) > 1:
            raise OaiError("badArgument", f"{TOKEN_ARGUMENT} is an exclusive argument")
        return verb, arguments
    unknown = sorted(set(arguments) - required - optional)
    if unknown:
        raise OaiError("badArgument", f"{verb} takes no argument {unknown[0]!r}")
    missing = sorted(required - set(arguments))
    if missing:
        raise OaiError("badArgument", f"{verb} needs the argument {missing[0]!r}")
    return verb, arguments


def parse_datestamp(value: str, name: str) -> tuple[datetime, Literal["day", "second"]]:
    """An OAI `from`/`until` value and its granularity.

    Raises:
        OaiError: badArgument, naming the argument.
    """
    try:
        if _DAY.match(value):
            return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC), "day"
        if _SECOND.match(value):
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC), "second"
    except ValueError:
        pass
    raise OaiError(
        "badArgument", f"{name}={value!r} is not YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ (UTC)"
    )


def window(arguments: Mapping[str, str]) -> Window:
    """The selection of a list request (`metadataPrefix`, `set`, `from`, `until`).

    Raises:
        OaiError: badArgument (bad or inconsistent dates), cannotDisseminateFormat.
    """
    prefix = arguments["metadataPrefix"]
    since = until = None
    granularities = set()
    if "from" in arguments:
        since, granularity = parse_datestamp(arguments["from"], "from")
        granularities.add(granularity)
    if "until" in arguments:
        start, granularity = parse_datestamp(arguments["until"], "until")
        granularities.add(granularity)
        step = timedelta(days=1) if granularity == "day" else timedelta(seconds=1)
        until = start + step - timedelta(microseconds=1)
    if len(granularities) > 1:
        raise OaiError("badArgument", "from and until must have the same granularity")
    if since is not None and until is not None and since > until:
        raise OaiError("badArgument", "from is later than until")
    if prefix not in METADATA_FORMATS:
        raise OaiError(
            "cannotDisseminateFormat",
            f"metadataPrefix {prefix!r} is not offered; use {' or '.join(METADATA_FORMATS)}",
        )
    return Window(prefix=prefix, set=arguments.get("set"), since=since, until=until)


class TokenCodec:
    """Opaque, tamper-checked resumption tokens (see the module docstring)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:12]

    def encode(self, selection: Window, position: Position) -> str:
        """The token that resumes `selection` after `position`."""
        payload = msgspec.json.encode(_Token(selection, position))
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, token: str) -> tuple[Window, Position]:
        """The selection and position of a token.

        Raises:
            OaiError: badResumptionToken for anything this codec did not issue.
        """
        payload_part, _, mac_part = token.strip().partition(".")
        try:
            payload, mac = _unb64(payload_part), _unb64(mac_part)
        except (ValueError, binascii.Error) as error:
            raise OaiError("badResumptionToken", "the resumption token is malformed") from error
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise OaiError("badResumptionToken", "the resumption token was not issued here")
        try:
            decoded = msgspec.json.decode(payload, type=_Token)
        except msgspec.DecodeError as error:  # a token of an older, incompatible release
            raise OaiError("badResumptionToken", "the resumption token is outdated") from error
        return decoded.window, decoded.position


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text:
        raise ValueError("empty")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ----------------------------------------------------------------------------- XML helpers
def _element(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{OAI}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def header(
    parent: ET.Element, identifier: str, datestamp: datetime, *, deleted: bool
) -> ET.Element:
    """An OAI record header in the `ivo_managed` set (`status="deleted"` for tombstones)."""
    element = _element(parent, "header", **({"status": "deleted"} if deleted else {}))
    _element(element, "identifier", identifier)
    _element(element, "datestamp", voresource.timestamp(datestamp))
    _element(element, "setSpec", MANAGED_SET)
    return element


def envelope(
    base_url: str, now: datetime, verb: str | None, arguments: Mapping[str, str]
) -> ET.Element:
    """The `OAI-PMH` root with `responseDate` and the echoed `request`."""
    root = ET.Element(
        f"{{{OAI}}}OAI-PMH",
        {f"{{{voresource.XSI}}}schemaLocation": f"{OAI} {OAI_SCHEMA}"},
    )
    _element(root, "responseDate", voresource.timestamp(now))
    attributes = {"verb": verb, **arguments} if verb else {}
    _element(root, "request", base_url, **attributes)
    return root


def error_document(
    base_url: str, now: datetime, error: OaiError, pairs: Sequence[tuple[str, str]]
) -> ET.Element:
    """An error answer; the request is echoed only when its arguments were legal."""
    legal = error.code not in {"badVerb", "badArgument"}
    verb = next((value for name, value in pairs if name == "verb"), None) if legal else None
    arguments = {name: value for name, value in pairs if name != "verb"} if legal else {}
    root = envelope(base_url, now, verb, arguments)
    _element(root, "error", error.message, code=error.code)
    return root
