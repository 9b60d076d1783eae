"""The GitLab adapter against the fake GitLab: python-gitlab, urllib3 and GraphQL for real."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import urllib3

from harvest import gitlab_graphql
from harvest.gitlab import GitLabClient, retry_after_seconds
from harvest.model import SourceDenied, SourceNotFound, SourceUnavailable
from tests.fakes.gitlab import FakeGitLab
from tests.unit.harvest.conftest import TOKEN


def client(gitlab: FakeGitLab, sleeps: list[float], **options) -> GitLabClient:
    options.setdefault("max_retries", 3)
    return GitLabClient(gitlab.url, TOKEN, sleep=sleeps.append, **options)


def test_lists_group_projects_with_subgroups_and_topics_once_each_across_pages(gitlab):
    for i in range(7):
        gitlab.add_project(f"astro/imaging/tool{i}", {"f": "x"})
    gitlab.add_project("astro/top", {"f": "x"}, topics=("ivoa-exec",))
    gitlab.add_project("elsewhere/tagged", {"f": "x"}, topics=("ivoa-exec",))
    gitlab.add_project("elsewhere/untagged", {"f": "x"})

    found = list(client(gitlab, [], per_page=3).projects(["astro"], ["ivoa-exec"]))

    paths = [p.path for p in found]
    assert sorted(paths) == sorted(
        [f"astro/imaging/tool{i}" for i in range(7)] + ["astro/top", "elsewhere/tagged"]
    )
    assert len(paths) == len(set(paths)), "a project in a group and with a topic is listed once"
    # 8 group projects at 3 a page: 3 pages, each page following the Link header.
    assert gitlab.count("/groups/astro/projects") == 3
    # The topic listing uses keyset pagination (`id_after`), as GitLab needs past 50,000.
    assert any("pagination=keyset" in line and "topic=ivoa-exec" in line for line in gitlab.log)


def test_a_subgroup_path_travels_as_one_url_encoded_segment(gitlab):
    gitlab.add_project("astro/radio/deep/pulsar", {"f": "x"})
    gitlab.add_project("astro/optical/other", {"f": "x"})

    found = list(client(gitlab, []).projects(["astro/radio"], []))

    assert [p.path for p in found] == ["astro/radio/deep/pulsar"]
    assert gitlab.requests["/api/v4/groups/astro%2Fradio/projects"] == 1


def test_project_metadata_branch_and_tags_with_their_commits(gitlab):
    project = gitlab.add_project(
        "astro/tool", {"ivoa-executable.yaml": "a"}, topics=("x",), tags=("v1.0",)
    )
    gitlab.commit(project, {"ivoa-executable.yaml": "b"})
    gitlab.tag(project, "v2.0")
    gl = client(gitlab, [])

    info = gl.project("astro/tool")
    branch = gl.branch(project.id, "main")
    tags = {t.name: t.commit for t in gl.tags(project.id)}

    assert info.id == project.id
    assert info.default_branch == "main"
    assert info.namespace == "astro"
    assert info.topics == ("x",)
    assert info.last_activity_at == project.last_activity_at
    assert info.last_activity_at.tzinfo is not None
    assert branch.commit == project.branches["main"]
    assert tags == project.tags
    assert tags["v1.0"] != tags["v2.0"]
    assert gitlab.requests["/api/v4/projects/astro%2Ftool"] == 1


def test_reads_a_file_at_a_commit_with_slashes_in_its_path(gitlab):
    project = gitlab.add_project("astro/tool", {"meta/ivoa-executable.yaml": "old"})
    old = project.branches["main"]
    gitlab.commit(project, {"meta/ivoa-executable.yaml": "new"})
    gl = client(gitlab, [])

    assert gl.read_file(project.id, "meta/ivoa-executable.yaml", old) == b"old"
    assert gl.read_file(project.id, "meta/ivoa-executable.yaml", project.branches["main"]) == b"new"
    assert (
        gitlab.count(f"/projects/{project.id}/repository/files/meta%2Fivoa-executable.yaml/raw")
        == 2
    )


def test_a_missing_file_is_none_and_a_missing_project_is_not_found(gitlab):
    project = gitlab.add_project("astro/tool", {"README": "x"})
    gl = client(gitlab, [])

    assert gl.read_file(project.id, "ivoa-executable.yaml", project.branches["main"]) is None
    with pytest.raises(SourceNotFound):
        gl.project(999)
    with pytest.raises(SourceNotFound):
        gl.branch(project.id, "no-such-branch")


def test_reading_stops_one_byte_past_the_limit(gitlab):
    project = gitlab.add_project("astro/big", {"ivoa-executable.yaml": b"x" * 300_000})

    data = client(gitlab, []).read_file(project.id, "ivoa-executable.yaml", "main", max_bytes=1000)

    assert data == b"x" * 1001


def test_429_waits_as_long_as_retry_after_says(gitlab):
    project = gitlab.add_project("astro/tool", {"f": "x"}, tags=("v1",))
    gitlab.fail("/repository/tags", status=429, times=2, retry_after=7)
    sleeps: list[float] = []

    tags = client(gitlab, sleeps).tags(project.id)

    assert [t.name for t in tags] == ["v1"]
    assert sleeps == [7.0, 7.0]
    assert gitlab.count(f"/projects/{project.id}/repository/tags") == 3


def test_5xx_is_retried_with_exponential_backoff_then_given_up(gitlab):
    project = gitlab.add_project("astro/tool", {"f": "x"})
    gitlab.fail("/repository/branches", status=503, times=None)
    sleeps: list[float] = []

    with pytest.raises(SourceUnavailable, match="503 after 4 attempts"):
        client(gitlab, sleeps, backoff=0.5).branch(project.id, "main")

    assert sleeps == [0.5, 1.0, 2.0]


def test_a_retry_after_beyond_the_longest_wait_fails_instead_of_sleeping(gitlab):
    project = gitlab.add_project("astro/tool", {"f": "x"})
    gitlab.fail("/repository/tags", status=429, times=None, retry_after=3600)
    sleeps: list[float] = []

    with pytest.raises(SourceUnavailable, match="429"):
        client(gitlab, sleeps, max_wait=60).tags(project.id)

    assert sleeps == []


def test_a_page_that_fails_mid_listing_is_fetched_again_not_skipped(gitlab):
    for i in range(5):
        gitlab.add_project(f"astro/p{i}", {"f": "x"})
    gitlab.fail("page=2", status=500, times=1)
    sleeps: list[float] = []

    found = [p.path for p in client(gitlab, sleeps, per_page=2).projects(["astro"], [])]

    assert found == [f"astro/p{i}" for i in range(5)]
    assert len(sleeps) == 1
    assert gitlab.count("/groups/astro/projects") == 4  # pages 1, 2 (failed), 2, 3


def test_a_wrong_token_is_denied_and_not_retried(gitlab):
    gitlab.add_project("astro/tool", {"f": "x"})
    sleeps: list[float] = []

    with pytest.raises(SourceDenied):
        GitLabClient(gitlab.url, "glpat-wrong", sleep=sleeps.append).project("astro/tool")

    assert sleeps == []


def test_an_unreachable_instance_is_unavailable_after_retries():
    sleeps: list[float] = []
    gl = GitLabClient("http://127.0.0.1:9", TOKEN, max_retries=2, sleep=sleeps.append, timeout=2)

    with pytest.raises(SourceUnavailable, match="did not answer after 3 attempts"):
        gl.project(1)

    assert len(sleeps) == 2


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

    assert retry_after_seconds("12", now) == 12.0
    assert retry_after_seconds("Sun, 01 Mar 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Sun, 01 Mar 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_a_429_seen_by_one_thread_holds_the_next_request_of_every_thread(gitlab):
    project = gitlab.add_project("astro/tool", {"f": "x"}, tags=("v1",))
    gitlab.fail("/repository/tags", status=429, times=1, retry_after=7)
    waits: list[tuple[str, float]] = []
    shared = GitLabClient(
        gitlab.url,
        TOKEN,
        max_retries=3,
        sleep=lambda seconds: waits.append((threading.current_thread().name, seconds)),
    )

    def read(name: str, call) -> None:
        thread = threading.Thread(target=call, name=name)
        thread.start()
        thread.join(timeout=30)

    read("first", lambda: shared.tags(project.id))
    read("second", lambda: shared.branch(project.id, "main"))

    assert waits[0] == ("first", 7.0)
    assert len(waits) == 2
    name, seconds = waits[1]
    assert name == "second"
    assert 5.0 < seconds <= 7.0, "what is left of the 7 s GitLab asked for"
    assert gitlab.count(f"/projects/{project.id}/repository/tags") == 2


def test_proxy_and_ca_settings_of_the_environment_are_kept(monkeypatch):
    """They are read once when the client is made, not on every request."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/our-ca.pem")
    proxied = GitLabClient("https://gitlab.example.org", "t")
    assert proxied._session.proxies["https"] == "http://proxy.example:3128"
    assert proxied._gl.ssl_verify == "/etc/ssl/our-ca.pem"
    assert proxied._keepalive is None, "through the proxy: no direct connection"
    assert isinstance(proxied._pool, urllib3.ProxyManager)
    assert proxied._pool.proxy is not None
    assert proxied._pool.proxy.host == "proxy.example"
    monkeypatch.setenv("NO_PROXY", "gitlab.example.org")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    direct = GitLabClient("https://gitlab.example.org", "t")
    assert "https" not in direct._session.proxies
    assert direct._gl.ssl_verify is True
    assert direct._keepalive is not None
    assert not isinstance(direct._pool, urllib3.ProxyManager)


def test_a_branch_with_a_slash_and_a_file_in_a_folder_are_read(gitlab):
    project = gitlab.add_project("astro/tool", {"meta/ivoa-executable.yaml": "name: x\n"})
    gitlab.commit(project, {"meta/ivoa-executable.yaml": "name: y\n"}, branch="release/2026")
    reader = client(gitlab, [])
    ref = reader.branch(project.id, "release/2026")
    assert ref.name == "release/2026"
    assert reader.read_file(project.id, "meta/ivoa-executable.yaml", ref.commit) == b"name: y\n"
    assert reader.read_file(project.id, "meta/missing.yaml", ref.commit) is None
    assert reader.read_file(project.id, "meta/ivoa-executable.yaml", ref.commit, 4) == b"name:"


# ------------------------------------------------------------------ files through GraphQL
FILE = "ivoa-executable.yaml"


def test_files_of_many_projects_and_commits_are_read_in_two_graphql_requests(gitlab):
    first = gitlab.add_project("astro/first", {FILE: "name: first\n"}, tags=("v1",))
    gitlab.commit(first, {FILE: "name: first-2\n"})
    second = gitlab.add_project("astro/sub/second", {FILE: "name: second\n"})
    bare = gitlab.add_project("astro/bare", {"README": "no executable here"})
    reader = client(gitlab, [])
    infos = {p.id: reader.project(p.id) for p in (first, second, bare)}
    wanted = [
        (infos[first.id], first.branches["main"]),
        (infos[first.id], first.tags["v1"]),
        (infos[second.id], second.branches["main"]),
        (infos[bare.id], bare.branches["main"]),
    ]
    gitlab.reset_counts()

    files = reader.read_files(wanted, FILE)

    assert files == [b"name: first-2\n", b"name: first\n", b"name: second\n", None]
    assert gitlab.requests["/api/graphql"] == 2, "the sizes, then the texts"
    assert gitlab.count("/projects/") == 0, "no REST request"
    assert reader.batch_reads()


def test_graphql_refused_by_the_instance_falls_back_to_rest_for_good(gitlab):
    project = gitlab.add_project("astro/tool", {FILE: "name: tool\n"})
    gitlab.graphql = False  # 404, as an instance with the GraphQL API switched off
    reader = client(gitlab, [])
    info = reader.project(project.id)
    commit = project.branches["main"]

    assert reader.read_files([(info, commit)], FILE) == [b"name: tool\n"]
    assert not reader.batch_reads()
    assert reader.read_files([(info, commit)], FILE) == [b"name: tool\n"]

    assert gitlab.requests["/api/graphql"] == 1, "asked once, then REST only"
    assert gitlab.file_reads(project) == 2


def test_graphql_errors_in_the_answer_fall_back_to_rest(gitlab, monkeypatch):
    """An instance whose schema lacks a field answers 200 with `errors`, as GitLab does."""
    project = gitlab.add_project("astro/tool", {FILE: "name: tool\n"})
    reader = client(gitlab, [])
    info = reader.project(project.id)
    asked = gitlab_graphql._query

    def older_schema(*args, **kwargs):
        query, variables = asked(*args, **kwargs)
        return query.replace("rawSize", "rawSizeOfAFutureRelease"), variables

    monkeypatch.setattr(gitlab_graphql, "_query", older_schema)

    assert reader.read_files([(info, project.branches["main"])], FILE) == [b"name: tool\n"]
    assert not reader.batch_reads()
    assert gitlab.count(f"/projects/{project.id}/repository/files/") == 1


def test_a_429_on_the_graphql_endpoint_waits_as_long_as_retry_after_says(gitlab):
    project = gitlab.add_project("astro/tool", {FILE: "name: tool\n"})
    sleeps: list[float] = []
    reader = client(gitlab, sleeps)
    info = reader.project(project.id)
    gitlab.fail("/api/graphql", status=429, times=2, retry_after=9)

    assert reader.read_files([(info, project.branches["main"])], FILE) == [b"name: tool\n"]

    assert sleeps == [9.0, 9.0]
    assert gitlab.requests["/api/graphql"] == 4, "two refused, then the sizes and the texts"
    assert reader.batch_reads(), "a rate limit is no refusal"


def test_a_graphql_endpoint_that_keeps_failing_is_unavailable_naming_the_request(gitlab):
    project = gitlab.add_project("astro/tool", {FILE: "name: tool\n"})
    sleeps: list[float] = []
    reader = client(gitlab, sleeps, backoff=0.5)
    info = reader.project(project.id)
    gitlab.fail("/api/graphql", status=503, times=None)

    with pytest.raises(SourceUnavailable, match=f"sizes of {FILE} in 1 commits.*503 after 4"):
        reader.read_files([(info, project.branches["main"])], FILE)

    assert sleeps == [0.5, 1.0, 2.0]
    assert gitlab.file_reads(project) == 0


def test_a_file_above_the_limit_is_not_sent_by_graphql_but_read_by_rest_to_the_limit(gitlab):
    big = gitlab.add_project("astro/big", {FILE: b"x" * 300_000})
    small = gitlab.add_project("astro/small", {FILE: "name: small\n"})
    reader = client(gitlab, [])
    wanted = [
        (reader.project(big.id), big.branches["main"]),
        (reader.project(small.id), small.branches["main"]),
    ]

    files = reader.read_files(wanted, FILE, max_bytes=1000)

    assert files == [b"x" * 1001, b"name: small\n"]
    assert gitlab.blob_reads[big.id] == 0, "its text never travelled through GraphQL"
    assert gitlab.count(f"/projects/{big.id}/repository/files/") == 1


def test_a_binary_file_has_no_graphql_text_and_is_read_by_rest(gitlab):
    project = gitlab.add_project("astro/tool", {FILE: b"\x00\x01binary"})
    reader = client(gitlab, [])

    files = reader.read_files([(reader.project(project.id), project.branches["main"])], FILE)

    assert files == [b"\x00\x01binary"]
    assert gitlab.count(f"/projects/{project.id}/repository/files/") == 1


def test_more_commits_than_one_query_holds_are_asked_in_several(gitlab):
    projects = [gitlab.add_project(f"astro/p{i}", {FILE: f"name: p{i}\n"}) for i in range(30)]
    reader = client(gitlab, [])
    wanted = [(reader.project(p.id), p.branches["main"]) for p in projects]
    gitlab.reset_counts()

    files = reader.read_files(wanted, FILE)

    assert files == [f"name: p{i}\n".encode() for i in range(30)]
    per_query = gitlab_graphql.REFS_PER_QUERY
    assert gitlab.requests["/api/graphql"] == 2 * -(-30 // per_query)


def test_a_project_renamed_since_the_listing_has_its_files_read_by_rest_by_its_id(gitlab):
    project = gitlab.add_project("astro/old-name", {FILE: "name: tool\n"})
    reader = client(gitlab, [])
    listed = reader.project(project.id)
    project.path = "astro/new-name"  # GraphQL finds no project at the listed path

    assert reader.read_files([(listed, project.branches["main"])], FILE) == [b"name: tool\n"]
    assert gitlab.count(f"/projects/{project.id}/repository/files/") == 1
    assert reader.batch_reads()


def test_tags_are_read_page_by_page_following_the_link_header(gitlab):
    project = gitlab.add_project("astro/tool", {FILE: "name: tool\n"})
    for i in range(5):
        gitlab.tag(project, f"v{i}")

    tags = client(gitlab, [], per_page=2).tags(project.id)

    assert sorted(t.name for t in tags) == [f"v{i}" for i in range(5)]
    assert gitlab.count(f"/projects/{project.id}/repository/tags") == 3


def test_a_redirect_may_lead_only_to_an_allowed_host_and_never_off_https():
    reader = GitLabClient("https://gitlab.example.org", TOKEN, sleep=lambda _: None)
    here = "https://gitlab.example.org/api/v4/projects/1"
    assert (
        reader._redirect(here, "/api/v4/projects/2")
        == "https://gitlab.example.org/api/v4/projects/2"
    )
    with pytest.raises(SourceDenied, match="a host harvest may not contact"):
        reader._redirect(here, "https://elsewhere.example.org/api/v4/projects/1")
    with pytest.raises(SourceDenied, match="off https"):  # the token would travel in clear
        reader._redirect(here, "http://gitlab.example.org/api/v4/projects/1")
    reader.close()
