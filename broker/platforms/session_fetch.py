"""Fetches a session's program, notebook or data into its working directory.

A standalone script: platforms copy it into each session's working directory and the session's
preparation runs it there (on a cluster, on a compute node, which has no voexec), so it imports
the standard library only and nothing of ours.

    python session_fetch.py program SOURCE DEST_DIR   # a program: one file, a tree, an archive
    python session_fetch.py file SOURCE DEST_FILE     # one file, byte for byte (data, notebook)

SOURCE is a local path, a `file://`, `http://` or `https://` URL, or a git repository
(`git+https://...[@ref]`, or any URL ending in `.git`, cloned with `git`). A program archive
(`.tar.gz`, `.tgz`, `.tar`, `.tar.bz2`, `.tar.xz`, `.zip`) is unpacked; when an archive or a
tree holds a single top folder, its content becomes DEST_DIR. Exits non-zero with one line
saying why when the source cannot be fetched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

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


def main(argv: list[str]) -> int:
    """Run as a script: `program|file SOURCE DEST`."""
    if len(argv) != 3 or argv[0] not in {"program", "file"}:
        sys.stderr.write("usage: session_fetch.py program|file SOURCE DEST\n")
        return 2
    mode, source, destination = argv
    try:
        (fetch_program if mode == "program" else fetch_file)(source, Path(destination))
    except FetchError as error:
        sys.stderr.write(f"{error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
