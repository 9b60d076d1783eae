"""A container reads S3 and HTTP data and its results land under the requested S3 prefix.

End to end through the broker: an OCI image from the loopback registry
(`scripts/services/containers`, busybox) runs on the local platform with podman. The
preparation stages an S3 object (moto, `scripts/services/s3`) and an HTTP file into the
session, the container sees them read-only at `/voexec/data` (and has no network), computes
their SHA-256 and MD5 with busybox's `sha256sum` and `md5sum` and writes them to
`/voexec/output`; during RELEASING the platform uploads the output folder to the S3 prefix, and
the session lists each object with its size and checksum, which the objects read back from
the store must match. Skipped without podman, the registry or S3; failed under
`VOEXEC_REQUIRE_SERVICES=1`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from broker.model import SessionPhase as P
from core.settings import PlatformDataSettings, PlatformResultsSettings
from tests.contract.test_platforms import IMAGE, IMAGE_TAG, REGISTRY, containers_available
from tests.data_support import (
    Bucket,
    ContainerBroker,
    listed_results,
    s3_item,
    s3_results,
    said,
    simple_item,
    uploaded_checksums,
)

SCRIPT = """\
set -eu
cd /voexec/data
for name in *; do
  printf '%s %s %s %s\\n' "$name" "$(stat -c %s "$name")" \\
    "$(sha256sum "$name" | cut -d ' ' -f 1)" "$(md5sum "$name" | cut -d ' ' -f 1)"
done > /voexec/output/checksums.txt
mkdir -p /voexec/output/plots
echo 'a map of the sky' > '/voexec/output/plots/sky map.txt'
"""
"""What the container runs (busybox's sh): a line per data file, and a file in a subfolder."""

pytestmark = [pytest.mark.containers, pytest.mark.s3, pytest.mark.slow]


def data_items(bucket: Bucket, table_url: str) -> list[dict[str, Any]]:
    return [s3_item(bucket.endpoint, bucket.name, "obs/cube.fits"), simple_item(table_url)]


def test_a_container_reading_s3_and_http_data_writes_results_under_the_s3_prefix(
    tmp_path, http_files, s3_bucket, fresh_probes
):
    containers_available()
    cube, table = b"cube " * 2000, b"ra,dec\n10.5,-3.2\n"
    s3_bucket.put("obs/cube.fits", cube, tmp_path)
    http_files.files["/table.csv"] = table
    results = PlatformResultsSettings(s3=[s3_bucket.endpoint])
    broker = ContainerBroker(tmp_path, PlatformDataSettings(results=results), REGISTRY)
    storage = s3_results(s3_bucket, "containers/run-1/")
    session = broker.run(
        f"{IMAGE}:{IMAGE_TAG}",
        SCRIPT,
        data=data_items(s3_bucket, f"{http_files.url}/table.csv"),
        storage=[storage],
    )
    assert session.phase is P.COMPLETED, said(session)

    lines = uploaded_checksums(s3_bucket, "containers/run-1/", session)
    for name, body in (("cube", cube), ("table", table)):
        sha256, md5 = hashlib.sha256(body).hexdigest(), hashlib.md5(body).hexdigest()
        assert f"{name} {len(body)} {sha256} {md5}" in lines
    for name, values in listed_results(session).items():
        body = s3_bucket.get(f"containers/run-1/{name}")
        assert values["etag"] == hashlib.md5(body).hexdigest()  # a single-part upload's ETag
        location = values["location"]
        assert location.endswith(f"/{s3_bucket.name}/containers/run-1/{name.replace(' ', '%20')}")
    assert "2 file(s)" in said(session)
    # The output stays on the platform too, as the container wrote it.
    assert (broker.output(session) / "plots" / "sky map.txt").read_text() == "a map of the sky\n"
