"""GitLab's GraphQL API for the files a harvest reads: many projects and commits a request.

`read_files` asks `POST /api/graphql` for one file path at many (project, commit) pairs, in
two steps of a few requests each, so that no file above the size limit is ever sent whole:

1. the sizes: `project(fullPath:) { repository { blobs(paths:, ref:, first: 1)
   { nodes { path rawSize } } } }`, one aliased `blobs` a commit, one aliased `project` a
   project, at most `REFS_PER_QUERY` commits a request;
2. the text (`rawTextBlob`) of the files found within the limit, the same way.

A file GitLab holds as binary (`rawTextBlob` is null) or larger than the limit is left to the
REST API (`RestRead`), which reads at most one byte past the limit; so are the files of a
project GraphQL does not find by its path (renamed or moved since the listing: REST asks by
its id). The names are GitLab's own
(types `Project`, `Repository`, `RepositoryBlobConnection`, `RepositoryBlob`; `rawSize` a
`BigInt`, which GitLab sends as a string), so a real instance answers the same query.

GitLab bounds the cost of a query (its "complexity", 250 for a user with a token): a `blobs`
of one node costs about six, a project two, so `REFS_PER_QUERY` commits stay below it. An
answer with `errors` (a query over the limit, a schema without these fields) raises
`GraphQLRefused`: the client then reads by REST.

No HTTP here: the client (`harvest.gitlab.GitLabClient`) posts the queries (`Post`), with its
retries, host checks and error translation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

REFS_PER_QUERY: Final = 25
"""Commits asked about in one GraphQL request (GitLab's complexity limit bounds it)."""

Post = Callable[[str, str, dict[str, Any]], Mapping[str, Any]]
"""Posts (what, query, variables) and answers the decoded JSON body."""
RestRead = Callable[[int, str, str, int], bytes | None]
"""Reads (project id, path, commit, max bytes) by REST."""
FileAt = tuple[int, str, str]
"""A file wanted: (project id, project full path, commit)."""


class GraphQLRefused(Exception):
    """The instance does not answer these queries (disabled, too old, over its limits)."""


def read_files(
    post: Post, wanted: Sequence[FileAt], path: str, max_bytes: int, rest: RestRead
) -> list[bytes | None]:
    """The file at `path` in each wanted (project, commit): its bytes, or None when absent.

    At most `max_bytes + 1` bytes of each (a caller can tell a file that is too large).

    Raises:
        GraphQLRefused: GitLab answered with GraphQL errors or without data.
        SourceError: from `post` or `rest` (GitLab kept failing, refused our token, ...).
    """
    found: list[bytes | None] = [None] * len(wanted)
    sizes: dict[int, int] = {}
    by_rest: list[int] = []
    for chunk in _chunks(range(len(wanted))):
        answer = post(
            f"reading the sizes of {path} in {len(chunk)} commits",
            *_query([(i, wanted[i][1], wanted[i][2]) for i in chunk], path, "path rawSize"),
        )
        nodes, lost = _nodes(answer, chunk, path)
        by_rest.extend(lost)
        for index, node in nodes.items():
            sizes[index] = _size(node)
    small = [i for i, size in sizes.items() if size <= max_bytes]
    by_rest += [i for i, size in sizes.items() if size > max_bytes]
    for chunk in _chunks(small):
        answer = post(
            f"reading {path} in {len(chunk)} commits",
            *_query([(i, wanted[i][1], wanted[i][2]) for i in chunk], path, "path rawTextBlob"),
        )
        nodes, lost = _nodes(answer, chunk, path)
        by_rest.extend(lost)
        for index, node in nodes.items():
            text = node.get("rawTextBlob")
            if isinstance(text, str):
                found[index] = text.encode()[: max_bytes + 1]
            else:  # binary: GitLab sends no text; REST sends the bytes
                by_rest.append(index)
    for index in sorted(by_rest):
        project_id, _full_path, commit = wanted[index]
        found[index] = rest(project_id, path, commit, max_bytes)
    return found


def _chunks(indices: Sequence[int] | range) -> Iterator[list[int]]:
    items = list(indices)
    for start in range(0, len(items), REFS_PER_QUERY):
        yield items[start : start + REFS_PER_QUERY]


def _query(
    items: Sequence[tuple[int, str, str]], path: str, fields: str
) -> tuple[str, dict[str, Any]]:
    """A query for one path at each (index, project full path, commit), with variables.

    Each commit's `blobs` is aliased `b<index>`, each project `p<n>`.
    """
    projects: dict[str, list[tuple[int, str]]] = {}
    for index, full_path, commit in items:
        projects.setdefault(full_path, []).append((index, commit))
    declared = ["$paths: [String!]!"]
    variables: dict[str, Any] = {"paths": [path]}
    parts = []
    for n, (full_path, commits) in enumerate(projects.items()):
        declared.append(f"$p{n}: ID!")
        variables[f"p{n}"] = full_path
        blobs = []
        for index, commit in commits:
            declared.append(f"$r{index}: String!")
            variables[f"r{index}"] = commit
            blobs.append(
                f"b{index}: blobs(paths: $paths, ref: $r{index}, first: 1)"
                f" {{ nodes {{ {fields} }} }}"
            )
        parts.append(f"p{n}: project(fullPath: $p{n}) {{ repository {{ {' '.join(blobs)} }} }}")
    query = f"query HarvestFiles({', '.join(declared)}) {{ {' '.join(parts)} }}"
    return query, variables


def _nodes(
    answer: Mapping[str, Any], indices: Sequence[int], path: str
) -> tuple[dict[int, Mapping[str, Any]], list[int]]:
    """The blob node of each asked commit that holds the file, and the commits left to REST.

    Left to REST: those whose project GitLab did not find at its path (null: renamed or moved
    since the listing).
    """
    errors = answer.get("errors")
    data = answer.get("data")
    if errors or not isinstance(data, dict):
        first = errors[0] if isinstance(errors, list) and errors else errors
        message = first.get("message") if isinstance(first, dict) else first
        raise GraphQLRefused(f"GitLab's GraphQL API answered: {message or 'no data'}")
    blobs: dict[str, Any] = {}
    for project in data.values():
        repository = project.get("repository") if isinstance(project, dict) else None
        if isinstance(repository, dict):  # None: no such project (at that path)
            blobs.update(repository)
    found: dict[int, Mapping[str, Any]] = {}
    lost: list[int] = []
    for index in indices:
        if f"b{index}" not in blobs:
            lost.append(index)
            continue
        connection = blobs[f"b{index}"]
        nodes = connection.get("nodes") if isinstance(connection, dict) else None
        for node in nodes or ():
            if isinstance(node, dict) and node.get("path") == path:
                found[index] = node
                break
    return found, lost


def _size(node: Mapping[str, Any]) -> int:
    try:
        return int(node.get("rawSize") or 0)
    except (TypeError, ValueError) as error:
        raise GraphQLRefused(f"GitLab sent a blob size we cannot read: {error}") from error
