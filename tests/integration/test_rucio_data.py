"""Rucio data (scope:name) resolved, priced and staged against a real Rucio server.

The server is `scripts/services/rucio` (`VOEXEC_TEST_RUCIO_URL`): Rucio's own REST API over the
test PostgreSQL, with `voexec:sample.txt` registered (bytes, adler32, md5) on the RSE
VOEXEC_DISK (a folder read through `file` and through an http server) and `voexec:on-tape.txt`
on VOEXEC_TAPE (xrootd only). The platform's account comes from its settings, never from the
request. A platform close to VOEXEC_DISK reads the replica in place (no transfer); another one
downloads it over http at its configured bandwidth; both verify the catalogue's checksums.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker import model
from broker.model import SessionPhase as P
from broker.platforms import rucio_client
from broker.platforms.data_reach import clear_probe_cache
from core.settings import PlatformDataSettings, RucioServer
from tests.api import test_broker_data_offers as offers_api
from tests.conftest import require_service
from tests.data_support import LocalBroker, said

K = model.KINDS
RUCIO_ENV = "VOEXEC_TEST_RUCIO_URL"
ACCOUNT = {"account": "root", "username": "voexec", "password": "voexec-test"}
"""The account `scripts/services/rucio` bootstraps."""
ROOT_HEADERS = {
    "X-Rucio-Account": "root",
    "X-Rucio-Username": "voexec",
    "X-Rucio-Password": "voexec-test",
}
PROGRAM = """\
import hashlib, os, pathlib, zlib
data = pathlib.Path(os.environ["VOEXEC_DATA"])
lines = []
for path in sorted(p for p in data.rglob("*") if p.is_file()):
    body = path.read_bytes()
    adler = zlib.adler32(body)
    name = path.relative_to(data).as_posix()
    lines.append(f"{name} {len(body)} {hashlib.md5(body).hexdigest()} {adler:08x}")
pathlib.Path("checksums.txt").write_text("\\n".join(lines) + "\\n")
"""

pytestmark = [pytest.mark.usefixtures("fresh_probes"), pytest.mark.slow]


@pytest.fixture
def rucio_url() -> str:
    url = os.environ.get(RUCIO_ENV, "")
    require_service("Rucio", bool(url), f"set {RUCIO_ENV} (scripts/services/rucio start)")
    rucio_client.clear_tokens()
    return url


def rucio(name: str, did: str, endpoint: str | None = None) -> dict[str, Any]:
    scope, _, object_name = did.partition(":")
    block = {"scope": scope, "object": object_name} | ({"endpoint": endpoint} if endpoint else {})
    return {"kind": K + "data/rucio-data-resource.yaml", "meta": {"name": name}, "rucio": block}


def server(url: str, **changes: Any) -> RucioServer:
    return RucioServer(url=url, **(ACCOUNT | changes))


def registered(url: str, did: str) -> dict[str, Any]:
    """What the server says of a file, asked directly (the test's own view of the catalogue)."""
    token_request = urllib.request.Request(f"{url}/auth/userpass", headers=ROOT_HEADERS)
    with urllib.request.urlopen(token_request, timeout=10) as answer:
        token = answer.headers["X-Rucio-Auth-Token"]
    scope, _, name = did.partition(":")
    request = urllib.request.Request(
        f"{url}/dids/{scope}/{name}", headers={"X-Rucio-Auth-Token": token}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(json.loads(answer.read()))


def checksums(broker: LocalBroker, session: model.AnySession) -> list[str]:
    return (broker.output(session) / "checksums.txt").read_text().split("\n")


def test_a_platform_close_to_the_rse_reads_the_replica_in_place_with_no_transfer(
    tmp_path: Path, rucio_url: str
) -> None:
    sample = registered(rucio_url, "voexec:sample.txt")
    data = PlatformDataSettings(rucio=[server(rucio_url, close_rses=["VOEXEC_DISK"])])
    offers = LocalBroker(tmp_path / "asked", data, PROGRAM).offers(
        data=[rucio("sample", "voexec:sample.txt")]
    )
    assert offers.result == "YES", said(offers)
    assert "moves 0 B (0 bytes) of data" in said(offers)
    assert "1 of 1 data item(s) already on the platform" in said(offers)
    broker = LocalBroker(tmp_path / "run", data, PROGRAM)
    session = broker.run(data=[rucio("sample", "voexec:sample.txt")])
    assert session.phase is P.COMPLETED, said(session)
    line = f"sample {sample['bytes']} {sample['md5']} {int(sample['adler32'], 16):08x}"
    assert line in checksums(broker, session)


def test_a_platform_elsewhere_downloads_the_replica_over_http_priced_at_its_bandwidth(
    tmp_path: Path, rucio_url: str
) -> None:
    sample = registered(rucio_url, "voexec:sample.txt")
    size = int(sample["bytes"])
    # 0.01 MiB/s to the RSE's http server: the 68 KiB replica takes 7 s (rounded up).
    data = PlatformDataSettings(rucio=[server(rucio_url)], bandwidth={"127.0.0.1:*": 0.01})
    request = [rucio("sample", "voexec:sample.txt", endpoint=rucio_url)]
    offers = LocalBroker(tmp_path / "asked", data, PROGRAM).offers(data=request)
    assert offers.result == "YES", said(offers)
    seconds = -(-size // int(0.01 * (1 << 20)))
    assert f"({size} bytes) of data from 127.0.0.1:55202 (1) in about {seconds} s" in said(offers)
    broker = LocalBroker(tmp_path / "run", data, PROGRAM)
    session = broker.run(data=request)
    assert session.phase is P.COMPLETED, said(session)
    line = f"sample {size} {sample['md5']} {int(sample['adler32'], 16):08x}"
    assert line in checksums(broker, session)


def test_a_rucio_dataset_is_staged_as_a_folder_of_its_files_each_checked(
    tmp_path: Path, rucio_url: str
) -> None:
    files = [registered(rucio_url, f"voexec:{name}") for name in ("sample.txt", "second.txt")]
    total = sum(int(found["bytes"]) for found in files)
    data = PlatformDataSettings(rucio=[server(rucio_url)])
    offers = LocalBroker(tmp_path / "asked", data, PROGRAM).offers(
        data=[rucio("set", "voexec:sample-set")]
    )
    assert offers.result == "YES", said(offers)
    assert f"({total} bytes) of data from 127.0.0.1:55202 (1)" in said(offers)
    broker = LocalBroker(tmp_path / "run", data, PROGRAM)
    session = broker.run(data=[rucio("set", "voexec:sample-set")])
    assert session.phase is P.COMPLETED, said(session)
    written = checksums(broker, session)
    for found in files:
        adler = f"{int(found['adler32'], 16):08x}"
        assert f"set/{found['name']} {found['bytes']} {found['md5']} {adler}" in written


def test_a_rucio_dataset_of_more_files_than_the_platform_stages_from_one_item_is_a_no(
    tmp_path: Path, rucio_url: str
) -> None:
    data = PlatformDataSettings(rucio=[server(rucio_url, max_files=1)])
    offers = LocalBroker(tmp_path, data, PROGRAM).offers(data=[rucio("set", "voexec:sample-set")])
    assert offers.result == "NO"
    assert (
        "data 'set': voexec:sample-set holds more than 1 files, more than this platform stages "
        "from one Rucio data item (data.rucio[].max_files)"
    ) in said(offers)
    # A single file is within any limit.
    single = LocalBroker(tmp_path / "single", data, PROGRAM)
    assert single.offers(data=[rucio("sample", "voexec:sample.txt")]).result == "YES"


@pytest.mark.parametrize(
    ("did", "reason"),
    [
        ("voexec:no-such-file.txt", "has no data identifier voexec:no-such-file.txt"),
        ("nosuchscope:sample.txt", "has no data identifier nosuchscope:sample.txt"),
        ("voexec:on-tape.txt", "no replica of voexec:on-tape.txt this platform can read"),
    ],
)
def test_unknown_rucio_data_or_no_readable_replica_is_a_no_naming_the_item(
    tmp_path: Path, rucio_url: str, did: str, reason: str
) -> None:
    broker = LocalBroker(tmp_path, PlatformDataSettings(rucio=[server(rucio_url)]), PROGRAM)
    offers = broker.offers(data=[rucio("wanted", did)])
    assert offers.result == "NO"
    text = said(offers)
    assert "data 'wanted'" in text
    assert reason in text
    if did == "voexec:on-tape.txt":
        assert "VOEXEC_TAPE (root://tape.invalid:1094//store/voexec/on-tape.txt)" in text


def test_rucio_data_without_an_account_on_its_server_or_with_a_refused_one_is_a_no(
    tmp_path: Path, rucio_url: str
) -> None:
    none = LocalBroker(tmp_path / "none", PlatformDataSettings(), PROGRAM)
    offers = none.offers(data=[rucio("sample", "voexec:sample.txt")])
    assert offers.result == "NO"
    assert "data 'sample': this platform has no Rucio account" in said(offers)

    other = LocalBroker(
        tmp_path / "other", PlatformDataSettings(rucio=[server(rucio_url)]), PROGRAM
    )
    offers = other.offers(data=[rucio("sample", "voexec:sample.txt", "https://rucio.invalid")])
    assert offers.result == "NO"
    assert "no account on the Rucio server https://rucio.invalid" in said(offers)

    wrong = PlatformDataSettings(rucio=[server(rucio_url, password="not-the-password")])
    refused = LocalBroker(tmp_path / "refused", wrong, PROGRAM)
    offers = refused.offers(data=[rucio("sample", "voexec:sample.txt")])
    assert offers.result == "NO"
    assert "Rucio refused the account 'root': HTTP 401" in said(offers)


def test_the_password_may_come_from_an_environment_variable_never_from_the_request(
    tmp_path: Path, rucio_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = PlatformDataSettings(
        rucio=[
            RucioServer(url=rucio_url, account="root", username="voexec", password_env="RUCIO_PW")
        ]
    )
    broker = LocalBroker(tmp_path, data, PROGRAM)
    offers = broker.offers(data=[rucio("sample", "voexec:sample.txt")])
    assert offers.result == "NO"
    assert "the variable RUCIO_PW that holds the Rucio password is not set" in said(offers)
    monkeypatch.setenv("RUCIO_PW", "voexec-test")
    rucio_client.clear_tokens()
    clear_probe_cache()
    assert broker.offers(data=[rucio("sample", "voexec:sample.txt")]).result == "YES"


def test_nearest_data_ranks_the_platform_close_to_the_rse_first(
    tmp_path: Path, rucio_url: str
) -> None:
    account = ACCOUNT | {"url": rucio_url}
    far = offers_api.platform("far", bandwidth={"127.0.0.1:*": 0.01}, rucio=[account])
    near = offers_api.platform("near", rucio=[account | {"close_rses": ["VOEXEC_DISK"]}])
    # "far" is listed first, so it would win every tie: only the replica can put "near" first.
    with offers_api.client_for(tmp_path, far, near, strategies=["nearest-data"]) as client:
        answer = offers_api.ask(client, rucio("sample", "voexec:sample.txt"))
    assert answer.result == "YES", said(answer)
    first = answer.offers[0]
    assert offers_api.platform_of(first) == "near"
    assert offers_api.preparation(first) == timedelta(seconds=10)  # its own: nothing moves
    text = said(answer)
    assert "near: moves 0 B (0 bytes) of data" in text
    assert "far: moves 68.0 KiB (69632 bytes) of data from 127.0.0.1:55202 (1) in about 7 s" in text


def test_the_offer_time_resolution_sizes_the_file_from_the_catalogue(rucio_url: str) -> None:
    files = rucio_client.file_replicas(server(rucio_url), "voexec", "sample.txt", timeout=10)
    assert len(files) == 1
    (found,) = files
    sample = registered(rucio_url, "voexec:sample.txt")
    assert (found.bytes, found.md5, found.adler32) == (
        sample["bytes"],
        sample["md5"],
        sample["adler32"],
    )
    assert [replica.rse for replica in found.replicas] == ["VOEXEC_DISK"]
    pfns = found.replicas[0].pfns
    assert any(pfn.startswith("file://") for pfn in pfns)
    assert "http://127.0.0.1:55202/voexec/sample.txt" in pfns
    local = Path(urllib.request.url2pathname(next(p for p in pfns if p.startswith("file://"))[7:]))
    body = local.read_bytes()
    assert hashlib.md5(body).hexdigest() == sample["md5"]
    assert f"{zlib.adler32(body):08x}" == sample["adler32"]


def test_an_expired_or_revoked_token_is_renewed_once(rucio_url: str) -> None:
    account = server(rucio_url)
    rucio_client.file_replicas(account, "voexec", "sample.txt", timeout=10)
    key = next(iter(rucio_client._tokens))
    rucio_client._tokens[key] = ("root-voexec-unknown-revoked", rucio_client._tokens[key][1])
    files = rucio_client.file_replicas(account, "voexec", "sample.txt", timeout=10)
    assert files[0].name == "sample.txt"
    assert rucio_client._tokens[key][0] != "root-voexec-unknown-revoked"  # kept renewed


def test_a_configured_token_is_sent_as_it_is_and_a_refused_one_is_not_renewed(
    rucio_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = urllib.request.Request(
        f"{rucio_url}/auth/userpass",
        headers=ROOT_HEADERS,
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        token = answer.headers["X-Rucio-Auth-Token"]
    monkeypatch.setenv("RUCIO_TOKEN", token)
    by_variable = RucioServer(url=rucio_url, account="root", token_env="RUCIO_TOKEN")
    (found,) = rucio_client.file_replicas(by_variable, "voexec", "sample.txt", timeout=10)
    assert found.name == "sample.txt"
    revoked = RucioServer(url=rucio_url, account="root", token="root-voexec-unknown-revoked")
    with pytest.raises(rucio_client.RucioError, match="HTTP 401"):
        rucio_client.file_replicas(revoked, "voexec", "sample.txt", timeout=10)
