"""The OAI-PMH protocol rules: arguments, dates, tokens, and the verbs over an in-memory store.

The store here is a fake by capability (a list of entries with datestamps); the same behaviour
over the real SQL store and the HTTP route is in tests/api/test_oai.py.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from catalogue import oai, voresource
from catalogue.model import EntryVersion, ExecutableSpec, Provenance, content_hash
from catalogue.oai import ChangedEntry, FixedRecordStamp, OaiError, Position, TokenCodec, Window
from catalogue.oai_repository import OaiRepository
from core.clock import ManualClock
from tests.catalogue_support import executable

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NS = f"{{{oai.OAI}}}"
IDENTITY = voresource.RegistryIdentity(
    authority="test.example",
    base_url="http://127.0.0.1:8000",
    title="Test registry",
    description="For tests.",
    publisher="Tests",
    contact_name="Tester",
    contact_email="tester@test.example",
    page_size=2,
    broker_standard_id="ivo://ivoa.net/std/ExecutionBroker",
)


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("pairs", "code"),
    [
        ([], "badVerb"),
        ([("verb", "Identify"), ("verb", "Identify")], "badVerb"),
        ([("verb", "Harvest")], "badVerb"),
        ([("verb", "Identify"), ("foo", "bar")], "badArgument"),
        ([("verb", "ListRecords")], "badArgument"),
        ([("verb", "GetRecord"), ("metadataPrefix", "ivo_vor")], "badArgument"),
        (
            [("verb", "ListRecords"), ("metadataPrefix", "ivo_vor"), ("metadataPrefix", "oai_dc")],
            "badArgument",
        ),
        (
            [("verb", "ListIdentifiers"), ("resumptionToken", "x"), ("metadataPrefix", "ivo_vor")],
            "badArgument",
        ),
        ([("verb", "GetRecord"), ("resumptionToken", "x")], "badArgument"),
    ],
)
def test_bad_requests_get_the_protocol_error_code(pairs, code):
    with pytest.raises(OaiError) as caught:
        oai.parse_arguments(pairs)
    assert caught.value.code == code


def test_good_arguments_come_back_by_name():
    verb, arguments = oai.parse_arguments(
        [("verb", "ListRecords"), ("metadataPrefix", "ivo_vor"), ("set", "ivo_managed")]
    )
    assert verb == "ListRecords"
    assert arguments == {"metadataPrefix": "ivo_vor", "set": "ivo_managed"}
    assert oai.parse_arguments([("verb", "ListSets"), ("resumptionToken", "t")]) == (
        "ListSets",
        {"resumptionToken": "t"},
    )


# ----------------------------------------------------------------------------- dates
def test_day_granularity_covers_whole_days():
    selection = oai.window(
        {"metadataPrefix": "ivo_vor", "from": "2026-03-01", "until": "2026-03-02"}
    )
    assert selection.since == datetime(2026, 3, 1, tzinfo=UTC)
    assert selection.until == datetime(2026, 3, 2, 23, 59, 59, 999_999, tzinfo=UTC)


def test_second_granularity_includes_the_whole_second():
    selection = oai.window(
        {
            "metadataPrefix": "oai_dc",
            "from": "2026-03-01T12:00:00Z",
            "until": "2026-03-01T12:00:00Z",
        }
    )
    assert selection.since == T0
    assert selection.until == T0 + timedelta(microseconds=999_999)


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"from": "2026-03-01", "until": "2026-03-02T00:00:00Z"}, "badArgument"),
        ({"from": "2026-03-02", "until": "2026-03-01"}, "badArgument"),
        ({"from": "2026-13-01"}, "badArgument"),
        ({"from": "2026-03-01T12:00Z"}, "badArgument"),
        ({"until": "2026-03-01T12:00:00+01:00"}, "badArgument"),
        ({"from": "yesterday"}, "badArgument"),
        ({"metadataPrefix": "marc21"}, "cannotDisseminateFormat"),
    ],
)
def test_bad_windows(arguments, code):
    with pytest.raises(OaiError) as caught:
        oai.window({"metadataPrefix": "ivo_vor", **arguments})
    assert caught.value.code == code


# ----------------------------------------------------------------------------- tokens
def test_tokens_round_trip_and_refuse_tampering():
    codec = TokenCodec(b"k" * 32)
    selection = Window(prefix="ivo_vor", since=T0)
    position = Position(phase="entries", datestamp=T0, entry_id="a-0123456789", sent=4)
    token = codec.encode(selection, position)
    assert codec.decode(token) == (selection, position)
    payload, _, mac = token.partition(".")
    forged = voresource_b64(b'{"window":{"prefix":"oai_dc"},"position":{"phase":"fixed"}}')
    bad_tokens = [
        f"{forged}.{mac}",
        f"{payload[:-2]}.{mac}",
        f"{payload}.",
        "",
        "not-a-token",
        "!!!.???",
    ]
    for bad in bad_tokens:
        with pytest.raises(OaiError) as caught:
            codec.decode(bad)
        assert caught.value.code == "badResumptionToken", bad
    with pytest.raises(OaiError):
        TokenCodec(b"another key").decode(token)


def voresource_b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ----------------------------------------------------------------------------- the verbs
class MemoryStore:
    """`RegistryStore` over a dict: entries by id, fixed-record stamps by identifier."""

    def __init__(self) -> None:
        self.entries: dict[str, ChangedEntry] = {}
        self.fixed: dict[str, tuple[str, FixedRecordStamp]] = {}

    def put(self, entry_id: str, at: datetime, *, withdrawn: bool = False, **changes) -> None:
        spec = msgspec.convert(
            executable(name=entry_id.rsplit("-", 1)[0], **changes), ExecutableSpec
        )
        version = EntryVersion(
            version=spec.version,
            spec=spec,
            content_hash=content_hash(spec),
            provenance=Provenance(source="api"),
            published_at=at,
            updated_at=at,
        )
        created = self.entries[entry_id].created_at if entry_id in self.entries else at
        self.entries[entry_id] = ChangedEntry(
            id=entry_id, created_at=created, updated_at=at, withdrawn=withdrawn, version=version
        )

    def changed_entries(self, *, after, since, until, limit, with_versions):
        rows = sorted(self.entries.values(), key=lambda e: (e.updated_at, e.id))
        rows = [
            e
            for e in rows
            if (after is None or (e.updated_at, e.id) > after)
            and (since is None or e.updated_at >= since)
            and (until is None or e.updated_at <= until)
        ][:limit]
        return [
            e if with_versions and not e.withdrawn else msgspec.structs.replace(e, version=None)
            for e in rows
        ]

    def changed_entry(self, entry_id):
        return self.entries.get(entry_id)

    def registry_records(self):
        return [stamp for _, stamp in self.fixed.values()]

    def sync_registry_records(self, digests: Mapping[str, str], *, now):
        for identifier, digest in digests.items():
            old = self.fixed.get(identifier)
            if old is None or old[0] != digest:
                created = old[1].created_at if old else now
                self.fixed[identifier] = (
                    digest,
                    FixedRecordStamp(
                        identifier=identifier, created_at=created, updated_at=now, deleted=False
                    ),
                )
        return self.registry_records()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def repository(store, clock) -> OaiRepository:
    repository = OaiRepository(store, IDENTITY, clock, page_size=2)
    repository.sync()
    return repository


def ask(repository: OaiRepository, **arguments: str) -> ET.Element:
    return repository.respond(list(arguments.items()))


def error_code(document: ET.Element) -> str | None:
    error = document.find(f"{NS}error")
    return None if error is None else error.get("code")


def harvest(repository: OaiRepository, verb: str = "ListIdentifiers", between=None, **arguments):
    """Every header of a list, page by page; `between(page_number)` runs between pages."""
    headers, pages = [], 0
    document = ask(repository, verb=verb, **arguments)
    while True:
        assert error_code(document) is None, ET.tostring(document)
        headers += list(document.iter(f"{NS}header"))
        pages += 1
        token = document.find(f".//{NS}resumptionToken")
        if token is None or not token.text:
            return headers, pages
        if between:
            between(pages)
        document = ask(repository, verb=verb, resumptionToken=token.text)


def identifiers(headers) -> list[str]:
    return [h.findtext(f"{NS}identifier") for h in headers]


def test_lists_page_through_fixed_records_then_entries(repository, store):
    for number in range(4):
        store.put(f"tool{number}-0000000000", T0 + timedelta(minutes=number))
    headers, pages = harvest(repository, metadataPrefix="ivo_vor")
    assert pages == 4  # 3 fixed + 4 entries, 2 a page
    assert identifiers(headers) == [
        "ivo://test.example",
        "ivo://test.example/broker",
        "ivo://test.example/registry",
        *(f"ivo://test.example/tool{n}-0000000000" for n in range(4)),
    ]


def test_tokens_report_the_cursor_and_the_last_page_has_an_empty_token(repository, store):
    store.put("tool-0000000000", T0)
    first = ask(repository, verb="ListIdentifiers", metadataPrefix="ivo_vor")
    token = first.find(f".//{NS}resumptionToken")
    assert token.get("cursor") == "0"
    last = ask(repository, verb="ListIdentifiers", resumptionToken=token.text)
    final = last.find(f".//{NS}resumptionToken")
    assert final.get("cursor") == "2"
    assert not final.text
    assert len(last.findall(f".//{NS}header")) == 2


def test_an_entry_changed_during_a_harvest_is_sent_again_at_the_end_and_none_is_lost(
    repository, store, clock
):
    for number in range(5):
        store.put(f"tool{number}-0000000000", T0 + timedelta(minutes=number))

    def write(page: int) -> None:
        if page == 2:  # after the first entries were sent: change one sent, add one new
            store.put("tool0-0000000000", T0 + timedelta(hours=1), summary="Changed.")
            store.put("new-0000000000", T0 + timedelta(hours=1))

    headers, _ = harvest(repository, between=write, metadataPrefix="ivo_vor")
    sent = identifiers(headers)
    expected = {f"ivo://test.example/tool{n}-0000000000" for n in range(5)}
    assert expected | {"ivo://test.example/new-0000000000"} <= set(sent)
    assert sent[-2:] == ["ivo://test.example/new-0000000000", "ivo://test.example/tool0-0000000000"]


def test_withdrawn_entries_are_deleted_headers_without_metadata(repository, store):
    store.put("gone-0000000000", T0, withdrawn=True)
    document = ask(
        repository,
        verb="GetRecord",
        identifier="ivo://test.example/gone-0000000000",
        metadataPrefix="ivo_vor",
    )
    record = document.find(f".//{NS}record")
    assert record.find(f"{NS}header").get("status") == "deleted"
    assert record.find(f"{NS}metadata") is None


def test_from_and_until_select_by_datestamp_inclusively(repository, store):
    store.put("early-0000000000", T0 + timedelta(days=1, seconds=30))
    store.put("late-0000000000", T0 + timedelta(days=2, seconds=30, microseconds=500))
    headers, _ = harvest(
        repository,
        metadataPrefix="ivo_vor",
        **{"from": "2026-03-03T12:00:30Z", "until": "2026-03-03T12:00:30Z"},
    )
    assert identifiers(headers) == ["ivo://test.example/late-0000000000"]
    headers, _ = harvest(repository, metadataPrefix="ivo_vor", until="2026-03-02")
    assert "ivo://test.example/early-0000000000" in identifiers(headers)
    assert "ivo://test.example/late-0000000000" not in identifiers(headers)


def test_empty_selections_are_no_records_match(repository):
    assert error_code(
        ask(repository, verb="ListRecords", metadataPrefix="ivo_vor", set="other")
    ) == ("noRecordsMatch")
    assert error_code(
        ask(repository, verb="ListIdentifiers", metadataPrefix="oai_dc", until="2000-01-01")
    ) == ("noRecordsMatch")


def test_fixed_record_datestamps_move_only_when_their_content_changes(store, clock):
    OaiRepository(store, IDENTITY, clock, page_size=2).sync()
    before = {s.identifier: s.updated_at for s in store.registry_records()}
    clock.advance(timedelta(days=1))
    OaiRepository(store, IDENTITY, clock, page_size=2).sync()
    assert {s.identifier: s.updated_at for s in store.registry_records()} == before
    renamed = msgspec.structs.replace(IDENTITY, title="Renamed registry")
    OaiRepository(store, renamed, clock, page_size=2).sync()
    after = {s.identifier: s.updated_at for s in store.registry_records()}
    assert after["ivo://test.example/registry"] == T0 + timedelta(days=1)
    assert after["ivo://test.example/broker"] == T0


def test_errors_echo_the_request_only_when_its_arguments_were_legal(repository):
    bad_verb = ask(repository, verb="Nope")
    assert bad_verb.find(f"{NS}request").attrib == {}
    missing = ask(
        repository, verb="GetRecord", identifier="ivo://test.example/x", metadataPrefix="ivo_vor"
    )
    assert error_code(missing) == "idDoesNotExist"
    assert missing.find(f"{NS}request").get("verb") == "GetRecord"


@pytest.mark.parametrize("page_size", [1, 2, 3, 4, 7, 100])
@pytest.mark.parametrize("entries", [0, 1, 5])
def test_every_page_size_lists_every_record_once(store, clock, page_size, entries):
    repository = OaiRepository(store, IDENTITY, clock, page_size=page_size)
    for number in range(entries):  # two entries share each second: ties broken by id
        store.put(f"tool{number}-0000000000", T0 + timedelta(seconds=number // 2))
    headers, pages = harvest(repository, metadataPrefix="ivo_vor")
    sent = identifiers(headers)
    assert len(sent) == len(set(sent)) == 3 + entries
    assert pages == max(1, -(-(3 + entries) // page_size))
