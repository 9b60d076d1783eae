"""The GitLab adapter: the only module that imports python-gitlab (and the `requests` under it).

`GitLabClient` answers the few questions a harvest asks of a GitLab instance (REST API v4):

- which projects belong to some groups (with their subgroups) and/or carry some topics;
- a project's metadata (`last_activity_at`, default branch, namespace, topics);
- the commit a branch points at, and every tag with its commit;
- a file's raw bytes at a commit (bounded in size).

Listings stream page by page (`iterator=True`), following the `Link: rel="next"` header; the
instance-wide topic listing uses keyset pagination (`order_by=id`), which GitLab requires past
50,000 results. Every call is retried on 429 (waiting as long as `Retry-After` says) and on
5xx or network failures (exponential backoff), up to `max_retries` times; python-gitlab's own
retry loop is switched off because it sleeps with `time.sleep`, which tests must not wait for.
Library exceptions are translated into `harvest.model.SourceError`s at this boundary. One
client may serve several threads: the wait a 429 asks for holds every thread's next request.

Requests go only to the configured instance: pagination links are rewritten to its base URL
(`keep_base_url`) and a redirect to another host is refused.

Must not import the catalogue, SQLAlchemy or Litestar.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, Final, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import gitlab
import gitlab.exceptions
import msgspec
import requests

from core.settings import GitLabSource
from harvest.model import (
    MAX_FILE_BYTES,
    ProjectInfo,
    RefInfo,
    RefKind,
    SourceDenied,
    SourceError,
    SourceNotFound,
    SourceUnavailable,
)
from harvest.sources.port import exponential, with_retries

T = TypeVar("T")
Sleep = Callable[[float], None]

TRANSIENT_STATUSES: Final = frozenset({500, 502, 503, 504})
TOO_MANY_REQUESTS: Final = 429

# python-gitlab would otherwise retry 429s itself, sleeping with time.sleep (not injectable).
_NO_LIBRARY_RETRY: Final[Mapping[str, Any]] = {
    "obey_rate_limit": False,
    "retry_transient_errors": False,
}
_END: Final = object()
# Refused or reset connections, timeouts, and bodies cut short: all worth another try.
_NETWORK_FAILURES: Final = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class _Namespace(msgspec.Struct):
    full_path: str = ""


class _ProjectWire(msgspec.Struct):
    """The fields of GitLab's project JSON we use (the simple and the full view have them)."""

    id: int
    path_with_namespace: str
    web_url: str
    last_activity_at: datetime
    default_branch: str | None = None
    topics: list[str] | None = None
    tag_list: list[str] | None = None
    """The name of `topics` before GitLab 14.0."""
    namespace: _Namespace | None = None


class _Commit(msgspec.Struct):
    id: str


class _RefWire(msgspec.Struct):
    name: str
    commit: _Commit


def project_from_json(data: Mapping[str, Any]) -> ProjectInfo:
    """Build a `ProjectInfo` from GitLab's project JSON (list or single-project view).

    Raises:
        SourceUnavailable: the JSON lacks a field we need or has the wrong type.
    """
    try:
        wire = msgspec.convert(dict(data), _ProjectWire, strict=False)
    except msgspec.ValidationError as error:
        raise SourceUnavailable(f"GitLab sent a project we cannot read: {error}") from error
    return ProjectInfo(
        id=wire.id,
        path=wire.path_with_namespace,
        web_url=wire.web_url,
        default_branch=wire.default_branch or None,
        last_activity_at=wire.last_activity_at.astimezone(UTC),
        topics=tuple(wire.topics if wire.topics is not None else wire.tag_list or ()),
        namespace=wire.namespace.full_path if wire.namespace else "",
    )


def _ref_from_json(data: Mapping[str, Any], kind: RefKind) -> RefInfo:
    try:
        wire = msgspec.convert(dict(data), _RefWire, strict=False)
    except msgspec.ValidationError as error:
        what = "tag" if kind == "tag" else "branch"
        raise SourceUnavailable(f"GitLab sent a {what} we cannot read: {error}") from error
    return RefInfo(name=wire.name, kind=kind, commit=wire.commit.id)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class GitLabClient:
    """Reads projects, refs and files from one GitLab instance, with retries.

    Args:
        url: Base URL of the instance (`https://gitlab.example.org`).
        token: Personal, group or project access token (`read_api` and `read_repository`
            scopes), or None for public projects only.
        max_retries: Retries per request after a 429, a 5xx or a network failure.
        sleep: Waits between retries; tests pass a recorder instead of `time.sleep`.
        per_page: Page size of listings (GitLab allows at most 100).
        timeout: Seconds before one HTTP request is abandoned.
        backoff: First wait after a failure; it doubles with every retry.
        max_wait: Longest single wait; a `Retry-After` beyond it is not honoured and the
            request fails instead (a harvest should not sleep for an hour).
        allowed_hosts: Hosts a redirect may lead to besides the instance's own.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        max_retries: int = 5,
        sleep: Sleep = time.sleep,
        per_page: int = 100,
        timeout: float = 30.0,
        backoff: float = 0.5,
        max_wait: float = 300.0,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        self.url = url.rstrip("/")
        self._max_retries = max_retries
        self._sleep = sleep
        self._backoff = backoff
        self._max_wait = max_wait
        self._allowed_hosts = {urlsplit(self.url).netloc, *allowed_hosts}
        # The last 429's Retry-After, per thread: python-gitlab's exceptions drop the headers.
        self._seen = threading.local()
        # Several threads may read through one client (the `harvest.readers` setting): a 429 or a
        # failure seen by one pauses them all, so that together they honour Retry-After.
        self._pause_lock = threading.Lock()
        self._paused_until = 0.0
        self._session = requests.Session()
        self._session.hooks["response"].append(self._on_response)
        # The environment's proxy and CA settings are read once, here, instead of on every
        # request (requests walks the whole environment each time: a sixth of a read's CPU).
        self._session.proxies.update(requests.utils.get_environ_proxies(self.url))
        self._session.trust_env = False
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self._gl = gitlab.Gitlab(
            self.url,
            private_token=token,
            timeout=timeout,
            per_page=per_page,
            keep_base_url=True,
            session=self._session,
            ssl_verify=ca_bundle or True,
        )

    @classmethod
    def for_source(
        cls,
        source: GitLabSource,
        environ: Mapping[str, str],
        *,
        max_retries: int,
        sleep: Sleep = time.sleep,
        allowed_hosts: Iterable[str] = (),
    ) -> GitLabClient:
        """A client for a configured source, its token read from the variable it names."""
        token = environ.get(source.token_env) if source.token_env else None
        return cls(
            source.url,
            token or None,
            max_retries=max_retries,
            sleep=sleep,
            allowed_hosts=allowed_hosts,
        )

    def close(self) -> None:
        """Release the HTTP connections."""
        self._session.close()

    # ---------------------------------------------------------------------- questions
    def projects(self, groups: Sequence[str], topics: Sequence[str]) -> Iterator[ProjectInfo]:
        """Every project in `groups` (subgroups included) or carrying one of `topics`, once.

        Projects shared into a group from elsewhere are not included: they belong to the
        groups that own them.
        """
        listings = [
            self._iterate(
                f"listing the projects of group {group}",
                partial(
                    self._gl.groups.get(group, lazy=True).projects.list,
                    iterator=True,
                    include_subgroups=True,
                    with_shared=False,
                    order_by="id",
                    sort="asc",
                    simple=True,
                    **_NO_LIBRARY_RETRY,
                ),
            )
            for group in groups
        ] + [
            self._iterate(
                f"listing the projects with topic {topic}",
                partial(
                    self._gl.projects.list,
                    iterator=True,
                    topic=topic,
                    pagination="keyset",
                    order_by="id",
                    sort="asc",
                    simple=True,
                    **_NO_LIBRARY_RETRY,
                ),
            )
            for topic in topics
        ]
        # A project in several groups or with several topics is yielded once, where first met.
        seen: set[int] = set()
        for listing in listings:
            for data in listing:
                project = project_from_json(data)
                if project.id not in seen:
                    seen.add(project.id)
                    yield project

    def project(self, project: int | str) -> ProjectInfo:
        """One project by id or full path.

        Raises:
            SourceNotFound: no such project (or it is hidden from our token).
        """
        data = self._call(
            f"reading project {project}",
            lambda: self._gl.projects.get(project, **_NO_LIBRARY_RETRY).attributes,
        )
        return project_from_json(data)

    def branch(self, project_id: int, branch: str) -> RefInfo:
        """The commit a branch points at, as the `default` ref."""
        path = f"/projects/{project_id}/repository/branches/{quote(branch, safe='')}"
        data = self._call(
            f"reading branch {branch} of project {project_id}",
            lambda: self._gl.http_get(path, **_NO_LIBRARY_RETRY),
        )
        if not isinstance(data, dict):
            raise SourceUnavailable(f"GitLab sent branch {branch} of {project_id} as no object")
        return _ref_from_json(data, "default")

    def tags(self, project_id: int) -> list[RefInfo]:
        """Every tag of a project with the commit it points at."""
        path = f"/projects/{project_id}/repository/tags"
        listing = self._iterate(
            f"listing the tags of project {project_id}",
            lambda: self._gl.http_list(path, iterator=True, **_NO_LIBRARY_RETRY),
        )
        return [_ref_from_json(data, "tag") for data in listing]

    def read_file(
        self, project_id: int, path: str, commit: str, max_bytes: int = MAX_FILE_BYTES
    ) -> bytes | None:
        """A file's bytes at a commit, or None when there is no such file.

        At most `max_bytes + 1` bytes are read, so a caller can tell a file that is too large.
        """
        url = f"/projects/{project_id}/repository/files/{quote(path, safe='')}/raw"

        def read() -> bytes:
            response = self._gl.http_get(
                url, query_data={"ref": commit}, streamed=True, raw=True, **_NO_LIBRARY_RETRY
            )
            if not isinstance(response, requests.Response):  # raw=True answers the response
                raise SourceUnavailable(f"reading {path}: GitLab's client gave no response")
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_content(chunk_size=65536):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > max_bytes:
                        break
            finally:
                response.close()
            return b"".join(chunks)[: max_bytes + 1]

        try:
            return self._call(f"reading {path} at {commit[:12]} of project {project_id}", read)
        except SourceNotFound:
            return None

    # ---------------------------------------------------------------------- plumbing
    # The reads of a project go through python-gitlab's HTTP layer (its session, token, timeout
    # and errors) as plain JSON: building its REST objects, each with some forty managers, cost
    # more CPU than the requests themselves.

    def _on_response(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        if response.status_code == TOO_MANY_REQUESTS:
            self._seen.retry_after = response.headers.get("Retry-After")
        if response.is_redirect:
            target = urljoin(response.url, response.headers.get("Location", ""))
            if urlsplit(target).netloc not in self._allowed_hosts:
                raise SourceDenied(
                    f"GitLab redirected {response.url} to {target}, a host harvest may not contact"
                )

    def _iterate(self, what: str, start: Callable[[], Iterable[Any]]) -> Iterator[dict[str, Any]]:
        """Stream a listing, retrying the first page and each following page on their own.

        A page that fails leaves python-gitlab's list where it was, so asking for the next
        item again re-requests exactly that page.
        """
        pages: Iterator[Any] = iter(self._call(what, start))
        while True:
            item: Any = self._call(what, lambda: next(pages, _END))
            if item is _END:
                return
            yield dict(item) if isinstance(item, dict) else dict(item.attributes)

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        def attempt() -> T:
            self._wait_for_pause()
            self._seen.retry_after = None
            return operation()

        def wait(error: Exception, attempt: int) -> float | None:
            if isinstance(error, gitlab.exceptions.GitlabParsingError):
                return None
            status = (
                error.response_code if isinstance(error, gitlab.exceptions.GitlabError) else None
            )
            return self._delay(status, attempt)

        def give_up(error: Exception, attempts: int) -> SourceError:
            if isinstance(error, gitlab.exceptions.GitlabParsingError):
                return SourceUnavailable(f"{what}: GitLab sent an answer that is not JSON")
            if isinstance(error, gitlab.exceptions.GitlabError):
                return self._translate(what, error.response_code, str(error), attempts)
            return SourceUnavailable(
                f"{what}: GitLab did not answer after {attempts} attempts ({error})"
            )

        def pause(delay: float) -> None:
            self._pause_all(delay)
            self._sleep(delay)

        return with_retries(
            attempt,
            retries=self._max_retries,
            retry_on=(gitlab.exceptions.GitlabError, *_NETWORK_FAILURES),
            wait=wait,
            give_up=give_up,
            sleep=pause,
        )

    def _pause_all(self, delay: float) -> None:
        """Hold every thread's next request for `delay` seconds: GitLab limits per user."""
        until = time.monotonic() + delay
        with self._pause_lock:
            self._paused_until = max(self._paused_until, until)
        # This thread waits its own delay right away; it owes no second wait for it.
        self._seen.waited_until = max(getattr(self._seen, "waited_until", 0.0), until)

    def _wait_for_pause(self) -> None:
        """Wait out a pause another thread's 429 (or failure) asked for, if any."""
        with self._pause_lock:
            until = self._paused_until
        if until <= getattr(self._seen, "waited_until", 0.0):
            return
        remaining = until - time.monotonic()
        if remaining > 0:
            self._seen.waited_until = until
            self._sleep(remaining)

    def _delay(self, status: int | None, attempt: int) -> float | None:
        """How long to wait before retrying, or None when the failure is final."""
        pause = exponential(attempt, first=self._backoff, longest=self._max_wait)
        if status == TOO_MANY_REQUESTS:
            asked = retry_after_seconds(getattr(self._seen, "retry_after", None), datetime.now(UTC))
            if asked is None:
                return pause
            return asked if asked <= self._max_wait else None
        if status is None or status in TRANSIENT_STATUSES:
            return pause
        return None

    def _translate(self, what: str, status: int | None, detail: str, attempts: int) -> SourceError:
        if status == 404:
            return SourceNotFound(f"{what}: not found", status)
        if status in {401, 403}:
            return SourceDenied(f"{what}: GitLab refused our token ({detail})", status)
        if status == TOO_MANY_REQUESTS:
            return SourceUnavailable(
                f"{what}: GitLab kept rate-limiting us (429) after {attempts} attempts", status
            )
        if status is not None and status >= 500:
            return SourceUnavailable(
                f"{what}: GitLab kept answering {status} after {attempts} attempts", status
            )
        return SourceUnavailable(f"{what}: GitLab answered {detail}", status)
