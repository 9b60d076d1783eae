"""Java programs: one jar, checked against its digest, run on the platform's JVM.

The java-program kind (our extension, `broker.model.JavaProgram`) names a jar (`location`), its
SHA-256 (`digest`), the class to run (`main_class`; without one, the `Main-Class` of the jar's
manifest) and the Java versions it runs on (`java_version`: `17`, `>=11`, `>=11,<22`).

A platform runs it when it has a JVM whose version satisfies the constraint: `detect` asks
`java -version` once per command (the answer is cached for the life of the process) and
`refusals` says NO otherwise, naming the version found. The preparation fetches the jar into
`program/program.jar` and fails, naming both digests, when it is not the jar the request
pins; the work runs the JVM in `output/` with three quarters of the offered memory as its
largest heap (`-Xmx`; the rest is for the JVM itself) and the session's cores as the
processors it sizes its threads for. The JVM reserves far more address space than it uses, so
it is not run under the address-space cap Python programs get.

Pure (builds text, parses versions) except `detect`, which runs the JVM once per command.
"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from broker.model import JavaProgram, release_allows
from broker.platforms.port import PlatformError

if TYPE_CHECKING:
    from broker.platforms.port import SessionPlan
    from broker.platforms.recipe import Layout

__all__ = ["JAR", "Jvm", "detect", "java_version", "prepare_lines", "refusals", "run_lines"]

JAR: Final = "program/program.jar"
"""Where the fetched jar is kept, relative to the session's folder."""
HEAP_SHARE: Final = 0.75
"""The share of the offered memory the JVM's heap may take."""
DETECT_TIMEOUT: Final = 30
"""Seconds `java -version` may take."""
_VERSION: Final = re.compile(r'version "(\d+(?:[._]\d+)*)')
_ACTIVE_PROCESSORS_SINCE: Final = 10
"""The first Java release with `-XX:ActiveProcessorCount`."""


@dataclass(frozen=True, slots=True)
class Jvm:
    """The JVM a platform runs Java programs with, or why it has none."""

    command: str | None
    """The `java` command; None: Java programs are refused."""
    version: str | None = None
    """Its release (`17.0.15`; Java 8's `1.8.0_392` is `8.0.392`)."""
    missing: str = "no Java runtime is configured"
    """Why there is none, when `command` is None."""

    @property
    def major(self) -> int | None:
        """The feature release (17), when the version is known."""
        return int(self.version.split(".")[0]) if self.version else None


def java_version(text: str) -> str | None:
    """The release `java -version` names (its first line, on stderr), Java 8's `1.` dropped."""
    found = _VERSION.search(text)
    if found is None:
        return None
    release = found.group(1).replace("_", ".")
    return release.removeprefix("1.") if release.startswith("1.") else release


@functools.cache
def detect(command: str, setting: str) -> Jvm:
    """The JVM `command` runs, asked once per process; a `Jvm` without a command says why."""
    if command.strip() in {"", "none"}:
        return Jvm(None, missing=f"Java programs are turned off ({setting}: none)")
    try:
        answer = subprocess.run(  # noqa: S603 - the operator's configured JVM
            [command, "-version"],
            capture_output=True,
            text=True,
            timeout=DETECT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        return Jvm(None, missing=f"{command} was not found on PATH ({setting})")
    except (OSError, subprocess.SubprocessError) as error:
        return Jvm(None, missing=f"cannot run {command} -version ({setting}): {error}")
    version = java_version(answer.stderr + answer.stdout)
    if answer.returncode != 0 or version is None:
        said = (answer.stderr or answer.stdout).strip().splitlines()[:1]
        return Jvm(None, missing=f"{command} -version did not say its version: {said}")
    return Jvm(command, version)


def refusals(program: JavaProgram, jvm: Jvm) -> list[str]:
    """Why a platform with `jvm` cannot run `program`; empty when it can."""
    reasons = []
    if jvm.command is None:
        reasons.append(f"runs no Java programs: {jvm.missing}")
    elif (
        program.java_version
        and jvm.version
        and not release_allows(program.java_version, jvm.version)
    ):
        reasons.append(
            f"runs Java {jvm.version}, not Java {program.java_version} as the program asks"
        )
    if program.location is None:
        reasons.append("needs the jar's location to fetch it from")
    return reasons


def _q(value: object) -> str:
    return shlex.quote(str(value))


_CHECK_DIGEST: Final = (
    "import hashlib, sys; path, wanted = sys.argv[1:]; "
    "found = 'sha256:' + hashlib.sha256(open(path, 'rb').read()).hexdigest(); "
    "sys.exit(None if found == wanted else "
    "f'the jar is {found}, not {wanted} as the request says')"
)


def prepare_lines(program: JavaProgram, python: str, fetcher: str) -> list[str]:
    """Fetch the jar; check its digest when the request pins one."""
    if program.location is None:
        raise PlatformError("the Java program has no location to fetch it from")
    lines = [f"{_q(python)} {fetcher} file {_q(program.location)} {JAR}"]
    if program.digest:
        lines.append(f"{_q(python)} -c {_q(_CHECK_DIGEST)} {JAR} {_q(program.digest)}")
    return lines


def run_lines(plan: SessionPlan, program: JavaProgram, jvm: Jvm, layout: Layout) -> list[str]:
    """Run the jar's main class (or its manifest's) with the session's memory and cores."""
    if jvm.command is None:
        raise PlatformError(f"cannot run Java programs: {jvm.missing}")
    heap = max(16, int(plan.memory * 1024 * HEAP_SHARE))
    options = [f"-Xmx{heap}m"]
    if (jvm.major or 0) >= _ACTIVE_PROCESSORS_SINCE:
        options.append(f"-XX:ActiveProcessorCount={plan.cores}")
    jar = _q(layout.root / JAR)
    what = f"-cp {jar} {_q(program.main_class)}" if program.main_class else f"-jar {jar}"
    return [f"exec {_q(jvm.command)} {' '.join(options)} {what}"]
