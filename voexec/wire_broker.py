"""Wires the `broker` package into the app and the CLI (see `voexec/wiring.py`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voexec.wiring import Services


def build(services: Services) -> None:
    """Construct the broker service and mount its `/broker` routes.

    The service is injected into the handlers as the dependency `broker`.
    """
    from broker.service import BrokerService
    from broker.web import broker_router

    broker = BrokerService(services.settings.broker, services.clock)
    services.provide("broker", broker)
    services.route_handlers.append(broker_router(services.settings.server))


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Mount the broker's client commands: request, accept, reject, cancel, session."""
    from broker.cli import register

    register(commands)
