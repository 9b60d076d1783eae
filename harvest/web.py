"""HTTP routes of harvesting: a Litestar `Router` mounted at `/harvest`.

- `POST /harvest/webhooks/gitlab/{source}`: GitLab's push and tag push events. The secret in
  `X-Gitlab-Token` is compared in constant time with the value of the environment variable the
  source's `webhook_secret_env` names (missing: 401; wrong, or webhooks not enabled: 403). The
  project is harvested at once on a worker thread; the answer is 202 with the run's id and a
  `Location` of its report. Other events are acknowledged (200) and ignored, so GitLab does
  not disable the hook. Calls are rate-limited per source and client address
  (`auth.limits.webhooks`: 429 with `Retry-After`, counted before the secret is compared, so
  guessing it is slow too).
- `GET /harvest/reports?source=&limit=`: recent runs, newest first;
- `GET /harvest/reports/{run_id}?project=&problems_only=`: one run, per project;
- `GET /harvest/sources`: the configured sources (never a token or a secret).

`BackgroundHarvests` (the worker) lives here because only webhooks need it. Handlers get the
pipeline as the dependency `harvest` and the worker as `harvest_background`; errors are
`core.errors` classes that `voexec/problems.py` turns into problem details. Imports Litestar;
must not import python-gitlab or SQLAlchemy.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Annotated, Any, Final, Literal

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, HeaderParameter, QueryParameter, RawBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from core.auth import Security
from core.errors import Forbidden, Invalid, Problem, Unauthorized
from core.settings import GitLabSource
from harvest.model import HarvestReport, RunSummary
from harvest.pipeline import HarvestPipeline

log = logging.getLogger(__name__)

TOKEN_HEADER: Final = "X-Gitlab-Token"  # noqa: S105 - a header name, not a secret
EVENT_HEADER: Final = "X-Gitlab-Event"
HARVESTED_EVENTS: Final = {"push": "Push Hook", "tag_push": "Tag Push Hook"}
MAX_REPORTS: Final = 100

Pipeline = NamedDependency[HarvestPipeline]
Environ = NamedDependency[Mapping[str, str]]


class BackgroundHarvests:
    """Runs single-project harvests (webhooks) one at a time on a worker thread.

    `submit` records the run at once and returns it, so the caller can answer with its id;
    `wait` lets tests (and shutdown) wait for the queue to drain.
    """

    def __init__(self, pipeline: HarvestPipeline) -> None:
        self.pipeline = pipeline
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harvest")
        self._pending: set[Future[HarvestReport]] = set()
        self._guard = threading.Lock()

    def submit(self, source_name: str, project_id: int) -> RunSummary:
        """Queue a harvest of one project; returns the recorded (running) run."""
        run = self.pipeline.begin(source_name, "webhook")
        future = self._executor.submit(self._harvest, run, project_id)
        with self._guard:
            self._pending.add(future)
        future.add_done_callback(self._done)
        return run

    def _harvest(self, run: RunSummary, project_id: int) -> HarvestReport:
        try:
            return self.pipeline.harvest_project(run, project_id)
        except Exception:
            log.exception("background harvest %s of project %s failed", run.run_id, project_id)
            raise

    def _done(self, future: Future[HarvestReport]) -> None:
        with self._guard:
            self._pending.discard(future)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every queued harvest has finished (or `timeout` seconds passed)."""
        with self._guard:
            pending = list(self._pending)
        for future in pending:
            future.exception(timeout=timeout)

    def close(self) -> None:
        """Finish queued harvests and stop the worker."""
        self._executor.shutdown(wait=True)


# ------------------------------------------------------------------------------ wire shapes
class _WebhookProject(msgspec.Struct):
    id: int


class _WebhookEvent(msgspec.Struct):
    """The fields of GitLab's push and tag push payloads we use."""

    object_kind: str = ""
    project_id: int | None = None
    project: _WebhookProject | None = None
    ref: str = ""


class WebhookAnswer(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a webhook call did."""

    status: Literal["accepted", "ignored"]
    reason: str | None = None
    run_id: str | None = None
    report: str | None = None
    """Path of the run's report (poll it until `status` is no longer `running`)."""


class SourceView(msgspec.Struct, kw_only=True):
    """A configured source as operators see it."""

    name: str
    type: str
    url: str
    groups: list[str] = []
    topics: list[str] = []
    file_path: str | None = None
    refs: list[str] = []
    webhook: str | None = None
    """Path of its webhook endpoint when a secret is configured for it, else null."""
    last_run: RunSummary | None = None


# ------------------------------------------------------------------------------ secrets
def _check_secret(source: GitLabSource, given: str | None, environ: Mapping[str, str]) -> None:
    expected = environ.get(source.webhook_secret_env) if source.webhook_secret_env else None
    if not expected:  # no variable named, or it is empty: webhooks are off for this source
        raise Forbidden(f"webhooks are not enabled for source {source.name!r}")
    if given is None:
        raise Unauthorized(f"the {TOKEN_HEADER} header is missing")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden(f"the {TOKEN_HEADER} header does not match source {source.name!r}")


# ------------------------------------------------------------------------------ handlers
@post("/webhooks/gitlab/{source:str}", sync_to_thread=True, status_code=HTTP_202_ACCEPTED)
def gitlab_webhook(
    *,
    request: Request[Any, Any, Any],
    security: NamedDependency[Security],
    source: FromPath[str],
    harvest: Pipeline,
    harvest_background: NamedDependency[BackgroundHarvests],
    harvest_environ: Environ,
    body: RawBody,
    token: Annotated[
        str | None,
        HeaderParameter(name=TOKEN_HEADER, description="the secret token set on the hook"),
    ] = None,
    event_header: Annotated[
        str | None, HeaderParameter(name=EVENT_HEADER, description="e.g. `Tag Push Hook`")
    ] = None,
) -> Response[WebhookAnswer]:
    """Harvest the project a GitLab push or tag push event names, at once."""
    address = request.client.host if request.client else "unknown"
    security.limiter.take("webhooks", f"{source}:address:{address}")
    configured = harvest.source(source)
    _check_secret(configured, token, harvest_environ)
    try:
        event = msgspec.json.decode(body, type=_WebhookEvent)
    except msgspec.DecodeError as error:
        raise Invalid(
            "the webhook body is not a GitLab event", [Problem("(body)", str(error))]
        ) from error
    header = event_header or ""
    if event.object_kind not in HARVESTED_EVENTS and header not in HARVESTED_EVENTS.values():
        kind = event.object_kind or header or "unknown"
        answer = WebhookAnswer(
            status="ignored", reason=f"{kind} events do not change published files"
        )
        return Response(answer, status_code=HTTP_200_OK)
    project_id = (
        event.project_id
        if event.project_id is not None
        else (event.project.id if event.project else None)
    )
    if project_id is None:
        raise Invalid("the event names no project", [Problem("project_id", "is required")])
    run = harvest_background.submit(configured.name, project_id)
    location = f"/harvest/reports/{run.run_id}"
    answer = WebhookAnswer(status="accepted", run_id=run.run_id, report=location)
    return Response(answer, status_code=HTTP_202_ACCEPTED, headers={"Location": location})


@get("/reports", sync_to_thread=True)
def list_reports(
    harvest: Pipeline,
    source: Annotated[str | None, QueryParameter(description="only runs of this source")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_REPORTS)] = 20,
) -> list[RunSummary]:
    """Recent harvest runs, newest first, without their per-project detail."""
    if source is not None:
        harvest.source_named(source)  # an unknown source is a 404, not an empty list
    return harvest.store.runs(source, limit)


@get("/reports/{run_id:str}", sync_to_thread=True)
def show_report(
    harvest: Pipeline,
    run_id: FromPath[str],
    project: Annotated[
        str | None, QueryParameter(description="only this project (full path)")
    ] = None,
    problems_only: Annotated[
        bool, QueryParameter(description="only projects with problems")
    ] = False,
) -> HarvestReport:
    """One run per project: counts, entry outcomes, and each problem with its field."""
    return harvest.store.report(run_id, project=project, problems_only=problems_only)


@get("/sources", sync_to_thread=True)
def list_sources(harvest: Pipeline, harvest_environ: Environ) -> list[SourceView]:
    """The configured harvest sources and their last run."""
    views: list[SourceView] = []
    for source in harvest.sources():
        last = harvest.store.runs(source.name, 1)
        if isinstance(source, GitLabSource):
            secret = source.webhook_secret_env and harvest_environ.get(source.webhook_secret_env)
            views.append(
                SourceView(
                    name=source.name,
                    type="gitlab",
                    url=source.url,
                    groups=list(source.groups),
                    topics=list(source.topics),
                    file_path=source.file_path,
                    refs=list(source.refs),
                    webhook=f"/harvest/webhooks/gitlab/{source.name}" if secret else None,
                    last_run=last[0] if last else None,
                )
            )
        else:
            views.append(
                SourceView(
                    name=source.name,
                    type="oai-pmh",
                    url=source.url,
                    last_run=last[0] if last else None,
                )
            )
    return views


def router(environ: Mapping[str, str] | None = None) -> Router:
    """The `/harvest` routes; they need the dependencies `harvest` and `harvest_background`.

    Args:
        environ: Where webhook secrets are read (default: the process environment).
    """
    environment = os.environ if environ is None else environ
    return Router(
        path="/harvest",
        route_handlers=[gitlab_webhook, list_reports, show_report, list_sources],
        dependencies={
            "harvest_environ": Provide(lambda: environment, use_cache=True, sync_to_thread=False)
        },
        tags=["harvest"],
    )
