"""The licence check: any id of the SPDX list, expressions with AND, OR and WITH, suggestions for
what is not an SPDX id, outdated ids recorded under their current name."""

from __future__ import annotations

import pytest

from catalogue.spdx import check_licence


@pytest.mark.parametrize(
    ("written", "recorded"),
    [
        ("NASA-1.3", "NASA-1.3"),
        ("Unicode-3.0", "Unicode-3.0"),
        ("CECILL-2.0", "CECILL-2.0"),
        ("AGPL-1.0-only", "AGPL-1.0-only"),
        ("mit", "MIT"),
        ("LicenseRef-our-own", "LicenseRef-our-own"),
        ("licenseref-Our.Own", "LicenseRef-Our.Own"),
    ],
)
def test_every_spdx_id_is_accepted_in_its_canonical_spelling(written, recorded):
    check = check_licence(written)
    assert (check.expression, check.problem, check.warnings) == (recorded, None, ())


@pytest.mark.parametrize(
    ("written", "recorded"),
    [
        ("MIT OR Apache-2.0", "MIT OR Apache-2.0"),
        ("apache-2.0 and bsd-3-clause", "Apache-2.0 AND BSD-3-Clause"),
        (
            "GPL-2.0-or-later WITH Classpath-exception-2.0",
            "GPL-2.0-or-later WITH Classpath-exception-2.0",
        ),
        ("(MIT OR Apache-2.0) AND NASA-1.3", "(MIT OR Apache-2.0) AND NASA-1.3"),
        ("MIT OR LicenseRef-ours", "MIT OR LicenseRef-ours"),
        # Grouping is kept as written, so stored entries keep their spelling.
        ("MIT or Apache-2.0 and BSD-3-Clause", "MIT OR Apache-2.0 AND BSD-3-Clause"),
        ("( mit )", "(MIT)"),
    ],
)
def test_expressions_are_accepted_in_their_canonical_spelling(written, recorded):
    check = check_licence(written)
    assert (check.expression, check.problem) == (recorded, None)


def test_an_unknown_id_is_refused_with_the_closest_ids():
    check = check_licence("MIT-2.0")
    assert check.expression is None
    assert check.problem == "'MIT-2.0' is not an SPDX licence identifier"
    assert {"MIT", "MIT-0"} & set(check.suggestions)


def test_an_unknown_id_inside_an_expression_is_named():
    check = check_licence("Apache-2.0 OR BSD-3-Clausse")
    assert check.expression is None
    assert "'BSD-3-Clausse'" in (check.problem or "")
    assert check.suggestions[0] == "BSD-3-Clause"


@pytest.mark.parametrize(
    ("written", "expected"),
    [("Apache 2", "Apache-2.0"), ("gplv3", "GPL-3.0-only"), ("GPL", "GPL-3.0-or-later")],
)
def test_common_names_are_refused_with_what_they_likely_mean(written, expected):
    check = check_licence(written)
    assert check.expression is None
    assert expected in check.suggestions


def test_an_outdated_id_is_recorded_under_its_current_name_with_a_warning():
    check = check_licence("GPL-3.0+ OR LGPL-2.1")
    assert check.expression == "GPL-3.0-or-later OR LGPL-2.1-only"
    assert check.warnings == (
        "GPL-3.0+ is not the current SPDX id; recorded as GPL-3.0-or-later",
        "LGPL-2.1 is not the current SPDX id; recorded as LGPL-2.1-only",
    )


def test_the_library_s_own_refs_stay_the_packager_s():
    # license-expression knows `LicenseRef-MIT-Bootstrap` as a name of MIT; a packager's
    # `LicenseRef-` names their own licence text.
    assert check_licence("LicenseRef-MIT-Bootstrap").expression == "LicenseRef-MIT-Bootstrap"


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("", "is empty"),
        ("MIT Apache-2.0", "join licences with AND, OR or WITH"),
        ("MIT AND", "is not a complete SPDX licence expression"),
        ("(MIT OR Apache-2.0", "is not a complete SPDX licence expression"),
        ("MIT/Apache-2.0", "is not a complete SPDX licence expression"),
        ("MIT WITH Apache-2.0", "'Apache-2.0' is a licence, not an exception"),
        ("LLVM-exception", "'LLVM-exception' is a licence exception"),
        ("GPL-2.0-only WITH LLVM-exeption", "'LLVM-exeption' is not an SPDX licence exception"),
        ("LicenseRef-", "'LicenseRef-' is not an SPDX licence identifier"),
        ("MIT\x00", "is not a complete SPDX licence expression"),
    ],
)
def test_malformed_expressions_are_refused_with_a_reason(written, reason):
    check = check_licence(written)
    assert check.expression is None
    assert reason in (check.problem or "")


def test_a_misspelt_exception_suggests_the_exception():
    assert check_licence("GPL-2.0-only WITH LLVM-exeption").suggestions[0] == "LLVM-exception"
