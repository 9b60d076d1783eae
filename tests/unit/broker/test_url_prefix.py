"""URL prefixes of settings (results, credentials, mirrors): one origin, whole path segments."""

from __future__ import annotations

import pytest

from broker.platforms import datalink
from broker.platforms.data_plan import from_mirror
from broker.platforms.url_prefix import depth_under

PREFIX = "https://store.example.org/upload"


@pytest.mark.parametrize(
    ("url", "depth"),
    [
        ("https://store.example.org/upload", 1),
        ("https://store.example.org/upload/run-1/out.fits", 1),
        ("HTTPS://Store.Example.Org./upload/run-1", 1),
        ("https://store.example.org:443/upload/x", 1),
        ("https://store.example.org/uploads/x", None),
        ("https://store.example.org.evil.net/upload/x", None),
        ("https://store.example.org@evil.net/upload/x", None),
        ("https://user:secret@store.example.org/upload/x", None),
        ("http://store.example.org/upload/x", None),
        ("https://store.example.org:8443/upload/x", None),
        ("https://store.example.org:port/upload/x", None),
    ],
)
def test_a_url_is_under_a_prefix_only_on_its_origin_and_whole_segments(url, depth):
    assert depth_under(url, PREFIX) == depth


def test_schemes_can_be_restricted():
    assert depth_under("s3+http://minio:9000/b/k", "s3+http://minio:9000/b") == 1
    assert (
        depth_under("s3+http://minio:9000/b/k", "s3+http://minio:9000/b", ("http", "https")) is None
    )


MIRRORS = {
    "https://archive.org/data": "/srv/mirror/data",
    "https://archive.org/data/deep/": "/srv/deep",
}


@pytest.mark.parametrize(
    ("source", "replica"),
    [
        ("https://archive.org/data/a.fits", "file:///srv/mirror/data/a.fits"),
        ("https://archive.org/data/deep/b%20c.fits", "file:///srv/deep/b%20c.fits"),
        ("https://archive.org/database/a.fits", None),
        ("https://archive.org.evil.net/data/a.fits", None),
        ("https://archive.org/data/../etc/passwd", None),
        ("https://archive.org/data/%2E%2E/etc/passwd", None),
        ("https://other.org/data/a.fits", None),
    ],
)
def test_a_mirror_holds_only_what_lies_under_its_prefix(source, replica):
    assert from_mirror(source, MIRRORS) == replica


def test_a_datalink_service_answers_for_identifiers_under_its_prefix_only():
    services = {
        "ivo://org.example/data": "https://dl.example.org/links",
        "ivo://org.example/data/deep": "https://deep.example.org/links",
    }
    resolved = datalink.resolve_identifier(
        "ivo://org.example/data/deep?obs-1", services, "", timeout=1
    )
    assert resolved.startswith("https://deep.example.org/links?ID=")
    assert datalink.resolve_identifier(
        "ivo://org.example/data?obs-2", services, "", timeout=1
    ).startswith("https://dl.example.org/links?ID=")
    with pytest.raises(datalink.DataLinkError, match="no DataLink service is configured"):
        datalink.resolve_identifier("ivo://org.example/database?obs-3", services, "", timeout=1)
