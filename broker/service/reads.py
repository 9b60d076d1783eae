"""Reading offer sets and sessions for clients: the stored JSON, sent on as it is.

A session's wire document is stored in its JSON form (`broker.store.sql`), and most reads
show it as stored: only an offer past `expires` (EXPIRED) and an ending session's connectors
(FINISHED) read differently from how they were written (`shape.visible_document`). Those few
are decoded, shaped and encoded; every other read costs one plain select and no decoding at
all. An offer set is its stored document with its offers, as they read now, spliced in.

Imports the broker's model and codec, the store and `shape`; no web framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import msgspec

from broker.model import AnySession, codec
from broker.service.shape import reads_as_stored, visible_document
from broker.store.port import SessionStore, StoredSession
from core.errors import NotFound

__all__ = ["DocumentRead", "read_offerset", "read_session"]

_OFFERS: Final = "offers"
"""The offer set's last field: appended to the stored set's keys, the fields are written in the
order `codec.encode` writes them (a test compares the two)."""


@dataclass(frozen=True, slots=True)
class DocumentRead:
    """A document as a client reads it now: JSON in the newest form, and who asked for it."""

    json: bytes
    owner: str | None


def _visible_json(stored: StoredSession, now: datetime) -> bytes:
    if reads_as_stored(stored.phase, stored.expires, stored.document, now):
        return stored.document
    document: AnySession = codec.decode_stored(stored.document, AnySession)
    shown = visible_document(document, stored.phase, stored.expires, now)
    return codec.encode(shown, codec.Media.JSON)


def read_session(store: SessionStore, uuid: UUID, now: datetime) -> DocumentRead:
    """The session (or offer) as it reads at `now`.

    Raises:
        NotFound: no session has this UUID.
    """
    stored = store.stored_session(str(uuid))
    if stored is None:
        raise NotFound(f"session {uuid} does not exist")
    return DocumentRead(_visible_json(stored, now), stored.owner)


def read_offerset(store: SessionStore, uuid: UUID, now: datetime) -> DocumentRead:
    """The offer set with its offers as they read at `now`.

    Raises:
        NotFound: no offer set has this UUID.
    """
    found = store.stored_offerset(str(uuid))
    if found is None:
        raise NotFound(f"offer set {uuid} does not exist")
    document, owner, offers = found
    if not offers:
        return DocumentRead(document, owner)
    tree = msgspec.json.decode(document)
    tree[_OFFERS] = [msgspec.Raw(_visible_json(offer, now)) for offer in offers]
    return DocumentRead(msgspec.json.encode(tree), owner)
