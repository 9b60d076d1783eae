"""From text to typed documents with every problem named by its field path.

- `load(source, problems)`: YAML or JSON text to plain data, safely: no YAML aliases (a
  "billion laughs" document would expand without bound), no duplicate keys (YAML would keep
  the last one silently), a size limit, and syntax errors reported with line and column.
- `convert(data, StructType, where, problems)`: msgspec conversion that, unlike
  `msgspec.convert`, does not stop at the first error: each field of each nested Struct is
  converted on its own, unknown keys get close-match suggestions, and msgspec's messages are
  rewritten in words (`expected a whole number, got text`).
- `locate(text, field)`: the line of a field path in a YAML document, for error listings;
  `in_source_order(text, problems)`: problems sorted by the line they are about, values quoted
  as the file writes them (`version: 1.10` is read as 1.1; the hint says "1.10").

Pure: pyyaml (through `core.yaml_safe`, libyaml's parser) and msgspec only.
"""

from __future__ import annotations

import difflib
import functools
import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Final, TypeVar, Union, get_args, get_origin

import msgspec
import yaml

from core.errors import Problem
from core.yaml_safe import StrictLoader, without_resolvers

MAX_BYTES: Final = 1_048_576
MAX_DEPTH: Final = 32
"""Deepest nesting of mappings and lists accepted; a real document nests about eight deep."""
DOCUMENT: Final = "(document)"
"""The field name of problems about the document as a whole."""

S = TypeVar("S", bound=msgspec.Struct)

_TYPE_WORDS: Final = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "nothing",
    "date": "a date",
    "datetime": "a date and time",
}
_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class _Loader(StrictLoader):
    """The shared strict loader (libyaml; no aliases, no duplicate keys), dates kept as text."""


# Dates and times stay text: a version `2024-03-01` or a start `2026-09-01T10:00Z` is a string in
# every schema we read, and YAML 1.1's implicit timestamps would turn them into other types.
without_resolvers(_Loader, ["tag:yaml.org,2002:timestamp"])


def _yaml_reason(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        what = error.problem or "cannot be read"
        context = f" ({error.context})" if error.context else ""
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {what}{context}"
    return f"invalid YAML: {error}"


def _text(source: str | bytes, problems: list[Problem]) -> str | None:
    if len(source) > MAX_BYTES:
        problems.append(Problem(DOCUMENT, f"is larger than {MAX_BYTES} bytes"))
        return None
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as error:
            problems.append(Problem(DOCUMENT, f"is not UTF-8 text (byte {error.start})"))
            return None
    if not source.strip():
        problems.append(Problem(DOCUMENT, "is empty"))
        return None
    return source


def load(source: str | bytes | Mapping[str, Any], problems: list[Problem]) -> Any:
    """Parse YAML or JSON text (JSON is YAML); a mapping is returned as a plain dict.

    Problems are appended to `problems` (field `(document)`); the return value is then None.
    """
    if isinstance(source, Mapping):
        data: Any = dict(source)
    else:
        data = _parse(source, problems)
    if data is not None and _too_deep(data):
        problems.append(Problem(DOCUMENT, f"is nested more than {MAX_DEPTH} levels deep"))
        return None
    return data


def _too_deep(data: Any) -> bool:
    """True when containers nest deeper than `MAX_DEPTH` (walked level by level)."""
    level = [data] if isinstance(data, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return True
        below = []
        for node in level:
            for value in node.values() if isinstance(node, dict) else node:
                if isinstance(value, dict | list):
                    below.append(value)
        level = below
    return False


def _parse(source: str | bytes, problems: list[Problem]) -> Any:
    text = _text(source, problems)
    if text is None:
        return None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506  (a CSafeLoader subclass)
    except yaml.YAMLError as error:
        if "maximum nesting depth" in str(error):  # libyaml's own bound, 1,000 levels
            problems.append(Problem(DOCUMENT, f"is nested more than {MAX_DEPTH} levels deep"))
        else:
            problems.append(Problem(DOCUMENT, _yaml_reason(error)))
        return None
    except RecursionError:
        # libyaml stops at 1,000 levels (a YAMLError); this is a guard should that change.
        problems.append(Problem(DOCUMENT, "is nested too deeply"))
        return None


def join(prefix: str, name: str) -> str:
    """A field path below `prefix` (`executables[0]` + `name`; `[2]` joins without a dot)."""
    if not prefix:
        return name
    if not name:
        return prefix
    return f"{prefix}{name}" if name.startswith("[") else f"{prefix}.{name}"


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The type inside `Annotated[...]` and `X | None`, and whether None is allowed."""
    optional = False
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if get_origin(annotation) in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            optional = optional or len(members) < len(get_args(annotation))
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation, optional


def _is_struct(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _words(text: str) -> str:
    def word(match: re.Match[str]) -> str:
        return _TYPE_WORDS.get(match.group(1), match.group(1))

    text = re.sub(r"`([a-z]+)`", word, text)
    return re.sub(r"expected a list of length >= (\d+)", r"needs at least \1 item(s)", text)


def _msgspec_problem(error: msgspec.ValidationError, where: str, value: Any) -> Problem:
    message = str(error)
    reason, _, at = message.rpartition(" - at `")
    if not reason:
        reason, at = message, "$"
    path = at.rstrip("`").removeprefix("$")
    field = join(where, path.lstrip(".")) if path else where
    reason = reason.replace("Expected", "expected", 1)
    if "matching regex" in reason:
        reason = f"{value!r} has the wrong form"
    return Problem(field or DOCUMENT, _words(reason))


@functools.cache
def _fields(struct: type[msgspec.Struct]) -> dict[str, msgspec.structs.FieldInfo]:
    # msgspec.structs.fields resolves the type annotations on every call: a third of a
    # publish's conversion time before it was kept per Struct type.
    return {info.encode_name: info for info in msgspec.structs.fields(struct)}


def convert(data: Any, struct: type[S], where: str, problems: list[Problem]) -> S | None:
    """Convert `data` to `struct`, recording a problem for every wrong field (see module doc)."""
    if not isinstance(data, dict):
        problems.append(Problem(where or DOCUMENT, f"expected a mapping, got {_kind(data)}"))
        return None
    try:
        # Most documents are right: msgspec converts them whole, refusing unknown keys as the
        # field-by-field pass does (the document Structs forbid them). Only a refusal pays for
        # the pass below, which names every wrong field instead of the first.
        return msgspec.convert(data, struct)
    except msgspec.ValidationError:
        pass
    fields = _fields(struct)
    ok = True
    for key in data:
        if key not in fields:
            ok = False
            close = difflib.get_close_matches(str(key), list(fields), n=3, cutoff=0.6)
            problems.append(Problem(join(where, str(key)), "is not a field we know", tuple(close)))
    converted: dict[str, Any] = {}
    for name, info in fields.items():
        at = join(where, name)
        if name not in data:
            if info.required:
                ok = False
                problems.append(Problem(at, "is required"))
            continue
        value = _convert_value(data[name], info.type, at, problems)
        if value is _FAILED:
            ok = False
        else:
            converted[name] = value
    if not ok:
        return None
    try:
        return msgspec.convert(converted, struct)
    except msgspec.ValidationError as error:  # constraints across fields, if any
        problems.append(_msgspec_problem(error, where, converted))
        return None


_FAILED: Final = object()


def _convert_value(value: Any, annotation: Any, at: str, problems: list[Problem]) -> Any:
    inner, optional = _unwrap(annotation)
    if value is None and optional:
        return None
    if _is_struct(inner):
        return _FAILED if (done := convert(value, inner, at, problems)) is None else done
    if get_origin(inner) is list and _is_struct(_unwrap(get_args(inner)[0])[0]):
        return _convert_struct_list(value, annotation, _unwrap(get_args(inner)[0])[0], at, problems)
    try:
        return msgspec.convert(value, annotation)
    except msgspec.ValidationError as error:
        problem = _msgspec_problem(error, at, value)
        if at.endswith("version") and isinstance(value, int | float):
            problem = Problem(at, version_hint(str(value), value))
        problems.append(problem)
        return _FAILED


_VERSION_HINT: Final = "write the version in quotes"


def version_hint(written: str, read: float) -> str:
    """Why an unquoted version is refused, quoting it `written` as in the file."""
    return (
        f'{_VERSION_HINT} (version: "{written}"): unquoted, YAML reads it as the number {read!r}'
        + (f", not {written}" if str(read) != written else "")
    )


_KIND_WORDS: Final = {
    type(None): "nothing",
    bool: "true or false",
    int: "a number",
    float: "a number",
    str: "text",
    list: "a list",
    dict: "a mapping",
}


def _convert_struct_list(
    value: Any, annotation: Any, item_type: type[msgspec.Struct], at: str, problems: list[Problem]
) -> Any:
    if not isinstance(value, list):
        problems.append(Problem(at, f"expected a list, got {_kind(value)}"))
        return _FAILED
    items = [convert(item, item_type, f"{at}[{i}]", problems) for i, item in enumerate(value)]
    if any(item is None for item in items):
        return _FAILED
    try:  # the list's own constraints (min_length) still apply
        return msgspec.convert(items, annotation)
    except msgspec.ValidationError as error:
        problems.append(_msgspec_problem(error, at, value))
        return _FAILED


def _kind(value: Any) -> str:
    return _KIND_WORDS.get(type(value), type(value).__name__)


class SourceMap:
    """Where each field of a YAML document is written, and how its plain scalars read.

    Built from the text once (one more parse, made only when there is something to report).
    Field paths are those of problems: `executables[0].needs.gpus.vendor`.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[str, int] = {}
        self._written: dict[str, str] = {}
        try:
            root = yaml.compose(text, Loader=_Loader)
        except (yaml.YAMLError, RecursionError):
            return
        stack: list[tuple[str, yaml.Node]] = [("", root)] if root is not None else []
        while stack:
            path, node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    below = join(path, str(key.value))
                    self._lines.setdefault(below, key.start_mark.line + 1)
                    stack.append((below, value))
            elif isinstance(node, yaml.SequenceNode):
                for index, item in enumerate(node.value):
                    below = join(path, f"[{index}]")
                    self._lines.setdefault(below, item.start_mark.line + 1)
                    stack.append((below, item))
            elif isinstance(node, yaml.ScalarNode) and not node.style:  # plain: None or ""
                self._written[path] = node.value

    def line(self, field: str) -> int | None:
        """The 1-based line of `field`, or of its nearest written parent (a missing field)."""
        while field:
            if field in self._lines:
                return self._lines[field]
            parent = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", field)
            if parent == field:
                break
            field = parent
        return None

    def written(self, field: str) -> str | None:
        """A plain (unquoted) scalar value exactly as the file writes it."""
        return self._written.get(field)


def in_source_order(text: str, problems: list[Problem]) -> list[Problem]:
    """Problems in the order of the lines they are about, with values quoted as written.

    Problems about the document as a whole, or a field missing at its top, come first.
    """
    if not problems:
        return problems
    source = SourceMap(text)

    def as_written(problem: Problem) -> Problem:
        written = source.written(problem.field)
        if written is None or not problem.reason.startswith(_VERSION_HINT):
            return problem
        read = yaml.load(written, Loader=_Loader)  # noqa: S506  (a CSafeLoader subclass)
        if not isinstance(read, int | float):
            return problem
        return Problem(problem.field, version_hint(written, read), problem.suggestions)

    shown = [as_written(problem) for problem in problems]
    return sorted(shown, key=lambda problem: source.line(problem.field) or 0)


def locate(text: str, field: str) -> int | None:
    """The 1-based line where `field` (`executables[0].needs.cores`) is written, if found."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except (yaml.YAMLError, RecursionError):
        return None
    line = None
    for name, index in _PATH_TOKEN.findall(field):
        if node is None:
            break
        if index and isinstance(node, yaml.SequenceNode):
            position = int(index)
            node = node.value[position] if position < len(node.value) else None
        elif name and isinstance(node, yaml.MappingNode):
            match = next((pair for pair in node.value if pair[0].value == name), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
            continue
        else:
            break
        if node is not None:
            line = node.start_mark.line + 1
    return line
