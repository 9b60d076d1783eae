"""Reads send the stored JSON on: the same bytes a decode, shape and encode would write.

`read_session` and `read_offerset` serve a session's document as stored when it reads as
stored, and shape it only when time changed how it reads (an offer past `expires`); either
way a client must get exactly what `get_session` / `get_offerset` encoded would give.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from broker.model import codec
from broker.model.codec import Media
from core.errors import NotFound
from tests.unit.broker.test_service_platforms import (
    BASE,
    NOW,
    ScriptedPlatform,
    program_request,
    world_of,  # noqa: F401  (the fixture)
)

BOUND = 15.0  # seconds: generous, the machine may be busy


def test_an_offer_set_and_its_offer_read_as_get_would_encode_them(world_of):  # noqa: F811
    world = world_of(ScriptedPlatform("one"), ScriptedPlatform("two"))
    offers = world.broker.request_offers(program_request(), BASE)
    assert offers.result == "YES"
    set_id = offers.meta.uuid  # type: ignore[union-attr]
    session_id = offers.offers[0].meta.uuid  # type: ignore[union-attr]

    read = world.broker.read_offerset(set_id)
    assert read.json == codec.encode(world.broker.get_offerset(set_id), Media.JSON)
    assert codec.json_to_yaml(read.json) == codec.encode(
        world.broker.get_offerset(set_id), Media.YAML
    )
    session = world.broker.read_session(session_id)
    assert session.json == codec.encode(world.broker.get_session(session_id), Media.JSON)
    assert b'"phase":"OFFERED"' in session.json


def test_an_offer_past_its_expiry_reads_expired_without_being_swept(world_of):  # noqa: F811
    world = world_of(ScriptedPlatform("one"))
    offers = world.broker.request_offers(program_request(), BASE)
    set_id = offers.meta.uuid  # type: ignore[union-attr]
    session_id = offers.offers[0].meta.uuid  # type: ignore[union-attr]
    world.clock.set(NOW + timedelta(hours=1))  # well past offer_ttl, and no tick ran

    read = world.broker.read_session(session_id)
    assert b'"phase":"EXPIRED"' in read.json
    assert read.json == codec.encode(world.broker.get_session(session_id), Media.JSON)
    offerset = world.broker.read_offerset(set_id)
    assert b'"phase":"EXPIRED"' in offerset.json
    assert offerset.json == codec.encode(world.broker.get_offerset(set_id), Media.JSON)


def test_reading_what_does_not_exist_is_not_found(world_of):  # noqa: F811
    world = world_of(ScriptedPlatform("one"))
    with pytest.raises(NotFound, match="session"):
        world.broker.read_session(uuid4())
    with pytest.raises(NotFound, match="offer set"):
        world.broker.read_offerset(UUID(int=7))


def test_a_stored_document_decodes_straight_to_what_convert_gives(world_of):  # noqa: F811
    world = world_of(ScriptedPlatform("one"))
    offers = world.broker.request_offers(program_request(), BASE)
    session_id = offers.offers[0].meta.uuid  # type: ignore[union-attr]
    stored = world.broker.read_session(session_id).json
    from broker.model import AnySession

    straight = codec.decode_stored(stored, AnySession)
    assert straight == codec.convert(codec.parse_body(stored, Media.JSON), AnySession).value
    assert codec.encode(straight, Media.JSON) == stored


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_a_read_does_not_wait_for_a_write_transaction_in_progress(world_of, store):  # noqa: F811
    world = world_of(ScriptedPlatform("one"), store=store)
    offers = world.broker.request_offers(program_request(), BASE)
    session_id = offers.offers[0].meta.uuid  # type: ignore[union-attr]
    inside, release = threading.Event(), threading.Event()

    def long_write() -> None:
        with world.broker._store.write():  # SQLite's write lock (BEGIN IMMEDIATE), or the fake's
            inside.set()
            release.wait(BOUND)

    writer = threading.Thread(target=long_write, daemon=True)
    writer.start()
    assert inside.wait(BOUND)
    try:
        began = time.monotonic()
        read = world.broker.read_session(session_id)
        offerset = world.broker.read_offerset(offers.meta.uuid)  # type: ignore[union-attr]
        took = time.monotonic() - began
    finally:
        release.set()
        writer.join(BOUND)
    assert b'"phase":"OFFERED"' in read.json
    assert offerset.owner is None
    # The busy timeout is 30 s: a read that waited for the writer would take that long.
    assert took < BOUND / 3, f"the read waited {took:.1f} s for the writer"
