"""`voexec` starts at once: building its parser imports no server library.

Litestar, SQLAlchemy, tantivy and rdflib are imported by the commands that need them; a fresh
interpreter shows what `voexec --version` and `voexec --help` load.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from catalogue.ports import FACETS
from voexec import cli_client

SERVER_LIBRARIES = ("litestar", "sqlalchemy", "tantivy", "rdflib", "uvicorn", "alembic")


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["search", "--help"]])
def test_the_parser_imports_no_server_library(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from voexec.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"loaded = sorted(n for n in {SERVER_LIBRARIES!r} if n in sys.modules)\n"
        "print('LOADED', ','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines()[-1] == "LOADED ", done.stdout


def test_every_catalogue_facet_is_a_search_option() -> None:
    assert cli_client.FACETS == FACETS
