"""`OaiRepository`: the six OAI-PMH verbs over the catalogue store and the fixed records.

Takes the request's arguments as (name, value) pairs, exactly as sent (so repeated arguments
can be refused), and answers one OAI-PMH document; every protocol error is an `<error>`
element in it, never an exception (see `catalogue.oai` for the protocol rules it follows).

The records it serves: every catalogue entry (its current version; withdrawn ones as deleted
headers) and the fixed records built from configuration by `catalogue.voresource` (authority,
registry, broker). The fixed records' datestamps live in the store and move on when their
content changes (`sync`, run at start-up).

No I/O of its own: reads go through the `catalogue.oai.RegistryStore` port; time comes from a
`core.clock.Clock`. Imports no I/O library.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET  # builds XML only
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from catalogue import voresource
from catalogue.oai import (
    IVO_VOR,
    MANAGED_SET,
    METADATA_FORMATS,
    OAI,
    TOKEN_ARGUMENT,
    ChangedEntry,
    FixedRecordStamp,
    OaiError,
    Position,
    RegistryStore,
    TokenCodec,
    Window,
    envelope,
    error_document,
    header,
    parse_arguments,
    window,
)
from catalogue.voresource import RegistryIdentity, Stamps
from core.clock import Clock

GRANULARITY: Final = "YYYY-MM-DDThh:mm:ssZ"
_Item = FixedRecordStamp | ChangedEntry


def _element(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{OAI}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _datestamp(item: _Item) -> datetime:
    return item.updated_at


def _selected(item: _Item, selection: Window) -> bool:
    stamp = _datestamp(item)
    return (selection.since is None or stamp >= selection.since) and (
        selection.until is None or stamp <= selection.until
    )


class OaiRepository:
    """The publishing registry; see the module docstring."""

    def __init__(
        self, store: RegistryStore, identity: RegistryIdentity, clock: Clock, *, page_size: int
    ) -> None:
        self.store = store
        self.identity = identity
        self.clock = clock
        self.page_size = page_size
        self.base_url = identity.base_url + voresource.OAI_PATH
        # Tokens only carry a position, so the key guards against edits, not against reading:
        # derived from the authority, every process of one deployment accepts the others' tokens.
        key = hashlib.sha256(f"voexec-oai-token\x1f{identity.authority}".encode()).digest()
        self.tokens = TokenCodec(key)

    # ------------------------------------------------------------------------ fixed records
    def sync(self) -> list[FixedRecordStamp]:
        """Store the fixed records' digests: new datestamps for the ones whose content changed."""
        return self.store.sync_registry_records(
            voresource.fixed_digests(self.identity), now=self.clock.now()
        )

    def _fixed_stamps(self) -> list[FixedRecordStamp]:
        stamps = self.store.registry_records()
        configured = voresource.fixed_digests(self.identity)
        if not set(configured) <= {stamp.identifier for stamp in stamps}:
            stamps = self.sync()  # start-up could not store them; do it now
        return sorted(stamps, key=lambda stamp: stamp.identifier)

    def _fixed_resource(self, stamp: FixedRecordStamp) -> ET.Element:
        built = voresource.fixed_resources(
            self.identity, Stamps(stamp.created_at, stamp.updated_at)
        )
        return built[stamp.identifier]

    def registry_record(self) -> ET.Element:
        """The `vg:Registry` record with its current datestamps (Identify, VOSI)."""
        return self._fixed_record(voresource.REGISTRY_KEY)

    def broker_record(self) -> ET.Element:
        """The Execution Broker's `vr:Service` record with its current datestamps (VOSI)."""
        return self._fixed_record(voresource.BROKER_KEY)

    def _fixed_record(self, key: str) -> ET.Element:
        identifier = voresource.ivoid(self.identity.authority, key)
        stamp = next(s for s in self._fixed_stamps() if s.identifier == identifier)
        return self._fixed_resource(stamp)

    # ------------------------------------------------------------------------ dispatch
    def respond(self, pairs: Sequence[tuple[str, str]]) -> ET.Element:
        """Answer one OAI-PMH request (arguments as sent, repeated ones included)."""
        now = self.clock.now()
        try:
            verb, arguments = parse_arguments(pairs)
            root = envelope(self.base_url, now, verb, arguments)
            match verb:
                case "Identify":
                    root.append(self._identify())
                case "ListMetadataFormats":
                    root.append(self._list_metadata_formats(arguments.get("identifier")))
                case "ListSets":
                    root.append(self._list_sets(arguments))
                case "GetRecord":
                    root.append(
                        self._get_record(arguments["identifier"], arguments["metadataPrefix"])
                    )
                case _:
                    root.append(self._list(verb, arguments))
        except OaiError as error:
            return error_document(self.base_url, now, error, pairs)
        return root

    # ------------------------------------------------------------------------ verbs
    def _identify(self) -> ET.Element:
        identify = ET.Element(f"{{{OAI}}}Identify")
        _element(identify, "repositoryName", self.identity.title)
        _element(identify, "baseURL", self.base_url)
        _element(identify, "protocolVersion", "2.0")
        _element(identify, "adminEmail", self.identity.contact_email)
        fixed = self._fixed_stamps()
        first = self.store.changed_entries(
            after=None, since=None, until=None, limit=1, with_versions=False
        )
        candidates: list[_Item] = [*fixed, *first]
        earliest = min(_datestamp(item) for item in candidates)
        _element(identify, "earliestDatestamp", voresource.timestamp(earliest))
        _element(identify, "deletedRecord", "persistent")
        _element(identify, "granularity", GRANULARITY)
        description = _element(identify, "description")
        description.append(self.registry_record())
        return identify

    def _list_metadata_formats(self, identifier: str | None) -> ET.Element:
        if identifier is not None:
            self._lookup(identifier)  # raises idDoesNotExist
        formats = ET.Element(f"{{{OAI}}}ListMetadataFormats")
        for prefix, (namespace, schema) in METADATA_FORMATS.items():
            entry = _element(formats, "metadataFormat")
            _element(entry, "metadataPrefix", prefix)
            _element(entry, "schema", schema)
            _element(entry, "metadataNamespace", namespace)
        return formats

    def _list_sets(self, arguments: dict[str, str]) -> ET.Element:
        if TOKEN_ARGUMENT in arguments:
            raise OaiError("badResumptionToken", "the set list is complete; it has no tokens")
        sets = ET.Element(f"{{{OAI}}}ListSets")
        entry = _element(sets, "set")
        _element(entry, "setSpec", MANAGED_SET)
        _element(entry, "setName", "Resources published by this registry")
        return sets

    def _get_record(self, identifier: str, prefix: str) -> ET.Element:
        if prefix not in METADATA_FORMATS:
            raise OaiError("cannotDisseminateFormat", f"metadataPrefix {prefix!r} is not offered")
        item = self._lookup(identifier)
        answer = ET.Element(f"{{{OAI}}}GetRecord")
        self._record(answer, item, prefix, with_metadata=True)
        return answer

    def _lookup(self, identifier: str) -> _Item:
        for stamp in self._fixed_stamps():
            if stamp.identifier.lower() == identifier.strip().lower():
                return stamp
        key = voresource.entry_key(self.identity, identifier)
        found = self.store.changed_entry(key.lower()) if key else None
        if found is None:
            raise OaiError("idDoesNotExist", f"no record {identifier!r} in this registry")
        return found

    # ------------------------------------------------------------------------ lists
    def _list(self, verb: str, arguments: dict[str, str]) -> ET.Element:
        with_metadata = verb == "ListRecords"
        if TOKEN_ARGUMENT in arguments:
            selection, position = self.tokens.decode(arguments[TOKEN_ARGUMENT])
            if selection.prefix not in METADATA_FORMATS:
                raise OaiError("badResumptionToken", "the token names an unknown format")
        else:
            selection, position = window(arguments), None
        items, following = self._page(selection, position, with_versions=with_metadata)
        if not items and position is None:
            raise OaiError("noRecordsMatch", "no record matches these arguments")
        answer = ET.Element(f"{{{OAI}}}{verb}")
        for item in items:
            self._record(answer, item, selection.prefix, with_metadata=with_metadata)
        if position is not None or following is not None:
            sent = position.sent if position else 0
            token = _element(answer, "resumptionToken", cursor=str(sent))
            if following is not None:
                token.text = self.tokens.encode(selection, following)
        return answer

    def _page(
        self, selection: Window, position: Position | None, *, with_versions: bool
    ) -> tuple[list[_Item], Position | None]:
        """One page after `position`, and the position to resume from (None: list complete)."""
        if selection.set not in {None, MANAGED_SET}:
            return [], None
        limit = self.page_size
        sent = position.sent if position else 0
        items: list[_Item] = []
        if position is None or position.phase == "fixed":
            after = position.identifier if position else None
            fixed = [
                stamp
                for stamp in self._fixed_stamps()
                if _selected(stamp, selection) and (after is None or stamp.identifier > after)
            ]
            items.extend(fixed[:limit])
            if len(fixed) > limit:
                return items, Position(
                    phase="fixed", identifier=fixed[limit - 1].identifier, sent=sent + limit
                )
            position = None
        room = limit - len(items)
        after_entry = (
            (position.datestamp, position.entry_id)
            if position and position.datestamp is not None and position.entry_id is not None
            else None
        )
        entries = self.store.changed_entries(
            after=after_entry,
            since=selection.since,
            until=selection.until,
            limit=room + 1,
            with_versions=with_versions,
        )
        items.extend(entries[:room])
        if len(entries) <= room:
            return items, None
        last = entries[room - 1] if room else None
        return items, Position(
            phase="entries",
            datestamp=last.updated_at if last else None,
            entry_id=last.id if last else None,
            sent=sent + len(items),
        )

    # ------------------------------------------------------------------------ records
    def _record(self, parent: ET.Element, item: _Item, prefix: str, *, with_metadata: bool) -> None:
        if isinstance(item, FixedRecordStamp):
            identifier, deleted = item.identifier, item.deleted
        else:
            identifier = voresource.ivoid(self.identity.authority, item.id)
            deleted = item.withdrawn
        if not with_metadata:
            header(parent, identifier, _datestamp(item), deleted=deleted)
            return
        record = _element(parent, "record")
        header(record, identifier, _datestamp(item), deleted=deleted)
        if deleted:
            return  # deleted records carry no metadata (OAI-PMH 2.5.1)
        resource = self._resource(item)
        metadata = _element(record, "metadata")
        metadata.append(resource if prefix == IVO_VOR else voresource.dublin_core(resource))

    def _resource(self, item: _Item) -> ET.Element:
        if isinstance(item, FixedRecordStamp):
            return self._fixed_resource(item)
        version = item.version
        if version is None:  # a GetRecord or a ListIdentifiers stamp: load the document
            loaded = self.store.changed_entry(item.id)
            version = loaded.version if loaded else None
        if version is None:
            raise OaiError("idDoesNotExist", f"entry {item.id!r} has no current version")
        return voresource.entry_resource(
            self.identity, item.id, version, Stamps(item.created_at, item.updated_at)
        )
