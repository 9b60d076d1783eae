"""The catalogue's server-side command, `voexec reindex`, and the problem listing of a file.

`reindex` works on the catalogue the settings describe, through a `CatalogueService` factory
handed in by the composition root (this package may not import it). The client commands
(`search`, `entry`, `publish`, `offers`) speak HTTP to a server: see `voexec/cli_client.py`.

Imports nothing heavy at module level, so that building the `voexec` parser stays cheap.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from core.errors import Problem

if TYPE_CHECKING:
    from catalogue.service import CatalogueService

OpenCatalogue = Callable[[argparse.Namespace], AbstractContextManager["CatalogueService"]]
"""Builds the catalogue from `--config` (and tears it down after the command)."""


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], *, open_catalogue: OpenCatalogue
) -> None:
    """Mount `voexec reindex` on the root parser."""
    reindex = commands.add_parser(
        "reindex",
        help="rebuild the search index from the store (safe while voexec serves: it switches)",
    )
    reindex.add_argument("--config", help="YAML settings file (default: $VOEXEC_CONFIG)")
    reindex.set_defaults(func=lambda args: _reindex(args, open_catalogue))


def problem_listing(
    name: str, text: str, problems: Sequence[Problem], warnings: Sequence[Problem]
) -> str:
    """Problems and warnings of a file, one per line, with the line each field is on."""
    from catalogue import documents

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


def _reindex(args: argparse.Namespace, open_catalogue: OpenCatalogue) -> int:
    with open_catalogue(args) as catalogue:
        count = catalogue.reindex()
    print(f"search index rebuilt: {count} entries")
    return 0
