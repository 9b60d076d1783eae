"""Benchmarks, with their own runner; results go to docs/benchmarks.md.

Each `bench/bench_<name>.py` module has a `run() -> str` that measures, prints and returns its
Markdown section, which starts with its own `## Heading` line. `python -m bench` runs every
such module (or the ones named: `python -m bench offers search`) and rewrites, in
docs/benchmarks.md, the `## Machine` section and the section of each benchmark that ran,
leaving every other section as it is. Benchmarks are not tests: they assert nothing about
speed; the numbers are for people.

This package holds the helpers the modules share: `percentile`, `machine_section` and
`replace_section`.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
MACHINE_HEADING = "## Machine"
_INTRO = (
    "# Benchmarks\n\n"
    "Written by `python -m bench` (`make bench`): each `bench/bench_<name>.py` rewrites its own\n"
    "section. Numbers are from one run on the machine described first; compare runs on the\n"
    "same machine only.\n"
)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0.5 is the median, 0.99 the 99th percentile)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    # round() first so that 0.99 * 300 is 297, not 297.00000000000006 rounded up to 298.
    rank = math.ceil(round(fraction * len(ordered), 9))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def _command(*argv: str) -> str:
    if shutil.which(argv[0]) is None:
        return f"({argv[0]} not available)"
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    return done.stdout.strip("\n") or done.stderr.strip()


def machine_section() -> str:
    """The `## Machine` section: CPUs, memory and Python, as the commands report them."""
    cpu = "\n".join(_command("lscpu").splitlines()[:10])
    return "\n".join(
        [
            MACHINE_HEADING,
            "",
            f"- `nproc`: {_command('nproc')}",
            f"- Python {sys.version.split()[0]} ({platform.python_implementation()}), "
            f"{platform.system()} {platform.release()}",
            "- load average when measured (1, 5, 15 min): "
            + ", ".join(f"{load:.2f}" for load in os.getloadavg())
            + " (other work may share the CPUs)",
            "",
            "`lscpu | head`:",
            "",
            "```text",
            cpu,
            "```",
            "",
            "`free -g`:",
            "",
            "```text",
            _command("free", "-g"),
            "```",
            "",
        ]
    )


def replace_section(document: str, markdown: str) -> str:
    """`document` with the section headed like `markdown` replaced by it (or appended).

    A section runs from its `## Heading` line to the next `## ` heading or the end.
    """
    heading = markdown.splitlines()[0]
    if not heading.startswith("## "):
        raise ValueError(f"a section starts with its '## ' heading, not {heading!r}")
    body = markdown.rstrip("\n") + "\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: body, document, count=1).rstrip("\n") + "\n"
    return document.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"


def write_sections(sections: Sequence[str], path: Path = DOCS) -> None:
    """Replace (or append) each section in the benchmarks page, creating the page if needed."""
    document = path.read_text(encoding="utf-8") if path.exists() else _INTRO
    for markdown in sections:
        document = replace_section(document, markdown)
    path.write_text(document, encoding="utf-8")
