"""S3 access with the standard library only: signed requests (AWS Signature Version 4).

The one module of voexec that speaks S3. The broker imports it for offer-time probes (HEAD of
an object, the sizes under a prefix), and platforms copy it, beside `session_fetch.py` and
`session_results.py`, into each session's working directory, where the preparation downloads
objects with it and the release uploads the results: on a cluster node that has no voexec and
no third-party packages. That is why it signs requests itself (hashlib, hmac, urllib) instead
of using boto3.

Addressing is path-style (`ENDPOINT/BUCKET/KEY`), which every S3 implementation accepts.
Credentials come from the caller (the platform's settings) or from the environment
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` or
`AWS_DEFAULT_REGION`); never from a request. Without credentials requests go unsigned (public
buckets).

Checksums: S3 gives a single-part object's MD5 as its ETag; a multipart object's ETag has a
`-N` suffix and is no MD5, so it is not checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import urllib.error
import urllib.parse
import urllib.request
import urllib.response
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree

__all__ = [
    "Credentials",
    "S3Error",
    "S3Object",
    "get_object",
    "head_object",
    "list_objects",
    "put_object",
]

CHUNK = 1 << 20
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNSIGNED = "UNSIGNED-PAYLOAD"
_NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Error(Exception):
    """An S3 request failed; the message says which object and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status when the store answered (404: no such object or bucket)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key pair (and session token) and the region requests are signed for."""

    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    region: str = "us-east-1"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """The standard AWS variables; empty (unsigned requests) when they are not set."""
        env = os.environ if environ is None else environ
        return cls(
            access_key=env.get("AWS_ACCESS_KEY_ID", ""),
            secret_key=env.get("AWS_SECRET_ACCESS_KEY", ""),
            session_token=env.get("AWS_SESSION_TOKEN", ""),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        )

    @property
    def signs(self) -> bool:
        """True when requests are signed (a key pair is known)."""
        return bool(self.access_key and self.secret_key)


@dataclass(frozen=True, slots=True)
class S3Object:
    """One object as a HEAD or a listing describes it."""

    key: str
    size: int
    etag: str
    """Without quotes."""

    @property
    def md5(self) -> str | None:
        """The object's MD5 (hex) when the ETag is one: single-part uploads only."""
        tag = self.etag.lower()
        if len(tag) == 32 and all(c in "0123456789abcdef" for c in tag):
            return tag
        return None


def object_url(endpoint: str, bucket: str, key: str = "") -> str:
    """The path-style URL of an object (or of the bucket, for an empty key)."""
    base = endpoint.rstrip("/")
    path = urllib.parse.quote(bucket, safe="")
    if key:
        path += "/" + urllib.parse.quote(key, safe="/~")
    return f"{base}/{path}"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _signed_headers(  # noqa: PLR0917 - the parts of one request, in signing order
    method: str,
    url: str,
    credentials: Credentials,
    payload_sha256: str,
    extra: Mapping[str, str],
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers of a request signed with Signature Version 4 (service `s3`)."""
    parsed = urllib.parse.urlsplit(url)
    headers = {key.lower(): value.strip() for key, value in extra.items()}
    headers["host"] = parsed.netloc
    if not credentials.signs:
        return headers
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    stamp, day = moment.strftime("%Y%m%dT%H%M%SZ"), moment.strftime("%Y%m%d")
    headers["x-amz-date"] = stamp
    headers["x-amz-content-sha256"] = payload_sha256
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    query = sorted(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in query
    )
    names = sorted(headers)
    canonical = "\n".join(
        [
            method,
            parsed.path or "/",
            canonical_query,
            "".join(f"{name}:{headers[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{credentials.region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + credentials.secret_key).encode(), day)
    for part in (credentials.region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return headers


def _open(
    method: str,
    url: str,
    credentials: Credentials,
    timeout: float,
    *,
    body: BinaryIO | bytes | None = None,
    payload_sha256: str = _EMPTY_SHA256,
    extra: Mapping[str, str] | None = None,
) -> urllib.response.addinfourl:
    if not url.startswith(("http://", "https://")):
        raise S3Error(f"an S3 endpoint is an http(s) URL, not {url}")
    headers = _signed_headers(method, url, credentials, payload_sha256, extra or {})
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - http(s) checked above
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # type: ignore[no-any-return]  # noqa: S310
    except urllib.error.HTTPError as error:
        code = _error_code(error)
        raise S3Error(f"HTTP {error.code}{f' {code}' if code else ''}", error.code) from error
    except OSError as error:
        raise S3Error(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {error}") from error


def _error_code(error: urllib.error.HTTPError) -> str:
    try:
        body = error.read(4096)
        return ElementTree.fromstring(body).findtext("Code") or ""  # noqa: S314 - the store's error body, size-bounded
    except (OSError, ElementTree.ParseError):
        return ""


def head_object(
    endpoint: str, bucket: str, key: str, credentials: Credentials, timeout: float = 5.0
) -> S3Object:
    """The size and ETag of one object.

    Raises:
        S3Error: no such object (status 404), no access (403), or the store does not answer.
    """
    url = object_url(endpoint, bucket, key)
    try:
        with _open("HEAD", url, credentials, timeout) as answer:
            size = int(answer.headers.get("Content-Length", "0"))
            etag = answer.headers.get("ETag", "").strip('"')
    except S3Error as error:
        where = f"s3 object {key!r} in bucket {bucket!r} at {endpoint}"
        raise S3Error(f"{where}: {error}", error.status) from error
    return S3Object(key=key, size=size, etag=etag)


def list_objects(
    endpoint: str,
    bucket: str,
    prefix: str,
    credentials: Credentials,
    *,
    timeout: float = 5.0,
    limit: int = 100_000,
) -> list[S3Object]:
    """Every object whose key starts with `prefix` (ListObjectsV2, page by page).

    Raises:
        S3Error: no such bucket, no access, more than `limit` objects, or no answer.
    """
    found: list[S3Object] = []
    token = ""
    while True:
        query = {"list-type": "2", "prefix": prefix}
        if token:
            query["continuation-token"] = token
        url = object_url(endpoint, bucket) + "?" + urllib.parse.urlencode(query)
        try:
            with _open("GET", url, credentials, timeout) as answer:
                tree = ElementTree.fromstring(answer.read())  # noqa: S314 - the store's listing
        except S3Error as error:
            raise S3Error(f"bucket {bucket!r} at {endpoint}: {error}", error.status) from error
        except ElementTree.ParseError as error:
            raise S3Error(f"bucket {bucket!r} at {endpoint}: not an S3 listing") from error
        for item in tree.iter(f"{_NAMESPACE}Contents"):
            found.append(
                S3Object(
                    key=item.findtext(f"{_NAMESPACE}Key") or "",
                    size=int(item.findtext(f"{_NAMESPACE}Size") or 0),
                    etag=(item.findtext(f"{_NAMESPACE}ETag") or "").strip('"'),
                )
            )
        if len(found) > limit:
            raise S3Error(f"more than {limit} objects under {prefix!r} in bucket {bucket!r}")
        token = tree.findtext(f"{_NAMESPACE}NextContinuationToken") or ""
        if tree.findtext(f"{_NAMESPACE}IsTruncated") != "true" or not token:
            return found


def _chunks(stream: BinaryIO | urllib.response.addinfourl) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def get_object(
    endpoint: str,
    bucket: str,
    key: str,
    target: Path,
    credentials: Credentials,
    *,
    max_bytes: int | None = None,
    timeout: float = 300.0,
) -> tuple[int, str]:
    """Download one object to `target`, checking its MD5 when its ETag is one.

    Returns:
        The bytes written and their MD5 (hex).

    Raises:
        S3Error: the object cannot be read, is larger than `max_bytes`, or its content does
            not match its ETag (the partial file is removed).
    """
    url = object_url(endpoint, bucket, key)
    where = f"s3 object {key!r} in bucket {bucket!r}"
    digest, size = hashlib.md5(usedforsecurity=False), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _open("GET", url, credentials, timeout) as answer, target.open("wb") as out:
            etag = answer.headers.get("ETag", "").strip('"')
            for chunk in _chunks(answer):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise S3Error(f"{where} is larger than the limit of {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
    except S3Error as error:
        target.unlink(missing_ok=True)
        raise S3Error(f"{where}: {error}" if where not in str(error) else str(error)) from error
    md5 = digest.hexdigest()
    expected = S3Object(key, size, etag).md5
    if expected is not None and expected != md5:
        target.unlink(missing_ok=True)
        raise S3Error(f"{where}: the download's MD5 is {md5}, its ETag says {expected}")
    return size, md5


def put_object(
    endpoint: str,
    bucket: str,
    key: str,
    source: Path,
    credentials: Credentials,
    *,
    timeout: float = 300.0,
) -> S3Object:
    """Upload one file as an object; the store checks it against the MD5 sent with it.

    Returns:
        The object written: its key, size and ETag as the store answered.

    Raises:
        S3Error: the store refused it or did not answer.
    """
    md5, sha256, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
    with source.open("rb") as stream:
        for chunk in _chunks(stream):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    extra = {
        "Content-Length": str(size),
        "Content-MD5": base64.b64encode(md5.digest()).decode(),
        "Content-Type": "application/octet-stream",
    }
    url = object_url(endpoint, bucket, key)
    payload = sha256.hexdigest() if credentials.signs else _UNSIGNED
    try:
        with (
            source.open("rb") as stream,
            _open(
                "PUT",
                url,
                credentials,
                timeout,
                body=stream,
                payload_sha256=payload,
                extra=extra,
            ) as answer,
        ):
            etag = answer.headers.get("ETag", "").strip('"')
    except S3Error as error:
        raise S3Error(f"upload of {key!r} to bucket {bucket!r}: {error}", error.status) from error
    return S3Object(key=key, size=size, etag=etag or md5.hexdigest())
