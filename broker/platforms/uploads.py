"""Steps run on the platform's host for a session: the results' upload, the data's staging.

The results (local and slurm):

When a request names results destinations (`results_plan`), the release asks for the upload
(`ResultsUploader.want`, the marker `state/upload.wanted`); once nothing of the work runs (the
local processes are gone, the Slurm job has left the queue), `start` checks the destinations
against the platform's `data.results` settings as they are now, writes `upload.sh` and starts
it under `session_runner.py`, detached like the other steps. The step runs
`session_results.py` once per destination, with the platform's S3 keys and, per http(s)
destination, the `Authorization` header of its credentials in an environment variable (never
in a file of the session's folder). Nothing of the request runs in it.

`observe` follows the step; when it is done, the release is: the session gets one
`urn:voexec:results` message per object written (name, location, bytes, sha256, the store's
etag; the first `RESULTS_LISTED`) and a note with the total. A failed upload fails the session
with the step's reason (the HTTP status, the bucket...) and keeps the output where it was.

On Slurm this runs on the broker's host, reading the job's output folder through the shared
file system the adapter already needs (see docs/platforms.md).

The data (slurm): a batch job gets a clean environment and never the platform's credentials,
so the data items that need them (`recipe.needs_credentials`: S3 objects, when the platform has
S3 keys) are staged by the broker's host before the job is submitted (`DataStager`): `stage.sh`
(`recipe.stage_script`) under `session_runner.py`, with the platform's S3 keys in its
environment only, writing into the session's `data/` on the shared file system. The adapter
follows it through its state files (`stage.pid`, `stage.exit`, `stage.item`: the item being
staged), so a restarted broker finds it where it is; a failure names the item; a cancel stops
it (SIGTERM to its process group, SIGKILL after the grace).

Imports `core`, the broker's lifecycle, model and ports, and the platform helpers; starts
processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal

import msgspec

from broker.lifecycle import Failed, PlatformCheckDue, ReleaseDone
from broker.model import MessageItem, message_item
from broker.platforms import processes
from broker.platforms.data_plan import human_bytes
from broker.platforms.data_reach import s3_credentials
from broker.platforms.port import (
    DataSource,
    PlatformError,
    PlatformReport,
    ResultsTarget,
    SessionPlan,
)
from broker.platforms.recipe import (
    FETCHER,
    S3_CLIENT,
    STAGED_ITEM,
    UPLOADER,
    Layout,
    Tools,
    data_source,
    needs_credentials,
    stage_script,
    upload_script,
)
from broker.platforms.results_plan import checked_targets, http_authorization
from core.settings import PlatformDataSettings

__all__ = [
    "RESULTS_LISTED",
    "RESULTS_MESSAGE",
    "UPLOAD_TIME",
    "UPLOAD_WANTED",
    "DataStager",
    "ResultsUploader",
    "Staging",
    "launch_step",
    "log_tail",
    "mask_secrets",
    "results_written",
    "s3_environment",
]

HERE: Final = Path(__file__).resolve().parent
RUNNER: Final = HERE / "session_runner.py"
UPLOAD_WANTED: Final = "upload.wanted"
"""In `state/`: the release asked for the results to be uploaded once the work has stopped."""
UPLOAD_TIME: Final = timedelta(hours=6)
"""The longest an upload of results may take (from its start)."""
RESULTS_LISTED: Final = 200
"""Objects listed one message each; beyond, the session says how many more the log lists."""
RESULTS_MESSAGE: Final = "urn:voexec:results"
"""The kind of the message naming one object written to a results destination."""
LAUNCH_TIMEOUT: Final = 30
"""Seconds the runner's launcher may take to say the step has started."""
_KEPT_ENVIRONMENT: Final = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
_STEP: Final = "upload"
_STAGE: Final = "stage"
_AUTHORIZATION: Final = "VOEXEC_RESULTS_AUTHORIZATION_{}"
"""The variable holding the `Authorization` header of the n-th http(s) destination."""


def results_written(log: Path) -> list[dict[str, object]]:
    """The objects the upload step wrote, from its `result {json}` lines."""
    written = []
    for line in (_read(log) or "").splitlines():
        if line.startswith("result "):
            try:
                record = json.loads(line.removeprefix("result "))
            except ValueError:
                continue  # not one of the step's own lines
            if isinstance(record, dict):
                written.append(record)
    return written


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None


def s3_environment(data: PlatformDataSettings) -> dict[str, str]:
    """The `AWS_*` variables of the platform's S3 keys; empty when it has none."""
    keys = s3_credentials(data)
    if not keys.signs:
        return {}
    found = {
        "AWS_ACCESS_KEY_ID": keys.access_key,
        "AWS_SECRET_ACCESS_KEY": keys.secret_key,
        "AWS_REGION": keys.region,
    }
    return found | ({"AWS_SESSION_TOKEN": keys.session_token} if keys.session_token else {})


def launch_step(
    plan: SessionPlan,
    layout: Layout,
    step: str,
    *,
    deadline: datetime,
    grace: timedelta,
    secrets: dict[str, str],
    what: str,
    options: Sequence[str] = (),
) -> None:
    """Start `<step>.sh` of the session's folder under the runner, detached, on this host.

    Its environment is this host's `PATH` and locale, the session's mark and `secrets` (the
    platform's credentials: they are in no file); `options` go to the runner (`--memory`, a
    container to stop by name). Returns once the runner recorded its pid.

    Raises:
        PlatformError: the runner could not be started (`what` says which step it was).
    """
    root = Path(layout.root)
    for folder in (root / "state", Path(layout.logs)):
        folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-I",
        str(RUNNER),
        "--state",
        str(root / "state"),
        "--step",
        step,
        "--cwd",
        str(root),
        "--out",
        str(layout.log(step, "out")),
        "--err",
        str(layout.log(step, "err")),
        "--deadline",
        str(deadline.timestamp()),
        "--grace",
        str(grace.total_seconds()),
        *options,
        "--",
        "/bin/sh",
        f"{step}.sh",
    ]
    environment = {name: os.environ[name] for name in _KEPT_ENVIRONMENT if name in os.environ}
    environment |= {"HOME": str(root), processes.MARK: plan.session_id} | secrets
    try:
        launched = subprocess.run(  # noqa: S603 - our runner, with the session's own step
            command,
            env=environment,
            capture_output=True,
            text=True,
            timeout=LAUNCH_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PlatformError(f"cannot start {what}: {error}") from error
    if launched.returncode != 0:
        said = launched.stderr.strip() or f"exit code {launched.returncode}"
        raise PlatformError(f"cannot start {what}: {said}")


TAIL_BYTES: Final = 64 * 1024
"""How much of the end of a log the last lines of a failure reason are taken from."""

_SECRETS: Final = (
    # URL query and form values: Jupyter's `?token=...`, `access_token=`, `password=`, ...
    (
        re.compile(
            r"(?i)\b((?:access_|auth_|api_|refresh_|id_)?token|api_?key|password|passwd|secret"
            r"|signature|x-amz-signature|x-amz-credential|x-amz-security-token)=[^\s&;'\"]+"
        ),
        r"\1=***",
    ),
    # HTTP headers carrying credentials, to the end of the line
    (re.compile(r"(?i)\b((?:proxy-)?authorization|cookie|x-auth-token)\s*:\s*\S.*"), r"\1: ***"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    # a user name and password in a URL
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@"), r"\1***@"),
)


def mask_secrets(line: str) -> str:
    """`line` with the secrets a program may log (tokens, credentials) replaced by `***`."""
    for pattern, replacement in _SECRETS:
        line = pattern.sub(replacement, line)
    return line


def log_tail(path: Path, lines: int = 5, limit: int = 600) -> str:
    """The last `lines` non-blank lines of a log, masked, joined, at most `limit` characters.

    Reads only the last `TAIL_BYTES` of the file: a program writing gigabytes to its log does
    not make the broker read them.
    """
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - TAIL_BYTES)
            handle.seek(start)
            data = handle.read(TAIL_BYTES)
    except FileNotFoundError:
        return ""
    _, newline, rest = data.partition(b"\n")
    if start and newline and rest.strip():
        data = rest  # the first line is cut: leave it out, unless it is the only one
    text = data.decode("utf-8", errors="replace")
    kept = [mask_secrets(line) for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(line.strip() for line in kept)[-limit:]


@dataclass(frozen=True, slots=True)
class ResultsUploader:
    """Uploads the output folder of a platform's sessions to their results destinations."""

    platform: str
    """The platform's name, in the messages."""
    data: PlatformDataSettings
    """Its data settings: the S3 keys and `results` (destinations, http credentials)."""
    poll: timedelta
    """How soon the step is looked at again."""
    grace: timedelta = timedelta(seconds=10)
    """How long the step has between SIGTERM and SIGKILL when its time is up."""
    python: str = sys.executable
    """The interpreter the step runs `session_results.py` with (this host's)."""

    # ------------------------------------------------------------------ what the adapter asks
    def want(self, plan: SessionPlan, state: Path) -> None:
        """The release asks for the upload (when the request names destinations)."""
        if plan.results and state.exists():
            (state / UPLOAD_WANTED).write_text("yes\n")

    def wanted(self, plan: SessionPlan, state: Path) -> bool:
        """Whether an upload was asked for and has not started yet."""
        return bool(plan.results) and (state / UPLOAD_WANTED).exists() and not self.started(state)

    @staticmethod
    def started(state: Path) -> bool:
        """Whether the upload step was started (it may have ended since)."""
        return (state / f"{_STEP}.pid").exists()

    def start(self, plan: SessionPlan, layout: Layout, now: datetime) -> list[PlatformReport]:
        """Write the upload step for the destinations as the settings allow them now, start it."""
        targets, refused = checked_targets(plan.results, self.data.results)
        authorization, missing = self._authorization(targets)
        refused += missing
        if refused:
            why = "; ".join(refused)
            reason = f"the results were not uploaded: {why}; the output is kept in {layout.output}"
            return [PlatformReport(now, Failed(reason=reason))]
        root = Path(layout.root)
        shutil.copyfile(HERE / UPLOADER, root / UPLOADER)
        shutil.copyfile(HERE / S3_CLIENT, root / S3_CLIENT)
        variables = {
            destination: _AUTHORIZATION.format(number)
            for number, destination in enumerate(authorization)
        }
        script = upload_script(
            replace(plan, results=targets), Tools(python=self.python), layout, variables
        )
        Path(layout.script(_STEP)).write_text(script)
        secrets = {variables[d]: header for d, header in authorization.items()}
        self._launch(plan, layout, max(plan.end, now) + UPLOAD_TIME, secrets)
        where = ", ".join(target.destination for target in targets)
        return [self._poll_report(now, f"uploading the output folder to {where}")]

    def observe(self, plan: SessionPlan, layout: Layout, now: datetime) -> list[PlatformReport]:
        """How the upload goes: still running, done (the results listed) or failed."""
        state = Path(layout.state)
        code = _read(state / f"{_STEP}.exit")
        err = layout.log(_STEP, "err")
        if code is None:
            pid = _read(state / f"{_STEP}.pid")
            if pid and pid.isdigit() and processes.is_running(int(pid), plan.session_id):
                return [self._poll_report(now)]
            why = (
                "the upload of the results ended without an exit code (killed from outside?); "
                f"logs: {err}"
            )
        elif code == "0":
            return [self._uploaded(plan, layout, now)]
        else:
            said = f"exited with code {code}"
            if (state / f"{_STEP}.deadline").exists():
                said = f"did not finish within {UPLOAD_TIME}"
            tail = _read(state / f"{_STEP}.error") or log_tail(Path(err))
            why = f"the upload of the results {said}" + (f": {tail}" if tail else "")
            why += f" (log: {err})"
        return [PlatformReport(now, Failed(reason=f"{why}; the output is kept in {layout.output}"))]

    # ------------------------------------------------------------------ internals
    def _authorization(
        self, targets: tuple[ResultsTarget, ...]
    ) -> tuple[dict[str, str], list[str]]:
        """The `Authorization` header per http(s) destination with credentials, or why not."""
        headers: dict[str, str] = {}
        missing: list[str] = []
        for target in targets:
            if not target.destination.startswith(("http://", "https://")):
                continue
            header, why = http_authorization(target.destination, self.data.results)
            if why:
                missing.append(f"results {target.name!r}: {why}")
            elif header:
                headers[target.destination] = header
        return headers, missing

    def _poll_report(self, now: datetime, note: str | None = None) -> PlatformReport:
        return PlatformReport(now + self.poll, PlatformCheckDue(), note)

    def _launch(
        self, plan: SessionPlan, layout: Layout, deadline: datetime, secrets: dict[str, str]
    ) -> None:
        """Start `upload.sh` under the runner; returns once its pid is recorded."""
        variables = s3_environment(self.data) | secrets
        launch_step(
            plan,
            layout,
            _STEP,
            deadline=deadline,
            grace=self.grace,
            secrets=variables,
            what="the upload of the results",
        )

    def _uploaded(self, plan: SessionPlan, layout: Layout, now: datetime) -> PlatformReport:
        """The release is done: each object written is a message, with its checksums."""
        written = results_written(Path(layout.log(_STEP, "out")))
        messages: list[MessageItem] = []
        for record in written[:RESULTS_LISTED]:
            item = message_item(
                RESULTS_MESSAGE,
                "{platform}: {name} written to {location} ({bytes} bytes, sha256 {sha256})",
                time=now,
                platform=self.platform,
                name=record.get("name", ""),
                location=record.get("location", ""),
                bytes=record.get("bytes", ""),
                sha256=record.get("sha256", ""),
            )
            if record.get("etag"):  # what the store says it holds (S3: its ETag)
                values = {**item.values, "etag": str(record["etag"])}
                item = msgspec.structs.replace(item, values=values)
            messages.append(item)
        total = sum(int(str(record.get("bytes", 0))) for record in written)
        where = ", ".join(target.destination for target in plan.results)
        note = f"results: {len(written)} file(s), {human_bytes(total)}, written to {where}"
        if len(written) > RESULTS_LISTED:
            note += (
                f"; {len(written) - RESULTS_LISTED} more than listed here are in "
                f"{layout.log(_STEP, 'out')}"
            )
        return PlatformReport(now, ReleaseDone(), note, messages=tuple(messages))


# ----------------------------------------------------------------------------- the data
@dataclass(frozen=True, slots=True)
class Staging:
    """How the host's staging of a session's data goes."""

    state: Literal["running", "staged", "failed"]
    reason: str = ""
    """Why it failed, naming the item."""
    item: str = ""
    """The item it was staging last."""


@dataclass(frozen=True, slots=True)
class DataStager:
    """Stages, on the platform's host, the data items that need the platform's credentials."""

    data: PlatformDataSettings
    """The platform's data settings: its S3 keys."""
    poll: timedelta
    """How soon the step is looked at again."""
    grace: timedelta = timedelta(seconds=10)
    """How long the step has between SIGTERM and SIGKILL when it is stopped."""
    python: str = sys.executable
    """The interpreter the step runs `session_fetch.py` with (this host's)."""

    def needed(self, plan: SessionPlan, tools: Tools) -> tuple[DataSource, ...]:
        """The session's data items the host stages: those needing the platform's credentials.

        Raises:
            PlatformError: an item has no URL to fetch it from.
        """
        keys = s3_credentials(self.data).signs
        return tuple(
            item for item in plan.data if needs_credentials(data_source(item, tools), s3_keys=keys)
        )

    @staticmethod
    def started(state: Path) -> bool:
        """Whether the staging step was started (it may have ended since)."""
        return (state / f"{_STAGE}.pid").exists()

    def start(
        self,
        plan: SessionPlan,
        layout: Layout,
        items: Sequence[DataSource],
        tools: Tools,
        now: datetime,
    ) -> PlatformReport:
        """Write `stage.sh` for `items` and start it; the report asks for the next look."""
        root = Path(layout.root)
        here = Tools(python=self.python, mirrors=tools.mirrors, max_data_bytes=tools.max_data_bytes)
        names = {item.name for item in items}
        Path(layout.script(_STAGE)).write_text(stage_script(plan, here, layout, names))
        for helper in (FETCHER, S3_CLIENT):
            shutil.copyfile(HERE / helper, root / helper)
        deadline = max(plan.end, now)  # nothing of the session runs after its end
        variables = s3_environment(self.data)
        launch_step(
            plan,
            layout,
            _STAGE,
            deadline=deadline,
            grace=self.grace,
            secrets=variables,
            what="the staging of the data",
        )
        listed = ", ".join(repr(item.name) for item in items)
        note = f"staging data {listed} on the broker's host with the platform's credentials"
        return PlatformReport(now + self.poll, PlatformCheckDue(), note)

    def observe(self, plan: SessionPlan, layout: Layout) -> Staging:
        """Whether the step still runs, has staged everything, or failed (and why)."""
        state = Path(layout.state)
        code = _read(state / f"{_STAGE}.exit")
        item = _read(state / STAGED_ITEM) or "?"
        err = layout.log(_STAGE, "err")
        if code == "0":
            return Staging("staged")
        if code is None:
            if self._running(plan, state) is not None:
                return Staging("running")
            why = "ended without an exit code (killed from outside?)"
        elif (state / f"{_STAGE}.deadline").exists():
            why = "did not finish by the session's end"
        else:
            why = _read(state / f"{_STAGE}.error") or log_tail(Path(err)) or f"exit code {code}"
        reason = f"data {item!r} could not be staged on the broker's host: {why} (log: {err})"
        return Staging("failed", reason, item)

    def stop(self, plan: SessionPlan, state: Path) -> bool:
        """Stop the step if it runs (its runner stops its group); True when it was running."""
        pid = self._running(plan, state)
        if pid is None:
            return False
        processes.signal_processes([], signal.SIGTERM, group=pid)
        return True

    @staticmethod
    def _running(plan: SessionPlan, state: Path) -> int | None:
        pid = _read(state / f"{_STAGE}.pid")
        if pid and pid.isdigit() and processes.is_running(int(pid), plan.session_id):
            return int(pid)
        return None
