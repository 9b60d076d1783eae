"""Reading publisher files: libyaml's speed with the same refusals (aliases, duplicate keys)."""

from __future__ import annotations

import pytest

from catalogue import documents
from core.errors import Problem


def load(text: str) -> tuple[object, list[Problem]]:
    problems: list[Problem] = []
    return documents.load(text, problems), problems


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: &n cube\ntitle: *n\n", 2),
        ("keywords:\n  - &k radio\n  - *k\n", 3),
        ("a: &m {x: 1}\nb:\n  c: *m\n", 3),
        ("base: &b {x: 1}\nother:\n  <<: *b\n", 3),
        ("a: &a [1, 2]\n*a : 3\n", 2),
    ],
)
def test_an_alias_anywhere_is_refused_with_its_line(text: str, line: int) -> None:
    data, problems = load(text)
    assert data is None
    assert [p.field for p in problems] == [documents.DOCUMENT]
    assert "aliases" in problems[0].reason
    assert f"line {line}," in problems[0].reason


def test_an_anchor_without_alias_is_harmless() -> None:
    data, problems = load("name: &n cube\ntitle: Cube\n")
    assert problems == []
    assert data == {"name": "cube", "title": "Cube"}


@pytest.mark.parametrize(
    "text", ["name: a\nname: b\n", "needs:\n  cores: 1\n  memory: 2\n  cores: 3\n", "1: a\n1: b\n"]
)
def test_a_repeated_key_is_refused_at_the_second_one(text: str) -> None:
    data, problems = load(text)
    assert data is None
    assert "appears twice" in problems[0].reason
    assert f"line {text.count(chr(10))}," in problems[0].reason


def test_a_mapping_as_key_is_refused() -> None:
    data, problems = load("? {a: 1}\n: b\n")
    assert data is None
    assert "plain text" in problems[0].reason


def test_dates_stay_text_and_yaml_scalars_keep_their_types() -> None:
    data, problems = load("version: 2024-03-01\ncores: 4\ngpu: true\nmemory: 1.5\nnone: null\n")
    assert problems == []
    assert data == {"version": "2024-03-01", "cores": 4, "gpu": True, "memory": 1.5, "none": None}


@pytest.mark.parametrize(
    "text", ["a: " + "[" * 5000 + "]" * 5000, "a: " + "{b: " * 2000 + "}" * 2000]
)
def test_deep_flow_nesting_is_refused_without_crashing(text: str) -> None:
    data, problems = load(text)
    assert data is None
    assert "nested" in problems[0].reason


def test_a_syntax_error_names_line_and_column() -> None:
    data, problems = load("name: cube\ntitle: [unclosed\n")
    assert data is None
    assert problems[0].reason.startswith("invalid YAML at line")
