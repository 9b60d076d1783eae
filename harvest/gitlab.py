"""The GitLab adapter: the only module that imports python-gitlab, `requests` and `urllib3`.

`GitLabClient` answers the few questions a harvest asks of a GitLab instance (REST API v4,
and the GraphQL API for files):

- which projects belong to some groups (with their subgroups) and/or carry some topics;
- a project's metadata (`last_activity_at`, default branch, namespace, topics);
- the commit a branch points at, and every tag with its commit;
- a file's raw bytes at a commit (bounded in size), one by one (REST) or many at once
  (`read_files`: GraphQL, `harvest.gitlab_graphql`).

Listings and single projects go through python-gitlab (as plain JSON); the reads made for every
changed project are lighter: its branch and tags through `harvest.http_get.KeepAlive` (HTTP/1.1
over kept-alive sockets, about 0.07 ms of CPU a request against 0.6-0.8 through python-gitlab
and `requests`), REST file reads and GraphQL requests through one keep-alive `urllib3` pool
(about 0.25 ms). With a proxy configured in the environment, all of them go through `urllib3`
and the proxy. `read_files`
asks GitLab's GraphQL API (`POST /api/graphql`) for the files of many projects and commits in a
few requests: first their sizes, then the text of those within the size limit; a file above it
is read by REST, which stops one byte past the limit. When an instance refuses GraphQL (401,
403, 404, a redirect, an answer that is not GraphQL, or errors such as a query over its
complexity limit), the client says so in the log and reads by REST from then on.

Listings stream page by page (`iterator=True`), following the `Link: rel="next"` header; the
instance-wide topic listing uses keyset pagination (`order_by=id`), which GitLab requires past
50,000 results. Every call is retried on 429 (waiting as long as `Retry-After` says) and on
5xx or network failures (exponential backoff), up to `max_retries` times; python-gitlab's own
retry loop is switched off because it sleeps with `time.sleep`, which tests must not wait for.
Library exceptions are translated into `harvest.model.SourceError`s at this boundary. One
client may serve several threads: the wait a 429 asks for holds every thread's next request.

Requests go only to the configured instance: pagination links are rewritten to its base URL
(`keep_base_url`), and no redirect is followed to another host (the REST reads follow one only
within the allowed hosts; a GraphQL request follows none).

Must not import the catalogue, SQLAlchemy or Litestar.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
import weakref
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
import urllib3
import urllib3.exceptions

from core.settings import GitLabSource
from harvest import gitlab_graphql
from harvest.gitlab_graphql import GraphQLRefused
from harvest.http_get import KeepAlive, NoAnswer, TooLarge, Unsendable
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

log = logging.getLogger(__name__)

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
    urllib3.exceptions.HTTPError,
    NoAnswer,
)
_JSON_LIMIT: Final = 64 * 1_048_576
"""Largest JSON answer read (a page of 100 tags, a branch): far above any real one."""
_REDIRECTS: Final = 3
"""Redirects a REST read follows (within the allowed hosts)."""
_GRAPHQL_REFUSALS: Final = frozenset({301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 406, 422})


class _HttpFailure(Exception):
    """An error status from GitLab on the `urllib3` path."""

    def __init__(self, status: int, detail: str, retry_after: str | None = None) -> None:
        super().__init__(f"{status} {detail}".strip())
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


def _detail(body: bytes) -> str:
    """GitLab's error message from an error answer's body (its `message` or `error`)."""
    detail = body[:2048].decode("utf-8", "replace")
    try:
        message = msgspec.json.decode(detail)
    except msgspec.DecodeError:
        return detail
    if isinstance(message, dict):
        return str(message.get("message") or message.get("error") or detail)
    return detail


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
        graphql: Read files through the GraphQL API (`read_files`); False: REST only.
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
        graphql: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self._api = f"{self.url}/api/v4"
        self._graphql_url = f"{self.url}/api/graphql"
        self._graphql = graphql
        self._per_page = per_page
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
        proxies = requests.utils.get_environ_proxies(self.url)
        self._session.proxies.update(proxies)
        self._session.trust_env = False
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        # The reads of every changed project: one keep-alive pool, no library above it.
        self._headers = {"User-Agent": "voexec-harvest", "Accept": "application/json"}
        if token:
            self._headers["PRIVATE-TOKEN"] = token
        scheme = urlsplit(self.url).scheme
        pool_options: dict[str, Any] = {
            "maxsize": 16,
            "timeout": urllib3.Timeout(total=timeout),
            "retries": False,
        }
        if scheme == "https":
            pool_options["cert_reqs"] = "CERT_REQUIRED"
            pool_options["ca_certs"] = ca_bundle or requests.utils.DEFAULT_CA_BUNDLE_PATH
        proxy = proxies.get(scheme) or proxies.get("all")
        self._pool: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, **pool_options)
            if proxy
            else urllib3.PoolManager(**pool_options)
        )
        # Branches and tags (small JSON) through the lighter transport, unless through a proxy.
        self._keepalive: KeepAlive | None = None
        if not proxy:
            tls = None
            if scheme == "https":
                tls = ssl.create_default_context(
                    cafile=ca_bundle or requests.utils.DEFAULT_CA_BUNDLE_PATH
                )
            self._keepalive = KeepAlive(limit=_JSON_LIMIT, per_host=16, timeout=timeout, tls=tls)
            weakref.finalize(self, self._keepalive.close)
        # Idle sockets are closed with the client, even one nobody `close`s.
        weakref.finalize(self, self._pool.clear)
        weakref.finalize(self, self._session.close)
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
        self._pool.clear()
        if self._keepalive is not None:
            self._keepalive.close()

    # ---------------------------------------------------------------------- questions
    def projects(self, groups: Sequence[str], topics: Sequence[str]) -> Iterator[ProjectInfo]:
        """Every project in `groups` (subgroups included) or carrying one of `topics`, once.

        Projects shared into a group from elsewhere are not included: they belong to the
        groups that own them.
        """
        # Plain JSON pages (`http_list`): python-gitlab's REST objects deep-copy every project.
        listings = [
            self._iterate(
                f"listing the projects of group {group}",
                partial(
                    self._gl.http_list,
                    f"/groups/{quote(group, safe='')}/projects",
                    query_data={
                        "include_subgroups": True,
                        "with_shared": False,
                        "order_by": "id",
                        "sort": "asc",
                        "simple": True,
                        "per_page": self._per_page,
                    },
                    iterator=True,
                    **_NO_LIBRARY_RETRY,
                ),
            )
            for group in groups
        ] + [
            self._iterate(
                f"listing the projects with topic {topic}",
                partial(
                    self._gl.http_list,
                    "/projects",
                    query_data={
                        "topic": topic,
                        "pagination": "keyset",
                        "order_by": "id",
                        "sort": "asc",
                        "simple": True,
                        "per_page": self._per_page,
                    },
                    iterator=True,
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
        what = f"reading branch {branch} of project {project_id}"
        path = f"/projects/{project_id}/repository/branches/{quote(branch, safe='')}"
        data = self._json(what, self._call(what, partial(self._get, path))[0])
        if not isinstance(data, dict):
            raise SourceUnavailable(f"GitLab sent branch {branch} of {project_id} as no object")
        return _ref_from_json(data, "default")

    def tags(self, project_id: int) -> list[RefInfo]:
        """Every tag of a project with the commit it points at."""
        what = f"listing the tags of project {project_id}"
        url: str | None = f"/projects/{project_id}/repository/tags?per_page={self._per_page}"
        refs: list[RefInfo] = []
        while url:
            body, headers = self._call(what, partial(self._get, url))
            page = self._json(what, body)
            if not isinstance(page, list):
                raise SourceUnavailable(f"{what}: GitLab sent no list")
            refs += [_ref_from_json(data, "tag") for data in page]
            url = self._next_page(headers.get("link", ""))
        return refs

    def read_file(
        self, project_id: int, path: str, commit: str, max_bytes: int = MAX_FILE_BYTES
    ) -> bytes | None:
        """A file's bytes at a commit, or None when there is no such file.

        At most `max_bytes + 1` bytes are read, so a caller can tell a file that is too large.
        """
        url = (
            f"/projects/{project_id}/repository/files/{quote(path, safe='')}/raw"
            f"?ref={quote(commit, safe='')}"
        )
        what = f"reading {path} at {commit[:12]} of project {project_id}"
        try:
            return self._call(what, partial(self._get, url, limit=max_bytes + 1))[0]
        except SourceNotFound:
            return None

    def batch_reads(self) -> bool:
        """True while `read_files` reads many files a request (GraphQL not refused)."""
        return self._graphql

    def read_files(
        self, wanted: Sequence[tuple[ProjectInfo, str]], path: str, max_bytes: int = MAX_FILE_BYTES
    ) -> list[bytes | None]:
        """The file at `path` in each (project, commit), through GraphQL if GitLab allows.

        Each is its bytes (at most `max_bytes + 1`), or None when there is no such file; a few
        requests read them all. Once the instance refuses GraphQL, the files are read by REST,
        one request each.
        """
        if self._graphql and wanted:
            try:
                return gitlab_graphql.read_files(
                    self._graphql_post,
                    [(project.id, project.path, commit) for project, commit in wanted],
                    path,
                    max_bytes,
                    self.read_file,
                )
            except GraphQLRefused as refusal:
                log.warning("%s: reading files by REST from now on (%s)", self.url, refusal)
                self._graphql = False
        return [self.read_file(project.id, path, commit, max_bytes) for project, commit in wanted]

    # ---------------------------------------------------------------------- plumbing
    def _get(self, url: str, limit: int | None = None) -> tuple[bytes, Mapping[str, str]]:
        """GET an API path (or a full URL of the instance) on the pool; body and headers.

        Follows a redirect only to the instance or the allowed hosts. With `limit`, reads at
        most that many bytes of the body.
        """
        target = url if url.startswith(("http://", "https://")) else self._api + url
        if limit is None and self._keepalive is not None:
            return self._get_kept_alive(self._keepalive, target)
        for _hop in range(_REDIRECTS + 1):
            response = self._pool.request(
                "GET", target, headers=self._headers, redirect=False, preload_content=False
            )
            try:
                if response.status in (301, 302, 303, 307, 308):
                    target = self._redirect(target, response.headers.get("Location", ""))
                    continue
                self._check(response)
                body = response.read(limit) if limit is not None else response.read()
                if limit is not None and len(body) >= limit:
                    response.close()  # the rest stays unread: this connection is done
                return body, response.headers
            finally:
                response.release_conn()
        raise SourceUnavailable(f"GitLab redirected {url} more than {_REDIRECTS} times")

    def _get_kept_alive(self, transport: KeepAlive, url: str) -> tuple[bytes, Mapping[str, str]]:
        """`_get` through `harvest.http_get.KeepAlive` (no proxy): a fifth of urllib3's CPU."""
        target = url
        for _hop in range(_REDIRECTS + 1):
            try:
                answer = transport(target, self._headers)
            except TooLarge as error:
                raise SourceUnavailable(
                    f"GitLab answered {target} with over {_JSON_LIMIT} bytes"
                ) from error
            except Unsendable as error:
                raise SourceUnavailable(f"{target} cannot be asked for: {error}") from error
            if answer.status in (301, 302, 303, 307, 308):
                target = self._redirect(target, answer.headers.get("location", ""))
                continue
            if answer.status >= 400:
                raise _HttpFailure(
                    answer.status, _detail(answer.body), answer.headers.get("retry-after")
                )
            return answer.body, answer.headers
        raise SourceUnavailable(f"GitLab redirected {url} more than {_REDIRECTS} times")

    def _graphql_post(self, what: str, query: str, variables: dict[str, Any]) -> Mapping[str, Any]:
        """POST a GraphQL query; its decoded answer. Refusals raise `GraphQLRefused`."""
        body = msgspec.json.encode({"query": query, "variables": variables})

        def post() -> bytes:
            response = self._pool.request(
                "POST",
                self._graphql_url,
                body=body,
                headers={**self._headers, "Content-Type": "application/json"},
                redirect=False,
                preload_content=False,
            )
            try:
                if response.status in (301, 302, 303, 307, 308):
                    # Never followed: a POST is not replayed elsewhere; a foreign host is refused.
                    self._redirect(self._graphql_url, response.headers.get("Location", ""))
                    raise GraphQLRefused(f"GitLab redirected its GraphQL API ({response.status})")
                self._check(response)
                data: bytes = response.read()
                return data
            finally:
                response.release_conn()

        try:
            raw = self._call(what, post)
        except SourceError as error:
            if error.status in _GRAPHQL_REFUSALS:
                raise GraphQLRefused(error.message) from error
            raise
        try:
            answer = msgspec.json.decode(raw)
        except msgspec.DecodeError as error:
            raise GraphQLRefused(f"{what}: GitLab's GraphQL API sent no JSON") from error
        if not isinstance(answer, dict):
            raise GraphQLRefused(f"{what}: GitLab's GraphQL API sent no object")
        return answer

    def _redirect(self, url: str, location: str) -> str:
        """Where a redirect from `url` leads, if the token may go there (else `SourceDenied`).

        Only to an allowed host, and never from https to http: the token would travel in clear.
        """
        target = urljoin(url, location)
        if urlsplit(target).netloc not in self._allowed_hosts:
            raise SourceDenied(
                f"GitLab redirected {url} to {target}, a host harvest may not contact"
            )
        if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
            raise SourceDenied(f"GitLab redirected {url} to {target}, off https")
        return target

    @staticmethod
    def _check(response: urllib3.BaseHTTPResponse) -> None:
        if response.status >= 400:
            detail = _detail(response.read(2048))
            raise _HttpFailure(response.status, detail, response.headers.get("Retry-After"))

    @staticmethod
    def _json(what: str, body: bytes) -> Any:
        try:
            return msgspec.json.decode(body)
        except msgspec.DecodeError as error:
            raise SourceUnavailable(f"{what}: GitLab sent an answer that is not JSON") from error

    def _next_page(self, link: str) -> str | None:
        """The `rel="next"` URL of a `Link` header, on the instance's own scheme and host."""
        for part in link.split(","):
            target, _, params = part.partition(";")
            if 'rel="next"' in params.replace(" ", ""):
                found = urlsplit(target.strip().strip("<>"))
                base = urlsplit(self.url)
                query = f"?{found.query}" if found.query else ""
                return f"{base.scheme}://{base.netloc}{found.path}{query}"
        return None

    # The reads of a project go through python-gitlab's HTTP layer (its session, token, timeout
    # and errors) as plain JSON: building its REST objects, each with some forty managers, cost
    # more CPU than the requests themselves.

    def _on_response(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        if response.status_code == TOO_MANY_REQUESTS:
            self._seen.retry_after = response.headers.get("Retry-After")
        if response.is_redirect:
            self._redirect(response.url, response.headers.get("Location", ""))

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
            if isinstance(error, _HttpFailure):
                return self._delay(error.status, attempt, error.retry_after)
            status = (
                error.response_code if isinstance(error, gitlab.exceptions.GitlabError) else None
            )
            return self._delay(status, attempt, getattr(self._seen, "retry_after", None))

        def give_up(error: Exception, attempts: int) -> SourceError:
            if isinstance(error, _HttpFailure):
                return self._translate(what, error.status, error.detail, attempts)
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
            retry_on=(gitlab.exceptions.GitlabError, _HttpFailure, *_NETWORK_FAILURES),
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

    def _delay(self, status: int | None, attempt: int, retry_after: str | None) -> float | None:
        """How long to wait before retrying, or None when the failure is final."""
        pause = exponential(attempt, first=self._backoff, longest=self._max_wait)
        if status == TOO_MANY_REQUESTS:
            asked = retry_after_seconds(retry_after, datetime.now(UTC))
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
