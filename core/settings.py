"""One typed settings tree, loaded once from YAML plus `VOEXEC_*` environment overrides.

`load_settings(path, environ)` reads the YAML file (if any), overlays the environment and
converts the result to `Settings` with msgspec. Any problem raises `ConfigError` naming the
setting (`server.port: Expected int, got str`). Nothing here reads the environment at import
time; the CLI calls `load_settings` once and passes the result to `create_app`.

Environment overrides use `__` between levels: `VOEXEC_SERVER__PORT=8001`,
`VOEXEC_DATABASE__URL=postgresql://...`. Each value is parsed as YAML, so lists and mappings can
be given too (`VOEXEC_HARVEST__ALLOWED_HOSTS='[a.org, b.org]'`). Variables starting with
`VOEXEC_TEST_` belong to the test suite and are ignored, as are `VOEXEC_REQUIRE_SERVICES` and
the client and session variables in `NOT_SETTINGS`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
import yaml

from core.errors import ConfigError

ENV_PREFIX = "VOEXEC_"
CONFIG_ENV = "VOEXEC_CONFIG"
TEST_ENV_PREFIX = "VOEXEC_TEST_"
"""Variables read by the test suite and the benchmarks only (`VOEXEC_TEST_SHARED`,
`VOEXEC_TEST_POSTGRES_URL`, ...); never settings, so no setting may be named `test_...`."""
TEST_SWITCHES = frozenset({"VOEXEC_REQUIRE_SERVICES"})
NOT_SETTINGS = frozenset(
    {
        # what clients read (the CLI and `voexec.client`): a server's address and a token
        "VOEXEC_URL",
        "VOEXEC_BROKER_TOKEN",
        "VOEXEC_TOKEN",
        # what a platform hands a running session, which may itself run `voexec`
        "VOEXEC_SESSION",
        "VOEXEC_DATA",
        "VOEXEC_OUTPUT",
        "VOEXEC_CORES",
        "VOEXEC_MEMORY_GIB",
    }
)
"""Variables of the `VOEXEC_` family that are not settings, so exporting one never stops a
server from starting with "unknown setting"."""
"""The one test switch older than the prefix (CI sets it), also ignored."""

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]


class _Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base of every settings group: unknown keys are errors, not silently ignored."""


# ------------------------------------------------------------------------- server, storage
class ServerSettings(_Settings, frozen=True):
    """Where the HTTP server listens and how it names itself."""

    host: str = "127.0.0.1"
    """Interface to bind; loopback by default."""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    """TCP port."""
    public_url: str | None = None
    """Absolute base URL used in `Location` headers and `meta.url` (default: from the request)."""
    max_body_bytes: PositiveInt = 1_048_576
    """Largest request body accepted, in bytes; larger bodies get 413."""


class DatabaseSettings(_Settings, frozen=True):
    """The SQL store: SQLite file by default, PostgreSQL at scale."""

    url: str = ""
    """SQLAlchemy URL; empty means `sqlite:///<data_dir>/voexec.db`."""


class TantivySearch(_Settings, frozen=True, tag="tantivy", tag_field="backend"):
    """Embedded search index on local disk (the default)."""

    path: str = ""
    """Index directory; empty means `<data_dir>/search`."""


class OpenSearchSearch(_Settings, frozen=True, tag="opensearch", tag_field="backend"):
    """An OpenSearch cluster shared by several voexec processes."""

    url: str = "http://127.0.0.1:9200"
    """Cluster URL."""
    index: str = "voexec-catalogue"
    """Alias the catalogue is served from; rebuilds create `<index>-<timestamp>` behind it."""
    username: str | None = None
    password: str | None = None
    verify_certs: bool = True


SearchSettings = TantivySearch | OpenSearchSearch


# ------------------------------------------------------------------------- broker
class GpuModel(_Settings, frozen=True):
    """One kind of accelerator on a platform."""

    model: str
    """Model name, e.g. `A100`."""
    memory: NonNegativeFloat
    """Memory per device, GiB."""
    count: PositiveInt = 1
    """How many devices of this model the platform has in all."""
    vendor: str = "nvidia"
    compute_capability: float | None = None
    """CUDA compute capability (NVIDIA), when known."""


class Capacity(_Settings, frozen=True):
    """What a platform has in all, shared by every session running on it."""

    cores: PositiveInt
    memory: NonNegativeFloat
    """GiB."""
    gpus: list[GpuModel] = []
    storage: NonNegativeFloat | None = None
    """GiB of scratch storage, when it is booked too."""


class RequestLimits(_Settings, frozen=True):
    """The most one request may have on a platform."""

    cores: PositiveInt | None = None
    memory: NonNegativeFloat | None = None
    gpus: NonNegativeInt | None = None
    duration: timedelta | None = None
    """Longest session (ISO-8601 duration, e.g. `P2D`)."""


class CostModel(_Settings, frozen=True):
    """Price of one hour of each resource; `unit` is a currency code or an allocation unit."""

    core_hour: NonNegativeFloat = 0.0
    gib_hour: NonNegativeFloat = 0.0
    gpu_hour: NonNegativeFloat = 0.0
    unit: str = "EUR"


class MaintenanceWindow(_Settings, frozen=True):
    """A period when the platform offers nothing.

    `interval` is an ISO-8601 interval, e.g. `2026-12-01T08:00:00Z/PT4H`.
    """

    interval: str
    reason: str = "maintenance"


class SimulatedBehaviour(_Settings, frozen=True):
    """How the simulated adapter walks the phases (it runs nothing)."""

    prepare: timedelta = timedelta(seconds=2)
    """How long PREPARING takes."""
    release: timedelta = timedelta(seconds=1)
    """How long RELEASING takes."""
    run: timedelta | None = None
    """How long the work runs before it finishes by itself; `null` runs to the offered end."""
    fail_in: Literal["PREPARING", "AVAILABLE", "RUNNING", "RELEASING"] | None = None
    """Scripted failure: the session fails in this phase."""
    python_version: str | None = None
    """The Python it pretends to run programs with (`3.11.7`); a program whose `python_version`
    it does not satisfy gets NO. None: any."""


ContainerRuntime = Literal["apptainer", "singularity", "podman"]


class LocalGpuSettings(_Settings, frozen=True):
    """How the `local` adapter hands the GPUs `capacity.gpus` declares to sessions.

    Each session booked with N GPUs gets N of `ids` that no other live session holds, picked
    when its work starts. A container gets them from the engine, through CDI (`cdi`) or as
    device files (`devices`); a program running as a process gets `CUDA_VISIBLE_DEVICES`.
    """

    ids: list[str] = []
    """The GPUs' ids as their devices are named (`0`, `1`, or `GPU-<uuid>`), one per device
    `capacity.gpus` declares; empty means `0` to N-1."""
    cdi: str = "nvidia.com/gpu"
    """The CDI device kind containers get their GPUs as (`--device nvidia.com/gpu=<id>` for
    each); a CDI spec for it naming every id must be in `cdi_spec_dirs` (`nvidia-ctk cdi
    generate`), or container requests with GPUs are answered NO. Empty: `devices` instead."""
    cdi_spec_dirs: list[str] = msgspec.field(default_factory=lambda: ["/etc/cdi", "/var/run/cdi"])
    """Where the CDI specs are (the engine's own folders)."""
    devices: dict[str, list[str]] = {}
    """Without CDI (`cdi: ""`): per GPU id, the device files a container gets with it
    (`--device`), e.g. `{"0": [/dev/nvidia0, /dev/nvidiactl, /dev/nvidia-uvm]}`."""


class LocalPlatformSettings(_Settings, frozen=True):
    """How the `local` adapter runs sessions as child processes of this machine.

    It runs whatever an accepted request names: give it only to trusted users (`write_tokens`)
    and, to be safe, limit where programs may come from (`sources`).
    """

    workdir: str = ""
    """Folder holding one working directory per session; empty means
    `<data_dir>/platforms/<platform name>`."""
    python: str = ""
    """Interpreter each session's fresh virtual environment is made from; empty means the one
    running voexec."""
    jupyter: str = "jupyter"
    """The `jupyter` command (its `nbconvert` runs notebooks); notebooks are refused when it is
    not found."""
    jupyter_server: str = "jupyter-server"
    """The command serving interactive sessions (a notebook executable without a notebook),
    found on PATH or beside voexec's interpreter; `none` refuses them."""
    listen: str = "127.0.0.1"
    """The address interactive sessions' Jupyter servers listen on (each on a free port)."""
    connector_host: str = ""
    """The host connector URLs name; empty means the `listen` address (this machine's name
    when it listens on every address, `0.0.0.0` or `::`)."""
    java: str = "java"
    """The JVM command that runs java-program executables; `none` refuses them."""
    container_engine: str = "podman"
    """The Docker-compatible command that runs docker-container images (`podman`, `docker`, or
    a path); `none` refuses them. Images are pulled by digest, run with the offered cores,
    memory and `container_pids` as limits and without network unless they publish ports."""
    registries: list[str] = []
    """Registries docker-container images may come from, as `host[:port]` (`docker.io`,
    `ghcr.io`, `127.0.0.1:5000`); an image from any other is refused at offer time. Empty
    refuses every image."""
    container_pids: PositiveInt = 4096
    """Most processes (and threads) a container may have at once (`--pids-limit`)."""
    container_runtime: Literal["auto", "apptainer", "singularity", "none"] = "auto"
    """What runs singularity-container images: `auto` takes apptainer or singularity, the first
    found on PATH; `none` refuses them."""
    sources: list[str] = []
    """URL prefixes programs, notebooks and Singularity images must start with; empty allows
    any (docker-container images are governed by `registries`)."""
    poll: timedelta = timedelta(seconds=2)
    """How often a running session is looked at."""
    grace: timedelta = timedelta(seconds=10)
    """How long a stopped program (or container) has between SIGTERM and SIGKILL."""
    limit_memory: bool = True
    """Cap each program's address space at the offered memory (RLIMIT_AS); containers get the
    offered memory as their memory limit instead."""
    gpus: LocalGpuSettings = LocalGpuSettings()
    """Which device each GPU of `capacity.gpus` is, and how containers get them."""
    startup_timeout: timedelta = timedelta(minutes=2)
    """How long an interactive session's server (a Jupyter server, a container publishing ports
    asking for access) may take to answer once started; past it the session fails, naming this
    setting and the server's last log lines, and the server is stopped. Also how long work
    booked with GPUs waits at its start for GPUs that an ending session still holds."""


class SlurmPlatformSettings(_Settings, frozen=True):
    """How the `slurm` adapter submits sessions as batch jobs to a Slurm cluster."""

    partition: str | None = None
    account: str | None = None
    extra_args: list[str] = []
    """More `sbatch` options, e.g. `["--qos=short"]`."""
    workdir: str = ""
    """Folder holding one working directory per session, seen at the same path by voexec and
    the compute nodes (a shared file system); empty means `<data_dir>/platforms/<name>`."""
    python: str = "python3"
    """The interpreter on the compute nodes that sessions' virtual environments are made from."""
    jupyter: str | None = None
    """The `jupyter` command on the compute nodes; notebooks are refused without it."""
    container_runtime: ContainerRuntime | None = None
    """What runs containers on the compute nodes; containers are refused without it."""
    sources: list[str] = []
    """URL prefixes programs, notebooks and images must start with; empty allows any."""
    sbatch: str = "sbatch"
    squeue: str = "squeue"
    sacct: str = "sacct"
    scancel: str = "scancel"
    command_timeout: timedelta = timedelta(seconds=20)
    """Longest wait for one Slurm command (the controller may be slow to answer)."""
    poll: timedelta = timedelta(seconds=5)
    """How often a session's job is looked at."""


class RemotePlatformSettings(_Settings, frozen=True):
    """How the `remote` adapter reaches another Execution Broker (federation)."""

    url: str
    """The other broker's API root, e.g. `https://broker.example.org/broker` (where its
    `/requests` and `/sessions/{uuid}` are)."""
    token_env: str | None = None
    """Environment variable holding the bearer token (or, with `auth: basic`, the password);
    none: anonymous."""
    auth: Literal["bearer", "basic"] = "bearer"
    """`basic` for brokers wanting HTTP Basic (the reference implementation)."""
    username_env: str | None = None
    """For `auth: basic`: the environment variable holding the user name."""
    timeout: timedelta = timedelta(seconds=5)
    """Longest wait for one answer; a request for offers never waits longer for this broker."""
    poll: timedelta = timedelta(seconds=2)
    """How soon an accepted session's remote phase is first looked at again."""
    poll_max: timedelta = timedelta(minutes=1)
    """The longest gap between looks while the remote phase stays the same (the backoff)."""
    failures_to_open: PositiveInt = 3
    """Failures in a row (unreachable, too slow, 5xx) after which it is not asked for a while."""
    open_for: timedelta = timedelta(minutes=1)
    """How long it is not asked then (the circuit is open)."""
    give_up: timedelta = timedelta(hours=1)
    """How long after a session's offered end an unreachable broker is still waited for before
    the session fails."""


class S3Credentials(_Settings, frozen=True):
    """The key pair a platform reads S3 data and writes S3 results with (never a request's)."""

    access_key: str = ""
    secret_key: str = ""
    session_token: str = ""
    region: str = ""
    """Signing region; empty: `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`."""


class HttpCredentials(_Settings, frozen=True):
    """What a platform sends with the results it PUTs under one URL prefix (never a request's).

    Either a bearer token (`bearer`, or the environment variable `bearer_env` names) or HTTP
    Basic (`username` and `password`, each also from a variable: `username_env`,
    `password_env`). Values from variables are read from voexec's environment when an offer is
    made (a variable that is not set makes the destination a NO) and when the upload starts.
    """

    prefix: str
    """URL prefix they are sent under (`https://store.example.org/upload/`); for a destination
    under several, the longest prefix wins."""
    bearer: str = ""
    bearer_env: str = ""
    username: str = ""
    username_env: str = ""
    password: str = ""
    password_env: str = ""

    def __repr__(self) -> str:
        """The prefix and where the values come from; never a secret."""
        given = [
            f"{name}="
            + ("$" + getattr(self, f"{name}_env") if getattr(self, f"{name}_env") else "***")
            for name in ("bearer", "username", "password")
            if getattr(self, name) or getattr(self, f"{name}_env")
        ]
        return f"HttpCredentials(prefix={self.prefix!r}, {', '.join(given)})"

    def __post_init__(self) -> None:
        """Refuse entries that give no method, both methods or one value twice."""
        if not self.prefix.startswith(("http://", "https://")):
            raise ValueError("prefix: give an http(s) URL prefix")
        token = bool(self.bearer or self.bearer_env)
        user = bool(self.username or self.username_env)
        secret = bool(self.password or self.password_env)
        if token and (user or secret):
            raise ValueError("give a bearer token or a username and password, not both")
        if not token and not (user and secret):
            raise ValueError(
                "give bearer (or bearer_env), or username and password (or their _env)"
            )
        for name in ("bearer", "username", "password"):
            if getattr(self, name) and getattr(self, f"{name}_env"):
                raise ValueError(f"give {name} or {name}_env, not both")


class PlatformResultsSettings(_Settings, frozen=True):
    """Where a platform may write a session's results (results storage kinds); empty: nowhere.

    Checked at offer time: a request naming a destination outside these is answered NO.
    """

    s3: list[str] = []
    """S3 endpoints (`https://s3.example.net`, `http://127.0.0.1:9000`) results may be written
    to, signed with `data.s3`'s keys (else voexec's `AWS_*` variables)."""
    http: list[str] = []
    """URL prefixes (`https://store.example.org/upload/`) under which results may be PUT."""
    files: list[str] = []
    """Folders on the platform under which results may be copied (`/srv/results`)."""
    http_credentials: list[HttpCredentials] = []
    """Credentials sent with the PUTs under each URL prefix (bearer or Basic); a destination
    under none of them is written without."""


def _loopback(url: str) -> bool:
    """Whether `url`'s host is this machine (`localhost`, 127.0.0.0/8, `::1`)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class RucioServer(_Settings, frozen=True):
    """A Rucio server a platform resolves Rucio data (scope:name) through, with its own account.

    The account's credentials come from these settings (or environment variables they name),
    never from a request: a token (`token`, `token_env`), else userpass (`username` with
    `password` or `password_env`), exchanged at `{url}/auth/userpass` for a token kept until it
    expires.
    """

    url: str
    """The REST API's base URL (`https://rucio.example.org`); a request's Rucio `endpoint` must
    be this URL (or give none: the platform's first server)."""
    account: str
    """The Rucio account the platform acts as."""
    username: str = ""
    password: str = ""
    password_env: str = ""
    token: str = ""
    token_env: str = ""
    vo: str = ""
    """The VO of a multi-VO server; empty: the server's default."""
    close_rses: list[str] = []
    """RSEs this platform is close to: a replica on one is read in place (its `file` PFN, else
    its first http(s) one) and moves nothing, so the offer's preparation adds no transfer."""
    max_files: PositiveInt = 1000
    """Most files one Rucio data item (a dataset or container) may hold; more is a refusal
    naming the item and this limit."""
    probe_budget: timedelta = timedelta(seconds=20)
    """Longest time the replicas of one data item's files are probed for, all together (a
    few at once, each for at most `data.probe_timeout`); past it the item is refused."""
    allow_http: bool = False
    """Allow an `http://` URL to a host other than this machine (loopback), over which the
    password and the token travel unencrypted; an `http://` URL is refused otherwise."""

    def __repr__(self) -> str:
        """The server and account; never a secret."""
        return f"RucioServer(url={self.url!r}, account={self.account!r})"

    def __post_init__(self) -> None:
        """Refuse a server without an http(s) URL, or without any way to get a token."""
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url: give the Rucio server's http(s) URL")
        if self.url.startswith("http://") and not (self.allow_http or _loopback(self.url)):
            raise ValueError(
                "url: an http:// Rucio URL sends the credentials unencrypted; give its https:// "
                "URL (or set allow_http: true)"
            )
        if not (
            self.token or self.token_env or (self.username and (self.password or self.password_env))
        ):
            raise ValueError(
                "give token (or token_env), or username and password (or password_env)"
            )
        for name in ("token", "password"):
            if getattr(self, name) and getattr(self, f"{name}_env"):
                raise ValueError(f"give {name} or {name}_env, not both")
        if self.probe_budget <= timedelta(0):
            raise ValueError("probe_budget: give a positive time")


class IvoaResolverSettings(_Settings, frozen=True):
    """How a platform turns an `ivo://` publisher dataset identifier into its DataLink service."""

    datalink: dict[str, str] = {}
    """Identifier prefix (`ivo://example.org/archive`) -> that publisher's DataLink `{links}`
    endpoint (`https://example.org/archive/links`), asked with `?ID=<the identifier>`; the
    longest prefix wins, before any registry."""
    regtap: str = ""
    """A RegTAP registry's TAP endpoint (`https://reg.g-vo.org/tap`): the identifier's resource
    (the part before `?`) is looked up there for its DataLink capability. Empty: none."""


class PlatformDataSettings(_Settings, frozen=True):
    """How a platform reaches data: bandwidth to each source, local replicas, limits.

    Platforms that stage data for real (`local`, `slurm`) ask each data source for its size at
    offer time; their offers' preparation covers the transfer at these bandwidths.
    """

    check: Literal["auto", "always", "never"] = "auto"
    """Ask the sources at offer time: `auto` does for `local` and `slurm` (which stage for
    real), not for `simulated` and `remote`."""
    bandwidth: dict[str, Annotated[float, msgspec.Meta(gt=0)]] = {}
    """MiB/s to the hosts matching each pattern (`*.example.org`, `127.0.0.1:9000`), the
    first match wins."""
    default_bandwidth: Annotated[float, msgspec.Meta(gt=0)] = 100.0
    """MiB/s to any other host."""
    mirrors: dict[str, str] = {}
    """URL prefix -> local folder holding replicas (`https://archive.example.org/data/:
    /srv/mirror/`); S3 objects as `s3+ENDPOINT/BUCKET/`. A replica moves nothing."""
    max_size: NonNegativeFloat = 100.0
    """Largest data item staged, in GiB; 0: no limit."""
    probe_timeout: timedelta = timedelta(seconds=3)
    """Longest wait for one source's size at offer time."""
    probe_cache: timedelta = timedelta(seconds=60)
    """How long a source's answer (or failure) is kept."""
    s3: S3Credentials = S3Credentials()
    """Empty: the environment's `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, else unsigned."""
    rucio: list[RucioServer] = []
    """Rucio servers (with this platform's account) Rucio data is resolved through."""
    ivoa: IvoaResolverSettings = IvoaResolverSettings()
    """How IVOA identifiers without an access URL are resolved to DataLink services."""
    results: PlatformResultsSettings = PlatformResultsSettings()
    """Where session results may be uploaded to when a request names a destination."""


class PlatformSettings(_Settings, frozen=True):
    """One compute platform the broker offers."""

    name: str
    capacity: Capacity
    adapter: Literal["simulated", "local", "slurm", "remote"] = "simulated"
    executables: list[str] = msgspec.field(
        default_factory=lambda: ["docker-container", "jupyter-notebook", "python-program"]
    )
    """Executable kinds it runs: short names (`docker-container`) or kind URIs."""
    limits: RequestLimits = RequestLimits()
    cost: CostModel | None = None
    maintenance: list[MaintenanceWindow] = []
    preparation: timedelta = timedelta(seconds=30)
    """Time needed before a session's start (making the environment, pulling an image); an
    offer adds the time its data takes to move (`data`)."""
    data: PlatformDataSettings = PlatformDataSettings()
    """How the platform reaches data, and how fast."""
    simulated: SimulatedBehaviour = SimulatedBehaviour()
    local: LocalPlatformSettings = LocalPlatformSettings()
    """For `local`: how sessions run on this machine."""
    slurm: SlurmPlatformSettings = SlurmPlatformSettings()
    """For `slurm`: how sessions are submitted to the cluster."""
    remote: RemotePlatformSettings | None = None
    """For `remote`: which broker, and how to reach it."""
    description: str = ""


Strategy = Literal["earliest", "largest", "longest", "cheapest", "nearest-data"]


class BrokerSettings(_Settings, frozen=True):
    """The built-in IVOA Execution Broker."""

    platforms: list[PlatformSettings] = []
    offer_ttl: timedelta = timedelta(minutes=5)
    """How long an offer holds its capacity before it expires."""
    horizon: timedelta = timedelta(days=7)
    """How far ahead offers may start."""
    max_offers: PositiveInt = 4
    """Most offers in one offer set."""
    strategies: list[Strategy] = msgspec.field(
        default_factory=lambda: ["earliest", "largest", "longest", "cheapest"]
    )
    """Ranking strategies, each contributing offers in turn."""
    offer_above_minimum: float = 2.0
    """Offer up to this multiple of the requested minimum cores and memory (never above max)."""
    default_duration: timedelta = timedelta(minutes=30)
    """Duration used when a request gives none (the standard's talks: 30 minutes)."""
    default_start_window: timedelta = timedelta(hours=24)
    """Start range used when a request gives none: from now until this much later."""
    default_cores: PositiveInt = 2
    """Cores asked for when a request gives no minimum (or no compute resource at all)."""
    default_memory: NonNegativeInt = 2
    """GiB of memory asked for when a request gives no minimum (or no compute resource)."""
    held_offersets_per_requester: NonNegativeInt = 3
    """Most offer sets one requester may hold at once (with an offer still open); 0: no limit.

    The requester is the identity that asked (`auth`): a named token or an OpenID Connect
    subject, or the client's address on a voexec without identities."""
    tick: timedelta = timedelta(seconds=1)
    """How often the work queue is polled."""
    allow_anonymous_runs: bool = False
    """Callers without credentials may ask for offers and run (each as its address) even
    though `auth` configures identities; and a platform that runs code (`local`, `slurm`) may
    serve a voexec without identities. Only for a machine nobody else can reach. Without
    identities, writes are open whatever this says; it only lets such a voexec start."""


# ------------------------------------------------------------------------- who may do what
Role = Literal["researcher", "packager", "operator"]
"""What an identity may do (`core.auth.ROLE_PERMISSIONS`): a researcher asks for offers and
runs sessions; a packager also publishes to the catalogue; an operator may also act on anybody's
offers, sessions and entries."""

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
"""The SHA-256 of the empty token: never a valid entry."""


class NamedToken(_Settings, frozen=True):
    """One bearer token, kept as its SHA-256 only (`voexec token new NAME` prints the entry)."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
    """Who holds it: recorded as the owner of what it asks for, and shown in logs."""
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
    """Lower-case hex SHA-256 of the token's UTF-8 bytes; the token itself is never stored."""
    role: Role = "researcher"


class OidcSettings(_Settings, frozen=True):
    """Bearer JWTs from an OpenID Connect provider, checked against its published keys."""

    issuer: str
    """The `iss` every token must carry, e.g. `https://login.example.org/realms/astro`."""
    audience: str
    """The `aud` every token must name (the client id voexec is registered as)."""
    jwks_url: str
    """Where the provider publishes its signing keys (its `jwks_uri`)."""
    name_claim: str = "sub"
    """The claim that names the identity (`sub`, or e.g. `preferred_username`)."""
    role_claim: str | None = None
    """A claim holding a role name or a list of them (e.g. `groups`); mapped by `roles`."""
    roles: dict[str, Role] = {}
    """Claim value -> role; the strongest role any value maps to wins."""
    default_role: Role | None = "researcher"
    """The role of a valid token whose claim maps to none; `null` refuses such tokens (403)."""
    algorithms: list[str] = msgspec.field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    """Signature algorithms accepted; `none` and HMAC are never accepted."""
    leeway: timedelta = timedelta(seconds=30)
    """Clock skew tolerated on `exp` and `nbf`."""
    jwks_cache: timedelta = timedelta(hours=1)
    """How long fetched keys are used before being fetched again."""
    jwks_refetch_after: timedelta = timedelta(minutes=1)
    """A token signed by an unknown key (`kid`) fetches the keys again at most this often."""
    timeout: timedelta = timedelta(seconds=5)
    """Longest wait for the provider's keys."""


class RateLimit(_Settings, frozen=True):
    """At most `requests` in any `per`, with bursts up to `requests` (a token bucket)."""

    requests: PositiveInt
    per: timedelta


class RateLimits(_Settings, frozen=True):
    """Per identity (or per client address when anonymous), per kind of request; 429 past it."""

    enabled: bool = True
    offers: RateLimit = RateLimit(requests=30, per=timedelta(minutes=1))
    """Offer requests (API, catalogue hand-off, pages) and direct executions: each holds
    capacity."""
    sign_in: RateLimit = RateLimit(requests=10, per=timedelta(minutes=1))
    """Attempts at `POST /sign-in`, per client address."""
    publish: RateLimit = RateLimit(requests=60, per=timedelta(minutes=1))
    """Publishing and withdrawing catalogue entries."""
    webhooks: RateLimit = RateLimit(requests=60, per=timedelta(minutes=1))
    """Harvest webhook calls, per source and client address."""


class AuthSettings(_Settings, frozen=True):
    """Who may write: named tokens, OpenID Connect, rate limits (see docs/operator.md)."""

    tokens: list[NamedToken] = []
    """Named bearer tokens, as hashes. With neither tokens nor `oidc`, broker writes are open
    to anyone (local use) and nobody may publish."""
    oidc: OidcSettings | None = None
    owner_only_reads: bool = False
    """Offer sets and sessions are readable by their owner and operators only (else by anyone
    who knows their UUID)."""
    limits: RateLimits = RateLimits()


# ------------------------------------------------------------------------- catalogue & co
class CatalogueSettings(_Settings, frozen=True):
    """The catalogue of executables."""

    demo: bool = False
    """Load the demo catalogue and platforms at start (what `make run` does)."""
    page_size: PositiveInt = 20
    runnable_on_cache: timedelta = timedelta(seconds=30)
    """How long the broker's answer to "which platforms can run this kind with these needs"
    (the "runnable on" facet) is kept before the broker is asked again."""


class RegistrySettings(_Settings, frozen=True):
    """The IVOA publishing registry at `/registry/oai` (OAI-PMH, VOResource records)."""

    authority: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._~-]{2,}$")] = (
        "voexec.example"
    )
    """IVOA authority id of every record (`ivo://<authority>/...`); use one you registered."""
    title: str = "voexec catalogue of astronomy executables"
    """Title of the registry record and OAI-PMH `repositoryName`."""
    description: str = (
        "Astronomy executables (container images, notebooks, Python programs) that an IVOA "
        "Execution Broker can run, with their needs, subjects and licences."
    )
    publisher: str = "voexec"
    """Organisation named as publisher in every record and as the authority's managing org."""
    contact_name: str = "Catalogue operator"
    contact_email: Annotated[str, msgspec.Meta(pattern=r"^\S+@\S+\.\S+$")] = (
        "registry@voexec.example"
    )
    """OAI-PMH `adminEmail` and the contact of every record."""
    page_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    """Records per OAI-PMH page; longer lists continue with a resumption token."""
    broker_standard_id: str = "ivo://ivoa.net/std/ExecutionBroker"
    """`standardID` of the broker's capability (the Execution Broker WD fixes none yet)."""


class GitLabSource(_Settings, frozen=True, tag="gitlab", tag_field="type"):
    """A GitLab instance to harvest `ivoa-executable.yaml` files from."""

    name: str
    url: str
    groups: list[str] = []
    topics: list[str] = []
    token_env: str | None = None
    """Name of the environment variable holding the access token (never the token itself)."""
    file_path: str = "ivoa-executable.yaml"
    refs: list[Literal["default", "tags"]] = msgspec.field(
        default_factory=lambda: ["default", "tags"]
    )
    webhook_secret_env: str | None = None
    """Environment variable with the secret GitLab sends in `X-Gitlab-Token`."""


class OaiPmhSource(_Settings, frozen=True, tag="oai-pmh", tag_field="type"):
    """An IVOA publishing registry harvested over OAI-PMH."""

    name: str
    url: str
    set_spec: str | None = "ivo_managed"


class RegTapSource(_Settings, frozen=True, tag="regtap", tag_field="type"):
    """An IVOA searchable registry asked over RegTAP (TAP + ADQL on its `rr` tables).

    Each run asks for what `find` names: `brokers` (resources with an Execution Broker
    capability, listed in the report as candidate remote platforms, never configured by
    themselves) and `software` (software resources naming a voexec entry page, published
    into the catalogue as an `oai-pmh` source's records are).
    """

    name: str
    url: str
    """The registry's TAP base URL (its `/sync` endpoint is asked)."""
    find: list[Literal["brokers", "software"]] = msgspec.field(
        default_factory=lambda: ["brokers", "software"]
    )
    broker_standard_id: str = "ivo://ivoa.net/std/ExecutionBroker"
    """`standardID` of the broker capability looked for (compared in lower case, as RegTAP
    stores it); the default is what `registry.broker_standard_id` publishes."""
    timeout: timedelta = timedelta(seconds=60)
    """Longest wait for one answer of the registry (each retry waits this long again)."""
    max_records: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000
    """Most rows asked for per question."""


HarvestSource = GitLabSource | OaiPmhSource | RegTapSource


class HarvestSettings(_Settings, frozen=True):
    """Where metadata comes from."""

    sources: list[HarvestSource] = []
    allowed_hosts: list[str] = []
    """Hosts harvest may contact besides the configured source URLs."""
    max_retries: NonNegativeInt = 5
    readers: Annotated[int, msgspec.Meta(ge=1, le=32)] = 4
    """Requests a harvest has in flight at once (GitLab projects, OAI-PMH descriptions): enough
    to overlap round trips, few enough to stay polite (GitLab.com allows 2,000 API requests a
    minute per user; a 429's Retry-After is waited out by every reader)."""


class VocabularySettings(_Settings, frozen=True):
    """IVOA vocabularies: fetched from ivoa.net with an on-disk cache, or read from a folder."""

    base_url: str = "http://www.ivoa.net/rdf"
    path: str | None = None
    """A folder holding `<name>.desise`, `.ttl` or `.rdf` files; wins over `base_url`."""
    cache_dir: str = ""
    """Cache folder; empty means `<data_dir>/vocabularies`."""
    names: list[str] = msgspec.field(default_factory=lambda: ["uat", "messenger", "product-type"])
    """IVOA vocabularies to load besides our own."""
    offline: bool = False
    """Never fetch; use the cache or the folder only."""


class ValidateSettings(_Settings, frozen=True):
    """The conformance validator's web page, `/validate?url=`."""

    allowed_urls: list[str] = []
    """Broker base URLs the page may validate besides this server's own broker (always
    allowed); the page never calls any other URL."""


class Settings(_Settings, frozen=True):
    """Root of all configuration."""

    data_dir: str = "var"
    """Folder for the SQLite file, the search index and caches."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    search: SearchSettings = TantivySearch()
    auth: AuthSettings = AuthSettings()
    broker: BrokerSettings = BrokerSettings()
    catalogue: CatalogueSettings = CatalogueSettings()
    registry: RegistrySettings = RegistrySettings()
    harvest: HarvestSettings = HarvestSettings()
    vocabularies: VocabularySettings = VocabularySettings()
    validate: ValidateSettings = ValidateSettings()

    @property
    def database_url(self) -> str:
        """The SQL store URL, defaulting to a SQLite file in the data directory."""
        return self.database.url or f"sqlite:///{Path(self.data_dir) / 'voexec.db'}"


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def environment_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn `VOEXEC_A__B=value` variables into `{"a": {"b": value}}` (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        if name.startswith(TEST_ENV_PREFIX) or name in TEST_SWITCHES:
            continue  # the test suite's switches, not settings
        if name in NOT_SETTINGS:
            continue
        path = [part.lower() for part in name.removeprefix(ENV_PREFIX).split("__") if part]
        if not path:
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def _setting_name(error: msgspec.ValidationError) -> tuple[str, str]:
    text = str(error)
    reason, _, where = text.rpartition(" - at `")
    if not reason:
        reason, where = text, "$"
    name = where.rstrip("`").removeprefix("$").lstrip(".")
    unknown = reason.removeprefix("Object contains unknown field `")
    if unknown != reason:
        field = unknown.rstrip("`")
        return (f"{name}.{field}" if name else field), "unknown setting"
    return name or "(root)", reason


def settings_from_mapping(data: Mapping[str, Any]) -> Settings:
    """Validate a plain mapping as `Settings`; `ConfigError` names the bad setting."""
    _refuse_plain_tokens(data)
    try:
        settings = msgspec.convert(dict(data), Settings, strict=False)
    except msgspec.ValidationError as error:
        name, reason = _setting_name(error)
        raise ConfigError(f"setting {name}: {reason}") from error
    check_auth(settings)
    return settings


MIN_TOKEN_CHARS = 32
"""Shortest token worth keeping; `voexec token new` makes 47 characters (256 random bits)."""
PLAIN_TOKEN_LISTS = {
    ("broker", "write_tokens"): "researcher",
    ("catalogue", "publish_tokens"): "packager",
}
"""The lists of plain tokens of earlier releases, and the role their holders had."""
RUNS_CODE = frozenset({"local", "slurm"})
"""Platform adapters that run what a request names."""


def _refuse_plain_tokens(data: Mapping[str, Any]) -> None:
    """Refuse the plain token lists of earlier releases, printing the entries to paste instead.

    Tokens kept in the clear in a settings file end up in backups, repositories and process
    listings; refusing them at once (rather than reading them for a while) means no voexec runs
    with them unnoticed. The message carries each strong token's hashed entry, so the move is
    one paste; a short one is not carried over: it must be replaced.
    """
    lines: list[str] = []
    found: list[str] = []
    for (group, key), role in PLAIN_TOKEN_LISTS.items():
        section = data.get(group)
        if not isinstance(section, Mapping) or key not in section:
            continue
        found.append(f"{group}.{key}")
        tokens = section[key] if isinstance(section[key], list) else [section[key]]
        for number, token in enumerate(tokens, start=1):
            text = "" if token is None else str(token)
            name = f"{key.removesuffix('_tokens')}-{number}"
            if len(text) < MIN_TOKEN_CHARS:
                lines.append(
                    f"    # {group}.{key}[{number - 1}] is too short ({len(text)} characters) "
                    f"to keep: run `voexec token new {name} --role {role}`"
                )
                continue
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            lines.append(f"    - {{name: {name}, sha256: {digest}, role: {role}}}")
    if found and not lines:
        raise ConfigError(
            f"setting {found[0]}: plain tokens are no longer read (they are kept as hashes under "
            f"auth.tokens, see `voexec token new`): remove {' and '.join(found)}"
        )
    if found:
        raise ConfigError(
            f"setting {found[0]}: plain tokens are no longer read; tokens are kept as hashes "
            f"under auth.tokens. Remove {' and '.join(found)} and paste instead (rename as you "
            "like):\nauth:\n  tokens:\n" + "\n".join(lines)
        )


def check_auth(settings: Settings) -> None:
    """Refuse settings that would let the wrong people in (called by `settings_from_mapping`).

    Raises:
        ConfigError: an empty token's hash, a name or hash given twice, or a platform that runs
            code on a broker anybody may write to without `broker.allow_anonymous_runs`.
    """
    names: set[str] = set()
    digests: set[str] = set()
    for number, token in enumerate(settings.auth.tokens):
        where = f"setting auth.tokens[{number}]"
        if token.sha256 == EMPTY_SHA256:
            raise ConfigError(f"{where}.sha256: is the hash of an empty token")
        if token.name in names:
            raise ConfigError(f"{where}.name: {token.name!r} names two tokens")
        if token.sha256 in digests:
            raise ConfigError(f"{where}.sha256: the same token is listed twice")
        names.add(token.name)
        digests.add(token.sha256)
    anonymous = not settings.auth.tokens and settings.auth.oidc is None
    running = [p.name for p in settings.broker.platforms if p.adapter in RUNS_CODE]
    if anonymous and running and not settings.broker.allow_anonymous_runs:
        raise ConfigError(
            f"setting auth.tokens: platform {running[0]!r} runs what a request names, and with "
            "no auth.tokens and no auth.oidc anybody who reaches this voexec may ask it to. "
            "Add tokens (`voexec token new NAME`), or set broker.allow_anonymous_runs: true "
            "if nobody else can reach this machine"
        )


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load settings from a YAML file (or `$VOEXEC_CONFIG`) and `VOEXEC_*` overrides."""
    environ = os.environ if environ is None else environ
    path = path or environ.get(CONFIG_ENV) or None
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise ConfigError(f"configuration file {file} does not exist") from error
        except yaml.YAMLError as error:
            raise ConfigError(f"configuration file {file} is not valid YAML: {error}") from error
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"configuration file {file} must hold a mapping at the top")
        data = loaded or {}
    return settings_from_mapping(_merge(data, environment_overrides(environ)))
