"""Results destinations on the local platform: the output folder uploaded during RELEASING.

A Python program reads an S3 object and an HTTP file (staged by the preparation), writes their
SHA-256 checksums to its output, and the release copies the output folder to the request's
results destination: an S3 prefix (moto), an http(s) URL prefix (a small local PUT server) or
a folder on the platform. The session lists each object written with its size and SHA-256 (and
the store's ETag) in `urn:voexec:results` messages. An upload that fails (a missing bucket)
fails the session with the reason and keeps the output; a destination the platform may not
write to is a NO at offer time. A PUT target asking for credentials gets the platform's
(`data.results.http_credentials`: a bearer token from its environment, Basic from its
settings); without them the session fails naming the URL and the HTTP status, and credentials
in a variable that is not set are a NO at offer time.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from broker import model
from broker.model import SessionPhase as P
from core.settings import HttpCredentials, PlatformDataSettings, PlatformResultsSettings
from tests.data_support import (
    CHECKSUM_PROGRAM,
    Bucket,
    LocalBroker,
    file_results,
    http_results,
    listed_results,
    s3_item,
    s3_results,
    said,
    sha256_hex,
    simple_item,
    uploaded_checksums,
)

pytestmark = pytest.mark.usefixtures("fresh_probes")


def uploading(tmp_path: Path, results: PlatformResultsSettings) -> LocalBroker:
    return LocalBroker(tmp_path, PlatformDataSettings(results=results), CHECKSUM_PROGRAM)


@pytest.mark.s3
@pytest.mark.slow
def test_a_program_reading_s3_and_http_data_writes_results_under_the_s3_prefix(
    tmp_path, http_files, s3_bucket
):
    bucket = s3_bucket
    cube, table = b"cube " * 2000, b"ra,dec\n10.5,-3.2\n"
    bucket.put("obs/cube.fits", cube, tmp_path)
    http_files.files["/table.csv"] = table
    broker = uploading(tmp_path, PlatformResultsSettings(s3=[bucket.endpoint]))
    data = [
        s3_item(bucket.endpoint, bucket.name, "obs/cube.fits"),
        simple_item(f"{http_files.url}/table.csv"),
    ]
    session = broker.run(storage=[s3_results(bucket, "runs/first/")], data=data)
    assert session.phase is P.COMPLETED, said(session)

    checksums = uploaded_checksums(bucket, "runs/first/", session)
    assert f"cube {len(cube)} {sha256_hex(cube)}" in checksums
    assert f"table {len(table)} {sha256_hex(table)}" in checksums
    assert "2 file(s)" in said(session)


def test_results_are_put_under_an_http_url_with_their_checksums(tmp_path, http_files):
    broker = uploading(tmp_path, PlatformResultsSettings(http=[f"{http_files.url}/upload/"]))
    session = broker.run(storage=[http_results(f"{http_files.url}/upload/run-1")])
    assert session.phase is P.COMPLETED, said(session)
    assert set(http_files.put) == {
        "/upload/run-1/checksums.txt",
        "/upload/run-1/plots/sky%20map.txt",
    }
    sky = http_files.put["/upload/run-1/plots/sky%20map.txt"]
    assert sky == b"a map of the sky\n"
    values = listed_results(session)["plots/sky map.txt"]
    assert values["sha256"] == sha256_hex(sky)
    assert values["bytes"] == str(len(sky))
    assert values["location"] == f"{http_files.url}/upload/run-1/plots/sky%20map.txt"


def test_results_are_copied_to_a_folder_under_an_allowed_root(tmp_path):
    root = tmp_path / "results"
    broker = uploading(tmp_path, PlatformResultsSettings(files=[str(root)]))
    session = broker.run(storage=[file_results(root / "run-1")])
    assert session.phase is P.COMPLETED, said(session)
    copied = root / "run-1" / "plots" / "sky map.txt"
    assert copied.read_bytes() == b"a map of the sky\n"
    values = listed_results(session)["plots/sky map.txt"]
    assert values["location"] == copied.as_uri()
    assert values["sha256"] == sha256_hex(copied.read_bytes())


@pytest.mark.s3
def test_an_upload_to_a_missing_bucket_fails_the_session_and_keeps_the_output(tmp_path, s3_bucket):
    bucket = s3_bucket
    missing = Bucket(bucket.endpoint, bucket.name + "-missing")
    broker = uploading(tmp_path, PlatformResultsSettings(s3=[bucket.endpoint]))
    session = broker.run(storage=[s3_results(missing, "runs/")])
    assert session.phase is P.FAILED
    text = said(session)
    assert "upload of the results" in text
    assert "HTTP 404" in text
    assert missing.name in text
    output = broker.output(session)
    assert f"the output is kept in {output}" in text
    assert (output / "checksums.txt").is_file()


@pytest.mark.parametrize(
    ("allowed", "storage", "why"),
    [
        (
            PlatformResultsSettings(s3=["http://127.0.0.1:9"]),
            {
                "kind": model.S3_RESULTS_KIND,
                "endpoint": "https://s3.elsewhere.example",
                "bucket": "b",
            },
            "does not write to the S3 endpoint https://s3.elsewhere.example",
        ),
        (
            PlatformResultsSettings(files=["/srv/results"]),
            {"kind": model.FILE_RESULTS_KIND, "path": "/etc/cron.d"},
            "does not write results to /etc/cron.d",
        ),
        (
            PlatformResultsSettings(files=["/srv/results"]),
            {"kind": model.FILE_RESULTS_KIND, "path": "/srv/results/../../etc"},
            "climbs with '..'",
        ),
        (
            PlatformResultsSettings(http=["https://store.example/upload/"]),
            {"kind": model.HTTP_RESULTS_KIND, "location": "ftp://store.example/upload/x"},
            "cannot PUT results to 'ftp://store.example/upload/x' (ftp)",
        ),
        (
            PlatformResultsSettings(),
            {"kind": model.HTTP_RESULTS_KIND, "location": "https://store.example/upload/"},
            "does not PUT results under https://store.example/upload/; it does under none",
        ),
    ],
)
def test_a_destination_the_platform_may_not_write_is_a_no_at_offer_time(
    tmp_path, allowed, storage, why
):
    broker = uploading(tmp_path, allowed)
    offers = broker.offers(storage=[storage])
    assert offers.result == "NO"
    kinds = {m.kind for m in offers.meta.messages}
    assert "urn:voexec:results-unwritable" in kinds
    assert why in said(offers)


# ------------------------------------------------------------------ http credentials
STORE_TOKEN = "a-token-only-the-platform-knows"


def guarded(http_files, authorization: str) -> None:
    """The PUT target wants `authorization` (401 without it)."""
    http_files.put_authorization = authorization


def test_results_are_put_with_the_platforms_bearer_token_from_its_environment(
    tmp_path, http_files, monkeypatch
):
    guarded(http_files, f"Bearer {STORE_TOKEN}")
    monkeypatch.setenv("RESULTS_STORE_TOKEN", STORE_TOKEN)
    prefix = f"{http_files.url}/upload/"
    credentials = HttpCredentials(prefix=prefix, bearer_env="RESULTS_STORE_TOKEN")
    broker = uploading(
        tmp_path, PlatformResultsSettings(http=[prefix], http_credentials=[credentials])
    )
    session = broker.run(storage=[http_results(f"{prefix}run-1")])
    assert session.phase is P.COMPLETED, said(session)
    assert set(http_files.put) == {
        "/upload/run-1/checksums.txt",
        "/upload/run-1/plots/sky%20map.txt",
    }
    assert set(http_files.put_headers.values()) == {f"Bearer {STORE_TOKEN}"}
    # The secret is handed to the upload step in its environment only: no file of the
    # session's folder holds it.
    folder = broker.output(session).parent
    for path in folder.rglob("*"):
        if path.is_file():
            assert STORE_TOKEN.encode() not in path.read_bytes(), path


def test_results_are_put_with_basic_credentials_from_the_settings(tmp_path, http_files):
    guarded(http_files, "Basic " + base64.b64encode(b"voexec:open sesame").decode())
    prefix = f"{http_files.url}/dav/"
    credentials = HttpCredentials(prefix=prefix, username="voexec", password="open sesame")
    broker = uploading(
        tmp_path, PlatformResultsSettings(http=[prefix], http_credentials=[credentials])
    )
    session = broker.run(storage=[http_results(f"{prefix}run-2")])
    assert session.phase is P.COMPLETED, said(session)
    assert "/dav/run-2/checksums.txt" in http_files.put


def test_a_put_target_wanting_credentials_the_platform_lacks_fails_naming_it_and_the_status(
    tmp_path, http_files
):
    guarded(http_files, f"Bearer {STORE_TOKEN}")
    prefix = f"{http_files.url}/upload/"
    broker = uploading(tmp_path, PlatformResultsSettings(http=[prefix]))
    session = broker.run(storage=[http_results(f"{prefix}run-3")])
    assert session.phase is P.FAILED
    text = said(session)
    assert f"PUT {prefix}run-3/checksums.txt answered HTTP 401" in text
    assert "the platform has none for it (data.results.http_credentials)" in text
    assert http_files.put == {}
    assert (broker.output(session) / "checksums.txt").is_file()
    assert f"the output is kept in {broker.output(session)}" in text


def test_credentials_the_target_refuses_fail_the_session_with_the_status(tmp_path, http_files):
    guarded(http_files, f"Bearer {STORE_TOKEN}")
    prefix = f"{http_files.url}/upload/"
    credentials = HttpCredentials(prefix=prefix, bearer="an old token")
    broker = uploading(
        tmp_path, PlatformResultsSettings(http=[prefix], http_credentials=[credentials])
    )
    session = broker.run(storage=[http_results(f"{prefix}run-4")])
    assert session.phase is P.FAILED
    assert "answered HTTP 403" in said(session)
    assert "the platform's credentials for it were refused" in said(session)


def test_credentials_in_a_variable_that_is_not_set_are_a_no_at_offer_time(
    tmp_path, http_files, monkeypatch
):
    monkeypatch.delenv("RESULTS_STORE_TOKEN", raising=False)
    prefix = f"{http_files.url}/upload/"
    credentials = HttpCredentials(prefix=prefix, bearer_env="RESULTS_STORE_TOKEN")
    broker = uploading(
        tmp_path, PlatformResultsSettings(http=[prefix], http_credentials=[credentials])
    )
    offers = broker.offers(storage=[http_results(f"{prefix}run-5")])
    assert offers.result == "NO"
    text = said(offers)
    assert f"cannot PUT results under {prefix}run-5" in text
    assert "RESULTS_STORE_TOKEN, which is not set" in text


def test_a_webdav_destination_gets_its_folders_made_with_mkcol_and_the_credentials(
    tmp_path, http_files
):
    authorization = "Basic " + base64.b64encode(b"voexec:open sesame").decode()
    guarded(http_files, authorization)
    http_files.collections = {"/", "/dav/"}  # the run's folder and plots/ do not exist yet
    prefix = f"{http_files.url}/dav/"
    credentials = HttpCredentials(prefix=prefix, username="voexec", password="open sesame")
    settings = PlatformResultsSettings(http=[prefix], http_credentials=[credentials])
    session = uploading(tmp_path, settings).run(storage=[http_results(f"{prefix}run-6")])
    assert session.phase is P.COMPLETED, said(session)
    assert http_files.mkcol == ["/dav/run-6/", "/dav/run-6/plots/"]
    assert http_files.collections == {"/", "/dav/", "/dav/run-6/", "/dav/run-6/plots/"}
    assert http_files.put["/dav/run-6/plots/sky%20map.txt"] == b"a map of the sky\n"
    assert set(listed_results(session)) == {"checksums.txt", "plots/sky map.txt"}
