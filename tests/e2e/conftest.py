"""End-to-end harness: the real app under uvicorn on a loopback port, driven by Chromium.

- `live` (session): voexec with the demo catalogue, the IVOA vocabularies from ../shared, fast
  simulated platforms and a harvest source on a fake GitLab (harvested once, so the harvest
  page has a real report), served by uvicorn in a thread on a free loopback port;
- `browser` (session): Debian's Chromium through Playwright, never a downloaded browser
  (`../shared/notes/stack.md` §6); without it the browser tests skip, or fail in CI
  (`VOEXEC_REQUIRE_SERVICES=1`);
- `page` (test): a fresh tab at desktop width whose script errors fail the test.

Screenshots go to `$TEST_OUTPUT_DIR/screenshots` (default `test-output/screenshots`, which git
ignores); page timings to `$TEST_OUTPUT_DIR/page-timings.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import settings_from_mapping
from tests.conftest import ROOT, require_service
from tests.fakes.gitlab import FakeGitLab
from tests.live_server import serving_in_thread
from voexec.app import create_app
from voexec.demo import with_demo
from voexec.wiring import Services, build_services

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
OUTPUT = Path(os.environ.get("TEST_OUTPUT_DIR", ROOT / "test-output"))
SCREENSHOTS = OUTPUT / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
GITLAB_TOKEN = "glpat-e2e"
DOCKER = (
    "https://www.purl.org/ivoa.net/Calycopis-openapi/schema/v1.0/kinds/executable/"
    "docker-container.yaml"
)
ALL_KINDS = ["docker-container", "singularity-container", "jupyter-notebook", "python-program"]

# Platforms for the journey. `quick` comes first, so a small request lands on it: it prepares
# in a moment and its work finishes after two seconds, so a session reaches COMPLETED while the
# test watches. `steady` runs to the offered end (a booking stays on the platforms page);
# `gpu-farm` is the only one with GPUs.
PLATFORMS: list[dict[str, Any]] = [
    {
        "name": "quick",
        "description": "Simulated cluster that finishes everything in seconds",
        "capacity": {"cores": 16, "memory": 64},
        "executables": ALL_KINDS,
        "limits": {"cores": 8, "memory": 32, "duration": "PT2H"},
        "cost": {"core_hour": 0.02, "gib_hour": 0.002, "unit": "EUR"},
        "preparation": "PT1S",
        "simulated": {"prepare": "PT0.3S", "release": "PT0.3S", "run": "PT2S"},
    },
    {
        "name": "steady",
        "description": "Simulated cluster whose sessions run to their offered end",
        "capacity": {"cores": 128, "memory": 512},
        "executables": ALL_KINDS,
        "limits": {"cores": 64, "memory": 256, "duration": "P2D"},
        "cost": {"core_hour": 1.0, "unit": "core-hours"},
        "preparation": "PT5S",
        "simulated": {"prepare": "PT0.5S", "release": "PT0.5S"},
    },
    {
        "name": "gpu-farm",
        "description": "Simulated GPU nodes for deep-learning inference",
        "capacity": {
            "cores": 64,
            "memory": 512,
            "gpus": [{"model": "A100", "memory": 80, "count": 4, "compute_capability": 8.0}],
        },
        "executables": ["docker-container", "singularity-container", "python-program"],
        "limits": {"cores": 32, "memory": 256, "gpus": 4, "duration": "P1D"},
        "cost": {"core_hour": 0.05, "gib_hour": 0.005, "gpu_hour": 1.2, "unit": "EUR"},
        "preparation": "PT1M",
    },
]


def _publisher_file(name: str, subject: str, **changes: Any) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()
    document: dict[str, Any] = {
        "name": name,
        "title": f"{name.replace('-', ' ').title()}",
        "summary": f"Harvested from GitLab for the end-to-end tests ({subject}).",
        "version": "1.0",
        "authors": [{"name": "Ada Lovelace"}],
        "licence": "MIT",
        "subjects": [subject],
        "functions": ["imaging"],
        "needs": {"cores": 1, "memory": 2, "duration": "PT10M"},
        "executable": {
            "kind": DOCKER,
            "image": {
                "locations": [f"registry.example.org/{name}:1.0"],
                "digest": f"sha256:{digest}",
            },
        },
    }
    document.update(changes)
    return yaml.safe_dump(document, sort_keys=False)


def _fill(gitlab: FakeGitLab) -> None:
    """Good projects, broken ones, and one whose old tag is broken (its entry shows why)."""
    file = "ivoa-executable.yaml"
    mosaic = gitlab.add_project(
        "survey/mosaic-maker", {file: _publisher_file("mosaic-maker", "galaxies")}
    )
    gitlab.tag(mosaic, "v1.0")
    counter = gitlab.add_project(
        "survey/star-counter", {file: _publisher_file("star-counter", "stellar-astrophysics")}
    )
    gitlab.tag(counter, "v0.9")
    gitlab.commit(counter, {file: _publisher_file("star-counter", "photometry")})
    gitlab.add_project("survey/broken-yaml", {file: "name: broken\ntitle: [unclosed\n"})
    gitlab.add_project("survey/unicorn", {file: _publisher_file("unicorn", "unicorn-astrophysics")})


def screenshot(page: Any, name: str) -> None:
    """Save a full-page screenshot as `<SCREENSHOTS>/<name>.png`, for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def timings_table(timings: list[dict[str, Any]]) -> str:
    """The measured page timings as the Markdown table of docs/benchmarks.md (`## Web pages`)."""
    lines = [
        "| page | load, median | load, slowest | DOM ready | first byte | in voexec | size |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in timings:
        lines.append(
            f"| {t['page']} (`{t['route']}`) | {t['load_ms_median']:.0f} ms"
            f" | {t['load_ms_max']:.0f} ms | {t['dom_ms_median']:.0f} ms"
            f" | {t['first_byte_ms_median']:.0f} ms | {t['server_ms_median']:.1f} ms"
            f" | {t['bytes'] / 1024:.0f} KiB |"
        )
    load = os.getloadavg()
    lines.append("")
    lines.append(f"Load average when measured: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}.")
    return "\n".join(lines) + "\n"


@dataclass
class Live:
    """The running app: its base URL and its services (for looking behind the pages)."""

    url: str
    services: Services
    timings: list[dict[str, Any]] = field(default_factory=list)
    """Page timings measured by the tests, written to page-timings.json at the end."""


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    previous_token = os.environ.get("E2E_GITLAB_TOKEN")
    os.environ["E2E_GITLAB_TOKEN"] = GITLAB_TOKEN
    with FakeGitLab(token=GITLAB_TOKEN) as gitlab:
        _fill(gitlab)
        settings = with_demo(
            settings_from_mapping(
                {
                    "data_dir": str(tmp_path_factory.mktemp("e2e") / "var"),
                    # the snapshot shipped in the package: no ../shared needed
                    "vocabularies": {"offline": True, "names": ["uat", "messenger"]},
                    "broker": {"platforms": PLATFORMS, "offer_ttl": "PT10M"},
                    "harvest": {
                        "sources": [
                            {
                                "type": "gitlab",
                                "name": "survey-lab",
                                "url": gitlab.url,
                                "groups": ["survey"],
                                "token_env": "E2E_GITLAB_TOKEN",
                            }
                        ]
                    },
                }
            )
        )
        services = build_services(settings)
        try:
            with serving_in_thread(create_app(settings, services)) as url:
                services.components["harvest"].run("survey-lab")
                live = Live(url=url, services=services)
                try:
                    yield live
                finally:
                    if live.timings:
                        OUTPUT.mkdir(parents=True, exist_ok=True)
                        timings = json.dumps(live.timings, indent=2)
                        (OUTPUT / "page-timings.json").write_text(timings)
                        (OUTPUT / "page-timings.md").write_text(timings_table(live.timings))
        finally:
            if previous_token is None:
                os.environ.pop("E2E_GITLAB_TOKEN", None)
            else:
                os.environ["E2E_GITLAB_TOKEN"] = previous_token


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    require_service("chromium", CHROMIUM.exists(), "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, live: Live) -> Iterator[Any]:
    """A new tab at desktop width on the live app; a script error on any page fails the test."""
    context = browser.new_context(viewport=DESKTOP, base_url=live.url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"the pages reported script errors: {errors}"
