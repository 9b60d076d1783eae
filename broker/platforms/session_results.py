"""Uploads a session's output folder to a results destination.

A standalone script: platforms copy it (with `session_s3.py`) into each session's working
directory, and the release's upload step runs it there with the platform's credentials, so it
imports the standard library only (and `session_s3.py` beside it) and nothing of ours.

    python session_results.py OUTPUT_DIR DESTINATION [--root ROOT] [--authorization-env NAME]

Every file of OUTPUT_DIR (symbolic links are skipped, and nothing outside the folder is
followed) is written to DESTINATION:

- an S3 prefix `s3+http(s)://ENDPOINT-HOST/BUCKET/PREFIX`: the object `PREFIX<path>`, signed
  with the `AWS_*` variables the platform hands the step, with its `Content-MD5`, which the
  store checks;
- an `http(s)://` URL prefix: `PUT <prefix>/<path>` with `Content-MD5` and `Digest: sha-256=`,
  and the `Authorization` header held by the environment variable `--authorization-env` names
  (the platform's credentials for that prefix, never the request's). A WebDAV server answering
  409 Conflict (the folder does not exist) gets `MKCOL` for the destination and each folder of
  the path below it, and the PUT once more;
- a `file://` folder, which must stay under ROOT once links are resolved.

It prints one `result {json}` line per object (name, location, bytes, sha256, the store's
etag) and stops at the first file it cannot write, saying which and why (an HTTP status
included), with exit code 1.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import json
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import ModuleType

TIMEOUT = 300
"""Seconds to wait for a store to answer one upload."""
RESULT_MARK = "result "
"""Each object written is a line `result {json}` of the step's output."""
CHUNK = 1 << 20


class UploadError(Exception):
    """A file could not be written; the message says which and why."""


def _s3_module() -> ModuleType:
    """`session_s3.py`, beside this script (a session's folder) or in its package."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module("session_s3")


def _digests(path: Path) -> tuple[str, bytes]:
    """The SHA-256 (hex) and MD5 (raw) of a file."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.digest()


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def output_files(output: Path) -> list[tuple[str, Path]]:
    """The files of the output folder with their paths in it (links are not followed out)."""
    if not output.is_dir():
        raise UploadError(f"there is no output folder {output}")
    found = []
    top = output.resolve()
    for path in sorted(output.rglob("*")):
        if path.is_symlink() or not path.is_file() or not _inside(path.resolve(), top):
            continue  # a link could point anywhere on the platform: never copied out
        found.append((path.relative_to(output).as_posix(), path))
    return found


def _refused(status: int, authorization: str | None) -> str:
    if status not in {401, 403}:
        return ""
    if authorization:
        return ": the platform's credentials for it were refused"
    return (
        ": it asks for credentials, and the platform has none for it "
        "(data.results.http_credentials)"
    )


class _HttpError(UploadError):
    """The server answered with an error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _send(request: urllib.request.Request, authorization: str | None) -> str:
    """Send one request; returns the ETag of the answer, if any."""
    url = request.full_url
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310 - http(s), checked by the caller
            return str(answer.headers.get("ETag", "")).strip('"')
    except urllib.error.HTTPError as error:
        why = _refused(error.code, authorization)
        method = request.get_method()
        raise _HttpError(
            f"{method} {url} answered HTTP {error.code} {error.reason}{why}", error.code
        ) from error
    except OSError as error:
        raise UploadError(f"cannot {request.get_method()} {url}: {error}") from error


def make_collections(
    base: str, relative: str, authorization: str | None, made: set[str] | None = None
) -> None:
    """`MKCOL` the destination `base` and each folder of `relative` below it (WebDAV).

    A folder that exists already answers 405 (Method Not Allowed), which is fine. Folders in
    `made` are not asked for again; those made (or found) are added to it.
    """
    made = set() if made is None else made
    url = base.rstrip("/") + "/"
    folders = [url]
    for folder in relative.split("/")[:-1]:
        url += urllib.parse.quote(folder, safe="~") + "/"
        folders.append(url)
    for url in (folder for folder in folders if folder not in made):
        headers = {"Authorization": authorization} if authorization else {}
        request = urllib.request.Request(url, method="MKCOL", headers=headers)  # noqa: S310 - http(s), checked by the caller
        try:
            _send(request, authorization)
        except _HttpError as error:
            if error.status != 405:  # 405: the collection exists
                raise
        made.add(url)


def put_http(
    url: str,
    path: Path,
    size: int,
    authorization: str | None = None,
    *,
    base: str | None = None,
    relative: str = "",
    made: set[str] | None = None,
) -> str:
    """PUT one file; returns the ETag the server gave, if any.

    With `base` (the destination) and `relative` (the file's path under it), a 409 Conflict
    (a WebDAV folder that does not exist) makes the folders (`made`: those already made), then
    the PUT is sent once more.
    """
    try:
        return _put(url, path, size, authorization)
    except _HttpError as error:
        if error.status != 409 or base is None:  # 409: no such collection
            raise
    make_collections(base, relative, authorization, made)
    return _put(url, path, size, authorization)


def _put(url: str, path: Path, size: int, authorization: str | None) -> str:
    sha256, md5 = _digests(path)
    headers = {
        "Content-Length": str(size),
        "Content-Type": "application/octet-stream",
        "Content-MD5": base64.b64encode(md5).decode(),
        "Digest": "sha-256=" + base64.b64encode(bytes.fromhex(sha256)).decode(),
    }
    if authorization:
        headers["Authorization"] = authorization
    with path.open("rb") as stream:
        request = urllib.request.Request(url, data=stream, method="PUT", headers=headers)  # noqa: S310 - http(s), checked by the caller
        return _send(request, authorization)


def _copy_into(destination: Path, root: Path | None, relative: str, path: Path) -> Path:
    target = destination / relative
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if root is not None and not _inside(target.parent.resolve(), root.resolve()):
            raise UploadError(f"{target} is not under {root}: results are not written there")
        shutil.copyfile(path, target)
    except OSError as error:
        raise UploadError(f"cannot write {target}: {error.strerror or error}") from error
    return target


def upload_results(
    output: Path,
    destination: str,
    root: Path | None = None,
    authorization: str | None = None,
) -> list[dict[str, object]]:
    """Copy every file of `output` to `destination`; returns what was written, file by file.

    Raises:
        UploadError: the first file that could not be written, naming it and the reason.
    """
    written: list[dict[str, object]] = []
    files = output_files(output)
    scheme = urllib.parse.urlsplit(destination).scheme
    s3 = _s3_module() if scheme.startswith("s3+") else None
    credentials = s3.Credentials.from_environment() if s3 is not None else None
    folder = None
    collections: set[str] = set()  # WebDAV folders made (or found) so far
    if scheme == "file":
        folder = Path(urllib.request.url2pathname(urllib.parse.urlsplit(destination).path))
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UploadError(f"cannot make the folder {folder}: {error.strerror}") from error
    elif s3 is None and scheme not in {"http", "https"}:
        raise UploadError(f"cannot write results to {destination}: only S3, http(s) and file")
    for relative, path in files:
        size, (sha256, _) = path.stat().st_size, _digests(path)
        etag = ""
        if s3 is not None:
            rest = destination.partition("://")[2]
            host, _, bucket_and_prefix = rest.partition("/")
            bucket, _, prefix = bucket_and_prefix.partition("/")
            endpoint = f"{scheme.removeprefix('s3+')}://{host}"
            bucket, key = urllib.parse.unquote(bucket), urllib.parse.unquote(prefix) + relative
            try:
                stored = s3.put_object(endpoint, bucket, key, path, credentials)
            except s3.S3Error as error:
                raise UploadError(f"{relative}: {error}") from error
            location, etag = s3.object_url(endpoint, bucket, key), stored.etag
        elif folder is not None:
            location = _copy_into(folder, root, relative, path).as_uri()
        else:
            location = destination.rstrip("/") + "/" + urllib.parse.quote(relative, safe="/~")
            etag = put_http(
                location,
                path,
                size,
                authorization,
                base=destination,
                relative=relative,
                made=collections,
            )
        record: dict[str, object] = {
            "name": relative,
            "location": location,
            "bytes": size,
            "sha256": sha256,
        }
        if etag:
            record["etag"] = etag
        written.append(record)
        print(RESULT_MARK + json.dumps(record, sort_keys=True), flush=True)  # noqa: T201 - the step's log
    return written


def main(argv: list[str]) -> int:
    """Run as a script (see the module)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the output folder")
    parser.add_argument("destination", help="s3+http(s)://, http(s):// or file:// URL")
    parser.add_argument("--root", type=Path, help="the folder a file:// destination stays under")
    parser.add_argument(
        "--authorization-env", help="the variable holding the Authorization header of PUTs"
    )
    options = parser.parse_args(argv)
    authorization = None
    if options.authorization_env:
        authorization = os.environ.get(options.authorization_env) or None
        if authorization is None:
            sys.stderr.write(f"{options.authorization_env} is not set: no credentials to send\n")
            return 1
    try:
        written = upload_results(options.output, options.destination, options.root, authorization)
    except UploadError as error:
        sys.stderr.write(f"{error}\n")
        return 1
    print(f"{len(written)} file(s) written to {options.destination}")  # noqa: T201 - the step's log
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
