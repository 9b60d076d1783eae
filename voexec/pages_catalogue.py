"""The catalogue's web pages: the search, an entry, and the entry's "Request offers" form.

| route | page |
|---|---|
| `GET /` | search: text with suggestions, facets, chips, result cards, sort, pages |
| `GET /executables/{id}?version=` | an entry, and its "Request offers" form |
| `POST /executables/{id}/offers` | that form: 303 to the offers page, or the entry with problems |

The form hands the entry to the broker through the catalogue's service (`hand_off`), so these
pages never call the broker themselves; the offers page it leads to is `voexec.pages_broker`.
Imports the catalogue and harvest services, `voexec.pages`, `voexec.page_auth` and the pure
`voexec.ui` helpers; not the other page modules.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Final
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.concurrency import sync_to_thread
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from catalogue.model import EntryDetail, Provenance
from core.errors import Invalid, Problem
from harvest.model import ReportProblem
from harvest.pipeline import HarvestPipeline
from voexec.page_auth import check_same_site
from voexec.pages import Catalogue, Harvest, Pages, PagesDependency, wants_partial
from voexec.ui import search_state
from voexec.ui.offer_form import UNIT_TITLES, OfferForm, form_field
from voexec.ui.search_state import SearchState

__all__ = ["entry_page", "request_offers", "search_page"]

OPEN_HEADER: Final = "x-voexec-open"
"""Tree branches the reader opened (`subject:photometry,function:imaging`), sent by search.js."""
KIND_LABELS: Final = {
    "docker-container": "Docker container",
    "singularity-container": "Singularity container",
    "jupyter-notebook": "Jupyter notebook",
    "python-program": "Python program",
}


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
    partial = wants_partial(request, "results")
    return pages.html(
        request,
        started,
        "search/results.html" if partial else "search/page.html",
        partial=partial,
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
        vocabularies=catalogue.vocabularies,  # the footer says which copy of each is in use
    )


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
    """What `entry.html` shows: the entry, its harvest problems, and the form as filled."""
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
    identity = pages.auth.require_write(
        request, to="request offers", come_back=f"/executables/{entry_id}#request"
    )
    pages.security.limiter.take("offers", identity.key)
    sent = await request.form()
    form = OfferForm.from_form(
        {key: value for key, value in sent.items() if isinstance(value, str)}
    )
    window = pages.settings.broker.default_start_window
    hand_off, problems = form.hand_off(pages.now(), window)
    if hand_off is not None:
        base_url = pages.settings.server.public_url or str(request.base_url)
        try:
            answer = await sync_to_thread(
                functools.partial(
                    catalogue.hand_off, entry_id, hand_off, base_url, requester=identity.key
                )
            )
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
