"""A small client of Rucio's REST API: a token for the platform's account, a file's replicas.

Speaks the API with urllib, as the other data probes do (`broker.platforms.data_reach`):

- `GET {url}/auth/userpass` (headers `X-Rucio-Account`, `X-Rucio-Username`,
  `X-Rucio-Password`, `X-Rucio-VO`) answers the token in `X-Rucio-Auth-Token`, valid until
  `X-Rucio-Auth-Token-Expires`; tokens are kept per server and account until a minute before
  they expire (or the server refuses one);
- `POST {url}/replicas/list` with `{"dids": [{"scope", "name"}], "schemes": [...]}` streams one
  JSON object per file: `bytes`, `adler32`, `md5`, and `pfns` (URL -> its RSE, priority);
- `GET {url}/dids/{scope}/{name}` tells an unknown identifier (404) from one without replicas.

The account and its credentials come from the platform's settings (`core.settings.RucioServer`),
never from a request. Imports `core.settings` only.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final

from core.settings import RucioServer

__all__ = ["RucioError", "RucioFile", "RucioReplica", "clear_tokens", "file_replicas"]

SCHEMES: Final = ("file", "https", "http", "davs", "root", "srm", "gsiftp", "s3", "s3+https")
"""Every scheme asked for, so that a replica this platform cannot read is still named."""
_KEEP_MARGIN: Final = 60.0
"""Seconds before its expiry a token is no longer used."""
MAX_ANSWER: Final = 32 << 20
"""Most bytes of an answer read (a replica list of `RucioServer.max_files` files fits)."""
_MAX_ERROR: Final = 64 << 10
"""Most bytes of an error's explanation read; a longer one is not quoted."""


class RucioError(Exception):
    """The server refused or could not be reached; the message says which and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class RucioReplica:
    """One replica of a file: its RSE and the URLs (PFNs) it is read through, best first."""

    rse: str
    pfns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RucioFile:
    """A file and its replicas, as the server lists them."""

    scope: str
    name: str
    bytes: int | None
    adler32: str | None
    md5: str | None
    replicas: tuple[RucioReplica, ...]


_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def clear_tokens() -> None:
    """Forget every kept token."""
    with _tokens_lock:
        _tokens.clear()


def _secret(value: str, variable: str, what: str) -> str:
    if value:
        return value
    found = os.environ.get(variable, "")
    if not found:
        raise RucioError(f"the variable {variable} that holds the Rucio {what} is not set")
    return found


def _base(server: RucioServer) -> str:
    return server.url.rstrip("/")


def _vo_headers(server: RucioServer) -> dict[str, str]:
    return {"X-Rucio-VO": server.vo} if server.vo else {}


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: urllib would send the credentials' headers to its target."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        host = urllib.parse.urlsplit(req.full_url).netloc
        fp.close()
        raise RucioError(
            f"the Rucio server {host} answered HTTP {code} with a redirect to {newurl}; "
            "redirects are not followed (the credentials would go with them): "
            "give the server's final URL in data.rucio[].url",
            code,
        )


_opener = urllib.request.build_opener(_RefuseRedirects)


def _open(request: urllib.request.Request, timeout: float) -> Any:
    host = urllib.parse.urlsplit(request.full_url).netloc
    try:
        return _opener.open(request, timeout=timeout)
    except (urllib.error.HTTPError, RucioError):
        raise
    except (OSError, ValueError) as error:
        raise RucioError(
            f"cannot reach the Rucio server {host}: {getattr(error, 'reason', error)}"
        ) from error


def _refusal(error: urllib.error.HTTPError, what: str) -> RucioError:
    detail = error.reason
    try:
        body = error.read(_MAX_ERROR + 1) or b"{}"
        said = json.loads(body) if len(body) <= _MAX_ERROR else None
        if isinstance(said, dict):
            detail = str(said.get("ExceptionMessage") or said.get("ExceptionClass") or detail)
    except (OSError, ValueError):
        pass
    finally:
        error.close()
    return RucioError(f"{what}: HTTP {error.code} {detail}", error.code)


def _read(answer: Any, host: str, path: str, lines: int | None) -> bytes:
    """At most `MAX_ANSWER` bytes of an answer; with `lines`, no more than that many lines."""
    if lines is None:
        body = bytes(answer.read(MAX_ANSWER + 1))
        size = len(body)
    else:
        parts: list[bytes] = []
        size = 0
        while len(parts) < lines and size <= MAX_ANSWER:
            line = bytes(answer.readline(MAX_ANSWER + 1 - size))
            if not line:
                break
            size += len(line)
            if line.strip():
                parts.append(line)
        body = b"".join(parts)
    if size > MAX_ANSWER:
        raise RucioError(
            f"the Rucio server {host} answers {path} with more than {MAX_ANSWER} bytes"
        )
    return body


def _token(server: RucioServer, timeout: float) -> str:
    if server.token or server.token_env:
        return _secret(server.token, server.token_env, "token")
    key = (_base(server), server.account, server.username)
    with _tokens_lock:
        kept = _tokens.get(key)
        if kept is not None and kept[1] - _KEEP_MARGIN > time.time():
            return kept[0]
    password = _secret(server.password, server.password_env, "password")
    headers = {
        "X-Rucio-Account": server.account,
        "X-Rucio-Username": server.username,
        "X-Rucio-Password": password,
        "X-Rucio-AppID": "voexec",
        **_vo_headers(server),
    }
    request = urllib.request.Request(f"{_base(server)}/auth/userpass", headers=headers)  # noqa: S310
    try:
        with _open(request, timeout) as answer:
            token = str(answer.headers.get("X-Rucio-Auth-Token", ""))
            expires = str(answer.headers.get("X-Rucio-Auth-Token-Expires", ""))
    except urllib.error.HTTPError as error:
        raise _refusal(error, f"Rucio refused the account {server.account!r}") from error
    if not token:
        raise RucioError(f"the Rucio server {_base(server)} answered no token")
    try:
        until = parsedate_to_datetime(expires).timestamp()
    except (TypeError, ValueError):
        until = time.time() + 3600
    with _tokens_lock:
        _tokens[key] = (token, until)
    return token


def _forget_token(server: RucioServer) -> None:
    with _tokens_lock:
        _tokens.pop((_base(server), server.account, server.username), None)


def _call(
    server: RucioServer,
    path: str,
    timeout: float,
    body: dict[str, Any] | None = None,
    lines: int | None = None,
) -> bytes:
    """One authenticated call's answer (`_read`); a refused kept token is renewed once."""
    what = path.split("?", maxsplit=1)[0]
    for attempt in range(2):
        headers = {
            "X-Rucio-Auth-Token": _token(server, timeout),
            "Accept": "application/x-json-stream, application/json",
            **_vo_headers(server),
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(f"{_base(server)}{path}", data=data, headers=headers)  # noqa: S310
        try:
            with _open(request, timeout) as answer:
                return _read(answer, urllib.parse.urlsplit(server.url).netloc, what, lines)
        except urllib.error.HTTPError as error:
            if error.code == 401 and attempt == 0 and not (server.token or server.token_env):
                error.close()
                _forget_token(server)
                continue
            raise _refusal(error, f"Rucio {what}") from error
        except OSError as error:  # the answer broke off while it was read
            host = urllib.parse.urlsplit(server.url).netloc
            raise RucioError(f"cannot read the Rucio server {host}'s answer: {error}") from error
    raise RucioError("unreachable")  # pragma: no cover - the loop returns or raises


def _file(found: dict[str, Any]) -> RucioFile:
    """One listed file.

    Raises:
        ValueError: the listing is not what Rucio gives (the message says which part).
    """
    pfns = found.get("pfns") or {}
    if not isinstance(pfns, dict) or not all(isinstance(w, dict) for w in pfns.values()):
        raise ValueError("its pfns are not an object of URL -> {rse, priority}")
    by_rse: dict[str, list[tuple[int, str]]] = {}
    for url, where in pfns.items():
        try:
            priority = int(where.get("priority", 0))
        except (TypeError, ValueError):
            raise ValueError(f"the priority of {url} is not a number") from None
        by_rse.setdefault(str(where.get("rse", "")), []).append((priority, str(url)))
    states = found.get("states") or {}
    if not isinstance(states, dict):
        raise ValueError("its states are not an object of RSE -> state")
    replicas = tuple(
        RucioReplica(rse, tuple(url for _, url in sorted(pfns)))
        for rse, pfns in by_rse.items()
        if states.get(rse, "AVAILABLE") == "AVAILABLE"
    )
    size = found.get("bytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"its bytes {size!r} are not a size")
    return RucioFile(
        scope=str(found.get("scope", "")),
        name=str(found.get("name", "")),
        bytes=size,
        adler32=str(found.get("adler32") or "") or None,
        md5=str(found.get("md5") or "") or None,
        replicas=replicas,
    )


def _files(text: bytes, server: RucioServer, did: str) -> list[RucioFile]:
    """The files of a replica list (one JSON object a line).

    Raises:
        RucioError: a line is not a file's listing, naming the server, the item and the line.
    """
    files = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            try:
                found = json.loads(line)
            except ValueError:
                raise ValueError(f"line {number} is not JSON") from None
            if not isinstance(found, dict):
                raise ValueError(f"line {number} is not a JSON object")
            files.append(_file(found))
        except ValueError as error:
            problem = str(error) if str(error).startswith("line") else f"line {number}: {error}"
            raise RucioError(
                f"the Rucio server {_base(server)} answered a malformed replica list for "
                f"{did}: {problem}"
            ) from error
    return files


def file_replicas(server: RucioServer, scope: str, name: str, timeout: float) -> list[RucioFile]:
    """The files `scope:name` stands for (one for a file), each with its available replicas.

    Raises:
        RucioError: the server is unreachable, refuses the account, knows no such identifier
            (status 404), answers what is not a replica list, or lists more than the
            server's `max_files` files.
    """
    body = {"dids": [{"scope": scope, "name": name}], "schemes": list(SCHEMES)}
    text = _call(server, "/replicas/list", timeout, body, lines=server.max_files + 1)
    files = _files(text, server, f"{scope}:{name}")
    if len(files) > server.max_files:
        raise RucioError(
            f"{scope}:{name} holds more than {server.max_files} files, more than this platform "
            "stages from one Rucio data item (data.rucio[].max_files)"
        )
    if files:
        return files
    quoted = f"{urllib.parse.quote(scope, safe='')}/{urllib.parse.quote(name, safe='')}"
    try:
        _call(server, f"/dids/{quoted}", timeout)
    except RucioError as error:
        if error.status == 404:
            raise RucioError(
                f"the Rucio server {_base(server)} has no data identifier {scope}:{name}", 404
            ) from error
        raise
    return []
