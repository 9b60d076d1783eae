"""Wires the `catalogue` package into the app (see `voexec/wiring.py`).

Builds the SQL store (migrated), the search index the settings choose, and the in-process
`BrokerGateway` over the broker part's `BrokerService` (the only place where catalogue and
broker meet: the catalogue side may not import the broker). Provides `CatalogueService` as
`catalogue`, mounts `/catalogue` and the OAI-PMH publishing registry under `/registry`, and at
start-up loads the demo catalogue when asked, rebuilds the index when it does not match the
store, and stores the datestamps of the registry's fixed records. `open_catalogue`
serves `voexec reindex` (`voexec/cli_local.py`).
"""

from __future__ import annotations

import argparse
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from catalogue.model import Provenance, PublishReport, kind_term
from catalogue.oai_repository import OaiRepository
from catalogue.ports import Needs, OfferAnswer, SearchIndex
from catalogue.service import CatalogueService
from catalogue.store_sql import SqlCatalogueStore
from catalogue.timing import parse_duration
from catalogue.voresource import RegistryIdentity
from catalogue.web import catalogue_router
from catalogue.web_oai import broker_vosi_router, registry_router
from core.errors import ConfigError, DomainError, Invalid, Problem, Unavailable
from core.settings import OpenSearchSearch, PlatformSettings, Settings, TantivySearch
from vocabularies.model import UnknownVocabulary
from vocabularies.registry import VocabularyRegistry
from voexec.security import security_of

if TYPE_CHECKING:
    from broker.service import BrokerService
    from voexec.wiring import Services

log = logging.getLogger(__name__)

DEMO_FOLDER: Final = Path(__file__).resolve().parents[1] / "catalogue" / "demo"
DEMO_SOURCE: Final = "demo"
SYNONYM_VOCABULARIES: Final = ("uat", "software-function", "executable-kind")
_SYNONYM_UNSAFE: Final = re.compile(r"[^\w\s-]")
RUNNABLE_KEPT: Final = 4096
"""Most (kind, needs) answers kept; a catalogue has far fewer distinct ones."""
BROKER_PATH: Final = "/broker"
"""Where `broker.web.broker_router` is mounted (not imported: the gateway needs no web layer)."""


# ----------------------------------------------------------------------------- the gateway
class InProcessBroker:
    """`catalogue.ports.BrokerGateway` over the broker service of this process."""

    def __init__(
        self,
        broker: BrokerService | None,
        platforms: Sequence[PlatformSettings],
        *,
        cache_for: timedelta = timedelta(seconds=30),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.broker = broker
        self.platforms = tuple(platforms)
        self.cache_for = cache_for.total_seconds()
        self._monotonic = monotonic
        self._runnable: dict[tuple[str, Needs], tuple[float, tuple[str, ...]]] = {}
        self._decoded = threading.local()
        """Per thread, the last block `normalise_executable` wrote (`block`)."""

    def validate_executable(self, block: Mapping[str, Any]) -> list[Problem]:
        """The broker codec's verdict on an `executable` block (fields relative to it)."""
        from broker.model import AnyExecutable, codec

        if block is getattr(self._decoded, "block", None):
            return []  # what `normalise_executable` just wrote from a decoded block, unchanged
        try:
            codec.convert(dict(block), AnyExecutable)
        except Invalid as error:
            return [
                Problem(p.field.removeprefix("$").lstrip("."), p.reason, p.suggestions)
                for p in error.problems
            ]
        return []

    def normalise_executable(self, block: Mapping[str, Any]) -> dict[str, Any]:
        """The block in the broker's newest form, older forms rewritten.

        As given when the codec cannot read it, so that `validate_executable` names the fault.
        """
        from broker.model import AnyExecutable, codec

        try:
            decoded = codec.convert(dict(block), AnyExecutable)
        except Invalid:
            return dict(block)
        newest: dict[str, Any] = codec.to_builtins(decoded.value)
        # The publisher validates the block it gets back: the codec wrote it from what it had
        # decoded, so decoding it again (half of checking a document) can only say yes.
        self._decoded.block = newest
        return newest

    def runnable_on(self, kind: str, needs: Needs) -> list[str]:
        """The platforms, local and remote, that the broker says could run this (time aside).

        The broker's own judgement (`broker.scheduling.resources.assess`, what a request for
        offers refuses a platform for: kind, limits, totals, GPUs), kept `cache_for` per kind
        and needs, so indexing and entry pages read a dict instead of asking again.
        """
        key = (kind_term(kind), needs)
        now = self._monotonic()
        kept = self._runnable.get(key)
        if kept is None or kept[0] <= now:
            if len(self._runnable) >= RUNNABLE_KEPT:
                self._runnable = {k: v for k, v in self._runnable.items() if v[0] > now}
            kept = (now + self.cache_for, self._ask_runnable(key[0], needs))
            if len(self._runnable) < RUNNABLE_KEPT:
                self._runnable[key] = kept
        return list(kept[1])

    def _ask_runnable(self, kind: str, needs: Needs) -> tuple[str, ...]:
        from broker.scheduling.intervals import Interval
        from broker.scheduling.resources import Demand, GpuDemand, PlatformSpec, assess

        duration = _duration(needs.duration)
        now = datetime.now(UTC)
        try:
            demand = Demand(
                kind=kind,
                duration=duration,
                windows=(Interval(now, now),),
                cores_min=needs.cores,
                memory_min=needs.memory,
                gpus=GpuDemand(count_min=needs.gpus, memory_min=needs.gpu_memory or 0.0)
                if needs.gpus
                else None,
            )
        except Invalid:  # stored needs were checked; odd ones run nowhere
            return ()
        specs = [PlatformSpec.from_settings(p) for p in self.platforms]
        return tuple(spec.name for spec in specs if not assess(spec, demand))

    def request_offers(
        self, request: Mapping[str, Any], base_url: str, *, requester: str | None = None
    ) -> OfferAnswer:
        """Decode the ExecutionRequest as the broker's HTTP layer would, and ask for offers."""
        if self.broker is None:
            raise Unavailable("the Execution Broker is not running in this process")
        from broker.model import ExecutionRequest, codec

        decoded = codec.convert(dict(request), ExecutionRequest)
        offer_set = self.broker.request_offers(
            decoded.value,
            base_url.rstrip("/") + BROKER_PATH,
            unknown_kinds=decoded.unknown_kinds,
            requester=requester,
        )
        body = codec.to_builtins(offer_set)
        return OfferAnswer(
            location=str(offer_set.meta.url if offer_set.meta else ""), offer_set=body
        )


def _duration(text: str | None) -> timedelta:
    """A declared duration; none (or an unreadable one) asks for the shortest."""
    if text is not None:
        try:
            declared = parse_duration(text)
        except ValueError:  # stored documents were checked; an odd one must not hide platforms
            declared = timedelta(0)
        if declared > timedelta(0):
            return declared
    return timedelta(seconds=1)


# ----------------------------------------------------------------------------- building
def search_index(settings: Settings, vocabularies: VocabularyRegistry) -> SearchIndex:
    """The search index the settings choose."""
    match settings.search:
        case TantivySearch(path=path):
            from catalogue.search_tantivy import TantivySearchIndex

            folder = Path(path) if path else Path(settings.data_dir) / "search"
            return TantivySearchIndex(folder)
        case OpenSearchSearch():
            from catalogue.search_opensearch import OpenSearchIndex

            return OpenSearchIndex(settings.search, synonyms=vocabulary_synonyms(vocabularies))
    raise ConfigError(f"search: unknown backend {settings.search!r}")  # pragma: no cover


def vocabulary_synonyms(vocabularies: VocabularyRegistry) -> list[str]:
    """Synonym rules (`label, alternative, ...`) from the vocabularies' alternative labels.

    Free text then finds a concept by any of its names (`CMB` and `cosmic microwave
    background`). Punctuation is dropped: the rules use commas and `=>` as syntax.
    """
    rules = []
    for name in SYNONYM_VOCABULARIES:
        try:
            vocabulary = vocabularies.get(name)
        except UnknownVocabulary:
            continue
        for concept in vocabulary.concepts.values():
            if concept.deprecated or not concept.alt_labels:
                continue
            names = (
                _SYNONYM_UNSAFE.sub(" ", n).strip().lower()
                for n in (concept.label, *concept.alt_labels)
            )
            distinct = list(dict.fromkeys(" ".join(n.split()) for n in names if n.strip()))
            if len(distinct) > 1:
                rules.append(", ".join(distinct))
    return rules


def build(services: Services) -> None:
    """Construct the catalogue service, provide it as `catalogue`, mount `/catalogue`."""
    settings = services.settings
    engine = services.database()
    store = SqlCatalogueStore(engine)
    store.migrate()
    vocabularies: VocabularyRegistry = services.components["vocabularies"]
    index = search_index(settings, vocabularies)
    close = getattr(index, "close", None)
    if callable(close):
        services.on_shutdown.append(close)
    catalogue = CatalogueService(
        store,
        index,
        vocabularies,
        InProcessBroker(
            services.components.get("broker"),
            settings.broker.platforms,
            cache_for=settings.catalogue.runnable_on_cache,
        ),
        services.clock,
        page_size=settings.catalogue.page_size,
    )
    services.provide("catalogue", catalogue)
    services.route_handlers.append(
        catalogue_router(
            security=security_of(services),
            public_url=settings.server.public_url,
        )
    )
    services.on_startup.append(lambda: prepare(catalogue, demo=settings.catalogue.demo))
    registry = OaiRepository(
        store, registry_identity(settings), services.clock, page_size=settings.registry.page_size
    )
    services.components["oai_repository"] = registry
    services.route_handlers.append(registry_router(registry))
    services.route_handlers.append(broker_vosi_router(registry))
    services.on_startup.append(lambda: sync_registry_records(registry))


def registry_identity(settings: Settings) -> RegistryIdentity:
    """Who publishes the registry's records, and the base URL every record points at.

    Harvesters require the Identify `baseURL` to be the URL they harvest, so behind a proxy
    `server.public_url` must be set; without it the URL the server listens on is used.
    """
    server, registry = settings.server, settings.registry
    base_url = server.public_url or f"http://{server.host}:{server.port}"
    return RegistryIdentity(
        authority=registry.authority,
        base_url=base_url.rstrip("/"),
        title=registry.title,
        description=registry.description,
        publisher=registry.publisher,
        contact_name=registry.contact_name,
        contact_email=registry.contact_email,
        page_size=registry.page_size,
        broker_standard_id=registry.broker_standard_id,
    )


def sync_registry_records(registry: OaiRepository) -> None:
    """Start-up: store the fixed records' datestamps (retried on the first request if it fails)."""
    try:
        registry.sync()
    except DomainError as error:
        log.error("registry records not stored at start-up: %s", error.message)


def prepare(catalogue: CatalogueService, *, demo: bool) -> None:
    """Start-up work: load the demo catalogue if asked, then make the index match the store.

    Neither may stop the server: a demo that cannot load (say, the UAT is not available
    offline) is logged, and an index that cannot be rebuilt now is rebuilt by `voexec reindex`.
    """
    try:
        if demo:
            load_demo(catalogue)
        rebuilt = catalogue.ensure_index()
    except DomainError as error:
        log.error("catalogue start-up incomplete: %s", error.message)
        return
    if rebuilt is not None:
        log.info("search index rebuilt from the store: %d entries", rebuilt)


def load_demo(catalogue: CatalogueService, folder: Path = DEMO_FOLDER) -> list[PublishReport]:
    """Publish every demo document (idempotent: unchanged documents cost a hash comparison).

    The demo must also start on a machine that could not fetch the UAT: its subjects are then
    kept unchecked (and without their broader concepts) rather than leaving the catalogue
    empty; a warning says so.
    """
    paths = sorted(folder.glob("*.yaml"))
    reports = catalogue.publish_all(
        (
            (
                path.read_text(encoding="utf-8"),
                Provenance(source=DEMO_SOURCE, path=f"catalogue/demo/{path.name}"),
            )
            for path in paths
        ),
        require_vocabularies=False,
    )
    unchecked: set[str] = set()
    for path, report in zip(paths, reports, strict=True):
        for problem in report.problems:
            log.error("demo file %s: %s: %s", path.name, problem.field, problem.reason)
        unchecked.update(w.reason for w in report.warnings if w.reason.startswith("not checked"))
    for reason in sorted(unchecked):
        log.warning("demo catalogue loaded with values %s", reason)
    return reports


# ----------------------------------------------------------------------------- commands
@contextmanager
def open_catalogue(args: argparse.Namespace) -> Iterator[CatalogueService]:
    """The catalogue `--config` describes, prepared as `voexec serve` prepares it (`reindex`)."""
    from core.settings import load_settings
    from voexec.wiring import build_services  # wiring imports this module: import late

    settings = load_settings(getattr(args, "config", None))
    services = build_services(settings)
    catalogue: CatalogueService = services.components["catalogue"]
    prepare(catalogue, demo=settings.catalogue.demo)
    try:
        yield catalogue
    finally:
        services.stop()
