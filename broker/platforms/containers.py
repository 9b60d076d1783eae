"""Docker/OCI containers on a machine with a Docker-compatible engine (podman, docker).

What the `local` adapter checks at offer time and the shell lines its two steps run for a
docker-container executable:

- Offer time (`engine_refusals`): the engine must be there, the image must come from a
  registry of the allow-list (`local.registries`), a digest in the location must agree with
  the image's digest, and privileged containers are refused.
- Preparation (`prepare_lines`): the image is pinned to a digest and pulled by that digest
  only. A location with a tag (or none: `latest`) is resolved to its digest at the registry
  by the fetch helper (`session_fetch.py image`), which fails naming both digests when the
  request's digest differs; the pinned reference is kept in `program/image.ref`.
- Work (`run_lines`): `<engine> run` of the pinned reference with the offered cores, memory
  (swap included) and the platform's pids limit as limits, the session's GPUs as devices
  (`--device`, see `gpus`), no network unless the executable
  publishes ports (then on 127.0.0.1 only), the data read-only at `/voexec/data`, the output
  read-write at `/voexec/output` (also its working directory), its output and errors in the
  session's logs. The container is named `voexec-<session id>`, so that the session runner
  (and the adapter) can stop it by name (`<engine> stop`, then `rm --force`).

Pure: builds text, reads nothing; imports the broker's model and ports only.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from broker.model import EXTENSION_KINDS, DockerContainer, SimpleSessionConnector
from broker.platforms.port import PlatformError, SessionPlan

if TYPE_CHECKING:
    from broker.platforms.recipe import Layout

__all__ = [
    "CONTAINER_DATA",
    "CONTAINER_OUTPUT",
    "IMAGE_REF",
    "PORT_CONNECTOR",
    "ContainerEngine",
    "ImageReference",
    "access_ports",
    "container_name",
    "engine_refusals",
    "parse_image",
    "prepare_lines",
    "published_connectors",
    "run_lines",
]

CONTAINER_DATA: Final = "/voexec/data"
CONTAINER_OUTPUT: Final = "/voexec/output"
IMAGE_REF: Final = "program/image.ref"
"""The pinned reference (`registry/repository@digest`), relative to the session's folder."""
DOCKER_HUB: Final = "docker.io"
_HUB_ALIASES: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_DIGEST: Final = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_TAG: Final = re.compile(r"^[\w][\w.-]{0,127}$")
_COMPONENT: Final = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST: Final = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:]+\])(?::\d+)?$")
_OOM_EXIT: Final = 137
"""`128 + SIGKILL`: what a container killed by the memory limit (or by a stop) exits with."""


@dataclass(frozen=True, slots=True)
class ImageReference:
    """An image location, read the way Docker reads it.

    `ubuntu` is `docker.io/library/ubuntu` with no tag (`latest` when it is resolved).
    """

    registry: str
    """`host[:port]`, lower case; `docker.io` for Docker Hub."""
    repository: str
    """`namespace/name` inside the registry (`library/ubuntu` on Docker Hub)."""
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """The fully qualified repository, `registry/repository`."""
        return f"{self.registry}/{self.repository}"

    def pinned(self, digest: str) -> str:
        """The reference by digest only: what is pulled and run."""
        return f"{self.name}@{digest}"


def parse_image(location: str) -> ImageReference:
    """Read an image location (`[registry/]repository[:tag][@digest]`, `docker://` allowed).

    Raises:
        ValueError: it is not an image reference; the message says which part is wrong.
    """
    text = location.strip().removeprefix("docker://")
    text, _, digest = text.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ValueError(f"{digest!r} is not a digest (algorithm:hex)")
    first, slash, rest = text.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first.lower(), rest
        if not _HOST.match(registry):
            raise ValueError(f"{first!r} is not a registry host[:port]")
    else:
        registry, path = DOCKER_HUB, text
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
    last = path.rsplit("/", 1)[-1]
    tag = None
    if ":" in last:
        path, _, tag = path.rpartition(":")
        if not _TAG.match(tag):
            raise ValueError(f"{tag!r} is not a tag")
    if not path or not all(_COMPONENT.match(part) for part in path.split("/")):
        raise ValueError(f"{path!r} is not a repository name (lower-case components)")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return ImageReference(registry, path, tag, digest or None)


@dataclass(frozen=True, slots=True)
class ContainerEngine:
    """A Docker-compatible command line (podman, docker) and how this platform uses it."""

    command: str
    """The engine's command or path."""
    registries: tuple[str, ...] = ()
    """Registries images may come from (`host[:port]`); empty allows none."""
    pids: int = 4096
    """`--pids-limit` of every container."""
    environment: tuple[tuple[str, str], ...] = ()
    """Variables the engine needs (`CONTAINERS_CONF`, `DOCKER_HOST`, ...), set for its calls."""
    setting: str = "local"
    """Where the settings live, to name them in refusals."""


def container_name(session_id: str) -> str:
    """The name a session's container runs under (one container per session)."""
    return f"voexec-{session_id}"


def _allowed(registry: str, engine: ContainerEngine) -> bool:
    allowed = {DOCKER_HUB if r.lower() in _HUB_ALIASES else r.lower() for r in engine.registries}
    return registry in allowed


def engine_refusals(
    container: DockerContainer, engine: ContainerEngine | None, no_engine: str
) -> list[str]:
    """Why a platform with `engine` cannot run `container`; empty when it can.

    `engine` is None on a platform without one; `no_engine` then says why.
    """
    reasons = []
    if engine is None:
        reasons.append(f"runs no docker-container images: {no_engine}")
    image = container.image
    if image is None or not image.locations:
        return [*reasons, "needs an image location to run a container"]
    try:
        reference = parse_image(image.locations[0])
    except ValueError as error:
        return [*reasons, f"cannot read the image location {image.locations[0]!r}: {error}"]
    if engine is not None and not _allowed(reference.registry, engine):
        allowed = ", ".join(engine.registries)
        reasons.append(
            f"does not pull images from {reference.registry}; allowed registries: {allowed}"
            if allowed
            else f"does not pull images from {reference.registry}: "
            f"no registry is allowed ({engine.setting}.registries is empty)"
        )
    if reference.digest and image.digest and reference.digest != image.digest:
        reasons.append(
            f"the image location {image.locations[0]} names digest {reference.digest}, "
            f"but the image's digest is {image.digest}"
        )
    if container.privileged:
        reasons.append("runs no privileged containers")
    return reasons


def _reference(container: DockerContainer) -> ImageReference:
    image = container.image
    if image is None or not image.locations:
        raise PlatformError("the container has no image location")
    try:
        return parse_image(image.locations[0])
    except ValueError as error:
        raise PlatformError(f"cannot read the image location: {error}") from error


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _exports(engine: ContainerEngine) -> list[str]:
    return [f"export {name}={_q(value)}" for name, value in engine.environment]


def prepare_lines(
    container: DockerContainer, engine: ContainerEngine, python: str, fetcher: str
) -> list[str]:
    """Pin the image to a digest (resolving its tag at the registry) and pull it by digest.

    Raises:
        PlatformError: the container has no readable image location.
    """
    reference = _reference(container)
    wanted = reference.digest or (container.image.digest if container.image else None)
    if wanted and reference.tag is None:  # nothing to resolve: the digest is the image
        pin = f"printf '%s\\n' {_q(reference.pinned(wanted))} > {IMAGE_REF}"
    else:
        pin = " ".join(
            [
                f"{_q(python)} {fetcher} image",
                _q(reference.registry),
                _q(reference.repository),
                _q(reference.tag or "latest"),
                _q(wanted or "-"),
                IMAGE_REF,
            ]
        )
    return [
        *_exports(engine),
        pin,
        f'{_q(engine.command)} pull --quiet "$(cat {IMAGE_REF})"',
    ]


def _ports(container: DockerContainer) -> list[str]:
    published = []
    for port in container.network.ports if container.network else []:
        if port.internal is None or port.internal.port is None:
            continue
        protocol = "/udp" if port.protocol == "UDP" else ""
        published.append(f"--publish {_q(f'127.0.0.1::{port.internal.port}{protocol}')}")
    return published


PORT_CONNECTOR: Final = EXTENSION_KINDS + "connector/published-port.yaml"
"""The kind of a connector to a port a container publishes."""
_PUBLISHED: Final = re.compile(r"^(\d+)/(tcp|udp)\s*->\s*(\S+):(\d+)$")


def access_ports(container: DockerContainer) -> list[int]:
    """The container ports the request lists as ways in (`access: true`)."""
    ports = container.network.ports if container.network else []
    return [p.internal.port for p in ports if p.access and p.internal and p.internal.port]


def published_connectors(
    container: DockerContainer, listing: str
) -> tuple[SimpleSessionConnector, ...] | None:
    """A connector per port asking for access, from `<engine> port NAME`'s listing.

    The listing has one line per published port (`8888/tcp -> 127.0.0.1:41234`). An HTTP or
    HTTPS port's connector is a URL with the port's `path`; any other is `tcp://host:port` (or
    `udp://`). None until every port asking for access is published (the container starts).
    """
    published: dict[tuple[int, str], tuple[str, int]] = {}
    for line in listing.splitlines():
        found = _PUBLISHED.match(line.strip())
        if found:
            inside, protocol, host, outside = found.groups()
            published[(int(inside), protocol)] = (host.strip("[]"), int(outside))
    connectors = []
    for port in container.network.ports if container.network else []:
        if not (port.access and port.internal and port.internal.port):
            continue
        where = published.get((port.internal.port, "udp" if port.protocol == "UDP" else "tcp"))
        if where is None:
            return None
        host, outside = where
        host = f"[{host}]" if ":" in host else host
        scheme = (port.protocol or "TCP").lower()
        path = "/" + (port.path or "").lstrip("/") if scheme in {"http", "https"} else ""
        connectors.append(
            SimpleSessionConnector(
                kind=PORT_CONNECTOR,
                status="AVAILABLE",
                protocol=port.protocol or "TCP",
                location=f"{scheme}://{host}:{outside}{path}",
            )
        )
    return tuple(connectors)


def run_lines(
    plan: SessionPlan,
    engine: ContainerEngine,
    layout: Layout,
    exports: Sequence[tuple[str, str]],
    devices: Sequence[str] = (),
) -> list[str]:
    """Run the pinned image with the session's limits; remove the container afterwards.

    `exports` are the session's variables (VOEXEC_SESSION, VOEXEC_CORES, ...), given to the
    container with the data and output folders as the container sees them. `devices` are the
    engine's `--device` values for the session's GPUs (CDI names or device files).

    Raises:
        PlatformError: the executable is not a container with an image.
    """
    container = plan.executable
    if not isinstance(container, DockerContainer):
        raise PlatformError(f"not a container: {type(container).__name__}")
    _reference(container)
    name = _q(container_name(plan.session_id))
    mebibytes = max(6, round(plan.memory * 1024))  # the engines refuse less than 6 MiB
    inside = dict(exports) | {"VOEXEC_DATA": CONTAINER_DATA, "VOEXEC_OUTPUT": CONTAINER_OUTPUT}
    ports = _ports(container)
    engine_command = _q(engine.command)
    run = [
        f"{engine_command} run --name {name}",
        *(ports or ["--network=none"]),
        f"--cpus {plan.cores} --memory {mebibytes}m --memory-swap {mebibytes}m",
        f"--pids-limit {engine.pids} --security-opt no-new-privileges",
        *(f"--device {_q(device)}" for device in devices),
        f"--volume {_q(f'{layout.data}:{CONTAINER_DATA}:ro')}",
        f"--volume {_q(f'{layout.output}:{CONTAINER_OUTPUT}:rw')}",
        f"--workdir {CONTAINER_OUTPUT}",
        *(f"--env {_q(f'{k}={v}')}" for k, v in inside.items()),
        *(f"--env {_q(f'{k}={v}')}" for k, v in container.environment.items()),
        *([f"--entrypoint {_q(container.entrypoint)}"] if container.entrypoint else []),
        f'"$(cat {_q(layout.root / IMAGE_REF)})"',
        *(_q(argument) for argument in container.command),
    ]
    return [
        *_exports(engine),
        f"{engine_command} rm --force {name} > /dev/null 2>&1  # left by an earlier attempt",
        " \\\n  ".join(run),
        "code=$?",
        f'if [ "$code" -eq {_OOM_EXIT} ] && [ ! -e {_q(layout.state / "released")} ]; then',
        f"  echo 'the container was killed (exit code {_OOM_EXIT}): it may have needed more"
        f" than its {mebibytes} MiB of memory' >&2",
        "fi",
        f"{engine_command} rm --force {name} > /dev/null 2>&1",
        'exit "$code"',
    ]
