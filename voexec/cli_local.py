"""The commands that work on this machine's voexec, not through a server.

- `voexec reindex` and `voexec harvest` open the store and the index the settings describe
  (what `voexec serve` opens), through `wire_catalogue.open_catalogue` and
  `wire_harvest.open_pipeline`; no server has a route that starts a harvest;
- `voexec vocab ...` reads and refreshes the vocabulary cache;
- `voexec publish FILE --check` validates a file without a server (`check_document`).

The wiring (Litestar, SQLAlchemy, tantivy) is imported when one of them runs, never when the
parser is built.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from catalogue import cli as catalogue_cli
from harvest import cli as harvest_cli
from vocabularies import cli as vocabularies_cli

if TYPE_CHECKING:
    from catalogue.publisher import CheckedDocument
    from catalogue.service import CatalogueService
    from core.settings import Settings
    from harvest.pipeline import HarvestPipeline


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Mount the local commands: `reindex`, `harvest`, `vocab`."""
    catalogue_cli.register(commands, open_catalogue=_open_catalogue)
    harvest_cli.register(commands, _open_pipeline)
    vocabularies_cli.register(commands)


@contextmanager
def _open_catalogue(args: argparse.Namespace) -> Iterator[CatalogueService]:
    from voexec.wire_catalogue import open_catalogue

    with open_catalogue(args) as catalogue:
        yield catalogue


@contextmanager
def _open_pipeline(settings: Settings) -> Iterator[HarvestPipeline]:
    from voexec.cli import freeze_heap
    from voexec.wire_harvest import open_pipeline

    with open_pipeline(settings) as pipeline:
        # As `voexec serve` does: what start-up built (vocabularies, caches: millions of
        # objects) stays out of the full collections a run's reports trigger (about 0.1 ms a
        # record). Here, not in the harvest: a server's harvests must not thaw its own heap.
        freeze_heap()
        yield pipeline


def check_document(args: argparse.Namespace, path: Path, text: str, out: TextIO) -> int:
    """`voexec publish FILE --check`: every problem of the file, with its line; nothing stored.

    The check needs no server and no token: it reads the vocabularies (cached, or the snapshot
    shipped with voexec) and the broker's schema, as a server's publish does, and opens no
    database or index, so it runs beside a serving voexec, offline, or in a packager's CI.
    """
    from catalogue.publisher import check_document as check
    from core.errors import Problem
    from core.settings import load_settings
    from vocabularies.registry import load_registry
    from voexec.wire_catalogue import InProcessBroker

    settings = load_settings(getattr(args, "config", None))
    vocabularies = load_registry(settings.vocabularies, settings.data_dir)
    schema = InProcessBroker(None, settings.broker.platforms)
    checked = check(
        text,
        vocabularies=vocabularies,
        validate_executable=schema.validate_executable,
        normalise_executable=schema.normalise_executable,
    )
    if args.json:
        import msgspec

        out.write(msgspec.json.format(msgspec.json.encode(_checked_json(checked))).decode())
        out.write("\n")
        return 0 if checked.ok else 1

    def problems(items: list[Problem]) -> list[Problem]:
        return [Problem(p.field, p.reason, tuple(p.suggestions)) for p in items]

    listing = catalogue_cli.problem_listing(
        str(path), text, problems(checked.problems), problems(checked.warnings)
    )
    if listing:
        out.write(listing + "\n")
    if checked.ok:
        names = ", ".join(item.spec.name for item in checked.executables)
        out.write(f"{path}: valid ({names})\n")
    return 0 if checked.ok else 1


def _checked_json(checked: CheckedDocument) -> dict[str, Any]:
    def items(problems: list[Any]) -> list[dict[str, Any]]:
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
