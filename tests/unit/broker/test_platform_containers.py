"""Containers on a Docker-compatible engine without running one: image references, offer-time
refusals, and the lines the preparation and the work run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath

import pytest

from broker import model
from broker.platforms.containers import ContainerEngine, ImageReference, parse_image
from broker.platforms.port import PlatformError, SessionPlan
from broker.platforms.recipe import Layout, Tools, prepare_script, refusals, run_script

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
ENGINE = ContainerEngine(
    command="/usr/bin/podman",
    registries=("127.0.0.1:5000", "docker.io"),
    pids=64,
    environment=(("CONTAINERS_CONF", "/etc/voexec/containers.conf"),),
    setting="broker.platforms[box].local",
)
TOOLS = Tools(python="python3", engine=ENGINE)
LAYOUT = Layout(PurePosixPath("/work/s-1"))


def container(
    *locations: str, digest: str | None = None, **fields: object
) -> model.DockerContainer:
    image = model.DockerImageSpec(locations=list(locations), digest=digest)
    return model.DockerContainer(image=image, **fields)  # type: ignore[arg-type]


def plan(executable: model.AnyExecutable) -> SessionPlan:
    return SessionPlan(
        session_id="s-1",
        executable=executable,
        cores=2,
        memory=1.5,
        gpus=0,
        start=NOW,
        end=NOW + timedelta(hours=1),
    )


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("ubuntu", ImageReference("docker.io", "library/ubuntu", None, None)),
        ("ubuntu:22.04", ImageReference("docker.io", "library/ubuntu", "22.04", None)),
        ("astro/tool:1.0", ImageReference("docker.io", "astro/tool", "1.0", None)),
        ("docker://index.docker.io/a/b", ImageReference("docker.io", "a/b", None, None)),
        ("ghcr.io/org/tool:v2", ImageReference("ghcr.io", "org/tool", "v2", None)),
        (f"127.0.0.1:5000/t/b@{DIGEST}", ImageReference("127.0.0.1:5000", "t/b", None, DIGEST)),
        (f"localhost/x:1@{DIGEST}", ImageReference("localhost", "x", "1", DIGEST)),
    ],
)
def test_image_locations_are_read_as_docker_reads_them(location, expected):
    assert parse_image(location) == expected


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("Upper/Case", "not a repository name"),
        ("ghcr.io/org/tool:bad tag", "not a tag"),
        ("a/b@sha256", "not a digest"),
        ("", "not a repository name"),
    ],
)
def test_a_location_that_is_no_image_reference_says_which_part_is_wrong(location, message):
    with pytest.raises(ValueError, match=message):
        parse_image(location)


@pytest.mark.parametrize(
    ("executable", "tools", "expected"),
    [
        (container("127.0.0.1:5000/t/b:1"), TOOLS, []),
        (container("ubuntu:22.04"), TOOLS, []),
        (
            container("ghcr.io/org/tool:v2"),
            TOOLS,
            ["does not pull images from ghcr.io; allowed registries: 127.0.0.1:5000, docker.io"],
        ),
        (
            container("ghcr.io/org/tool:v2"),
            Tools(python="python3", engine=ContainerEngine("podman", setting="local")),
            ["does not pull images from ghcr.io: no registry is allowed (local.registries"],
        ),
        (
            container(f"127.0.0.1:5000/t/b@{DIGEST}", digest=OTHER),
            TOOLS,
            [f"the image location 127.0.0.1:5000/t/b@{DIGEST} names digest {DIGEST}, but"],
        ),
        (container("127.0.0.1:5000/t/b:1", privileged=True), TOOLS, ["runs no privileged"]),
        (container(), TOOLS, ["needs an image location"]),
        (container("Bad/Name"), TOOLS, ["cannot read the image location 'Bad/Name'"]),
        (
            container("127.0.0.1:5000/t/b:1"),
            Tools(python="python3", no_engine="podman was not found on PATH"),
            ["runs no docker-container images: podman was not found on PATH"],
        ),
        (
            model.SingularityContainer(location="library://a/b"),
            Tools(python="python3", no_engine="podman was not found", no_containers="no apptainer"),
            ["runs no Singularity images: no apptainer"],
        ),
        (
            # The registry allow-list governs images, not the sources of programs.
            container("127.0.0.1:5000/t/b:1"),
            Tools(python="python3", engine=ENGINE, sources=("https://trusted.org/",)),
            [],
        ),
    ],
)
def test_offer_time_refusals_name_what_is_missing(executable, tools, expected):
    found = refusals(executable, tools)
    assert len(found) == len(expected), found
    for text, start in zip(found, expected, strict=True):
        assert text.startswith(start), text


def test_a_tag_is_resolved_and_checked_against_the_digest_then_pulled_by_digest():
    script = prepare_script(plan(container("127.0.0.1:5000/t/b:1", digest=DIGEST)), TOOLS, LAYOUT)
    assert "export CONTAINERS_CONF=/etc/voexec/containers.conf" in script
    assert (
        f"python3 session_fetch.py image 127.0.0.1:5000 t/b 1 {DIGEST} program/image.ref" in script
    )
    assert '/usr/bin/podman pull --quiet "$(cat program/image.ref)"' in script
    assert ":1\n" not in script.split("image.ref", 1)[1]  # nothing is pulled by its tag


def test_an_image_without_tag_or_digest_is_pinned_from_latest():
    script = prepare_script(plan(container("ubuntu")), TOOLS, LAYOUT)
    assert "session_fetch.py image docker.io library/ubuntu latest - program/image.ref" in script


def test_an_image_named_by_digest_is_not_resolved():
    script = prepare_script(plan(container(f"127.0.0.1:5000/t/b@{DIGEST}")), TOOLS, LAYOUT)
    assert "session_fetch.py image" not in script
    assert f"127.0.0.1:5000/t/b@{DIGEST} > program/image.ref" in script


def test_a_container_runs_by_digest_with_the_offered_limits_and_no_network():
    executable = container(
        "127.0.0.1:5000/t/b:1",
        entrypoint="/bin/sh",
        command=["-c", "echo hi"],
        environment={"MODE": "test"},
    )
    script = run_script(plan(executable), TOOLS, LAYOUT)
    assert "podman rm --force voexec-s-1" in script
    assert "run --name voexec-s-1" in script
    assert "--network=none" in script
    assert "--cpus 2 --memory 1536m --memory-swap 1536m" in script
    assert "--pids-limit 64" in script
    assert "--volume /work/s-1/data:/voexec/data:ro" in script
    assert "--volume /work/s-1/output:/voexec/output:rw" in script
    assert "--env VOEXEC_SESSION=s-1" in script
    assert "--env VOEXEC_DATA=/voexec/data" in script
    assert "--env MODE=test" in script
    assert '--entrypoint /bin/sh \\\n  "$(cat /work/s-1/program/image.ref)"' in script
    assert "-c \\\n  'echo hi'" in script
    assert "it may have needed more than its 1536 MiB of memory" in script


def test_a_container_with_ports_publishes_them_on_loopback_only():
    port = model.DockerNetworkPort(internal=model.DockerInternalPort(port=8888))
    executable = container("127.0.0.1:5000/t/b:1", network=model.DockerNetworkSpec(ports=[port]))
    script = run_script(plan(executable), TOOLS, LAYOUT)
    assert "--publish 127.0.0.1::8888" in script
    assert "--network=none" not in script


def test_without_an_engine_a_container_cannot_be_prepared():
    tools = Tools(python="python3", no_engine="containers are turned off")
    with pytest.raises(PlatformError, match="containers are turned off"):
        prepare_script(plan(container("127.0.0.1:5000/t/b:1")), tools, LAYOUT)
