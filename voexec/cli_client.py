"""The client commands of `voexec`: one server, spoken to over HTTP through `voexec.client`.

```text
voexec search [TEXT] [--kind K ...] [--sort S] [--limit N] [--cursor C] [--json]
voexec entry NAME_OR_ID [--version V] [--json]
voexec publish FILE [--json]                  POST /catalogue/executables (needs a publish token)
voexec publish FILE --check [--config FILE]   every problem with its line; local, stores nothing
voexec offers NAME_OR_ID [--start ...] [--duration ...] [--cores N] [--memory GiB] [--gpus N]
voexec request FILE [--json]                  an ExecutionRequest (YAML or JSON) to the broker
voexec accept|reject|cancel OFFER             OFFER: a uuid, or the offer's or session's URL
voexec session SESSION [--watch]
voexec watch SESSION [--interval S] [--timeout S]
```

Every command takes `--server URL` (else `VOEXEC_URL`, else `http://127.0.0.1:8000`) and
`--token` (else `VOEXEC_TOKEN`, else the older `VOEXEC_BROKER_TOKEN`); the token is sent with
writes only. `--broker` is the older spelling of `--server`, still read, with a note.

Exit status: 0 on success (a YES for `offers` and `request`), 1 when the server refuses (its
messages are printed, each naming its field) or answers NO, `EXIT_UNREACHABLE` when no server
answers at the URL (one line; argparse's usage errors already own 2).

Start-up stays cheap: only argparse is imported to build the parser; the client (httpx,
asyncio) is imported when a command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    from voexec.client import Broker, Entry, OfferSet, SearchResults, Session
    from voexec.client_views import Message, SessionData

DEFAULT_SERVER: Final = "http://127.0.0.1:8000"
URL_ENV: Final = "VOEXEC_URL"
TOKEN_ENV: Final = "VOEXEC_TOKEN"  # noqa: S105 - the variable's name, not a token
OLD_TOKEN_ENV: Final = "VOEXEC_BROKER_TOKEN"  # noqa: S105 - the variable's name, not a token
EXIT_UNREACHABLE: Final = 69
"""EX_UNAVAILABLE (sysexits.h), as the root command already answers EX_CONFIG (78)."""
FACETS: Final = ("subject", "kind", "function", "gpu", "licence", "platform", "messenger")
"""The catalogue's facets (`catalogue.ports.FACETS`; a test keeps them equal), spelt here so
that building the parser imports nothing of the catalogue."""
SORTS: Final = ("relevance", "name", "newest")

Command = Callable[[argparse.Namespace, "Target", TextIO], int]


@dataclass(frozen=True)
class Target:
    """The server a command speaks to, and the token its writes carry."""

    url: str
    token: str | None
    named: str | None
    """How the server was named (`--server`, `VOEXEC_URL`), None for the default."""


def target_of(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Target:
    """The server and token from the options, else the environment, else the defaults."""
    if args.broker_alias:
        sys.stderr.write("voexec: note: --broker is the older name of --server; use --server\n")
    named = None
    url = args.server or args.broker_alias
    if url:
        named = "--server"
    elif environ.get(URL_ENV, "").strip():
        url, named = environ[URL_ENV].strip(), URL_ENV
    token = (
        args.token or environ.get(TOKEN_ENV, "").strip() or environ.get(OLD_TOKEN_ENV, "").strip()
    )
    return Target(url=url or DEFAULT_SERVER, token=token or None, named=named)


# ------------------------------------------------------------------------- the parser
def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Mount the client commands on the root parser."""
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--server",
        metavar="URL",
        help=f"the voexec server (default: ${URL_ENV}, else {DEFAULT_SERVER})",
    )
    server.add_argument("--broker", dest="broker_alias", metavar="URL", help=argparse.SUPPRESS)
    server.add_argument(
        "--token",
        help=f"bearer token for writes (default: ${TOKEN_ENV}, else ${OLD_TOKEN_ENV}); "
        "prefer the variable, which stays out of shell histories",
    )
    server.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for each answer"
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the server's JSON")

    def add(name: str, command: Command, help_text: str, *parents: argparse.ArgumentParser) -> Any:
        parser = commands.add_parser(name, help=help_text, parents=[server, *parents])
        parser.set_defaults(func=lambda args: run(command, args))
        return parser

    search = add("search", _search, "search the catalogue (facets narrow it)", as_json)
    search.add_argument("query", nargs="?", default="", help="free text (typos are tolerated)")
    for facet in FACETS:
        search.add_argument(
            f"--{facet}", action="append", default=[], metavar="VALUE",
            help=f"select a {facet} (repeat for several: any of them)",
        )  # fmt: skip
    search.add_argument("--sort", choices=SORTS, default="relevance")
    search.add_argument("--limit", type=int, default=None, help="hits per page (1-100)")
    search.add_argument("--cursor", help="continue from a previous page's next cursor")

    entry = add("entry", _entry, "show a catalogue entry (by id or by name)", as_json)
    entry.add_argument("entry", metavar="NAME_OR_ID")
    entry.add_argument("--version", dest="entry_version", help="a version (default: current)")

    publish = add(
        "publish", _publish, "publish an ivoa-executable.yaml to the server's catalogue", as_json
    )
    publish.add_argument("file", type=Path, metavar="FILE")
    publish.add_argument(
        "--check",
        action="store_true",
        help="only validate, here, with no server: print every problem, store nothing",
    )
    publish.add_argument(
        "--config", help="settings for --check: which vocabularies (default: $VOEXEC_CONFIG)"
    )

    offers = add("offers", _offers, "ask for offers to run a catalogue entry", as_json)
    offers.add_argument("entry", metavar="NAME_OR_ID")
    offers.add_argument("--version", dest="entry_version", help="entry version (default: current)")
    offers.add_argument("--start", help="start range: ISO-8601 interval or instant")
    offers.add_argument("--duration", help="ISO-8601 duration, e.g. PT2H")
    offers.add_argument("--cores", type=int, help="CPU cores (default: the entry's need)")
    offers.add_argument("--memory", type=float, help="memory in GiB (default: the entry's need)")
    offers.add_argument("--gpus", type=int, help="GPUs (default: the entry's need)")
    offers.add_argument(
        "--data", action="append", default=[], metavar="URL", help="input data location"
    )

    request = add("request", _request, "send an ExecutionRequest file to the broker", as_json)
    request.add_argument("file", type=Path, help="ExecutionRequest in YAML or JSON (.json)")

    for name, what in (
        ("accept", "accept an offer (its siblings are rejected)"),
        ("reject", "reject an offer"),
        ("cancel", "cancel a session (its work is stopped)"),
    ):
        update = add(name, _update, what)
        update.add_argument("session", metavar="OFFER", help="the offer's uuid or URL")
        update.set_defaults(action=name)

    session = add("session", _session, "show a session (or follow it with --watch)", as_json)
    session.add_argument("session", metavar="SESSION", help="the session's uuid or URL")
    session.add_argument("--watch", action="store_true", help="follow it until it ends")
    _watch_options(session)

    watch = add("watch", _watch, "follow a session, a line per phase, until it ends")
    watch.add_argument("session", metavar="SESSION", help="the session's uuid or URL")
    _watch_options(watch)


def _watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval", type=float, default=2.0, metavar="S", help="poll every S s")
    parser.add_argument(
        "--for", dest="watch_timeout", type=float, default=24 * 3600.0, metavar="S",
        help="give up after S seconds (default: a day)",
    )  # fmt: skip


# ------------------------------------------------------------------------- errors
def run(command: Command, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run a client command; print what the client raises as a few lines, never a traceback."""
    from voexec import client

    target = target_of(args)
    try:
        return command(args, target, out or sys.stdout)
    except client.ConnectionFailed as error:
        # One line: where it went, why it failed and, when it was the default or a variable
        # that chose the server, which.
        source = f" (the server: {_named(target)})" if target.url in error.summary else ""
        _error(f"{error.summary}; is voexec serving there?{source}")
        return EXIT_UNREACHABLE
    except client.ServerError as error:
        _error(f"{error.summary}{_token_hint(error, target)}", error.messages)
        return 1
    except client.ClientError as error:
        _error(error.summary, error.messages)
        return 1


def _named(target: Target) -> str:
    return f"from {target.named}" if target.named else f"the default; set --server or {URL_ENV}"


def _token_hint(error: Exception, target: Target) -> str:
    from voexec import client

    if isinstance(error, client.Unauthorized):
        return f". Give a token: set {TOKEN_ENV} (or --token)"
    if isinstance(error, client.Forbidden) and target.token:
        return ". The token given may not do this here"
    return ""


def _error(summary: str, messages: Iterable[Message] = ()) -> None:
    lines = [f"voexec: {summary}"]
    for message in messages:
        text = str(message)
        if message.field and not text.startswith(message.field):
            text = f"{message.field}: {text}"
        if text not in summary:
            lines.append(f"  {text}")
    sys.stderr.write("\n".join(lines) + "\n")


# ------------------------------------------------------------------------- output
def _json(out: TextIO, value: Any) -> None:
    import msgspec

    out.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Aligned columns, header first; trailing spaces removed."""
    all_rows = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in all_rows
    ]


def _instant(value: Any) -> str:
    if value is None:
        return "-"
    text: str = value.isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


# ------------------------------------------------------------------------- catalogue
def _catalogue(target: Target, args: argparse.Namespace) -> Any:
    from voexec.client import Catalogue

    return Catalogue(target.url, timeout=args.timeout)


def _search(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    facets = {facet: getattr(args, facet) for facet in FACETS if getattr(args, facet)}
    with _catalogue(target, args) as catalogue:
        results = catalogue.search(
            args.query, sort=args.sort, limit=args.limit, cursor=args.cursor, **facets
        )
    if args.json:
        _json(
            out,
            {
                "total": results.total,
                "hits": results.hits,
                "facets": results.facets,
                "next_cursor": results.next_cursor,
            },
        )
    else:
        out.write(search_table(results) + "\n")
    return 0


def search_table(results: SearchResults) -> str:
    """A search page as text: a table of hits, then the facets and the next cursor."""
    if not results.hits:
        lines = ["No entries match."]
    else:
        rows = [
            (hit.name, hit.version, hit.kind, hit.gpu, _clip(hit.title, 48), hit.id)
            for hit in results.hits
        ]
        lines = table(("NAME", "VERSION", "KIND", "GPU", "TITLE", "ID"), rows)
        lines.append(f"{len(results.hits)} of {results.total} entries")
    for name, values in results.facets.items():
        shown = ", ".join(f"{'*' if v.selected else ''}{v.value} ({v.count})" for v in values[:8])
        if shown:
            lines.append(f"  {name}: {shown}")
    if results.next_cursor:
        lines.append(f"next page: --cursor {results.next_cursor}")
    return "\n".join(lines)


def _entry(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    with _catalogue(target, args) as catalogue:
        entry = catalogue.entry(args.entry, args.entry_version)
    if args.json:
        _json(out, _entry_document(entry))
    else:
        out.write(entry_text(entry) + "\n")
    return 0


def _entry_document(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "name": entry.name,
        "version": entry.version,
        "current_version": entry.current_version,
        "withdrawn": entry.withdrawn,
        "kind": entry.kind,
        "gpu": entry.gpu,
        "platforms": entry.platforms,
        "subjects": entry.subjects,
        "functions": entry.functions,
        "spec": entry.spec,
    }


def entry_text(entry: Entry) -> str:
    """An entry as a few labelled lines."""
    needs = ", ".join(f"{k}: {v}" for k, v in entry.needs.items() if v is not None)
    version = entry.version + ("" if entry.version == entry.current_version else " (not current)")
    fields = [
        ("id", entry.id),
        ("version", version),
        ("kind", entry.kind),
        ("summary", entry.summary),
        ("needs", needs),
        ("GPU", entry.gpu),
        ("subjects", ", ".join(c.label for c in entry.subjects)),
        ("functions", ", ".join(c.label for c in entry.functions)),
        ("runs on", ", ".join(entry.platforms) or "no platform of this server"),
    ]
    if entry.withdrawn:
        fields.append(("withdrawn", "yes: it cannot be run"))
    lines = [f"{entry.name}: {entry.title}"]
    lines += [f"  {name:<10} {value}" for name, value in fields if value]
    lines.append(f"Offers to run it: voexec offers {entry.id}")
    return "\n".join(lines)


def _read_text(path: Path) -> str:
    """The file's text; one that cannot be read is bad input naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        from voexec.client import InvalidInput, Message

        reason = getattr(error, "strerror", None) or str(error)
        raise InvalidInput(
            f"cannot read {path}: {reason}", [Message(text=reason, field=str(path))]
        ) from None


def _publish(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    path: Path = args.file
    text = _read_text(path)
    if args.check:
        from voexec.cli_local import check_document

        return check_document(args, path, text, out)
    from catalogue.cli import problem_listing
    from core.errors import Problem
    from voexec import client

    try:
        report = _post_document(target, path, text, args.timeout)
    except client.BadRequest as error:
        if not any(m.field for m in error.messages):
            raise
        problems = [Problem(m.field or "", m.text, m.suggestions) for m in error.messages]
        # The catalogue's messages read `field: reason`; the listing adds the line itself.
        problems = [
            Problem(p.field, p.reason.removeprefix(f"{p.field}: "), p.suggestions) for p in problems
        ]
        out.write(problem_listing(str(path), text, problems, []) + "\n")
        return 1
    if args.json:
        _json(out, report)
        return 0
    warnings = [
        Problem(str(w.get("field", "")), str(w.get("reason", "")), tuple(w.get("suggestions", ())))
        for w in report.get("warnings", [])
    ]
    listing = problem_listing(str(path), text, [], warnings)
    if listing:
        out.write(listing + "\n")
    for entry in report.get("entries", []):
        out.write(f"{entry['status']:9}  {entry['name']} {entry['version']}  id {entry['id']}\n")
    return 0


def _post_document(target: Target, path: Path, text: str, timeout: float) -> dict[str, Any]:
    """POST the document to the catalogue; the publish report, or the error it answers."""
    import httpx

    from voexec import client

    media = "application/json" if path.suffix.lower() == ".json" else "application/yaml"
    headers = {"content-type": media, "accept": client.JSON, "user-agent": client.USER_AGENT}
    if target.token:
        headers["authorization"] = f"Bearer {target.token}"
    url = target.url.rstrip("/").removesuffix("/catalogue") + "/catalogue/executables"
    request = httpx.Request("POST", url, content=text.encode("utf-8"), headers=headers)
    with httpx.Client(timeout=timeout) as http:
        try:
            answer = http.send(request)
        except httpx.TransportError as error:
            raise client.ConnectionFailed(f"cannot reach {url}: {error}") from None
    # The client's reading of answers: problem details become typed errors naming the fields.
    body = client._read(answer)
    if not isinstance(body, dict):
        raise client.UnreadableAnswer(f"{url} answered no publish report")
    return body


# ------------------------------------------------------------------------- broker
def _broker(target: Target, args: argparse.Namespace, url: str | None = None) -> Broker:
    from voexec.client import Broker

    return Broker(url or target.url, token=target.token, timeout=args.timeout)


def broker_of(reference: str, target: Target) -> str | None:
    """The broker a session URL names, or None for a bare uuid (the target's broker).

    A URL names its own broker; given with a different `--server` or `VOEXEC_URL`, it is
    refused rather than followed, so that the token only goes to a server the user named.
    """
    from voexec.client import InvalidInput, Message

    if "://" not in reference:
        return None
    head, collection, _uuid = ["", "", "", *reference.rstrip("/").rsplit("/", 2)][-3:]
    if collection not in {"sessions", "offersets"} or "://" not in head:
        raise InvalidInput(
            f"{reference} is not an offer's or session's URL",
            [Message(text="expected .../sessions/UUID, or a uuid", field="session")],
        )
    if target.named and _origin(head) != _origin(target.url):
        raise InvalidInput(
            f"{reference} is on another server than {target.url} ({target.named})",
            [Message(text=f"give its uuid, or --server {head}", field="session")],
        )
    return head


def _origin(url: str) -> tuple[str, str, int | None]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def _accept_hint(target: Target) -> str:
    server = f" --server {target.url}" if target.named == "--server" else ""
    return f"Accept one with: voexec accept OFFER{server}"


def _print_offer_set(
    args: argparse.Namespace, target: Target, offers: OfferSet[Any], out: TextIO
) -> int:
    if args.json:
        _json(out, offers.document)
    elif offers.result == "YES":
        out.write(f"offer set {offers.url or offers.uuid}\n")
        out.write(offer_table(offers.offers) + "\n")
        for message in offers.messages:
            if message.level != "ERROR":
                out.write(f"  {message.level or 'INFO'}: {message}\n")
        out.write(_accept_hint(target) + "\n")
    else:
        out.write("No offers:\n")
        for message in offers.messages:
            out.write(f"  {message.level or 'INFO'}: {message}\n")
    return 0 if offers.result == "YES" else 1


def offer_table(offers: Sequence[SessionData]) -> str:
    """The offers as an aligned table: where, how chosen, when, what, at what cost; the uuid."""
    header = ("#", "PLATFORM", "STRATEGY", "START", "DURATION", "RESOURCES", "COST", "EXPIRES")
    rows = [
        (
            str(number),
            offer.platform or "-",
            offer.strategy or "-",
            _instant(offer.start),
            offer.duration or "-",
            str(offer.resources) or "-",
            str(offer.cost) if offer.cost else "-",
            _instant(offer.expires),
            offer.uuid,
        )
        for number, offer in enumerate(offers, start=1)
    ]
    return "\n".join(table((*header, "OFFER"), rows))


def _offers(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    with _catalogue(target, args) as catalogue:
        entry = catalogue.entry(args.entry, args.entry_version)
    with _broker(target, args) as broker:
        offers = broker.offers_for(
            entry,
            start=args.start,
            duration=args.duration,
            cores=args.cores,
            memory=args.memory,
            gpus=args.gpus,
            data=list(args.data),
        )
    if not args.json:
        out.write(f"{entry.name} {entry.version} ({entry.id})\n")
    return _print_offer_set(args, target, offers, out)


def _request(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    from voexec.client import InvalidInput, Message

    path: Path = args.file
    text = _read_text(path)
    document: Any = text
    if path.suffix.lower() == ".json":
        import msgspec

        try:
            document = msgspec.json.decode(text)
        except msgspec.DecodeError as error:
            raise InvalidInput(
                f"{path} is not JSON: {error}", [Message(text=str(error), field=str(path))]
            ) from None
    with _broker(target, args) as broker:
        offers = broker.request(document)
    return _print_offer_set(args, target, offers, out)


def _update(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    with _broker(target, args, broker_of(args.session, target)) as broker:
        session = broker.session(args.session)
        getattr(session, args.action)()
    out.write(f"{session.url or session.uuid}: {session.phase.value}\n")
    return 0


def session_text(session: SessionData) -> str:
    """A few lines saying what the session is and where it stands."""
    lines = [
        f"session   {session.url or session.uuid}",
        f"phase     {session.phase.value}",
        f"platform  {session.platform or '-'}",
        f"start     {_instant(session.start)} for {session.duration or '-'}",
        f"resources {str(session.resources) or '-'}",
    ]
    if session.cost:
        lines.append(f"cost      {session.cost}")
    if session.phase.value == "OFFERED":
        lines.append(f"expires   {_instant(session.expires)}")
    lines += [
        f"connector {c.protocol or c.kind or '-'} {c.location or ''}".rstrip()
        for c in session.connectors
    ]
    return "\n".join(lines)


def _session(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    if args.watch:
        return _watch(args, target, out)
    with _broker(target, args, broker_of(args.session, target)) as broker:
        session = broker.session(args.session)
    if args.json:
        _json(out, session.document)
    else:
        out.write(session_text(session) + "\n")
    return 0


def _watch(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    from datetime import UTC, datetime

    with _broker(target, args, broker_of(args.session, target)) as broker:
        session: Session = broker.session(args.session)
        out.write(session_text(session) + "\n")
        out.flush()
        first = True
        for phase in session.watch(poll=args.interval, timeout=args.watch_timeout):
            if not first:  # the first is the phase just shown
                now = datetime.now(UTC).replace(microsecond=0)
                out.write(f"{_instant(now)}  {phase.value}\n")
                out.flush()
            first = False
    return 0
