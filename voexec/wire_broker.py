"""Wires the `broker` package into the app (see `voexec/wiring.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.clock import ManualClock
from voexec.security import security_of

if TYPE_CHECKING:
    from voexec.wiring import Services


def build(services: Services) -> None:
    """Construct the broker service over the shared engine and mount its `/broker` routes.

    The service is injected into the handlers as the dependency `broker`. The work queue runs
    in a daemon thread between startup and shutdown, except under a `ManualClock`: there the
    caller drives time, and with it the ticks (`services.components["broker"].tick()`).
    """
    from broker.platforms import build_platform
    from broker.platforms.port import Platform
    from broker.service import BrokerService
    from broker.service.worker import WorkQueueRunner
    from broker.store.sql import SqlBrokerStore
    from broker.web import broker_router

    settings = services.settings
    engine = services.database()
    store = SqlBrokerStore(engine)
    store.migrate()
    platforms: dict[str, Platform] = {
        platform.name: build_platform(platform, settings.data_dir)
        for platform in settings.broker.platforms
    }
    # This broker's id in the paths of forwarded requests: its public URL when it has one.
    broker_id = (
        f"{settings.server.public_url.rstrip('/')}/broker" if settings.server.public_url else None
    )
    broker = BrokerService(settings.broker, services.clock, store, platforms, broker_id=broker_id)
    services.provide("broker", broker)
    services.route_handlers.append(broker_router(settings.server, security=security_of(services)))
    if not isinstance(services.clock, ManualClock):
        runner = WorkQueueRunner(broker, settings.broker.tick)
        broker.on_work_due(runner.wake)
        services.on_startup.append(runner.start)
        services.on_shutdown.append(runner.stop)
