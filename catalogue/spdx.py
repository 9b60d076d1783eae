"""SPDX licence identifiers and expressions: checking what packagers write in `licence`.

Pure. Knows the identifiers research software actually uses (not the whole SPDX list of ~600:
an id outside this list is almost always a typo here, and `LicenseRef-...` remains available for
the rest). Matching is case-insensitive as the SPDX specification says; answers use the
canonical spelling. Deprecated ids (`GPL-3.0`) are accepted with a warning naming the
replacement.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Final

LICENCES: Final[tuple[str, ...]] = (
    "0BSD", "AFL-3.0", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-1.1", "Apache-2.0",
    "APSL-2.0", "Artistic-1.0", "Artistic-2.0", "BlueOak-1.0.0", "BSD-1-Clause",
    "BSD-2-Clause", "BSD-2-Clause-Patent", "BSD-3-Clause", "BSD-3-Clause-Clear",
    "BSD-3-Clause-LBNL", "BSD-4-Clause", "BSL-1.0", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-NC-4.0",
    "CC-BY-NC-SA-4.0", "CC-BY-ND-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC0-1.0",
    "CDDL-1.0", "CDDL-1.1", "CECILL-2.1", "CECILL-B", "CECILL-C", "ECL-2.0", "EPL-1.0",
    "EPL-2.0", "EUPL-1.1", "EUPL-1.2", "GFDL-1.3-only", "GFDL-1.3-or-later", "GPL-1.0-only",
    "GPL-1.0-or-later", "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only",
    "GPL-3.0-or-later", "HPND", "ISC", "LGPL-2.0-only", "LGPL-2.0-or-later", "LGPL-2.1-only",
    "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later", "LPPL-1.3c", "MIT", "MIT-0",
    "MPL-1.1", "MPL-2.0", "MS-PL", "MS-RL", "MulanPSL-2.0", "NCSA", "ODbL-1.0", "OFL-1.1",
    "OSL-3.0", "PDDL-1.0", "PostgreSQL", "PSF-2.0", "Python-2.0", "Unlicense", "UPL-1.0",
    "Vim", "W3C", "WTFPL", "X11", "Zlib", "ZPL-2.1",
)  # fmt: skip

EXCEPTIONS: Final[tuple[str, ...]] = (
    "Autoconf-exception-3.0", "Bison-exception-2.2", "Classpath-exception-2.0",
    "GCC-exception-3.1", "LLVM-exception", "OpenJDK-assembly-exception-1.0",
)  # fmt: skip

DEPRECATED: Final[dict[str, str]] = {
    "AGPL-3.0": "AGPL-3.0-only",
    "GPL-2.0": "GPL-2.0-only",
    "GPL-2.0+": "GPL-2.0-or-later",
    "GPL-3.0": "GPL-3.0-only",
    "GPL-3.0+": "GPL-3.0-or-later",
    "LGPL-2.1": "LGPL-2.1-only",
    "LGPL-2.1+": "LGPL-2.1-or-later",
    "LGPL-3.0": "LGPL-3.0-only",
    "LGPL-3.0+": "LGPL-3.0-or-later",
    "GFDL-1.3": "GFDL-1.3-only",
}

# What people write instead of an SPDX id, mapped to what they most likely mean.
_COMMON_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "apache": ("Apache-2.0",),
    "apache2": ("Apache-2.0",),
    "apache 2": ("Apache-2.0",),
    "apache 2.0": ("Apache-2.0",),
    "apache license 2.0": ("Apache-2.0",),
    "bsd": ("BSD-3-Clause", "BSD-2-Clause"),
    "gpl": ("GPL-3.0-or-later", "GPL-3.0-only", "GPL-2.0-or-later"),
    "gplv2": ("GPL-2.0-only", "GPL-2.0-or-later"),
    "gplv3": ("GPL-3.0-only", "GPL-3.0-or-later"),
    "lgpl": ("LGPL-3.0-or-later", "LGPL-2.1-or-later"),
    "mit license": ("MIT",),
    "public domain": ("CC0-1.0", "Unlicense"),
    "cc-by": ("CC-BY-4.0",),
    "cc0": ("CC0-1.0",),
}

_OPERATORS: Final = {"AND", "OR", "WITH"}
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_BY_FOLDED: Final = {name.casefold(): name for name in (*LICENCES, *EXCEPTIONS)}
_DEPRECATED_FOLDED: Final = {name.casefold(): name for name in DEPRECATED}


@dataclass(frozen=True)
class LicenceCheck:
    """The result of checking a licence expression."""

    expression: str | None
    """Canonical spelling when valid, else None."""
    problem: str | None = None
    suggestions: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())


def _suggest(text: str) -> tuple[str, ...]:
    folded = text.strip().casefold()
    if folded in _COMMON_NAMES:
        return _COMMON_NAMES[folded]
    close = difflib.get_close_matches(folded, list(_BY_FOLDED), n=3, cutoff=0.6)
    return tuple(_BY_FOLDED[name] for name in close)


def check_licence(text: str) -> LicenceCheck:
    """Check an SPDX licence identifier or expression (`MIT`, `GPL-3.0-only OR MIT`).

    Returns the canonical expression, or a problem with suggestions for the likely intent.
    """
    tokens = _TOKEN.findall(text.strip())
    if not tokens:
        return LicenceCheck(
            None, "is empty: give an SPDX licence identifier", ("MIT", "Apache-2.0")
        )
    canonical: list[str] = []
    warnings: list[str] = []
    expect_id = True
    depth = 0
    for token in tokens:
        if token == "(":  # noqa: S105  (a parenthesis, not a password)
            depth += 1
            canonical.append(token)
            continue
        if token == ")":  # noqa: S105
            depth -= 1
            if depth < 0:
                return LicenceCheck(None, f"{text!r}: unbalanced parentheses")
            canonical.append(token)
            continue
        if token.upper() in _OPERATORS and not expect_id:
            canonical.append(token.upper())
            expect_id = True
            continue
        if not expect_id:
            return LicenceCheck(
                None, f"{text!r}: join licences with AND, OR or WITH", _suggest(text)
            )
        folded = token.casefold()
        if folded in _BY_FOLDED:
            canonical.append(_BY_FOLDED[folded])
        elif folded in _DEPRECATED_FOLDED:
            old = _DEPRECATED_FOLDED[folded]
            canonical.append(DEPRECATED[old])
            warnings.append(f"{old} is a deprecated SPDX id; recorded as {DEPRECATED[old]}")
        elif folded.startswith("licenseref-") and len(token) > len("LicenseRef-"):
            canonical.append("LicenseRef-" + token[len("LicenseRef-") :])
        else:
            known = _suggest(token) if len(tokens) > 1 else _suggest(text)
            return LicenceCheck(None, f"{token!r} is not an SPDX licence identifier", known)
        expect_id = False
    if expect_id or depth:
        return LicenceCheck(None, f"{text!r} is not a complete SPDX licence expression")
    expression = " ".join(canonical).replace("( ", "(").replace(" )", ")")
    return LicenceCheck(expression, warnings=tuple(warnings))
