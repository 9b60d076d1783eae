"""Wires the `harvest` package into the app and the CLI (see `voexec/wiring.py`).

Builds the harvest pipeline from the settings and the catalogue service the catalogue part put
in `services.components["catalogue"]`: the harvest tables are migrated, GitLab clients are
made per source (token from the environment variable the source names, retries from
`harvest.max_retries`), webhooks run on a worker thread stopped at shutdown. Handlers get the
pipeline as `harvest` and the worker as `harvest_background`; `open_pipeline` serves
`voexec harvest` (`voexec/cli_local.py`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from core.errors import Unavailable
from core.settings import GitLabSource, Settings
from harvest.gitlab import GitLabClient
from harvest.pipeline import HarvestPipeline, Publisher
from harvest.store_sql import HarvestStore
from harvest.web import BackgroundHarvests, router

if TYPE_CHECKING:
    from voexec.wiring import Services

log = logging.getLogger(__name__)


def client_factory(
    settings: Settings, environ: Mapping[str, str]
) -> Callable[[GitLabSource], GitLabClient]:
    """GitLab clients for the configured sources, with the harvest retry settings."""

    def client(source: GitLabSource) -> GitLabClient:
        return GitLabClient.for_source(
            source,
            environ,
            max_retries=settings.harvest.max_retries,
            allowed_hosts=settings.harvest.allowed_hosts,
        )

    return client


def build(services: Services) -> None:
    """Build the pipeline, provide `harvest` and `harvest_background`, mount `/harvest`."""
    settings = services.settings
    catalogue: Publisher | None = services.components.get("catalogue")
    if catalogue is None:
        log.warning("no catalogue service is wired; harvesting is not available")
        return
    engine = services.database()
    HarvestStore.migrate(engine)
    pipeline = HarvestPipeline(
        settings.harvest,
        catalogue,
        HarvestStore(engine),
        client_factory(settings, os.environ),
        services.clock,
    )
    background = BackgroundHarvests(pipeline)
    services.provide("harvest", pipeline)
    services.provide("harvest_background", background)
    services.route_handlers.append(router(os.environ))
    services.on_shutdown.append(background.close)


@contextmanager
def open_pipeline(settings: Settings) -> Iterator[HarvestPipeline]:
    """The harvest pipeline the settings describe (`voexec harvest`), closed after use."""
    from voexec.wiring import build_services  # wiring imports this module: import late

    services = build_services(settings)
    try:
        pipeline = services.components.get("harvest")
        if not isinstance(pipeline, HarvestPipeline):
            raise Unavailable("harvesting needs the catalogue service, which is not configured")
        yield pipeline
    finally:
        services.stop()
