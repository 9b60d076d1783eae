"""The web pages: Litestar routes that render HTML from the services.

| route | page |
|---|---|
| `GET /` | search: text with suggestions, facets, chips, result cards, sort, pages |
| `GET /executables/{id}?version=` | an entry, and its "Request offers" form |
| `POST /executables/{id}/offers` | that form: 303 to the offers page, or the entry with problems |
| `GET /offersets/{uuid}` | offers side by side, a timeline, why platforms said NO |
| `GET /sessions/{uuid}` | a session (or an offer): phase, history, schedule, connectors |
| `POST /sessions/{uuid}` | accept, reject or cancel: a form (303 back) or a script (JSON) |
| `GET|POST /sign-in`, `POST /sign-out` | sign in with a broker token (`voexec.page_auth`) |
| `GET /platforms` | each platform's capacity and a Gantt chart of holds and bookings |
| `GET /harvest?run=` | harvest sources, runs, and a run's problems per project |

The first view of each page is rendered here from the services (no HTTP round trip), then
the page's script enhances it through the JSON APIs (`/catalogue`, `/broker`,
`/vocabularies`). Pages that change in place (search results, a live session) are rendered
by one template, sent whole or, when a script asks with the `X-Voexec-Partial` header, as the
changing part only, so there is one renderer for both. Every answer carries
`Server-Timing: app;dur=<ms>`, which the end-to-end tests read.

Forms work without script. Their POSTs are refused when the browser says they come from
another site (`Sec-Fetch-Site`, `Origin`), and, when `broker.write_tokens` is set, without a
sign-in or a bearer token (`voexec.page_auth`), like the broker's own write routes.
Imports the packages' services, `voexec.page_auth` and the pure `voexec.ui` helpers; with
`voexec.page_auth`, the only Litestar module of the pages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Final
from urllib.parse import quote
from uuid import UUID

from litestar import MediaType, Request, Response, Router, get, post
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

import voexec
from broker import codec
from broker.model import EnumValueUpdate
from broker.service import BrokerService
from catalogue.model import EntryDetail, Provenance
from catalogue.service import CatalogueService
from core.auth import BEARER_CHALLENGE
from core.clock import Clock
from core.errors import Conflict, DomainError, Invalid, NotFound, Problem
from core.settings import GitLabSource, Settings
from harvest.model import ReportProblem
from harvest.pipeline import HarvestPipeline
from voexec.page_auth import (
    PageAuth,
    SignInNeeded,
    check_same_site,
    local_path,
    sign_in_handlers,
)
from voexec.problems import problem as problem_details
from voexec.problems import status_of
from voexec.ui import broker_charts, search_state
from voexec.ui.broker_views import offer_set_view, session_view
from voexec.ui.offer_form import UNIT_TITLES, OfferForm, form_field
from voexec.ui.render import PageRenderer
from voexec.ui.search_state import SearchState

log = logging.getLogger(__name__)

PARTIAL_HEADER: Final = "x-voexec-partial"
OPEN_HEADER: Final = "x-voexec-open"
"""Tree branches the reader opened (`subject:photometry,function:imaging`), sent by search.js."""
KIND_LABELS: Final = {
    "docker-container": "Docker container",
    "singularity-container": "Singularity container",
    "jupyter-notebook": "Jupyter notebook",
    "python-program": "Python program",
}

ERROR_TITLES: Final = {
    400: "Something in this address is wrong",
    401: "Sign in to continue",
    403: "Not allowed",
    404: "Not found",
    409: "That cannot be done now",
    500: "Something went wrong",
    503: "Not available right now",
}
RUN_TONES: Final = {"succeeded": "success", "partial": "warning", "failed": "danger"}

Catalogue = NamedDependency[CatalogueService]
Broker = NamedDependency[BrokerService]
Harvest = NamedDependency[HarvestPipeline]


@dataclass(frozen=True)
class Pages:
    """What every page handler needs besides the services: templates, settings, the clock."""

    renderer: PageRenderer
    settings: Settings
    clock: Clock

    def now(self) -> datetime:
        """The current time (the app's clock, so tests can move it)."""
        return self.clock.now()

    @cached_property
    def auth(self) -> PageAuth:
        """Who may write from the pages (`broker.write_tokens`)."""
        return PageAuth.from_settings(self.settings, self.clock)

    def html(
        self,
        request: Request[Any, Any, Any],
        started: float,
        template: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        here: str | None = None,
        partial: bool = False,
        **context: Any,
    ) -> Response[str]:
        """A rendered page (or the changing part of one) with its server time.

        The page shows the reader's sign-in state (`viewer`); `here` is where signing in or
        out comes back to: by default this page when it was read with GET, else the search.
        """
        if here is None:
            query = request.url.query
            read = request.method in {"GET", "HEAD"}
            here = (request.url.path + (f"?{query}" if query else "")) if read else "/"
        body = self.renderer.render(
            template,
            version=voexec.__version__,
            viewer=self.auth.state(request, here),
            **context,
        )
        elapsed = (time.perf_counter() - started) * 1000
        answer = {"Server-Timing": f"app;dur={elapsed:.1f}", "Vary": "X-Voexec-Partial"}
        if partial:
            answer["Cache-Control"] = "no-store"  # a fragment must never stand in for a page
        elif self.auth.required:
            # The page differs by sign-in (the header, the write buttons): never share it.
            answer["Cache-Control"] = "private"
        answer.update(headers or {})
        return Response(body, status_code=status, media_type=MediaType.HTML, headers=answer)


PagesDependency = NamedDependency[Pages]


def _partial(request: Request[Any, Any, Any], name: str) -> bool:
    return request.headers.get(PARTIAL_HEADER, "") == name


def _uuid(text: str, what: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise NotFound(f"there is no {what} {text!r}: that is not a UUID") from None


# ----------------------------------------------------------------------------- search
@get("/", sync_to_thread=True, name="page-search")
def search_page(
    request: Request[Any, Any, Any], catalogue: Catalogue, pages: PagesDependency
) -> Response[str]:
    """The search page; `X-Voexec-Partial: results` answers the results region only."""
    started = time.perf_counter()
    params = {key: request.query_params.getall(key) for key in request.query_params}
    state = SearchState.from_params(params)
    notices = list(state.problems)
    try:
        result = catalogue.search(state.request())
    except Invalid as error:
        # Leave out what the search refused (an unknown subject, a stale cursor) and say so.
        narrower = state.without_refused(error.problems or [])
        if narrower is None:
            raise
        state = narrower
        notices.extend(error.problems or [])
        result = catalogue.search(state.request())
    state = search_state.canonical(state, result.facets)
    # Search hits do not carry the declared needs: one batched read of the page's entries.
    current = catalogue.store.current_versions([hit.id for hit in result.hits])
    return pages.html(
        request,
        started,
        "search/results.html" if _partial(request, "results") else "search/page.html",
        partial=_partial(request, "results"),
        page="search",
        nav="search",
        state=state,
        result=result,
        notices=notices,
        chips=search_state.chips(state, result.facets),
        selected_count=sum(len(values) for values in state.filters.values()),
        first=state.first_result(catalogue.page_size),
        needs={key: version.spec.needs for key, version in current.items()},
        facet_titles=search_state.FACET_TITLES,
        field_titles=search_state.FIELD_TITLES,
        sort_titles=search_state.SORT_TITLES,
        kind_labels=KIND_LABELS,
        open_branches=search_state.open_branches(result.facets)
        | search_state.opened(request.headers.get(OPEN_HEADER, "")),
    )


# ----------------------------------------------------------------------------- entries
def _harvest_problems(harvest: HarvestPipeline, provenance: Provenance) -> list[ReportProblem]:
    """What the last harvest of the entry's repository reported wrong (any ref)."""
    if provenance.repository is None:
        return []
    states = harvest.store.states(provenance.source)
    found: list[ReportProblem] = []
    for state in states.values():
        if state.web_url == provenance.repository:
            for ref in state.refs:
                found.extend(ref.problems)
                found.extend(ref.warnings)
    return found


def _entry_context(
    detail: EntryDetail,
    harvest: HarvestPipeline,
    pages: Pages,
    form: OfferForm,
    errors: dict[str, str],
) -> dict[str, Any]:
    return {
        "start_window": pages.settings.broker.default_start_window,
        "page": "entry",
        "nav": "search",
        "entry": detail,
        "spec": detail.spec,
        "kind_label": KIND_LABELS.get(detail.kind, detail.kind),
        "harvest_problems": _harvest_problems(harvest, detail.provenance),
        "form": form,
        "errors": errors,
        "units": UNIT_TITLES,
    }


@get("/executables/{entry_id:str}", sync_to_thread=True, name="page-entry")
def entry_page(
    request: Request[Any, Any, Any],
    entry_id: FromPath[str],
    catalogue: Catalogue,
    harvest: Harvest,
    pages: PagesDependency,
    *,
    version: FromQuery[str | None] = None,
) -> Response[str]:
    """An entry: description, versions, needs, subjects, provenance, "Request offers"."""
    started = time.perf_counter()
    detail = catalogue.get(entry_id, version)
    context = _entry_context(detail, harvest, pages, OfferForm.prefilled(detail), {})
    return pages.html(request, started, "entry.html", **context)


@post("/executables/{entry_id:str}/offers", name="page-request-offers")
async def request_offers(
    request: Request[Any, Any, Any],
    entry_id: FromPath[str],
    catalogue: Catalogue,
    harvest: Harvest,
    pages: PagesDependency,
) -> Response[Any]:
    """The entry's offers form: 303 to the offers, or the entry page saying what is wrong."""
    started = time.perf_counter()
    check_same_site(request)
    # Offers hold platform capacity: the same permission as the broker's own writes.
    pages.auth.require_write(
        request, to="request offers", come_back=f"/executables/{entry_id}#request"
    )
    sent = await request.form()
    form = OfferForm.from_form(
        {key: value for key, value in sent.items() if isinstance(value, str)}
    )
    window = pages.settings.broker.default_start_window
    hand_off, problems = form.hand_off(pages.now(), window)
    if hand_off is not None:
        base_url = pages.settings.server.public_url or str(request.base_url)
        try:
            answer = await sync_to_thread(catalogue.hand_off, entry_id, hand_off, base_url)
        except Invalid as error:
            problems = [
                Problem(form_field(p.field), p.reason, p.suggestions) for p in error.problems
            ] or [Problem("form", error.message)]
        else:
            offer_set = answer.offer_set.get("meta", {}).get("uuid", "")
            return Redirect(
                f"/offersets/{quote(str(offer_set))}?entry={quote(entry_id)}", status_code=303
            )
    detail = await sync_to_thread(catalogue.get, entry_id, form.version or None)
    errors: dict[str, str] = {}
    for problem in problems:
        errors.setdefault(problem.field, problem.reason)
    context = _entry_context(detail, harvest, pages, form, errors)
    return pages.html(
        request, started, "entry.html", status=400, here=f"/executables/{entry_id}", **context
    )


# ----------------------------------------------------------------------------- broker
@get("/offersets/{uuid:str}", sync_to_thread=True, name="page-offers")
def offers_page(
    request: Request[Any, Any, Any],
    uuid: FromPath[str],
    broker: Broker,
    catalogue: Catalogue,
    pages: PagesDependency,
    *,
    entry: FromQuery[str] = "",
) -> Response[str]:
    """An offer set: offers side by side with countdowns, a timeline, the NO reasons."""
    started = time.perf_counter()
    document = codec.to_builtins(broker.get_offerset(_uuid(uuid, "offer set")))
    view = offer_set_view(document)
    now = pages.now()
    back = None
    if entry:
        try:
            back = catalogue.get(entry)
        except NotFound:
            back = None  # a stale link to a withdrawn entry still shows the offers
    return pages.html(
        request,
        started,
        "offers.html",
        page="offers",
        nav="search",
        offer_set=view,
        entry=back,
        now=now,
        chart=broker_charts.offers_chart(view, now),
    )


@get("/sessions/{uuid:str}", sync_to_thread=True, name="page-session")
def session_page(
    request: Request[Any, Any, Any], uuid: FromPath[str], broker: Broker, pages: PagesDependency
) -> Response[str]:
    """A session; `X-Voexec-Partial: session` answers its changing part only."""
    started = time.perf_counter()
    return _session_answer(request, started, uuid, broker, pages)


SESSION_WRITES: Final = "accept, reject or cancel offers and sessions"


@post("/sessions/{uuid:str}", name="page-session-update")
async def update_session(
    request: Request[Any, Any, Any], uuid: FromPath[str], broker: Broker, pages: PagesDependency
) -> Response[Any]:
    """Accept, reject or cancel: a form (303 to `next`) or a page script (JSON both ways).

    The scripts send the broker's own update (`{"kind": "uri:enum-value-update", "path":
    "phase", "value": "ACCEPTED"}`) here rather than to `/broker`, so that the page's sign-in
    applies; they get the updated session as the broker returns it, or problem details (with
    `sign_in`, the sign-in page, when that is what is missing).
    """
    started = time.perf_counter()
    scripted = request.content_type[0] in codec.JSON_TYPES
    try:
        check_same_site(request)
        session_id = _uuid(uuid, "session")
        if scripted:
            come_back = f"/sessions/{session_id}"
            pages.auth.require_write(request, to=SESSION_WRITES, come_back=come_back)
            update = codec.decode_update(await request.body(), codec.Media.JSON)
        else:
            sent = await request.form()
            come_back = local_path(str(sent.get("next", "")), f"/sessions/{session_id}")
            pages.auth.require_write(request, to=SESSION_WRITES, come_back=come_back)
            update = EnumValueUpdate(path="phase", value=str(sent.get("phase", "")))
        session = await sync_to_thread(broker.update_session, session_id, update)
    except DomainError as error:
        if scripted:
            return _script_problem(request, error)
        if not isinstance(error, Conflict | Invalid):
            raise
        return await sync_to_thread(
            _session_answer, request, started, uuid, broker, pages, refused=error
        )
    if scripted:
        body = codec.encode(session, codec.Media.JSON)
        return Response(body, status_code=200, media_type=MediaType.JSON)
    return Redirect(come_back, status_code=303)


def _script_problem(request: Request[Any, Any, Any], error: DomainError) -> Response[bytes]:
    """A refused script update as problem details, naming the sign-in page when it is needed."""
    status, title = status_of(error)
    extra = {"sign_in": error.sign_in_url} if isinstance(error, SignInNeeded) else {}
    detail = error.message[:1].upper() + error.message[1:].rstrip(".") + "."
    return problem_details(status, title, detail, request.url.path, **extra)


def _session_answer(
    request: Request[Any, Any, Any],
    started: float,
    uuid: str,
    broker: BrokerService,
    pages: Pages,
    *,
    refused: DomainError | None = None,
) -> Response[str]:
    """The session page (or its changing part), saying why an update was `refused` if one was."""
    view = session_view(codec.to_builtins(broker.get_session(_uuid(uuid, "session"))))
    partial = refused is None and _partial(request, "session")
    now = pages.now()
    return pages.html(
        request,
        started,
        "session/body.html" if partial else "session/page.html",
        status=status_of(refused)[0] if refused else 200,
        here=f"/sessions/{view.uuid}",
        partial=partial,
        page="session",
        nav="search",
        session=view,
        now=now,
        chart=broker_charts.session_chart(view, now),
        error=refused.message if refused else None,
    )


def _bookings(broker: BrokerService, start: datetime, end: datetime) -> dict[str, list[Any]]:
    """Holds and bookings overlapping [start, end), per platform name."""
    grouped: dict[str, list[Any]] = {}
    for item in broker.bookings(start, end):
        grouped.setdefault(str(item.get("platform", "")), []).append(item)
    return grouped


@get("/platforms", sync_to_thread=True, name="page-platforms")
def platforms_page(
    request: Request[Any, Any, Any],
    broker: Broker,
    pages: PagesDependency,
    hours: FromQuery[int | None] = None,
) -> Response[str]:
    """Each platform's capacity, and a Gantt chart and a table of its holds and bookings."""
    started = time.perf_counter()
    now = pages.now()
    horizon = timedelta(hours=broker_charts.WINDOWS[-1])
    bookings = _bookings(broker, now - broker_charts.LOOK_BACK, now + horizon)
    platforms = [
        broker_charts.platform_view(platform, bookings.get(platform.name, []))
        for platform in pages.settings.broker.platforms
    ]
    window = broker_charts.fit_window(platforms, now, hours)
    end = now + timedelta(hours=window)
    listed = sorted(
        (
            (platform.name, booking)
            for platform in platforms
            for booking in platform.bookings
            if booking.start < end
        ),
        key=lambda item: (item[1].start, item[0]),
    )
    return pages.html(
        request,
        started,
        "platforms.html",
        page="platforms",
        nav="platforms",
        platforms=platforms,
        bookings=listed,
        chart=broker_charts.platforms_chart(platforms, now, window) if platforms else None,
        window=window,
        windows=broker_charts.WINDOWS,
        now=now,
    )


# ----------------------------------------------------------------------------- harvest
@get("/harvest", sync_to_thread=True, name="page-harvest")
def harvest_page(
    request: Request[Any, Any, Any],
    harvest: Harvest,
    pages: PagesDependency,
    run: FromQuery[str | None] = None,
) -> Response[str]:
    """Harvest sources with their last run, recent runs, and one run's report per project."""
    started = time.perf_counter()
    sources = [(source, harvest.store.runs(source.name, 1)) for source in harvest.sources()]
    runs = harvest.store.runs(None, 20)
    chosen = run or (runs[0].run_id if runs else None)
    report = harvest.store.report(chosen) if chosen else None
    projects = report.project_reports if report else []
    with_problems = [p for p in projects if p.problems or p.warnings or p.status == "failed"]
    return pages.html(
        request,
        started,
        "harvest.html",
        page="harvest",
        nav="harvest",
        sources=[
            (
                source,
                "GitLab" if isinstance(source, GitLabSource) else "OAI-PMH",
                last[0] if last else None,
            )
            for source, last in sources
        ],
        runs=runs,
        report=report,
        with_problems=with_problems,
        others=[p for p in projects if p not in with_problems],
        run_tones=RUN_TONES,
    )


# ----------------------------------------------------------------------------- errors
def _error_page(pages: Pages) -> Callable[[Request[Any, Any, Any], Exception], Response[str]]:
    def handle(request: Request[Any, Any, Any], error: Exception) -> Response[str]:
        started = time.perf_counter()
        if isinstance(error, DomainError):
            status, detail = status_of(error)[0], error.message
        elif isinstance(error, HTTPException):
            status, detail = error.status_code, str(error.detail)
            if isinstance(error.extra, list):  # a parameter of the wrong type names itself
                keys = [str(item.get("key")) for item in error.extra if isinstance(item, dict)]
                detail = f"{detail}: {', '.join(keys)}" if keys else detail
        else:
            log.exception("unexpected error on %s", request.url.path, exc_info=error)
            status, detail = 500, "An unexpected error occurred; it has been logged."
        title = ERROR_TITLES.get(status, "This page cannot be shown")
        sign_in = error.sign_in_url if isinstance(error, SignInNeeded) else None
        return pages.html(
            request,
            started,
            "error.html",
            status=status,
            headers={"www-authenticate": BEARER_CHALLENGE} if status == 401 else None,
            page="error",
            nav="",
            status_code=status,
            title=title,
            detail=detail[:1].upper() + detail[1:],
            problems=error.problems if isinstance(error, Invalid) else [],
            sign_in_url=sign_in,
        )

    return handle


def page_router(pages: Pages) -> Router:
    """The page routes; they need the dependencies `catalogue`, `broker` and `harvest`."""
    handler = _error_page(pages)
    return Router(
        path="/",
        route_handlers=[
            search_page,
            entry_page,
            request_offers,
            offers_page,
            session_page,
            update_session,
            platforms_page,
            harvest_page,
            *sign_in_handlers(pages.auth, pages.html),
        ],
        dependencies={"pages": Provide(lambda: pages, use_cache=True, sync_to_thread=False)},
        exception_handlers={DomainError: handler, HTTPException: handler, Exception: handler},
        include_in_schema=False,
    )
