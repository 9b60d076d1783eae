"""`python -m bench [name ...]`: run the benchmarks and rewrite docs/benchmarks.md.

With no name, every `bench/bench_<name>.py` module runs, in alphabetical order; with names
(`offers`, or `bench_offers`), only those. Each module's `run()` returns its Markdown section;
the `## Machine` section and the sections of the benchmarks that ran are rewritten, the others
are kept. A benchmark that fails is reported and the others still run; the exit status is then
1 and its old section is left as it was.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path

from bench import DOCS, machine_section, write_sections


def available() -> list[str]:
    """The names of the benchmark modules (`offers` for `bench/bench_offers.py`)."""
    folder = Path(__file__).resolve().parent
    return sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules([str(folder)])
        if info.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (of: {', '.join(available())})"
    )
    parser.add_argument("--no-write", action="store_true", help=f"do not rewrite {DOCS.name}")
    arguments = parser.parse_args(argv)
    wanted = [name.removeprefix("bench_") for name in arguments.names] or available()
    unknown = sorted(set(wanted) - set(available()))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(available())})")
    sections, failed = [machine_section()], []
    for name in wanted:
        print(f"--- bench_{name}", flush=True)
        began = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            sections.append(module.run())
        except Exception:  # noqa: BLE001 - one broken benchmark must not lose the others' numbers
            traceback.print_exc()
            failed.append(name)
        print(f"--- bench_{name}: {time.perf_counter() - began:.1f} s", flush=True)
    if not arguments.no_write:
        write_sections(sections)
        print(f"wrote {DOCS}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
