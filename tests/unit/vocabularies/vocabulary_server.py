"""A loopback HTTP server that answers like http://www.ivoa.net/rdf/ does.

`GET /rdf/<name>` negotiates on `Accept` and answers 303 to a versioned file
(`/rdf/<name>/2026-01-02/<stem>.<ext>`) that is served with its media type; with no acceptable
type it answers HTML, as the IVOA server does for browsers. Files come from a folder laid out
like `../shared/vocabularies/` (`datalink/core` is `datalink-core.desise`) or like the shipped
snapshot (`uat.json`). Every request is
recorded, so tests can count them.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FORMATS = {
    "application/x-desise+json": (".desise", ".json"),
    "application/rdf+xml": (".rdf",),
    "text/turtle": (".ttl",),
}
"""Media type -> file suffixes holding it (`.json` for the shipped snapshot's desise files)."""
MEDIA_TYPE_OF = {suffix: media for media, suffixes in FORMATS.items() for suffix in suffixes}


class VocabularyServer:
    """Serves a folder of vocabularies on 127.0.0.1 with content negotiation."""

    def __init__(self, folder: Path, formats: tuple[str, ...] = tuple(FORMATS)) -> None:
        self.folder = folder
        self.formats = formats
        """Media types this server offers (to test an RDF-only server, say)."""
        self.requests: list[tuple[str, str]] = []
        """(path, Accept) of every request, in order."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/rdf"

    def start(self) -> VocabularyServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering; the port then refuses connections."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _choose(self, stem: str, accept: str) -> str | None:
        for part in accept.split(","):
            media = part.split(";")[0].strip().lower()
            if media not in self.formats:
                continue
            for suffix in FORMATS[media]:
                if (self.folder / f"{stem}{suffix}").is_file():
                    return suffix
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                accept = self.headers.get("Accept", "")
                server.requests.append((self.path, accept))
                parts = self.path.strip("/").split("/")
                if len(parts) >= 4 and parts[0] == "rdf" and "." in parts[-1]:
                    self._send_file(parts[-1])
                    return
                name = "/".join(parts[1:])
                stem = name.replace("/", "-")
                if not any((server.folder / f"{stem}{s}").is_file() for s in MEDIA_TYPE_OF):
                    self._send(404, "text/plain", b"no such vocabulary")
                    return
                suffix = server._choose(stem, accept)
                if suffix is None:
                    self._send(200, "text/html", b"<html><body>a vocabulary</body></html>")
                    return
                self.send_response(303)
                self.send_header("Location", f"/rdf/{name}/2026-01-02/{stem}{suffix}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _send_file(self, filename: str) -> None:
                path = server.folder / filename
                suffix = path.suffix
                if suffix not in MEDIA_TYPE_OF or MEDIA_TYPE_OF[suffix] not in server.formats:
                    self._send(404, "text/plain", b"no such file")
                    return
                self._send(200, MEDIA_TYPE_OF[suffix] + "; charset=utf-8", path.read_bytes())

            def _send(self, status: int, media_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Keep test output quiet."""

        return Handler
