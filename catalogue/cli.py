"""The catalogue's commands: `voexec search`, `voexec offers`, `voexec publish`, `voexec reindex`.

Commands get their `CatalogueService` from a factory handed in by `voexec/wire_catalogue.py`
(this package may not import the composition root), and print readable tables, or JSON with
`--json`. `voexec publish FILE --check` is the packager's pre-flight: every problem of the file,
with its line, and nothing stored.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import yaml

from catalogue import documents
from catalogue.model import HandOff, Provenance, SearchPage, SearchRequest
from catalogue.ports import FACETS
from catalogue.publisher import CheckedDocument
from catalogue.service import CatalogueService
from catalogue.web import API_SOURCE
from core.errors import Invalid, Problem

SORTS: Final = ("relevance", "name", "newest")


@dataclass(frozen=True)
class CliContext:
    """What a command runs against: the service, and the base URL the broker's links use."""

    catalogue: CatalogueService
    base_url: str


OpenCatalogue = Callable[[argparse.Namespace], AbstractContextManager[CliContext]]
"""Builds the catalogue from `--config` (and tears it down after the command)."""
OfferSetPrinter = Callable[[Mapping[str, Any]], None]
"""Prints an offer set (the broker's table printer, when the broker provides one)."""


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    open_catalogue: OpenCatalogue,
    print_offer_set: OfferSetPrinter | None = None,
) -> None:
    """Mount the catalogue commands on the root parser."""
    printer = print_offer_set or _print_offer_set_yaml

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

    offers = commands.add_parser("offers", help="ask the broker for offers to run an entry")
    offers.add_argument("entry_id", metavar="ENTRY_ID")
    offers.add_argument("--version", dest="entry_version", help="entry version (default: current)")
    offers.add_argument("--start", help="start range: ISO-8601 interval or instant")
    offers.add_argument("--duration", help="ISO-8601 duration, e.g. PT2H")
    offers.add_argument("--cores", type=int, help="CPU cores (default: the entry's need)")
    offers.add_argument("--memory", type=float, help="memory in GiB (default: the entry's need)")
    offers.add_argument("--gpus", type=int, help="GPUs (default: the entry's need)")
    offers.add_argument(
        "--data", action="append", default=[], metavar="URL", help="input data location"
    )
    _common(offers)
    offers.set_defaults(
        func=lambda args: _reporting(lambda: _offers(args, open_catalogue, printer))
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

    reindex = commands.add_parser("reindex", help="rebuild the search index from the store")
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
    with open_catalogue(args) as context:
        page = context.catalogue.search(request)
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
def _offers(
    args: argparse.Namespace, open_catalogue: OpenCatalogue, printer: OfferSetPrinter
) -> int:
    overrides = HandOff(
        version=args.entry_version,
        start=args.start,
        duration=args.duration,
        cores=args.cores,
        memory=args.memory,
        gpus=args.gpus,
        data=list(args.data),
    )
    with open_catalogue(args) as context:
        answer = context.catalogue.hand_off(args.entry_id, overrides, context.base_url)
    if args.json:
        _print_json(answer.offer_set)
    else:
        print(f"offer set: {answer.location}")
        printer(answer.offer_set)
    return 0


def _print_offer_set_yaml(offer_set: Mapping[str, Any]) -> None:
    print(yaml.safe_dump(dict(offer_set), sort_keys=False, allow_unicode=True).rstrip())


# ---------------------------------------------------------------------------- publish
def _publish(args: argparse.Namespace, open_catalogue: OpenCatalogue) -> int:
    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise Invalid(f"cannot read {path}: {error}", [Problem(str(path), str(error))]) from error
    with open_catalogue(args) as context:
        if args.check:
            checked = context.catalogue.check(text)
            report: Any = checked
            ok = checked.ok
        else:
            report = context.catalogue.publish(text, Provenance(source=API_SOURCE))
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
    with open_catalogue(args) as context:
        count = context.catalogue.reindex()
    print(f"search index rebuilt: {count} entries")
    return 0
