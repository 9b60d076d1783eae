"""Rucio, DataLink and `ivo://` data as sources, and the checks their catalogues give.

`data_plan` writes each such item as a logical source (resolved at offer time and before the
preparation); a resolved URL carries the catalogue's bytes, adler32 and md5 in a `#voexec:`
fragment which `session_fetch.py` verifies when it stages the file, removing it on a mismatch.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from broker import model
from broker.model import codec
from broker.platforms import session_fetch
from broker.platforms.data_plan import (
    data_items,
    files_bundle,
    files_of,
    is_logical,
    rucio_did,
    with_checks,
)
from broker.platforms.data_reach import _file_names
from core.settings import RucioServer

K = model.KINDS


def items(*data: dict[str, Any]) -> list[Any]:
    request = {
        "executable": {"kind": model.PYTHON_PROGRAM_KIND, "location": "https://e.org/job.py"},
        "data": list(data),
    }
    return data_items(codec.convert(request, model.ExecutionRequest).value.data)


def rucio(**block: Any) -> dict[str, Any]:
    return {"kind": K + "data/rucio-data-resource.yaml", "meta": {"name": "r"}, "rucio": block}


def ivoa(**block: Any) -> dict[str, Any]:
    return {"kind": K + "data/ivoa-data-resource.yaml", "meta": {"name": "i"}, "ivoa": block}


def test_a_rucio_item_is_a_logical_source_naming_its_scope_name_and_server():
    (item,) = items(rucio(scope="ska", object="run 42/a.ms", endpoint="https://r.example/"))
    assert item.source is not None
    assert is_logical(item.source)
    did = rucio_did(item.source)
    assert (did.scope, did.name, did.server, did.did) == (
        "ska",
        "run 42/a.ms",
        "https://r.example",
        "ska:run 42/a.ms",
    )
    (plain,) = items(rucio(scope="ska", object="b"))
    assert plain.source is not None
    assert rucio_did(plain.source).server is None


@pytest.mark.parametrize(
    ("block", "why"),
    [
        ({"object": "b"}, "gives no Rucio scope"),
        ({"scope": "ska"}, "gives no Rucio object"),
        ({"scope": "s", "object": "b", "endpoint": "ftp://x"}, "is not an http(s) URL"),
    ],
)
def test_an_incomplete_rucio_item_has_no_source_and_says_why(block, why):
    (item,) = items(rucio(**block))
    assert item.source is None
    assert why in item.why


def test_ivoa_items_become_datalink_or_identifier_sources_or_say_why():
    dl = {
        "access_url": "https://a.org/links?ID=x",
        "content_type": "application/x-votable+xml;content=datalink",
    }
    direct = {"access_url": "https://a.org/x.fits", "content_length": 5}
    found = items(
        ivoa(datalink=dl),
        ivoa(datalink=direct),
        ivoa(ivoid="ivo://a.org/arch?x"),
        ivoa(ivoid="urn:not-ivo"),
    )
    assert [item.source for item in found] == [
        "datalink+https://a.org/links?ID=x",
        "https://a.org/x.fits",
        "ivo://a.org/arch?x",
        None,
    ]
    assert found[1].size == 5
    assert "is not an ivo:// URI" in found[3].why


def test_checks_ride_in_a_fragment_and_only_the_ones_given():
    assert with_checks("http://h/f") == "http://h/f"
    assert with_checks("http://h/f#old", 12, "00ab00cd", None) == (
        "http://h/f#voexec:bytes=12&adler32=00ab00cd"
    )


def test_rucio_servers_need_a_way_to_get_a_token():
    with pytest.raises(msgspec.ValidationError, match="give token"):
        msgspec.convert({"url": "https://r.example", "account": "a"}, RucioServer)
    with pytest.raises(msgspec.ValidationError, match="http"):
        msgspec.convert({"url": "r.example", "account": "a", "token": "t"}, RucioServer)
    server = msgspec.convert(
        {"url": "https://r.example", "account": "a", "username": "u", "password": "secret"},
        RucioServer,
    )
    assert "secret" not in repr(server)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://rucio.example.org", False),
        ("http://10.0.0.5:8080", False),
        ("http://127.0.0.1:55200", True),
        ("http://localhost/rucio", True),
        ("http://[::1]:8080", True),
        ("https://rucio.example.org", True),
    ],
)
def test_an_http_rucio_url_is_refused_but_on_loopback_or_when_allowed(url, allowed):
    account = {"url": url, "account": "a", "username": "u", "password": "secret"}
    if allowed:
        assert msgspec.convert(account, RucioServer).url == url
    else:
        with pytest.raises(msgspec.ValidationError, match=r"url: an http:// Rucio URL"):
            msgspec.convert(account, RucioServer)
    assert msgspec.convert(account | {"allow_http": True}, RucioServer).allow_http


def test_the_files_of_a_folder_get_distinct_plain_names():
    assert _file_names(["a", "a", "x/a", ".b", ""]) == ["a", "1-a", "x_a", "b", "file-4"]
    many = _file_names(["same.fits"] * 3000)
    assert len(set(many)) == 3000
    assert many[:2] == ["same.fits", "1-same.fits"]


BODY = b"0123456789" * 1000


def staged(tmp_path: Path, **checks: Any) -> Path:
    source = tmp_path / "replica.bin"
    source.write_bytes(BODY)
    target = tmp_path / "data" / "item"
    session_fetch.stage_data(with_checks(source.as_uri(), **checks), target, None)
    return target


def test_staging_verifies_the_catalogues_bytes_adler32_and_md5(tmp_path: Path):
    adler = f"{zlib.adler32(BODY):08x}"
    md5 = hashlib.md5(BODY).hexdigest()
    target = staged(tmp_path, size=len(BODY), adler32=adler.lstrip("0"), md5=md5.upper())
    assert target.read_bytes() == BODY
    for checks, name in (
        ({"size": len(BODY) + 1}, "bytes"),
        ({"adler32": "deadbeef"}, "adler32"),
        ({"md5": "0" * 32}, "md5"),
    ):
        with pytest.raises(session_fetch.FetchError, match=f"staged file's {name} is"):
            staged(tmp_path, **checks)
        assert not (tmp_path / "data" / "item").exists()


def test_several_files_travel_as_one_source_staged_into_a_folder(tmp_path: Path):
    replica = tmp_path / "replica.bin"
    replica.write_bytes(BODY)
    url = with_checks(replica.as_uri(), size=len(BODY))
    source = files_bundle([("a.bin", url), ("b c.bin", replica.as_uri())])
    assert files_of(source) == [("a.bin", url), ("b c.bin", replica.as_uri())]
    assert files_of(url) == []
    staged_files = session_fetch.stage_data(source, tmp_path / "data" / "set", None)
    assert [(name, size) for name, size, _ in staged_files] == [
        ("set/a.bin", len(BODY)),
        ("set/b c.bin", len(BODY)),
    ]
    with pytest.raises(session_fetch.FetchError, match="larger than the limit"):
        session_fetch.stage_data(source, tmp_path / "data" / "small", len(BODY) + 1)


@pytest.mark.parametrize("name", ["../escape.bin", "sub/dir.bin", "..", ""])
def test_a_file_name_that_would_leave_the_folder_is_refused(tmp_path: Path, name: str):
    replica = tmp_path / "replica.bin"
    replica.write_bytes(BODY)
    source = files_bundle([(name, replica.as_uri())])
    with pytest.raises(session_fetch.FetchError, match="not a plain file name"):
        session_fetch.stage_data(source, tmp_path / "data" / "set", None)
    assert not (tmp_path / "escape.bin").exists()
