"""Wires the `vocabularies` package into the app (see `voexec/wiring.py`).

The registry is loaded once here, at start-up, from the settings: our own vocabularies always,
the configured IVOA ones from the folder, the cache or the network, and, when neither cache nor
network has them, from the dated snapshot shipped in the package. Loading never fails for lack
of network (what is missing is logged and listed at `GET /vocabularies`), so an offline machine
starts with our own vocabularies and the snapshot's UAT, messenger and product-type; the search
page's footer and `GET /vocabularies` say which copy of each is in use. Later parts find the
registry as `services.components["vocabularies"]`; handlers get it as the dependency
`vocabularies`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vocabularies.registry import load_registry
from vocabularies.web import router

if TYPE_CHECKING:
    from voexec.wiring import Services


def build(services: Services) -> None:
    """Load the vocabulary registry, provide it as `vocabularies`, and mount its routes."""
    settings = services.settings
    registry = load_registry(settings.vocabularies, settings.data_dir, clock=services.clock)
    services.provide("vocabularies", registry)
    services.route_handlers.append(router())
