"""Fetches a session's program, notebook or data into its working directory.

A standalone script: platforms copy it into each session's working directory and the session's
preparation runs it there (on a cluster, on a compute node, which has no voexec), so it imports
the standard library only and nothing of ours.

    python session_fetch.py program SOURCE DEST_DIR   # a program: one file, a tree, an archive
    python session_fetch.py file SOURCE DEST_FILE     # one file, byte for byte (data, notebook)
    python session_fetch.py image REGISTRY REPOSITORY TAG DIGEST|- DEST_FILE
    python session_fetch.py data SOURCE DEST [MAX_BYTES]  # one data item, checked

`data` stages one data item: SOURCE is an `http(s)://` or `file://` URL, or an S3 source
`s3+http(s)://ENDPOINT-HOST/BUCKET/KEY` (a key ending in `/` is a prefix: every object under
it lands in the folder DEST). Checksums are verified where the source gives one: the MD5 of a
single-part S3 object (its ETag), an HTTP `Content-MD5` or `Digest: md5=/sha-256=` header; a
mismatch, or more than MAX_BYTES, fails the step and removes the partial file. A SOURCE the
broker resolved (a Rucio replica, a DataLink access URL) carries what its catalogue says in a
`#voexec:bytes=N&adler32=HEX&md5=HEX` fragment (never sent): the file staged must match it.
Several such files (a Rucio dataset, several DataLink `#this` links) come as one SOURCE
`voexec-files:f=NAME%0AURL&f=...`, staged as files NAME of the folder DEST.
S3 requests go through `session_s3.py` (copied beside this script), signed with the `AWS_*`
variables the platform hands this step; the step prints what it staged, with sizes and
checksums.

Results are uploaded by `session_results.py`, beside this script.

SOURCE is a local path, a `file://`, `http://` or `https://` URL, or a git repository
(`git+https://...[@ref]`, or any URL ending in `.git`, cloned with `git`). A program archive
(`.tar.gz`, `.tgz`, `.tar`, `.tar.bz2`, `.tar.xz`, `.zip`) is unpacked; when an archive or a
tree holds a single top folder, its content becomes DEST_DIR. Exits non-zero with one line
saying why when the source cannot be fetched.

`image` pins a container image's tag to its digest: it asks the registry (Docker's registry
API v2; an anonymous token when the registry wants one; plain HTTP only for a registry on
loopback that does not speak HTTPS) which digest the tag names now, fails naming both digests
when DIGEST is given and differs, and writes `REGISTRY/REPOSITORY@<digest>` to DEST_FILE: the
reference the image is then pulled and run by.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

ARCHIVES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")
TIMEOUT = 300
"""Seconds to wait for a download to answer."""


class FetchError(Exception):
    """The source cannot be fetched; the message says why."""


def _is_git(source: str) -> bool:
    return source.startswith("git+") or source.rstrip("/").endswith(".git")


def _local_path(source: str) -> Path | None:
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # a plain path (or C:\ on Windows)
        return Path(source)
    return None


def _download(source: str, target: Path) -> None:
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme not in {"http", "https"}:
        raise FetchError(f"cannot fetch {source}: only local paths, file, http(s) and git")
    try:
        with urllib.request.urlopen(source, timeout=TIMEOUT) as answer, target.open("wb") as out:  # noqa: S310 - scheme checked above
            shutil.copyfileobj(answer, out)
    except OSError as error:
        raise FetchError(f"cannot download {source}: {error}") from error


def _clone(source: str, destination: Path) -> None:
    url, ref = source.removeprefix("git+"), ""
    _, separator, rest = url.partition("://")
    if separator and "@" in rest.split("/", 1)[-1]:  # git+https://host/repo.git@v1.0
        url, _, ref = url.rpartition("@")
    command = ["git", "clone", "--quiet", "--depth", "1"]
    if ref:
        command += ["--branch", ref]
    try:
        subprocess.run([*command, url, str(destination)], check=True, capture_output=True)  # noqa: S603
    except FileNotFoundError as error:
        raise FetchError("cannot clone: git is not installed") from error
    except subprocess.CalledProcessError as error:
        raise FetchError(f"cannot clone {url}: {error.stderr.decode().strip()}") from error


def _unpack(archive: Path, name: str, destination: Path) -> None:
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as opened:
                opened.extractall(destination)  # noqa: S202 - zipfile drops ".." and "/"
        else:
            with tarfile.open(archive) as opened:
                opened.extractall(destination, filter="data")
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as error:
        raise FetchError(f"cannot unpack {name}: {error}") from error


def _flatten(destination: Path) -> None:
    """A single top folder (`project-1.0/`) becomes the destination itself."""
    entries = list(destination.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not (destination / ".git").exists():
        inner = entries[0]
        for item in list(inner.iterdir()):
            item.rename(destination / item.name)
        inner.rmdir()


def fetch_program(source: str, destination: Path) -> None:
    """Fetch a program into `destination`, a folder (created)."""
    destination.mkdir(parents=True, exist_ok=True)
    if _is_git(source):
        if any(destination.iterdir()):
            raise FetchError(f"cannot clone into {destination}: it is not empty")
        _clone(source, destination)
        return
    name = urllib.parse.urlparse(source).path.rsplit("/", 1)[-1] or "program.py"
    local = _local_path(source)
    if local is not None and local.is_dir():
        shutil.copytree(local, destination, dirs_exist_ok=True)
        _flatten(destination)
        return
    with tempfile.TemporaryDirectory() as scratch:
        file = Path(scratch) / name
        if local is not None:
            if not local.is_file():
                raise FetchError(f"cannot fetch {source}: no such file")
            shutil.copyfile(local, file)
        else:
            _download(source, file)
        if name.lower().endswith(ARCHIVES):
            _unpack(file, name.lower(), destination)
            _flatten(destination)
        else:
            shutil.copyfile(file, destination / name)


def fetch_file(source: str, destination: Path) -> None:
    """Fetch one file to `destination` byte for byte."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    local = _local_path(source)
    if local is None:
        _download(source, destination)
    elif local.is_file():
        shutil.copyfile(local, destination)
    else:
        raise FetchError(f"cannot fetch {source}: no such file")


MANIFESTS = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
"""Every manifest kind, so that the registry answers with the digest `pull` would get."""


def _is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return host == "localhost" or host.startswith("127.") or host in {"[::1]", "::1"}


def _token(challenge: str) -> str | None:
    """An anonymous bearer token, when the registry's 401 asks for one (Docker Hub, GHCR)."""
    scheme, _, parameters = challenge.partition(" ")
    if scheme.lower() != "bearer":
        return None
    fields = {
        key.strip(): value.strip().strip('"')
        for key, _, value in (part.partition("=") for part in parameters.split(","))
    }
    realm = fields.pop("realm", "")
    if not realm.startswith("https://"):
        return None
    url = f"{realm}?{urllib.parse.urlencode(fields)}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:  # noqa: S310 - https only
            document = json.load(answer)
    except (OSError, ValueError) as error:
        raise FetchError(f"cannot get a token from {realm}: {error}") from error
    token = document.get("token") or document.get("access_token")
    return str(token) if token else None


def _manifest_digest(url: str, token: str | None = None) -> str:
    headers = {"Accept": MANIFESTS} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310 - http(s)
            body = answer.read()
            said = answer.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as error:
        challenge = error.headers.get("WWW-Authenticate", "")
        if error.code == 401 and token is None and (token := _token(challenge)):
            return _manifest_digest(url, token)
        raise
    return said or f"sha256:{hashlib.sha256(body).hexdigest()}"


def resolve_tag(registry: str, repository: str, tag: str) -> str:
    """The digest `registry/repository:tag` names at its registry now."""
    host = "registry-1.docker.io" if registry == "docker.io" else registry
    schemes = ("https", "http") if _is_loopback(registry) else ("https",)
    image = f"{registry}/{repository}:{tag}"
    for scheme in schemes:
        url = f"{scheme}://{host}/v2/{repository}/manifests/{tag}"
        try:
            return _manifest_digest(url)
        except urllib.error.HTTPError as error:
            raise FetchError(f"the registry has no image {image} (HTTP {error.code})") from error
        except OSError as error:
            if scheme != schemes[-1]:
                continue  # a loopback registry without TLS
            raise FetchError(f"cannot ask {registry} for {image}: {error}") from error
    raise FetchError(f"cannot ask {registry} for {image}")  # pragma: no cover - never empty


def pin_image(registry: str, repository: str, tag: str, wanted: str | None, out: Path) -> str:
    """Resolve the tag, check it against the wanted digest, write the pinned reference."""
    found = resolve_tag(registry, repository, tag)
    image = f"{registry}/{repository}:{tag}"
    if wanted and found != wanted:
        raise FetchError(
            f"the image {image} is {found} at its registry, not {wanted} as the request says"
        )
    pinned = f"{registry}/{repository}@{found}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(pinned + "\n", encoding="utf-8")
    print(f"{image} is {found}: pulled and run as {pinned}")  # noqa: T201 - the step's log
    return pinned


def _expected_digests(headers: object) -> dict[str, str]:
    """What an HTTP answer says the body's checksums are (hex), by algorithm."""
    import base64
    import binascii

    get = getattr(headers, "get", lambda _name, _default=None: None)
    found: dict[str, str] = {}
    try:
        if md5 := get("Content-MD5"):
            found["md5"] = base64.b64decode(md5).hex()
        for part in (get("Digest") or "").split(","):
            algorithm, _, value = part.strip().partition("=")
            name = {"md5": "md5", "sha-256": "sha256"}.get(algorithm.lower())
            if name and value:
                found[name] = base64.b64decode(value).hex()
    except (binascii.Error, ValueError) as error:
        raise FetchError(f"the server sent a malformed checksum header: {error}") from error
    return found


CHECKS_MARK = "#voexec:"
"""Starts the fragment in which a resolved source carries its catalogue's checks."""


def _split_checks(source: str) -> tuple[str, dict[str, str]]:
    """The source without its `#voexec:` fragment, and the checks the fragment gives."""
    if CHECKS_MARK not in source:
        return source, {}
    bare, _, given = source.partition(CHECKS_MARK)
    checks = {k: v.lower() for k, v in urllib.parse.parse_qsl(given) if k in CHECKED and v}
    return bare, checks


CHECKED = ("bytes", "adler32", "md5")


def _same(name: str, got: str, wanted: str) -> bool:
    try:
        if name == "adler32":  # catalogues may drop its leading zeros
            return int(got, 16) == int(wanted, 16)
        if name == "bytes":
            return int(got) == int(wanted)
    except ValueError:
        return False
    return got == wanted


def _verify(
    source: str, target: Path, size: int, digests: dict[str, str], wanted: dict[str, str]
) -> None:
    """Compare what was staged with what the source's catalogue says; remove it on a mismatch."""
    got = {"bytes": str(size), **digests}
    for name in CHECKED:
        if name in wanted and name in got and not _same(name, got[name], wanted[name]):
            target.unlink(missing_ok=True)
            raise FetchError(
                f"{source}: the staged file's {name} is {got[name]}, "
                f"its catalogue says {wanted[name]}"
            )


class _Adler32:
    """adler32 with the interface of hashlib's digests."""

    def __init__(self) -> None:
        self.value = 1

    def update(self, chunk: bytes) -> None:
        self.value = zlib.adler32(chunk, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


def _digests_of(path: Path) -> dict[str, str]:
    md5, adler = hashlib.md5(usedforsecurity=False), _Adler32()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            md5.update(chunk)
            adler.update(chunk)
    return {"md5": md5.hexdigest(), "adler32": adler.hexdigest()}


def _download_checked(
    source: str, target: Path, max_bytes: int | None, wanted: dict[str, str] | None = None
) -> tuple[int, str]:
    """Download with the size bound, the checksums the server announces and those `wanted`."""
    hashes: dict[str, Any] = {
        "md5": hashlib.md5(usedforsecurity=False),
        "sha256": hashlib.sha256(),
        "adler32": _Adler32(),
    }
    size = 0
    try:
        with urllib.request.urlopen(source, timeout=TIMEOUT) as answer, target.open("wb") as out:  # noqa: S310 - http(s) only, checked by the caller
            expected = _expected_digests(answer.headers)
            while chunk := answer.read(1 << 20):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise FetchError(f"{source} is larger than the limit of {max_bytes} bytes")
                for digest in hashes.values():
                    digest.update(chunk)
                out.write(chunk)
    except OSError as error:
        target.unlink(missing_ok=True)
        raise FetchError(f"cannot download {source}: {error}") from error
    except FetchError:
        target.unlink(missing_ok=True)
        raise
    for name, value in expected.items():
        got = hashes[name].hexdigest()
        if got != value:
            target.unlink(missing_ok=True)
            raise FetchError(f"{source}: the download's {name} is {got}, the server says {value}")
    digests = {name: digest.hexdigest() for name, digest in hashes.items()}
    _verify(source, target, size, digests, wanted or {})
    return size, digests["md5"]


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _s3_module() -> ModuleType:
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    try:  # the S3 client is a sibling script, copied beside this one
        return importlib.import_module("session_s3")
    except ImportError as error:
        raise FetchError("cannot read S3 data: session_s3.py is not beside this script") from error


def _stage_s3(source: str, destination: Path, max_bytes: int | None) -> list[tuple[str, int, str]]:
    s3 = _s3_module()
    scheme, _, rest = source.partition("://")
    host, _, path = rest.partition("/")
    bucket, _, key = path.partition("/")
    endpoint = f"{scheme.removeprefix('s3+')}://{host}"
    bucket, key = urllib.parse.unquote(bucket), urllib.parse.unquote(key)
    credentials = s3.Credentials.from_environment()
    staged = []
    try:
        if key and not key.endswith("/"):
            size, md5 = s3.get_object(
                endpoint, bucket, key, destination, credentials, max_bytes=max_bytes
            )
            return [(destination.name, size, md5)]
        objects = s3.list_objects(endpoint, bucket, key, credentials, timeout=TIMEOUT)
        if not objects:
            raise FetchError(f"no object under {key!r} in bucket {bucket!r} at {endpoint}")
        total = 0
        for item in objects:
            relative = item.key[len(key) :]
            parts = Path(relative).parts
            if (
                not relative
                or relative.endswith("/")
                or ".." in parts
                or Path(relative).is_absolute()
            ):
                continue  # folder markers, and keys that would climb out of DEST
            left = None if max_bytes is None else max_bytes - total
            size, md5 = s3.get_object(
                endpoint, bucket, item.key, destination / relative, credentials, max_bytes=left
            )
            total += size
            staged.append((f"{destination.name}/{relative}", size, md5))
    except s3.S3Error as error:
        raise FetchError(str(error)) from error
    return staged


FILES_PREFIX = "voexec-files:"
"""Starts a SOURCE of several files staged into the folder DEST."""


def _stage_files(
    source: str, destination: Path, max_bytes: int | None
) -> list[tuple[str, int, str]]:
    staged: list[tuple[str, int, str]] = []
    total = 0
    for _, value in urllib.parse.parse_qsl(source[len(FILES_PREFIX) :]):
        name, _, url = value.partition("\n")
        safe = Path(name).name
        if not url or safe in {"", ".", ".."} or safe != name:
            raise FetchError(f"cannot stage {name!r} of {destination.name}: not a plain file name")
        left = None if max_bytes is None else max_bytes - total
        for written, size, md5 in stage_data(url, destination / safe, left):
            total += size
            staged.append((f"{destination.name}/{written}", size, md5))
    if not staged:
        raise FetchError(f"no file to stage into {destination.name}")
    return staged


def stage_data(source: str, destination: Path, max_bytes: int | None) -> list[tuple[str, int, str]]:
    """Stage one data item; returns (name, bytes, md5) of each file written."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source.startswith(FILES_PREFIX):
        return _stage_files(source, destination, max_bytes)
    source, wanted = _split_checks(source)
    scheme = urllib.parse.urlparse(source).scheme
    if scheme.startswith("s3+"):
        return _stage_s3(source, destination, max_bytes)
    if scheme in {"http", "https"}:
        size, md5 = _download_checked(source, destination, max_bytes, wanted)
        return [(destination.name, size, md5)]
    local = _local_path(source)
    if local is None:
        raise FetchError(f"cannot fetch {source}: only http, https, file and S3 data")
    if local.is_dir():
        files = [f for f in sorted(local.rglob("*")) if f.is_file()]
        total = sum(f.stat().st_size for f in files)
        if max_bytes is not None and total > max_bytes:
            raise FetchError(f"{source} is larger than the limit of {max_bytes} bytes")
        shutil.copytree(local, destination, dirs_exist_ok=True)
        return [
            (f"{destination.name}/{f.relative_to(local)}", f.stat().st_size, _md5_of(f))
            for f in files
        ]
    if not local.is_file():
        raise FetchError(f"cannot fetch {source}: no such file")
    if max_bytes is not None and local.stat().st_size > max_bytes:
        raise FetchError(f"{source} is larger than the limit of {max_bytes} bytes")
    shutil.copyfile(local, destination)
    size, digests = destination.stat().st_size, _digests_of(destination)
    _verify(source, destination, size, digests, wanted)
    return [(destination.name, size, digests["md5"])]


def main(argv: list[str]) -> int:
    """Run as a script: `program|file SOURCE DEST`, or `image ...` (see the module)."""
    try:
        if argv[:1] == ["data"] and len(argv) in {3, 4}:
            limit = int(argv[3]) if len(argv) == 4 and int(argv[3]) > 0 else None
            for name, size, md5 in stage_data(argv[1], Path(argv[2]), limit):
                print(f"staged {name}: {size} bytes, md5 {md5}")  # noqa: T201 - the step's log
            return 0
        if argv[:1] == ["image"] and len(argv) == 6:
            _, registry, repository, tag, wanted, destination = argv
            expected = None if wanted == "-" else wanted
            pin_image(registry, repository, tag, expected, Path(destination))
            return 0
        if len(argv) != 3 or argv[0] not in {"program", "file"}:
            sys.stderr.write(
                "usage: session_fetch.py program|file SOURCE DEST\n"
                "       session_fetch.py image REGISTRY REPOSITORY TAG DIGEST|- DEST\n"
                "       session_fetch.py data SOURCE DEST [MAX_BYTES]\n"
            )
            return 2
        mode, source, destination = argv
        (fetch_program if mode == "program" else fetch_file)(source, Path(destination))
    except FetchError as error:
        sys.stderr.write(f"{error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
