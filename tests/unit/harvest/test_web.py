"""The `/harvest` routes: GitLab webhooks with their secret, reports, sources."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.di import Provide
from litestar.testing import TestClient

from core.settings import settings_from_mapping
from harvest.web import BackgroundHarvests, router
from tests.unit.harvest.conftest import PipelineKit, executable
from voexec.problems import EXCEPTION_HANDLERS
from voexec.security import build_security

SECRET = "s3cret-webhook-token"
FILE = "ivoa-executable.yaml"


def tag_push(project_id: int, tag: str) -> dict[str, object]:
    """The parts of GitLab's tag push event payload that matter, as GitLab sends them."""
    return {
        "object_kind": "tag_push",
        "event_name": "tag_push",
        "ref": f"refs/tags/{tag}",
        "project_id": project_id,
        "project": {"id": project_id, "path_with_namespace": "astro/tool"},
        "commits": [],
    }


class Web:
    def __init__(
        self, kit: PipelineKit, client: TestClient[Litestar], background: BackgroundHarvests
    ) -> None:
        self.kit = kit
        self.client = client
        self.background = background

    def hook(
        self,
        body: object,
        token: str | None = SECRET,
        source: str = "lab",
        event: str = "Tag Push Hook",
    ):
        headers = {"X-Gitlab-Event": event}
        if token is not None:
            headers["X-Gitlab-Token"] = token
        return self.client.post(f"/harvest/webhooks/gitlab/{source}", json=body, headers=headers)


WEBHOOK_LIMIT = {"auth": {"limits": {"webhooks": {"requests": 3, "per": "PT1H"}}}}


@pytest.fixture
def web(kit: PipelineKit) -> Iterator[Web]:
    security = build_security(settings_from_mapping(WEBHOOK_LIMIT))
    pipeline = kit.pipeline(
        kit.source(webhook_secret_env="LAB_HOOK_SECRET"),
        kit.source(name="quiet", webhook_secret_env=None),
    )
    background = BackgroundHarvests(pipeline)
    app = Litestar(
        route_handlers=[router({"LAB_HOOK_SECRET": SECRET})],
        dependencies={
            "harvest": Provide(lambda: pipeline, sync_to_thread=False),
            "harvest_background": Provide(lambda: background, sync_to_thread=False),
            "security": Provide(lambda: security, sync_to_thread=False),
        },
        exception_handlers=dict(EXCEPTION_HANDLERS),  # type: ignore[arg-type]
    )
    with TestClient(app) as client:
        yield Web(kit, client, background)
    background.close()


def test_a_tag_push_with_the_right_secret_harvests_the_new_version(web: Web):
    tool = web.kit.gitlab.add_project("astro/tool", {FILE: executable("tool")})
    web.kit.pipeline().run("lab")
    web.kit.gitlab.tag(tool, "v1.0")

    answer = web.hook(tag_push(tool.id, "v1.0"))
    web.background.wait(timeout=30)

    assert answer.status_code == 202
    assert answer.headers["location"] == f"/harvest/reports/{answer.json()['run_id']}"
    assert web.kit.catalogue.live() == {"tool": {"latest", "v1.0"}}
    report = web.client.get(answer.headers["location"]).json()
    assert report["status"] == "succeeded"
    assert report["trigger"] == "webhook"
    assert [(e["version"], e["change"]) for e in report["project_reports"][0]["entries"]] == [
        ("v1.0", "updated")
    ]


@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("wrong", 403), (SECRET[:-1], 403), (SECRET + "x", 403)],
)
def test_a_missing_or_wrong_secret_is_refused_and_harvests_nothing(web: Web, token, status):
    tool = web.kit.gitlab.add_project("astro/tool", {FILE: executable("tool")})

    answer = web.hook(tag_push(tool.id, "v1"), token=token)
    web.background.wait(timeout=30)

    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert web.kit.catalogue.live() == {}
    assert web.kit.gitlab.count("/") == 0
    assert web.kit.store.runs() == []


def test_a_source_without_a_webhook_secret_refuses_every_call(web: Web):
    answer = web.hook(tag_push(1, "v1"), token="", source="quiet")

    assert answer.status_code == 403
    assert "not enabled" in answer.json()["detail"]


def test_an_unknown_source_is_404(web: Web):
    assert web.hook(tag_push(1, "v1"), source="nope").status_code == 404


def test_other_events_are_acknowledged_and_ignored(web: Web):
    answer = web.hook({"object_kind": "issue", "project": {"id": 1}}, event="Issue Hook")

    assert answer.status_code == 200
    assert answer.json()["status"] == "ignored"
    assert web.kit.store.runs() == []


def test_a_body_that_is_not_an_event_is_a_400_naming_the_problem(web: Web):
    not_json = web.client.post(
        "/harvest/webhooks/gitlab/lab",
        content=b"{not json",
        headers={
            "X-Gitlab-Token": SECRET,
            "X-Gitlab-Event": "Push Hook",
            "Content-Type": "application/json",
        },
    )
    no_project = web.hook({"object_kind": "push"}, event="Push Hook")

    assert not_json.status_code == 400
    assert no_project.status_code == 400
    assert no_project.json()["problems"] == [{"field": "project_id", "reason": "is required"}]


def test_reports_list_and_detail(web: Web):
    web.kit.gitlab.add_project("astro/good", {FILE: executable("good")})
    web.kit.gitlab.add_project("astro/bad", {FILE: "name: [\n"})
    report = web.kit.pipeline().run("lab")

    listing = web.client.get("/harvest/reports", params={"source": "lab"}).json()
    detail = web.client.get(f"/harvest/reports/{report.run_id}").json()
    only_bad = web.client.get(
        f"/harvest/reports/{report.run_id}", params={"problems_only": "true"}
    ).json()

    assert [r["run_id"] for r in listing] == [report.run_id]
    assert "project_reports" not in listing[0]
    assert detail["counts"]["invalid"] == 1
    assert detail["project_reports"][0]["path"] == "astro/bad"
    assert detail["project_reports"][0]["problems"][0]["field"] == "(document)"
    assert [p["path"] for p in only_bad["project_reports"]] == ["astro/bad"]
    assert web.client.get("/harvest/reports/no-such-run").status_code == 404
    assert web.client.get("/harvest/reports", params={"source": "nope"}).status_code == 404


def test_sources_show_settings_but_never_secrets(web: Web):
    sources = web.client.get("/harvest/sources").json()

    assert [s["name"] for s in sources] == ["lab", "quiet"]
    assert sources[0]["webhook"] == "/harvest/webhooks/gitlab/lab"
    assert sources[1]["webhook"] is None
    assert SECRET not in web.client.get("/harvest/sources").text
    assert "LAB_TOKEN" not in web.client.get("/harvest/sources").text


@pytest.mark.usefixtures("rate_limits")
def test_webhook_calls_past_the_limit_get_429_with_retry_after(web: Web):
    answers = [web.hook({"object_kind": "note"}, token="wrong") for _ in range(4)]
    assert [a.status_code for a in answers] == [403, 403, 403, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert "too many webhook calls" in answers[-1].json()["detail"]
    # Another source's hook has its own bucket.
    assert web.hook({"object_kind": "note"}, source="quiet").status_code == 403
