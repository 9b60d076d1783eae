"""A fake GitLab that speaks the real REST API v4, served by `http.server` on a loopback port.

It serves what a harvester asks of GitLab, the way GitLab answers it:

- `GET /api/v4/groups/{id or url-encoded path}/projects` (`include_subgroups`, `with_shared`),
- `GET /api/v4/projects?topic=...` (offset or keyset pagination, `order_by=id`),
- `GET /api/v4/projects/{id or url-encoded path}`,
- `GET /api/v4/projects/{id}/repository/tags`,
- `GET /api/v4/projects/{id}/repository/branches/{url-encoded branch}`,
- `GET /api/v4/projects/{id}/repository/files/{url-encoded path}/raw?ref=...`;
- `POST /api/graphql`: the part of GitLab's GraphQL API a harvest asks, with GitLab's type and
  field names (`project(fullPath:)`, `Project.repository`, `Repository.rootRef`,
  `Repository.blobs(paths:, ref:, first:)` answering a `RepositoryBlobConnection` of
  `RepositoryBlob { path name rawSize size rawTextBlob }`, `BigInt` sent as a string), executed
  by graphql-core: an unknown field is a GraphQL error, as on GitLab (`graphql = False`: answers
  404, as an instance whose GraphQL API is switched off);

with `Link` (rel="next"/"prev"/"first"/"last"), `X-Total`, `X-Total-Pages`, `X-Page`,
`X-Next-Page`, `X-Prev-Page` and `X-Per-Page` paging headers; GitLab's JSON 404 and 401
bodies; and `%2F` inside a path segment kept as part of that segment (`http.server` hands us
the raw request path, so `group%2Fproj` is one segment, as GitLab's router sees it).

Tests describe the instance in Python (`add_project`, `commit`, `tag`, `delete_project`), change
it between harvest runs, script failures (`fail`: a status, optionally with `Retry-After`, for N
requests or forever) and read `requests`, the number of requests served per raw path, and
`file_reads`, the files of a project sent (by REST or as GraphQL `rawTextBlob`s).
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    build_schema,
    execute_sync,
    parse,
    validate,
)

API = "/api/v4"
GRAPHQL = "/api/graphql"
EPOCH = datetime(2026, 3, 1, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    """GitLab's timestamp format: milliseconds and a `Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class FakeProject:
    """One repository: branches and tags point at commits, each commit is a file snapshot."""

    id: int
    path: str
    """Full path with namespace: `astro/imaging/sextractor-ng`."""
    default_branch: str | None
    topics: list[str]
    created_at: datetime
    last_activity_at: datetime
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    """Tag name -> commit id, in creation order."""

    @property
    def namespace(self) -> str:
        return self.path.rpartition("/")[0]

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]


@dataclass
class Failure:
    """A scripted failure: requests whose raw target (path and query) contains `match`."""

    match: str
    status: int
    remaining: int | None
    """How many more requests fail; None: all of them."""
    retry_after: int | None = None
    hits: int = 0


class FakeGitLab:
    """A GitLab instance in a thread; use as a context manager or call `start`/`stop`.

    Args:
        token: The private token every request must carry in `PRIVATE-TOKEN`
            (None: anonymous access allowed).
    """

    def __init__(self, token: str | None = "glpat-fake-token") -> None:
        self.token = token
        self.projects: dict[int, FakeProject] = {}
        self.commits: dict[str, dict[str, bytes]] = {}
        self.requests: Counter[str] = Counter()
        """Requests served per raw path (query string left out)."""
        self.log: list[str] = []
        """Every request line served, raw path and query, in order."""
        self.failures: list[Failure] = []
        self.graphql = True
        """False: `/api/graphql` answers 404 (an instance with its GraphQL API off)."""
        self.blob_reads: Counter[int] = Counter()
        """`rawTextBlob`s sent through GraphQL, per project id."""
        self._groups: dict[str, int] = {}
        self._next_project_id = 101
        self._now = EPOCH
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------- life cycle
    def start(self, port: int = 0) -> FakeGitLab:
        """Serve on a loopback port (0: any free one; `url` tells)."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGitLab:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ---------------------------------------------------------------------- description
    def _tick(self) -> datetime:
        self._now += timedelta(minutes=1)
        return self._now

    def _group_id(self, full_path: str) -> int:
        parts = full_path.split("/")
        for depth in range(1, len(parts) + 1):
            self._groups.setdefault("/".join(parts[:depth]), 1000 + len(self._groups))
        return self._groups[full_path]

    def _new_commit(self, project: FakeProject, files: Mapping[str, bytes]) -> str:
        digest = hashlib.sha1(
            f"{project.id}:{len(self.commits)}:{sorted(files.items())!r}".encode()
        ).hexdigest()
        self.commits[digest] = dict(files)
        return digest

    def add_project(
        self,
        path: str,
        files: Mapping[str, str | bytes] | None = None,
        *,
        topics: tuple[str, ...] = (),
        default_branch: str = "main",
        tags: tuple[str, ...] = (),
    ) -> FakeProject:
        """Create a project whose default branch holds `files` (None: an empty repository).

        Each name in `tags` is then tagged at the default branch.
        """
        with self._lock:
            self._group_id(path.rpartition("/")[0])
            now = self._tick()
            project = FakeProject(
                id=self._next_project_id,
                path=path,
                default_branch=default_branch if files is not None else None,
                topics=list(topics),
                created_at=now,
                last_activity_at=now,
            )
            self._next_project_id += 1
            self.projects[project.id] = project
            if files is not None:
                project.branches[default_branch] = self._new_commit(project, _encode(files))
            for tag in tags:
                self.tag(project, tag)
            return project

    def commit(
        self,
        project: FakeProject,
        changes: Mapping[str, str | bytes | None],
        branch: str | None = None,
        *,
        activity: bool = True,
    ) -> str:
        """Push one commit: set (or, with None, delete) files on a branch; returns its id.

        `activity=False` leaves `last_activity_at` alone, as GitLab does for a push less than
        an hour after the last recorded activity.
        """
        with self._lock:
            branch = branch or project.default_branch or "main"
            files = dict(self.commits.get(project.branches.get(branch, ""), {}))
            for name, content in changes.items():
                if content is None:
                    files.pop(name, None)
                else:
                    files[name] = content.encode() if isinstance(content, str) else content
            project.branches[branch] = self._new_commit(project, files)
            project.default_branch = project.default_branch or branch
            moment = self._tick()
            if activity:
                project.last_activity_at = moment
            return project.branches[branch]

    def tag(self, project: FakeProject, name: str, ref: str | None = None) -> str:
        """Create a tag at a branch (default: the default branch); returns its commit id."""
        with self._lock:
            branch = ref or project.default_branch
            assert branch is not None, "an empty repository has nothing to tag"
            assert branch in project.branches, f"no branch {branch}"
            project.tags[name] = project.branches[branch]
            project.last_activity_at = self._tick()
            return project.tags[name]

    def delete_tag(self, project: FakeProject, name: str) -> None:
        with self._lock:
            del project.tags[name]
            project.last_activity_at = self._tick()

    def delete_project(self, project: FakeProject) -> None:
        with self._lock:
            del self.projects[project.id]

    def fail(
        self, match: str, status: int = 500, times: int | None = 1, retry_after: int | None = None
    ) -> Failure:
        """Answer `status` to the next `times` requests whose raw target contains `match`.

        The target is the path as sent (`%2F` kept) and the query: `"/repository/tags"`,
        `"page=2"`, `f"/projects/{project.id}/"` all work.
        """
        failure = Failure(match=match, status=status, remaining=times, retry_after=retry_after)
        with self._lock:
            self.failures.append(failure)
        return failure

    # ---------------------------------------------------------------------- counting
    def count(self, prefix: str) -> int:
        """Requests served whose raw path starts with `prefix` (relative to `/api/v4`)."""
        with self._lock:
            return sum(n for path, n in self.requests.items() if path.startswith(API + prefix))

    def file_reads(self, project: FakeProject) -> int:
        """Files of one project sent: raw-file requests and GraphQL `rawTextBlob`s."""
        with self._lock:
            graphql = self.blob_reads[project.id]
        return self.count(f"/projects/{project.id}/repository/files/") + graphql

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.log.clear()
            self.blob_reads.clear()

    # ---------------------------------------------------------------------- views
    def project_json(self, project: FakeProject) -> dict[str, Any]:
        group = project.namespace
        return {
            "id": project.id,
            "name": project.name,
            "path": project.name,
            "name_with_namespace": project.path.replace("/", " / "),
            "path_with_namespace": project.path,
            "description": None,
            "default_branch": project.default_branch,
            "topics": list(project.topics),
            "tag_list": list(project.topics),
            "created_at": _iso(project.created_at),
            "last_activity_at": _iso(project.last_activity_at),
            "web_url": f"{self.url}/{project.path}",
            "http_url_to_repo": f"{self.url}/{project.path}.git",
            "readme_url": None,
            "archived": False,
            "visibility": "public",
            "namespace": {
                "id": self._groups.get(group, 0),
                "name": group.rpartition("/")[2],
                "path": group.rpartition("/")[2],
                "kind": "group",
                "full_path": group,
                "parent_id": None,
                "web_url": f"{self.url}/groups/{group}",
            },
        }

    def _commit_json(self, commit: str) -> dict[str, Any]:
        return {
            "id": commit,
            "short_id": commit[:8],
            "title": "Update",
            "message": "Update",
            "created_at": _iso(self._now),
            "parent_ids": [],
        }

    def find_project(self, key: str) -> FakeProject | None:
        if key.isdigit():
            return self.projects.get(int(key))
        return next((p for p in self.projects.values() if p.path == key), None)

    def group_projects(self, group: str, *, subgroups: bool) -> list[FakeProject] | None:
        if group.isdigit():
            group = next((g for g, i in self._groups.items() if i == int(group)), "")
        if group not in self._groups:
            return None
        return [
            p
            for p in self.projects.values()
            if p.namespace == group or (subgroups and p.namespace.startswith(group + "/"))
        ]


_PARSED: dict[str, DocumentNode] = {}
_PARSED_LOCK = threading.Lock()


def _parsed(query: str) -> DocumentNode:
    """A query parsed and validated against the schema (kept: a harvest repeats its shapes)."""
    with _PARSED_LOCK:
        document = _PARSED.get(query)
    if document is None:
        document = parse(query)
        errors = validate(_SCHEMA, document)
        if errors:
            raise errors[0]
        with _PARSED_LOCK:
            if len(_PARSED) > 256:
                _PARSED.clear()
            _PARSED[query] = document
    return document


def _flag(value: str | None) -> bool:
    """A boolean query parameter as GitLab's API (Grape) reads it: `true`, `True`, `1`."""
    return (value or "").lower() in {"true", "1", "yes", "t"}


def _encode(files: Mapping[str, str | bytes]) -> dict[str, bytes]:
    return {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that hang up early (a read stopped at its size limit)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Reply(Exception):
    """Raised inside a route to answer at once."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def _not_found(what: str) -> _Reply:
    return _Reply(404, {"message": f"404 {what} Not Found"})


# GitLab's own names (doc/api/graphql/reference): the subset a harvest asks for.
_SCHEMA: GraphQLSchema = build_schema(
    """
    scalar BigInt

    type Query {
      project(fullPath: ID!): Project
    }

    type Project {
      id: ID!
      fullPath: ID!
      lastActivityAt: String
      repository: Repository
    }

    type Repository {
      rootRef: String
      empty: Boolean!
      blobs(
        paths: [String!]!
        ref: String
        after: String
        before: String
        first: Int
        last: Int
      ): RepositoryBlobConnection
    }

    type RepositoryBlobConnection {
      count: Int!
      nodes: [RepositoryBlob]
      pageInfo: PageInfo!
    }

    type PageInfo {
      hasNextPage: Boolean!
      hasPreviousPage: Boolean!
      startCursor: String
      endCursor: String
    }

    type RepositoryBlob {
      id: ID!
      oid: String!
      path: String!
      name: String
      size: BigInt
      rawSize: BigInt
      rawTextBlob: String
    }
    """
)


class _GraphQLRoot:
    """Resolves `Query` against a fake (called with the fake's lock held)."""

    def __init__(self, fake: FakeGitLab) -> None:
        self.fake = fake

    def project(self, _info: Any, fullPath: str) -> dict[str, Any] | None:  # noqa: N803
        project = self.fake.find_project(fullPath)
        if project is None:
            return None  # GitLab: null, no error (it may exist, hidden from this token)
        return {
            "id": f"gid://gitlab/Project/{project.id}",
            "fullPath": project.path,
            "lastActivityAt": _iso(project.last_activity_at),
            "repository": _GraphQLRepository(self.fake, project),
        }


class _GraphQLRepository:
    def __init__(self, fake: FakeGitLab, project: FakeProject) -> None:
        self.fake = fake
        self.project = project
        self.rootRef = project.default_branch
        self.empty = not project.branches

    def blobs(
        self, _info: Any, paths: list[str], ref: str | None = None, **_page: Any
    ) -> dict[str, Any]:
        project, fake = self.project, self.fake
        ref = ref or project.default_branch or ""
        commit = project.branches.get(ref) or project.tags.get(ref) or ref
        files = fake.commits.get(commit, {})
        nodes = []
        for path in paths:
            content = files.get(path)
            if content is not None:
                nodes.append(_GraphQLBlob(fake, project, path, content))
        page = {"hasNextPage": False, "hasPreviousPage": False}
        return {"count": len(nodes), "nodes": nodes, "pageInfo": page}


class _GraphQLBlob:
    def __init__(self, fake: FakeGitLab, project: FakeProject, path: str, content: bytes) -> None:
        self.fake = fake
        self.project = project
        self.content = content
        self.oid = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        self.id = f"gid://gitlab/Gitlab::Git::Blob/{self.oid}"
        self.path = path
        self.name = path.rpartition("/")[2]
        self.size = self.rawSize = str(len(content))

    def rawTextBlob(self, _info: Any) -> str | None:
        if b"\0" in self.content:
            return None  # binary
        try:
            text = self.content.decode()
        except UnicodeDecodeError:
            return None
        self.fake.blob_reads[self.project.id] += 1
        return text


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitLab
    protocol_version = "HTTP/1.1"  # keep-alive, as GitLab behind nginx
    # Headers and body go out in two writes; with Nagle on, the body waits for a delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: tests read `fake.log` instead."""

    def do_GET(self) -> None:
        raw_path, _, query = self.path.partition("?")
        params = dict(parse_qsl(query, keep_blank_values=True))
        fake = self.fake
        with fake._lock:
            fake.requests[raw_path] += 1
            fake.log.append(self.path)
        try:
            self._check(self.path)
            segments = [unquote(s) for s in raw_path.removeprefix(API).split("/")[1:]]
            with fake._lock:
                status, body, headers = self._route(raw_path, segments, params)
        except _Reply as reply:
            status, body, headers = reply.status, reply.body, reply.headers
        self._send(status, body, headers)

    def do_POST(self) -> None:
        raw_path = self.path.partition("?")[0]
        fake = self.fake
        with fake._lock:
            fake.requests[raw_path] += 1
            fake.log.append(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            self._check(self.path)
            if raw_path != GRAPHQL or not fake.graphql:
                raise _Reply(404, {"message": "404 Not Found"})
            status, answer, headers = 200, self._graphql(body), {}
        except _Reply as reply:
            status, answer, headers = reply.status, reply.body, reply.headers
        self._send(status, answer, headers)

    def _graphql(self, body: bytes) -> dict[str, Any]:
        """Run a query as GitLab does: 200 with `data` and/or `errors`."""
        try:
            request = json.loads(body)
            query, variables = request["query"], request.get("variables") or {}
        except (ValueError, KeyError, TypeError):
            raise _Reply(400, {"errors": [{"message": "Unexpected end of document"}]}) from None
        try:
            document = _parsed(query)
        except GraphQLError as error:
            return {"errors": [error.formatted]}
        with self.fake._lock:
            result = execute_sync(
                _SCHEMA, document, root_value=_GraphQLRoot(self.fake), variable_values=variables
            )
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [error.formatted for error in result.errors]
        return answer

    def _check(self, target: str) -> None:
        fake = self.fake
        if fake.token is not None and self.headers.get("PRIVATE-TOKEN") != fake.token:
            raise _Reply(401, {"message": "401 Unauthorized"})
        with fake._lock:
            for failure in fake.failures:
                if failure.match in target and failure.remaining != 0:
                    if failure.remaining is not None:
                        failure.remaining -= 1
                    failure.hits += 1
                    headers = {}
                    if failure.retry_after is not None:
                        headers["Retry-After"] = str(failure.retry_after)
                    message = "Retry later" if failure.status == 429 else "Internal Server Error"
                    body = {"message": f"{failure.status} {message}"}
                    raise _Reply(failure.status, body, headers)

    def _route(
        self, raw_path: str, seg: list[str], params: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        fake = self.fake
        match seg:
            case ["projects"]:
                projects = list(fake.projects.values())
                if topic := params.get("topic"):
                    wanted = set(topic.split(","))
                    projects = [p for p in projects if wanted <= set(p.topics)]
                return self._page(raw_path, params, [fake.project_json(p) for p in projects])
            case ["groups", group, "projects"]:
                found = fake.group_projects(group, subgroups=_flag(params.get("include_subgroups")))
                if found is None:
                    raise _not_found("Group")
                return self._page(raw_path, params, [fake.project_json(p) for p in found])
            case ["projects", key]:
                return 200, fake.project_json(self._project(key)), {}
            case ["projects", key, "repository", "tags"]:
                project = self._project(key)
                tags = [
                    {
                        "name": name,
                        "message": "",
                        "target": commit,
                        "commit": fake._commit_json(commit),
                        "release": None,
                        "protected": False,
                    }
                    for name, commit in reversed(project.tags.items())
                ]
                return self._page(raw_path, params, tags)
            case ["projects", key, "repository", "branches", branch]:
                project = self._project(key)
                if branch not in project.branches:
                    raise _not_found("Branch")
                return (
                    200,
                    {
                        "name": branch,
                        "commit": fake._commit_json(project.branches[branch]),
                        "merged": False,
                        "protected": True,
                        "default": branch == project.default_branch,
                        "web_url": f"{fake.url}/{project.path}/-/tree/{branch}",
                    },
                    {},
                )
            case ["projects", key, "repository", "files", file_path, "raw"]:
                project = self._project(key)
                ref = params.get("ref") or project.default_branch
                if ref is None:
                    raise _not_found("File")
                commit = project.branches.get(ref) or project.tags.get(ref) or ref
                content = fake.commits.get(commit, {}).get(file_path)
                if content is None:
                    raise _not_found("File")
                return 200, content, {"Content-Type": "text/plain; charset=utf-8"}
        raise _Reply(404, {"error": "404 Not Found"})

    def _project(self, key: str) -> FakeProject:
        project = self.fake.find_project(key)
        if project is None:
            raise _not_found("Project")
        return project

    def _page(
        self, raw_path: str, params: dict[str, str], items: list[dict[str, Any]]
    ) -> tuple[int, Any, dict[str, str]]:
        per_page = max(1, min(100, int(params.get("per_page", "20"))))
        base = self.fake.url + raw_path

        def link(**changes: str) -> str:
            return base + "?" + urlencode({**params, **changes}, quote_via=quote)

        if params.get("pagination") == "keyset":
            if params.get("order_by", "id") != "id":
                raise _Reply(405, {"error": "Keyset pagination is only supported for order_by=id"})
            descending = params.get("sort", "asc") == "desc"
            items = sorted(items, key=lambda item: int(item["id"]), reverse=descending)
            if after := params.get("id_after"):
                items = [i for i in items if int(i["id"]) > int(after)]
            if before := params.get("id_before"):
                items = [i for i in items if int(i["id"]) < int(before)]
            page = items[:per_page]
            headers = {"X-Per-Page": str(per_page)}
            if len(items) > per_page:
                key = "id_before" if descending else "id_after"
                rest = {k: v for k, v in params.items() if k not in {"id_after", "id_before"}}
                next_url = base + "?" + urlencode({**rest, key: str(page[-1]["id"])})
                headers["Link"] = f'<{next_url}>; rel="next"'
            return 200, page, headers

        if params.get("order_by") == "id":
            items = sorted(items, key=lambda item: int(item["id"]))
            if params.get("sort") == "desc":
                items.reverse()
        number = max(1, int(params.get("page", "1")))
        pages = max(1, -(-len(items) // per_page))
        page = items[(number - 1) * per_page : number * per_page]
        links = [f'<{link(page="1")}>; rel="first"', f'<{link(page=str(pages))}>; rel="last"']
        headers = {
            "X-Page": str(number),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(pages),
            "X-Next-Page": str(number + 1) if number < pages else "",
            "X-Prev-Page": str(number - 1) if number > 1 else "",
        }
        if number < pages:
            links.insert(0, f'<{link(page=str(number + 1))}>; rel="next"')
        if number > 1:
            links.insert(0, f'<{link(page=str(number - 1))}>; rel="prev"')
        headers["Link"] = ", ".join(links)
        return 200, page, headers

    def _send(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        if isinstance(body, bytes):
            payload, content_type = body, headers.get("Content-Type", "application/octet-stream")
        else:
            payload, content_type = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            if name != "Content-Type":
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
