"""SPDX licence identifiers and expressions: checking what packagers write in `licence`.

The one module that imports license-expression, whose data carries the whole SPDX licence and
exception lists. An expression is checked by that library's parser (ids joined with `AND`,
`OR`, `WITH` an exception, in parentheses); its ids must be SPDX ids, or `LicenseRef-...` for a
licence outside the list. Matching is case-insensitive as the SPDX specification says; answers
use the canonical spelling. Outdated ids (`GPL-3.0`, `GPL-2.0+`) are accepted with a warning
naming the current one. An unknown id is refused with the closest known ids.

No I/O but reading the SPDX list shipped with license-expression, once, on first use.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from license_expression import (  # type: ignore[import-untyped]
    PARSE_INVALID_EXCEPTION,
    PARSE_INVALID_SYMBOL_AS_EXCEPTION,
    PARSE_INVALID_SYMBOL_SEQUENCE,
    ExpressionError,
    LicenseSymbol,
    Licensing,
    get_spdx_licensing,
)

# What people write instead of an SPDX id, mapped to what they most likely mean. These names
# are never accepted as they are, even where the library knows them as an alias (it reads a
# bare `GPL` as GPL-1.0-or-later, which is rarely what the packager meant).
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

_LICENSE_REF: Final = "LicenseRef-"
_LICENSE_REF_PREFIX: Final = re.compile(r"(?i)(?<![\w.:-])licenseref-")
_TOKEN: Final = re.compile(r"[^\s()]+")
_PART: Final = re.compile(r"\(|\)|[^\s()]+")
_OPERATORS: Final = frozenset({"AND", "OR", "WITH"})
# A trailing version (`-2.0`, `.1`, `+`), so `MIT-2.0` also suggests `MIT`.
_VERSION_SUFFIX: Final = re.compile(r"(?:[-.]?\d[\w.]*|\+)$")
_SUGGESTIONS: Final = 3


@dataclass(frozen=True)
class LicenceCheck:
    """The result of checking a licence expression."""

    expression: str | None
    """Canonical spelling when valid, else None."""
    problem: str | None = None
    suggestions: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Spdx:
    """The SPDX ids, their outdated names, and a parser that knows exactly these."""

    licensing: Licensing
    licences: dict[str, str]
    """Case-folded licence id -> its canonical spelling."""
    exceptions: dict[str, str]
    """Case-folded exception id -> its canonical spelling."""
    outdated: dict[str, str]
    """Case-folded outdated id (`gpl-3.0`) -> the current canonical id (`GPL-3.0-only`)."""
    spellings: dict[str, str]
    """Case-folded licence or outdated licence id -> the canonical licence id it names."""


@functools.cache
def _spdx() -> _Spdx:
    # The library's list also carries ScanCode's own `LicenseRef-scancode-...` keys and aliases
    # (`LicenseRef-MIT-Bootstrap` reads as MIT): a packager's `LicenseRef-` is their own
    # licence, so those are left out, as are aliases with spaces and the common names above.
    symbols: list[LicenseSymbol] = []
    licences: dict[str, str] = {}
    exceptions: dict[str, str] = {}
    outdated: dict[str, str] = {}
    for key, symbol in get_spdx_licensing().known_symbols.items():
        if key.startswith(_LICENSE_REF):
            continue
        aliases = tuple(
            alias
            for alias in symbol.aliases
            if not alias.startswith(_LICENSE_REF)
            and " " not in alias
            and alias.casefold() not in _COMMON_NAMES
        )
        symbols.append(LicenseSymbol(key, aliases=aliases, is_exception=symbol.is_exception))
        (exceptions if symbol.is_exception else licences)[key.casefold()] = key
        outdated.update({alias.casefold(): key for alias in aliases})
    # Outdated names count as spellings of their current id, so `GPL-3` is near `GPL-3.0`.
    spellings = {
        **{name: key for name, key in outdated.items() if key.casefold() in licences},
        **licences,
    }
    return _Spdx(Licensing(symbols), licences, exceptions, outdated, spellings)


def _closest(text: str, known: dict[str, str]) -> tuple[str, ...]:
    """Up to three known ids spelled like `text`, the id without its version first."""
    folded = text.strip().casefold()
    found: list[str] = []
    stem = _VERSION_SUFFIX.sub("", folded)
    if stem != folded and stem in known:
        found.append(known[stem])
    found.extend(known[name] for name in difflib.get_close_matches(folded, list(known), n=3))
    return tuple(dict.fromkeys(found))[:_SUGGESTIONS]


def _suggest(text: str) -> tuple[str, ...]:
    folded = text.strip().casefold()
    if folded in _COMMON_NAMES:
        return _COMMON_NAMES[folded]
    return _closest(text, _spdx().spellings)


def _unknown_ids(ids: Iterable[str], spdx: _Spdx) -> list[str]:
    """The ids that are neither SPDX ids nor a well-formed `LicenseRef-...` of the packager."""
    return [
        key
        for key in ids
        if key.casefold() not in spdx.licences
        and key.casefold() not in spdx.exceptions
        and not (key.startswith(_LICENSE_REF) and len(key) > len(_LICENSE_REF) and " " not in key)
    ]


def _refused(text: str, error: ExpressionError) -> LicenceCheck:
    """The problem for an expression the parser refused, in the packager's terms."""
    code = getattr(error, "error_code", None)
    token = str(getattr(error, "token_string", "") or "")
    spdx = _spdx()
    if code == PARSE_INVALID_EXCEPTION:
        return LicenceCheck(
            None,
            f"{token!r} is a licence exception: write it after the licence it amends, with WITH"
            f" (`GPL-2.0-or-later WITH {token}`)",
        )
    if code == PARSE_INVALID_SYMBOL_AS_EXCEPTION and token.casefold() in spdx.licences:
        return LicenceCheck(
            None, f"{token!r} is a licence, not an exception: join licences with AND or OR"
        )
    if code == PARSE_INVALID_SYMBOL_AS_EXCEPTION:
        return LicenceCheck(
            None,
            f"{token!r} is not an SPDX licence exception",
            _closest(token, spdx.exceptions),
        )
    if code == PARSE_INVALID_SYMBOL_SEQUENCE:
        return LicenceCheck(None, f"{text!r}: join licences with AND, OR or WITH", _suggest(text))
    return LicenceCheck(
        None,
        f"{text!r} is not a complete SPDX licence expression: join ids with AND, OR or WITH",
        _suggest(text),
    )


def check_licence(text: str) -> LicenceCheck:
    """Check an SPDX licence identifier or expression (`MIT`, `GPL-3.0-only OR MIT`).

    Returns the canonical expression, or a problem with suggestions for the likely intent.
    """
    tokens = _TOKEN.findall(text)
    if not tokens:
        return LicenceCheck(
            None, "is empty: give an SPDX licence identifier", ("MIT", "Apache-2.0")
        )
    spdx = _spdx()
    written = _LICENSE_REF_PREFIX.sub(_LICENSE_REF, text.strip())
    try:
        parsed = spdx.licensing.parse(written, strict=True)
    except ExpressionError as error:
        return _refused(text, error)
    ids = [symbol.key for symbol in spdx.licensing.license_symbols(parsed, decompose=True)]
    unknown = _unknown_ids(ids, spdx)
    if unknown:
        # The parser keeps words with spaces as one id, so `Apache 2` is matched as written.
        return LicenceCheck(
            None, f"{unknown[0]!r} is not an SPDX licence identifier", _suggest(unknown[0])
        )
    warnings = tuple(
        f"{token} is not the current SPDX id; recorded as {spdx.outdated[token.casefold()]}"
        for token in dict.fromkeys(tokens)
        if token.casefold() in spdx.outdated
    )
    return LicenceCheck(_canonical(written, spdx), warnings=warnings)


def _canonical(written: str, spdx: _Spdx) -> str:
    """A valid expression with each id and operator spelled canonically, its grouping kept.

    Written out here rather than by the library's renderer, which adds parentheses wherever
    AND and OR meet: the same licence must keep the same spelling as entries already stored,
    or choosing it in the licence facet would miss them.
    """
    parts: list[str] = []
    for part in _PART.findall(written):
        folded = part.casefold()
        if folded.upper() in _OPERATORS:
            parts.append(folded.upper())
        else:
            known = spdx.licences.get(folded) or spdx.exceptions.get(folded)
            parts.append(known or spdx.outdated.get(folded) or part)
    return " ".join(parts).replace("( ", "(").replace(" )", ")")
