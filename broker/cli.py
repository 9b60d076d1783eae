"""Placeholder while the client commands are written."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Mount the broker commands."""
