"""The catalogue's commands: `voexec search`, `voexec offers`, `voexec publish`, `voexec reindex`.

`search`, `publish` and `reindex` work on the catalogue the settings describe, through a
`CatalogueService` factory handed in by `voexec/wire_catalogue.py` (this package may not import
the composition root). `offers` is an HTTP client of a running voexec, so that its broker holds
the offers until `voexec accept OFFER_URL`. Tables by default, JSON with `--json`.
`voexec publish FILE --check` is the packager's pre-flight: every problem of the file, with its
line, and nothing stored.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec
import yaml

from catalogue import documents
from catalogue.model import HandOff, Provenance, SearchPage, SearchRequest
from catalogue.ports import FACETS
from catalogue.publisher import CheckedDocument
from catalogue.service import CatalogueService
from catalogue.web import API_SOURCE
from core.errors import Invalid, Problem, Unavailable

SORTS: Final = ("relevance", "name", "newest")


OpenCatalogue = Callable[[argparse.Namespace], AbstractContextManager[CatalogueService]]
"""Builds the catalogue from `--config` (and tears it down after the command)."""
OfferSetPrinter = Callable[[Mapping[str, Any]], str]
"""Renders an offer set as text (the broker's table, when the broker provides one)."""
HttpClient = Callable[[], httpx.Client]
"""Makes the HTTP client `voexec offers` uses (tests pass one bound to an app)."""
DEFAULT_SERVER: Final = "http://127.0.0.1:8000"


def _default_client() -> httpx.Client:
    return httpx.Client(timeout=60.0)


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    open_catalogue: OpenCatalogue,
    print_offer_set: OfferSetPrinter | None = None,
    http_client: HttpClient | None = None,
) -> None:
    """Mount the catalogue commands on the root parser.

    `search`, `publish` and `reindex` work on the catalogue the settings describe (no server
    needed); `offers` asks a running voexec, whose broker then holds the offers until one is
    accepted (`voexec accept OFFER_URL`).
    """
    printer = print_offer_set or _offer_set_yaml

    search = commands.add_parser("search", help="search the catalogue (facets narrow it)")
    search.add_argument("query", nargs="?", default="", help="free text (typos are tolerated)")
    for facet in FACETS:
        search.add_argument(
            f"--{facet}", action="append", default=[], metavar="VALUE",
            help=f"select a {facet} (repeat for several: any of them)",
        )  # fmt: skip
    search.add_argument("--sort", choices=SORTS, default="relevance")
    search.add_argument("--limit", type=int, default=None, help="hits per page (1-100)")
    search.add_argument("--cursor", help="continue from a previous page's next cursor")
    _common(search)
    search.set_defaults(func=lambda args: _reporting(lambda: _search(args, open_catalogue)))

    offers = commands.add_parser(
        "offers", help="ask a running voexec for offers to run a catalogue entry"
    )
    offers.add_argument("entry_id", metavar="ENTRY_ID")
    offers.add_argument("--server", default=DEFAULT_SERVER, help=f"default {DEFAULT_SERVER}")
    offers.add_argument("--version", dest="entry_version", help="entry version (default: current)")
    offers.add_argument("--start", help="start range: ISO-8601 interval or instant")
    offers.add_argument("--duration", help="ISO-8601 duration, e.g. PT2H")
    offers.add_argument("--cores", type=int, help="CPU cores (default: the entry's need)")
    offers.add_argument("--memory", type=float, help="memory in GiB (default: the entry's need)")
    offers.add_argument("--gpus", type=int, help="GPUs (default: the entry's need)")
    offers.add_argument(
        "--data", action="append", default=[], metavar="URL", help="input data location"
    )
    offers.add_argument("--json", action="store_true", help="print the offer set as JSON")
    offers.set_defaults(
        func=lambda args: _reporting(lambda: _offers(args, http_client or _default_client, printer))
    )

    publish = commands.add_parser(
        "publish", help="validate an ivoa-executable.yaml and publish it to this catalogue"
    )
    publish.add_argument("file", type=Path, metavar="FILE")
    publish.add_argument(
        "--check", action="store_true", help="only validate: print every problem, store nothing"
    )
    _common(publish)
    publish.set_defaults(func=lambda args: _reporting(lambda: _publish(args, open_catalogue)))

    reindex = commands.add_parser(
        "reindex",
        help="rebuild the search index from the store (safe while voexec serves: it switches)",
    )
    reindex.add_argument("--config", help="YAML settings file (default: $VOEXEC_CONFIG)")
    reindex.set_defaults(func=lambda args: _reporting(lambda: _reindex(args, open_catalogue)))


def _reporting(command: Callable[[], int]) -> int:
    """Run a command; an `Invalid` is printed with each field and reason, and exits 1."""
    try:
        return command()
    except Invalid as error:
        print(f"voexec: {error.message}", file=sys.stderr)
        for problem in error.problems:
            hint = (
                f" (did you mean: {', '.join(problem.suggestions)}?)" if problem.suggestions else ""
            )
            print(f"  {problem.field}: {problem.reason}{hint}", file=sys.stderr)
        return 1
    except Unavailable as error:
        print(f"voexec: {error.message}", file=sys.stderr)
        return 1


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML settings file (default: $VOEXEC_CONFIG)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


# ---------------------------------------------------------------------------- search
def _search(args: argparse.Namespace, open_catalogue: OpenCatalogue) -> int:
    filters = {facet: tuple(getattr(args, facet)) for facet in FACETS if getattr(args, facet)}
    request = SearchRequest(
        text=args.query, filters=filters, sort=args.sort, cursor=args.cursor, limit=args.limit
    )
    with open_catalogue(args) as catalogue:
        page = catalogue.search(request)
    if args.json:
        _print_json(page)
    else:
        print(search_table(page))
    return 0


def search_table(page: SearchPage) -> str:
    """A search page as text: a table of hits, then the facets and the next cursor."""
    if not page.hits:
        lines = ["No entries match."]
    else:
        rows = [
            (hit.name, hit.version, hit.kind, hit.gpu, _clip(hit.title, 48), hit.id)
            for hit in page.hits
        ]
        lines = _table(("NAME", "VERSION", "KIND", "GPU", "TITLE", "ID"), rows)
        lines.append(f"{len(page.hits)} of {page.total} entries")
    for facet in page.facets:
        shown = ", ".join(
            f"{'*' if b.selected else ''}{b.value} ({b.count})" for b in facet.buckets[:8]
        )
        if shown:
            lines.append(f"  {facet.name}: {shown}")
    if page.next_cursor:
        lines.append(f"next page: --cursor {page.next_cursor}")
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = [tuple(header), *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


# ---------------------------------------------------------------------------- offers
def _offers(args: argparse.Namespace, http_client: HttpClient, printer: OfferSetPrinter) -> int:
    overrides = HandOff(
        version=args.entry_version,
        start=args.start,
        duration=args.duration,
        cores=args.cores,
        memory=args.memory,
        gpus=args.gpus,
        data=list(args.data),
    )
    url = f"{args.server.rstrip('/')}/catalogue/executables/{args.entry_id}/offers"
    try:
        with http_client() as client:
            answer = client.post(
                url,
                content=msgspec.json.encode(overrides),
                headers={"content-type": "application/json", "accept": "application/json"},
                follow_redirects=False,
            )
    except httpx.HTTPError as error:
        raise Unavailable(f"cannot reach voexec at {args.server}: {error}") from error
    if answer.status_code != 303:
        raise _answer_error(answer)
    offer_set = answer.json()
    if args.json:
        _print_json(offer_set)
        return 0 if offer_set.get("result") == "YES" else 1
    print(f"offer set: {answer.headers.get('location', '-')}")
    print(printer(offer_set))
    if offer_set.get("result") == "YES":
        print("Accept one with: voexec accept OFFER_URL")
        return 0
    return 1


def _answer_error(answer: httpx.Response) -> Invalid | Unavailable:
    """A problem-details answer as the error it reports (fields and reasons kept)."""
    try:
        body = answer.json()
    except ValueError:
        return Unavailable(f"voexec answered {answer.status_code}: {answer.text[:200]}")
    problems = [
        Problem(str(p.get("field", "")), str(p.get("reason", "")), tuple(p.get("suggestions", ())))
        for p in body.get("problems", [])
        if isinstance(p, dict)
    ]
    detail = str(body.get("detail") or body.get("title") or answer.reason_phrase)
    return Invalid(f"{detail} ({answer.status_code})", problems)


def _offer_set_yaml(offer_set: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(offer_set), sort_keys=False, allow_unicode=True).rstrip()


# ---------------------------------------------------------------------------- publish
def _publish(args: argparse.Namespace, open_catalogue: OpenCatalogue) -> int:
    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise Invalid(f"cannot read {path}: {error}", [Problem(str(path), str(error))]) from error
    with open_catalogue(args) as catalogue:
        if args.check:
            checked = catalogue.check(text)
            report: Any = checked
            ok = checked.ok
        else:
            report = catalogue.publish(text, Provenance(source=API_SOURCE))
            ok = report.ok
    if args.json:
        _print_json(_checked_json(report) if isinstance(report, CheckedDocument) else report)
        return 0 if ok else 1
    problems = [_problem(p) for p in report.problems]
    warnings = [_problem(p) for p in report.warnings]
    listing = problem_listing(str(path), text, problems, warnings)
    if listing:
        print(listing)
    if ok and args.check:
        names = ", ".join(item.spec.name for item in report.executables)
        print(f"{path}: valid ({names})")
    elif ok:
        for entry in report.entries:
            print(f"{entry.status:9}  {entry.name} {entry.version}  id {entry.id}")
    return 0 if ok else 1


def _problem(item: Any) -> Problem:
    return Problem(item.field, item.reason, tuple(item.suggestions))


def _checked_json(checked: CheckedDocument) -> dict[str, Any]:
    def items(problems: list[Problem]) -> list[dict[str, Any]]:
        return [
            {"field": p.field, "reason": p.reason, "suggestions": list(p.suggestions)}
            for p in problems
        ]

    return {
        "valid": checked.ok,
        "executables": [item.spec.name for item in checked.executables],
        "problems": items(checked.problems),
        "warnings": items(checked.warnings),
    }


def problem_listing(
    name: str, text: str, problems: Sequence[Problem], warnings: Sequence[Problem]
) -> str:
    """Problems and warnings of a file, one per line, with the line each field is on."""
    lines: list[str] = []
    if problems:
        lines.append(f"{name}: {len(problems)} problem(s); nothing was stored")
    for label, items in (("error", problems), ("warning", warnings)):
        for problem in items:
            line = (
                documents.locate(text, problem.field)
                if problem.field != documents.DOCUMENT
                else None
            )
            where = f"{name}:{line}" if line else name
            hint = (
                f" (did you mean: {', '.join(problem.suggestions)}?)" if problem.suggestions else ""
            )
            lines.append(f"{where}: {label}: {problem.field}: {problem.reason}{hint}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- reindex
def _reindex(args: argparse.Namespace, open_catalogue: OpenCatalogue) -> int:
    with open_catalogue(args) as catalogue:
        count = catalogue.reindex()
    print(f"search index rebuilt: {count} entries")
    return 0
