"""Wires the web pages (`voexec/ui`) into the app and the CLI (see `voexec/wiring.py`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voexec.wiring import Services


def build(services: Services) -> None:
    """Construct the page routes and static files and register routes, dependencies and hooks."""


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Mount UI commands (none yet) on the root parser."""
