"""Data staged for real by the local platform: HTTP, files and S3, with checksums and limits.

A Python program reads an S3 object and an HTTP file from `$VOEXEC_DATA`, computes their MD5
and writes them to its output; the session's preparation staged both, checking the MD5 each
source announces (an S3 ETag, an HTTP `Content-MD5`). A corrupted download, or data larger
than the platform's `data.max_size`, fails the preparation with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker import model
from broker.model import SessionPhase as P
from core.settings import PlatformDataSettings
from tests.data_support import (
    CHECKSUM_PROGRAM,
    LocalBroker,
    s3_item,
    said,
    sha256_hex,
    simple_item,
)

K = model.KINDS

pytestmark = pytest.mark.usefixtures("fresh_probes")


def staging(tmp_path: Path, data: PlatformDataSettings) -> LocalBroker:
    return LocalBroker(tmp_path, data, CHECKSUM_PROGRAM)


@pytest.mark.s3
@pytest.mark.slow
def test_a_program_reads_an_s3_object_and_an_http_file_staged_with_checksums(
    tmp_path, http_files, s3_bucket
):
    cube, table = b"cube " * 2000, b"ra,dec\n10.5,-3.2\n"
    s3_bucket.put("obs/cube.fits", cube, tmp_path)
    http_files.files["/table.csv"] = table
    broker = staging(tmp_path, PlatformDataSettings())
    cube_item = s3_item(s3_bucket.endpoint, s3_bucket.name, "obs/cube.fits", "cube")
    session = broker.run(data=[cube_item, simple_item(f"{http_files.url}/table.csv", "table")])
    assert session.phase is P.COMPLETED, said(session)
    written = (broker.output(session) / "checksums.txt").read_text().split("\n")
    assert f"cube {len(cube)} {sha256_hex(cube)}" in written
    assert f"table {len(table)} {sha256_hex(table)}" in written


def test_a_download_that_does_not_match_its_announced_md5_fails_the_preparation(
    tmp_path, http_files
):
    http_files.files["/table.csv"] = b"the bytes sent"
    http_files.announce["/table.csv"] = b"the bytes meant"
    broker = staging(tmp_path, PlatformDataSettings())
    session = broker.run(data=[simple_item(f"{http_files.url}/table.csv", "table")])
    assert session.phase is P.FAILED
    assert "the download's md5 is" in said(session)
    assert not (broker.output(session).parent / "data" / "table").exists()


def test_data_larger_than_the_platform_stages_is_a_no_at_offer_time(tmp_path, http_files):
    http_files.files["/big.bin"] = b"x" * 4096
    broker = staging(tmp_path, PlatformDataSettings(max_size=1 / (1 << 20)))  # 1 KiB
    offers = broker.offers(data=[simple_item(f"{http_files.url}/big.bin", "big")])
    assert offers.result == "NO"
    assert "data 'big' is 4096 bytes, more than this platform stages" in said(offers)
