"""The broker's web pages: offers, a session (and the buttons that change it), the platforms.

| route | page |
|---|---|
| `GET /offersets/{uuid}?entry=` | offers side by side, a timeline, why platforms said NO |
| `GET /sessions/{uuid}` | a session (or an offer): phase, history, schedule, connectors |
| `POST /sessions/{uuid}` | accept, reject or cancel: a form (303 back) or a script (JSON) |
| `GET /platforms?hours=` | each platform's capacity and a Gantt chart of holds and bookings |

The pages read the broker's service in-process and show its wire documents through the pure
`voexec.ui.broker_views` and `voexec.ui.broker_charts`. Updates need the same permission as
the broker's own write routes (`voexec.page_auth`). The catalogue is read only to link an offer
set back to its entry. Imports the broker's service and codec, `voexec.pages`,
`voexec.page_auth`, `voexec.problems` and the pure `voexec.ui` helpers; not the other page
modules.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

from litestar import MediaType, Request, Response, get, post
from litestar.concurrency import sync_to_thread
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from broker.model import EnumValueUpdate, codec
from broker.service import BrokerService
from core.errors import Conflict, DomainError, Invalid, NotFound
from voexec.page_auth import SignInNeeded, check_same_site, local_path
from voexec.pages import Broker, Catalogue, Pages, PagesDependency, wants_partial
from voexec.problems import problem as problem_details
from voexec.problems import status_of
from voexec.ui import broker_charts
from voexec.ui.broker_views import offer_set_view, session_view

__all__ = ["offers_page", "platforms_page", "session_page", "update_session"]

SESSION_WRITES: Final = "accept, reject or cancel offers and sessions"


def _uuid(text: str, what: str) -> UUID:
    """The UUID in a page's address; a 404 naming `what` when it is not one."""
    try:
        return UUID(text)
    except ValueError:
        raise NotFound(f"there is no {what} {text!r}: that is not a UUID") from None


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
    offerset_id = _uuid(uuid, "offer set")
    document = codec.to_builtins(broker.get_offerset(offerset_id))
    pages.auth.require_reader(
        request, broker.owner(offerset=offerset_id), come_back=f"/offersets/{offerset_id}"
    )
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
    session_id = _uuid(uuid, "session")
    broker.get_session(session_id)  # 404 before 401 or 403
    pages.auth.require_reader(
        request, broker.owner(session=session_id), come_back=f"/sessions/{session_id}"
    )
    return _session_answer(request, started, uuid, broker, pages)


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
            identity = pages.auth.require_write(request, to=SESSION_WRITES, come_back=come_back)
            update = codec.decode_update(await request.body(), codec.Media.JSON)
        else:
            sent = await request.form()
            come_back = local_path(str(sent.get("next", "")), f"/sessions/{session_id}")
            identity = pages.auth.require_write(request, to=SESSION_WRITES, come_back=come_back)
            update = EnumValueUpdate(path="phase", value=str(sent.get("phase", "")))
        await sync_to_thread(broker.get_session, session_id)  # 404 before 403
        owner = await sync_to_thread(functools.partial(broker.owner, session=session_id))
        pages.auth.require_owner(identity, owner, to=SESSION_WRITES)
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
    partial = refused is None and wants_partial(request, "session")
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
