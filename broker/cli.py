"""`voexec request|accept|reject|cancel|session`: a command-line client of any Execution Broker.

```text
voexec request FILE [--broker URL] [--json]    ask for offers; a table of them, or the raw document
voexec accept OFFER_URL                        accept an offer (its siblings are rejected)
voexec reject OFFER_URL                        reject an offer
voexec cancel SESSION_URL                      cancel a session
voexec session SESSION_URL [--watch]           show a session; --watch follows it to its end
```

Speaks HTTP with httpx and reads every answer with `broker.codec`, so it works with this broker
and with others that follow the IVOA schema (their older dialects included). Exit status: 0 on
success (YES for `request`), 1 on NO or an error answer, 2 on a usage error.

Writes (`request`, `accept`, `reject`, `cancel`) send the bearer token in the environment
variable `VOEXEC_BROKER_TOKEN`, when it is set, for brokers configured with `write_tokens`; reads
send none. The token is taken from the environment only, never from an option, so that it stays
out of shell histories and process lists.

Imports httpx, `core` and the `broker` wire modules; never the service.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar

import httpx

from broker import codec
from broker.codec import Media
from broker.model import (
    TERMINAL_PHASES,
    AcceleratedComputeResource,
    AnySession,
    ErrorResponse,
    MessageItem,
    MessageLevel,
    OfferSetResponse,
    ScheduledExecutionSession,
    SessionPhase,
)
from core.errors import Invalid, Unavailable
from core.time import format_duration, format_instant

__all__ = ["DEFAULT_BROKER", "TOKEN_ENV", "offer_table", "register"]

DEFAULT_BROKER: Final = "http://127.0.0.1:8000"
TOKEN_ENV: Final = "VOEXEC_BROKER_TOKEN"  # noqa: S105 - the variable's name, not a token
"""The environment variable holding the bearer token sent with every write."""
MAX_ANSWER_BYTES: Final = 64 * 1024 * 1024
PLATFORM_MESSAGE: Final = "urn:voexec:offer-platform"

T = TypeVar("T")
ClientFactory = Callable[[], httpx.Client]


def _default_client() -> httpx.Client:
    return httpx.Client(timeout=30.0)


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    client: ClientFactory = _default_client,
) -> None:
    """Mount the client commands on the root parser.

    Args:
        commands: the root parser's subcommands.
        client: makes the HTTP client each command uses (tests pass one bound to an app).
    """
    request = commands.add_parser("request", help="ask an Execution Broker for offers")
    request.add_argument("file", type=Path, help="ExecutionRequest in YAML or JSON (.json)")
    request.add_argument("--broker", default=DEFAULT_BROKER, help=f"default {DEFAULT_BROKER}")
    request.add_argument("--json", action="store_true", help="print the offer set as JSON")
    request.set_defaults(func=lambda args: request_command(args, client(), sys.stdout))

    for name, phase, what in (
        ("accept", SessionPhase.ACCEPTED, "accept an offer"),
        ("reject", SessionPhase.REJECTED, "reject an offer"),
        ("cancel", SessionPhase.CANCELLED, "cancel a session"),
    ):
        update = commands.add_parser(name, help=what)
        update.add_argument("url", help="the offer's or session's URL")
        update.set_defaults(
            func=lambda args, phase=phase: update_command(args.url, phase, client(), sys.stdout)
        )

    session = commands.add_parser("session", help="show a session (or follow it with --watch)")
    session.add_argument("url", help="the session's URL")
    session.add_argument("--watch", action="store_true", help="poll until the session ends")
    session.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    session.set_defaults(func=lambda args: session_command(args, client(), sys.stdout))


# ------------------------------------------------------------------------- commands
def request_command(args: argparse.Namespace, client: httpx.Client, out: TextIO) -> int:
    """POST the request file; print the offers (or why there are none)."""
    path: Path = args.file
    try:
        body = path.read_bytes()
    except OSError as error:
        raise Invalid(f"cannot read {path}: {error.strerror}") from None
    media = Media.JSON if path.suffix.lower() == ".json" else Media.YAML
    url = args.broker.rstrip("/") + "/broker/requests"
    with client:
        answer = _send(
            client,
            "POST",
            url,
            content=body,
            headers={"Content-Type": media.value, "Accept": Media.JSON.value, **_write_auth()},
        )
    offerset = _read(answer, OfferSetResponse)
    if args.json:
        out.write(codec.encode(offerset, Media.JSON).decode() + "\n")
    elif offerset.result == "YES":
        out.write(offer_table(offerset) + "\n")
        _print_messages(offerset.meta.messages if offerset.meta else [], out, notes_only=True)
        out.write("Accept one with: voexec accept OFFER_URL\n")
    else:
        out.write("No offers:\n")
        _print_messages(offerset.meta.messages if offerset.meta else [], out)
    return 0 if offerset.result == "YES" else 1


def update_command(url: str, phase: SessionPhase, client: httpx.Client, out: TextIO) -> int:
    """Move a session to `phase` (accept, reject, cancel); print its new phase."""
    update = {"kind": "uri:enum-value-update", "path": "phase", "value": phase.value}
    with client:
        answer = _send(
            client,
            "POST",
            url,
            content=codec.encode(update, Media.JSON),
            headers={"Content-Type": Media.JSON.value, "Accept": Media.JSON.value, **_write_auth()},
        )
    session = _read_session(answer)
    out.write(f"{url}: {session.phase}\n")
    return 0


def session_command(args: argparse.Namespace, client: httpx.Client, out: TextIO) -> int:
    """Show a session; with --watch, print each phase change until a terminal phase."""
    with client:
        session = _get_session(client, args.url)
        out.write(session_summary(session) + "\n")
        last = session.phase
        while args.watch and last not in TERMINAL_PHASES:
            time.sleep(args.interval)
            session = _get_session(client, args.url)
            if session.phase is not last:
                out.write(f"{format_instant(_modified(session))}  {session.phase}\n")
                out.flush()
                last = session.phase
    return 0


# ------------------------------------------------------------------------- rendering
def offer_table(offerset: OfferSetResponse) -> str:
    """The offers as an aligned table, one row per offer, with the URL to accept it."""
    header = ("#", "start", "duration", "cores", "memory", "GPUs", "platform", "expires", "offer")
    rows: list[tuple[str, ...]] = [header]
    rows += [(str(n), *_offer_cells(offer)) for n, offer in enumerate(offerset.offers, start=1)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def _offer_cells(offer: AnySession) -> tuple[str, ...]:
    start = duration = "-"
    if isinstance(offer, ScheduledExecutionSession) and offer.schedule and offer.schedule.available:
        available = offer.schedule.available
        start = format_instant(available.start.start) if available.start else "-"
        duration = format_duration(available.duration) if available.duration else "-"
    compute = offer.compute
    cores = str(compute.cores.min) if compute and compute.cores and compute.cores.min else "-"
    memory = (
        f"{compute.memory.min} GiB" if compute and compute.memory and compute.memory.min else "-"
    )
    gpus = "-"
    if isinstance(compute, AcceleratedComputeResource) and compute.accelerators:
        accelerators = compute.accelerators
        count = accelerators.count.min if accelerators.count else None
        model = accelerators.models[0] if accelerators.models else "GPU"
        gpus = f"{count} x {model}" if count else "-"
    expires = format_instant(offer.expires) if offer.expires else "-"
    url = offer.meta.url if offer.meta and offer.meta.url else "-"
    return start, duration, cores, memory, gpus, _platform(offer), expires, url


def session_summary(session: AnySession) -> str:
    """A few lines saying what the session is and where it stands."""
    start, duration, cores, memory, gpus, platform, expires, url = _offer_cells(session)
    lines = [
        f"session   {url}",
        f"phase     {session.phase}",
        f"platform  {platform}",
        f"start     {start} for {duration}",
        f"resources {cores} cores, {memory} memory, GPUs: {gpus}",
    ]
    if session.phase is SessionPhase.OFFERED:
        lines.append(f"expires   {expires}")
    return "\n".join(lines)


def _platform(session: AnySession) -> str:
    for message in session.meta.messages if session.meta else []:
        if message.kind == PLATFORM_MESSAGE and "platform" in message.values:
            return message.values["platform"]
    return "-"


def _modified(session: AnySession) -> datetime:
    """When the session last changed (now, if the broker does not say)."""
    meta = session.meta
    return meta.modified if meta and meta.modified else datetime.now(UTC).replace(microsecond=0)


def _print_messages(
    messages: Sequence[MessageItem], out: TextIO, *, notes_only: bool = False
) -> None:
    for message in messages:
        if notes_only and message.level is MessageLevel.ERROR:
            continue
        level = message.level.value if message.level else "INFO"
        out.write(f"  {level}: {message.message or message.template or message.kind}\n")


# ------------------------------------------------------------------------- HTTP
def _write_auth(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The `Authorization` header of a write: the token in `VOEXEC_BROKER_TOKEN`, if set."""
    token = environ.get(TOKEN_ENV, "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


_AUTH_HINTS: Final = {
    401: f"Set {TOKEN_ENV} to one of the broker's write tokens.",
    403: f"The token in {TOKEN_ENV} is not one of the broker's write tokens.",
}
"""What to do about a refused write, added to the broker's own reason."""


def _send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return client.request(method, url, follow_redirects=False, **kwargs)
    except httpx.HTTPError as error:
        raise Unavailable(f"cannot reach the broker at {url}: {error}") from None


def _get_session(client: httpx.Client, url: str) -> AnySession:
    answer = _send(client, "GET", url, headers={"Accept": Media.JSON.value})
    return _read_session(answer)


def _read_session(answer: httpx.Response) -> AnySession:
    media = codec.media_for_body(answer.headers.get("content-type"))
    if answer.status_code >= 400:
        raise Invalid(_error_text(answer, media))
    return codec.decode_session(answer.content, media, max_bytes=MAX_ANSWER_BYTES).value


def _read(answer: httpx.Response, target: type[T]) -> T:
    """Decode a successful answer as `target`; turn an error answer into `Invalid`."""
    media = codec.media_for_body(answer.headers.get("content-type"))
    if answer.status_code >= 400:
        raise Invalid(_error_text(answer, media))
    return codec.decode_document(answer.content, media, target, max_bytes=MAX_ANSWER_BYTES).value


def _error_text(answer: httpx.Response, media: Media) -> str:
    status = f"HTTP {answer.status_code}"
    hint = f". {_AUTH_HINTS[answer.status_code]}" if answer.status_code in _AUTH_HINTS else ""
    try:
        error = codec.decode_document(answer.content, media, ErrorResponse).value
    except Invalid:
        return f"{status}: {answer.text[:500]}{hint}"
    reasons = [m.message or m.template or "" for m in error.meta.messages]
    return f"{status} {error.title}: " + "; ".join(reasons) + hint
