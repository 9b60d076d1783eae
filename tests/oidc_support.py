"""A tiny OpenID Connect provider for tests: a JWKS on a loopback port, and tokens it signs.

`JwksServer` serves the public half of its current keys at `/jwks` from an `http.server`
thread; `rotate()` replaces them (the old `kid` disappears), and `token(...)` signs a JWT with
the current key. Keys are generated with joserfc, as a provider would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

ISSUER = "https://login.example.org/realms/astro"
AUDIENCE = "voexec"


class JwksServer:
    """Serves a key set and signs tokens with its current key."""

    def __init__(self) -> None:
        self._numbers = count(1)
        self.key = self._new_key()
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                body = json.dumps(KeySet([server.key]).as_dict(private=False)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/jwks"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def _new_key(self) -> RSAKey:
        return RSAKey.generate_key(2048, parameters={"kid": f"key-{next(self._numbers)}"})

    def rotate(self) -> None:
        """Publish a new key in place of the current one."""
        self.key = self._new_key()

    def token(self, *, key: RSAKey | None = None, **claims: Any) -> str:
        """A JWT signed with the current key (or `key`); claims default to a valid token."""
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "researcher-7",
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        signing = key or self.key
        header = {"alg": "RS256", "kid": signing.kid}
        return jwt.encode(header, {k: v for k, v in payload.items() if v is not None}, signing)

    def settings(self, **more: Any) -> dict[str, Any]:
        """The `auth.oidc` settings for this provider."""
        return {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": self.url, **more}


@contextmanager
def jwks_server() -> Iterator[JwksServer]:
    """A running `JwksServer`, stopped afterwards."""
    server = JwksServer()
    server._thread.start()
    try:
        yield server
    finally:
        server._http.shutdown()
        server._http.server_close()
