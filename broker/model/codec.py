"""Reading and writing the broker's wire documents: JSON and YAML, old dialects, messages.

Owns everything between bytes and `broker.model` Structs:

- **Media types.** `media_for_body(content_type)` and `negotiate(accept, content_type)` pick
  JSON or YAML. The standard's rule: YAML unless the client says otherwise; a body without a
  usable `Content-Type` is read as YAML, which also reads JSON.
- **Safe parsing.** Bodies are size-bounded; YAML is read with the safe loader and YAML 1.2
  scalars (`NO` stays a string, dates stay strings), nesting is bounded before libyaml sees the
  text (deep flow nesting is quadratic there, deep block nesting overflows its C stack), and
  anchors/aliases may not expand beyond `MAX_NODES` nodes (no "billion laughs").
- **Old dialects.** `type` as the discriminator, the older `.../EB/schema/.../types/...-1.0`
  URIs, `uri:` short names, the `computer` spelling, the `update:` wrapper, a one-item
  `compute` list and a one-item `start` list are rewritten to the newest form before
  validation. Kind aliases come from one table, `broker.model.kinds.KIND_ALIASES`.
- **The forms shown in the IVOA talks (2023-2025)** are rewritten too: the `request:` wrapper
  and an executable's `spec:` block, `resources:` holding `compute`/`data`/`storage`,
  `schedule.requested.executing`, a component's `name` (now `meta.name`), volumes without a
  kind, `requested`/`offered` min-max blocks, a notebook's `notebook` (URL or `{file: URL}`),
  a container's `repository`/`image`/`tag`/`digest`, and a Python program's `requirements`
  map (`python` constrains the interpreter, the rest are packages). docs/broker.md lists them
  ("Accepted forms").
- **Unknown kinds** are set aside (`UnknownKind`) rather than failing the decode, so the service
  can answer NO naming them.
- **Errors** are `core.errors.Invalid` with one `Problem(field=JSON path, reason)` each
  (`$.compute.cores.min: Expected int >= 1`); `BodyTooLarge` and `UnsupportedMediaType` are
  the two special cases the web layer maps to 413 and 415.
- **Encoding** always writes the newest form: nulls and empty lists left out, durations in ISO
  form (`PT1H`), instants in UTC with seconds and `Z`.

Imports msgspec, PyYAML and the `broker.model*` modules; no web framework, no I/O beyond the
bytes given.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Generic, Literal, TypeVar

import msgspec
import yaml

from broker.model import (
    KINDS,
    PYTHON_PROGRAM_KIND,
    AnySession,
    AnyUpdate,
    ExecutionRequest,
    LifecyclePhase,
    MinMaxCount,
    SessionPhase,
    UnknownKind,
)
from broker.model.kinds import canonical_kind
from core.errors import Invalid, Problem
from core.time import Duration, Interval, format_duration, format_instant, parse_duration

T = TypeVar("T")

DEFAULT_MAX_BYTES: Final = 1_048_576
MAX_DEPTH: Final = 64
"""Deepest nesting accepted; the deepest legitimate document nests about a dozen levels."""
MAX_NODES: Final = 100_000
"""Most nodes a YAML document may have once its aliases are expanded."""


class BodyTooLarge(Invalid):
    """The body is larger than the configured limit (HTTP 413)."""


class UnsupportedMediaType(Invalid):
    """The body is declared in a media type the broker does not read (HTTP 415)."""


# ------------------------------------------------------------------------- media types
class Media(StrEnum):
    """The two media types the broker reads and writes."""

    JSON = "application/json"
    YAML = "application/yaml"


JSON_TYPES: Final = frozenset({"application/json", "text/json"})
YAML_TYPES: Final = frozenset(
    {
        "application/yaml",
        "text/yaml",
        "application/x-yaml",
        "text/x-yaml",
        "application/yml",
        "text/yml",
    }
)
UNSPECIFIC_TYPES: Final = frozenset(
    {"", "*/*", "text/plain", "application/octet-stream", "application/x-www-form-urlencoded"}
)
"""Content types that say nothing about the document (curl's default among them)."""


def _media_of(media_type: str) -> Media | None:
    essence = media_type.split(";", 1)[0].strip().lower()
    if essence in JSON_TYPES or essence.endswith("+json"):
        return Media.JSON
    if essence in YAML_TYPES or essence.endswith("+yaml"):
        return Media.YAML
    return None


def media_for_body(content_type: str | None) -> Media:
    """How to read a body declared as `content_type`.

    JSON types read as JSON; YAML types, and a missing or unspecific type, as YAML (YAML reads
    JSON too).

    Raises:
        UnsupportedMediaType: the type is declared and is neither (XML, for instance).
    """
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    if declared in UNSPECIFIC_TYPES:
        return Media.YAML
    media = _media_of(declared)
    if media is None:
        supported = ", ".join(sorted(JSON_TYPES | YAML_TYPES))
        raise UnsupportedMediaType(
            f"cannot read a body of type {declared}",
            [Problem("Content-Type", f"{declared} is not supported; send one of {supported}")],
        )
    return media


def negotiate(accept: str | None, content_type: str | None = None) -> Media:
    """The media type to answer in.

    The type the `Accept` header prefers (by q-value; YAML on a tie, as the standard says);
    failing that, the type the request body was declared in; failing that, YAML. `*/*` and
    types we cannot produce count as saying nothing.
    """
    best: tuple[float, Media] | None = None
    for item in (accept or "").split(","):
        media_range, *params = item.split(";")
        media = _media_of(media_range)
        if media is None:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        if best is None or quality > best[0] or (quality == best[0] and media is Media.YAML):
            best = (quality, media)
    if best is not None:
        return best[1]
    declared = _media_of(content_type or "")
    return declared or Media.YAML


# ------------------------------------------------------------------------- parsing
class _WireYamlLoader(yaml.CSafeLoader):
    """Safe loader with YAML 1.2 scalars: only true/false are booleans, no timestamps."""


_WireYamlLoader.yaml_implicit_resolvers = {
    first: [
        (tag, pattern)
        for tag, pattern in resolvers
        if tag not in {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}
    ]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
_WireYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_OPENERS: Final = re.compile(rb"[\[\]{}]")


def _problem(reason: str, field_path: str = "$") -> Invalid:
    return Invalid(f"{field_path}: {reason}", [Problem(field_path, reason)])


def _check_flow_depth(body: bytes) -> None:
    """Refuse deep `[`/`{` nesting before libyaml, whose scanner is quadratic in it."""
    depth = 0
    for match in _OPENERS.finditer(body):
        depth += 1 if match.group() in {b"[", b"{"} else -1
        if depth > MAX_DEPTH:
            raise _problem(f"the document is nested more than {MAX_DEPTH} levels deep")


def _check_yaml_shape(body: bytes) -> None:
    """Walk the YAML events once: bound the depth and the size once aliases are expanded."""
    open_nodes: list[list[Any]] = []  # [anchor, expanded size so far]
    anchor_sizes: dict[str, int] = {}

    def add(size: int) -> None:
        if open_nodes:
            open_nodes[-1][1] += size
            if open_nodes[-1][1] > MAX_NODES:
                raise _problem(
                    f"the YAML document expands to more than {MAX_NODES} nodes through its "
                    "aliases; aliases that multiply content are refused"
                )

    for event in yaml.parse(body, Loader=_WireYamlLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_nodes) >= MAX_DEPTH:
                raise _problem(f"the document is nested more than {MAX_DEPTH} levels deep")
            open_nodes.append([event.anchor, 1])
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_nodes.pop()
            if anchor is not None:
                anchor_sizes[anchor] = size
            add(size)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                anchor_sizes[event.anchor] = 1
            add(1)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchor_sizes:
                raise _problem(f"the YAML alias *{event.anchor} refers to a node that contains it")
            add(anchor_sizes[event.anchor])


def parse_body(body: bytes, media: Media, *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Parse a body to plain Python objects: a mapping at the top, safely and within bounds.

    Raises:
        BodyTooLarge: the body is longer than `max_bytes`.
        Invalid: the body is empty, not JSON/YAML, too deep, an alias bomb, or not a mapping.
    """
    if len(body) > max_bytes:
        raise BodyTooLarge(
            f"the body has {len(body)} bytes; the limit is {max_bytes}",
            [Problem("$", f"the body is larger than {max_bytes} bytes")],
        )
    if not body.strip():
        raise _problem("the body is empty")
    _check_flow_depth(body)
    try:
        if media is Media.JSON:
            document = msgspec.json.decode(body)
        else:
            _check_yaml_shape(body)
            document = yaml.load(body, Loader=_WireYamlLoader)  # noqa: S506 - a safe loader
    except msgspec.DecodeError as error:
        raise _problem(f"invalid JSON: {error}") from None
    except yaml.YAMLError as error:
        raise _problem(f"invalid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise _problem(f"the document is nested more than {MAX_DEPTH} levels deep") from None
    if not isinstance(document, dict):
        raise _problem(f"expected a mapping at the top level, got {_json_type(document)}")
    return document


def _json_type(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "a list"
    return "a mapping"


# ------------------------------------------------------------------------- old dialects
_DROPPED: Final = object()
OLDER_PHASES: Final = {
    "PROPOSED": "INITIAL",
    "PENDING": "WAITING",
    "SETUP": "PREPARING",
    "READY": "AVAILABLE",
    "TEARDOWN": "RELEASING",
}
"""Phase names of the Working Draft and the talks, read as the newest ones in sessions and
components that other brokers send (clients never set these phases: updates set ACCEPTED,
REJECTED or CANCELLED only)."""
_PHASES: Final = (SessionPhase, LifecyclePhase)


@dataclass
class _Normaliser:
    """Rewrites a parsed document to the newest dialect, guided by the target type.

    Kinds are resolved through `KIND_ALIASES`; `type` is read as the discriminator where the
    Struct has no `type` field of its own; components of unknown kinds are removed and listed
    in `unknown`. `kept` remembers, for each list that lost items, which original indexes
    survive, so error paths can name the item the client wrote.
    """

    side: Literal["requested", "offered"] = "requested"
    """Which half of a `requested`/`offered` min-max block to read: a request asks, an offer
    offers."""
    unknown: list[UnknownKind] = field(default_factory=list)
    kept: dict[str, list[int]] = field(default_factory=dict)

    def value(self, node: Any, info: msgspec.inspect.Type, path: str) -> Any:
        if isinstance(info, msgspec.inspect.EnumType) and info.cls in _PHASES:
            return OLDER_PHASES.get(node, node) if isinstance(node, str) else node
        if isinstance(info, msgspec.inspect.UnionType):
            return self.union(node, info, path)
        if isinstance(info, msgspec.inspect.StructType):
            if info.tag is not None:
                return self.tagged(node, [info], path)
            return self.struct(node, info, path)
        if isinstance(info, msgspec.inspect.ListType) and isinstance(node, list):
            items, kept = [], []
            for index, item in enumerate(node):
                result = self.value(item, info.item_type, f"{path}[{index}]")
                if result is not _DROPPED:
                    items.append(result)
                    kept.append(index)
            if len(kept) < len(node):
                self.kept[path] = kept
            return items
        return node

    def union(self, node: Any, info: msgspec.inspect.UnionType, path: str) -> Any:
        members = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        tagged = [t for t in members if isinstance(t, msgspec.inspect.StructType) and t.tag]
        if tagged and len(tagged) == len(members):
            return self.tagged(node, tagged, path)
        if len(members) == 1:
            return self.value(node, members[0], path)
        return node

    def tagged(self, node: Any, members: list[msgspec.inspect.StructType], path: str) -> Any:
        if not isinstance(node, dict):
            return node  # msgspec reports the wrong type with its path
        node = dict(node)
        own_fields = {f.encode_name for m in members for f in m.fields}
        if "kind" not in node and "type" in node and "type" not in own_fields:
            node["kind"] = node.pop("type")
        if "kind" not in node and [m.tag for m in members] == [_VOLUME]:
            node["kind"] = _VOLUME  # the 2024 prototype's volumes had no kind: there is one
        kind = node.get("kind")
        if not isinstance(kind, str):
            return node  # missing or not a string: msgspec reports it
        node["kind"] = canonical_kind(kind)
        by_tag = {m.tag: m for m in members}
        if node["kind"] not in by_tag:
            family = getattr(members[0].cls, "FAMILY", "component")
            self.unknown.append(UnknownKind(path=path, family=family, kind=kind))
            return _DROPPED
        member = by_tag[node["kind"]]
        return self.struct(_older_fields(node, member), member, path)

    def struct(self, node: Any, info: msgspec.inspect.StructType, path: str) -> Any:
        if not isinstance(node, dict):
            return node
        node = dict(node)
        if issubclass(info.cls, MinMaxCount) and node and set(node) <= {"requested", "offered"}:
            # The 2025 form: `cores: {requested: {min: 4}, offered: {min: 8}}`.
            other = "offered" if self.side == "requested" else "requested"
            half = node.get(self.side, node.get(other))
            if not isinstance(half, dict):
                return half  # msgspec reports the wrong type with its path
            node = dict(half)
        for struct_field in info.fields:
            name = struct_field.encode_name
            if name in node:
                result = self.value(node[name], struct_field.type, f"{path}.{name}")
                if result is _DROPPED:
                    del node[name]
                else:
                    node[name] = result
        return node

    def original_path(self, path: str) -> str:
        """Map a path in the normalised document back to the one the client wrote."""
        rebuilt = "$"
        for token in re.findall(r"\.[^.\[]+|\[[^\]]*\]", path.removeprefix("$")):
            step = token
            if token[1:-1].isdigit() and rebuilt in self.kept:
                index, kept = int(token[1:-1]), self.kept[rebuilt]
                step = f"[{kept[index]}]" if index < len(kept) else token
            rebuilt += step
        return rebuilt


_VOLUME: Final = KINDS + "volume/simple-volume-mount.yaml"
_DOCKER: Final = KINDS + "executable/docker-container.yaml"
_NOTEBOOK: Final = KINDS + "executable/jupyter-notebook.yaml"
_OPERATORS: Final = ("<", ">", "=", "!", "~")


def _file_of(value: Any) -> Any:
    """A URL written bare (2024) or as `{file: URL}` (2025)."""
    if isinstance(value, dict) and set(value) == {"file"}:
        return value["file"]
    return value


def _notebook_fields(node: dict[str, Any]) -> None:
    """`notebook: URL` or `notebook: {file: URL}` is the newest `location`.

    The 2023 and 2025 forms also gave a notebook a `requirements` file; the notebook kind of
    schema v1.0 has no such field, so it is read and left out: the platform's own Jupyter
    environment runs the notebook (docs/broker.md, "Accepted forms").
    """
    if "notebook" in node and "location" not in node:
        node["location"] = _file_of(node.pop("notebook"))
    node.pop("requirements", None)


def _docker_fields(node: dict[str, Any]) -> None:
    """A packager's `repository`, `image` (a name), `tag` and `digest` are the newest `image`."""
    if not ({"repository", "tag"} & set(node) or isinstance(node.get("image"), str)):
        return
    repository, name = node.pop("repository", None), node.pop("image", None)
    tag, digest = node.pop("tag", None), node.pop("digest", None)
    image: dict[str, Any] = {}
    if name is not None:
        location = "/".join(str(part).strip("/") for part in (repository, name) if part)
        image["locations"] = [f"{location}:{tag}" if tag is not None else location]
    if digest is not None:
        image["digest"] = digest
    node["image"] = image


def _requirement(package: str, constraint: Any) -> str:
    """`numpy` and `>2.1.1` as the requirement specifier `numpy>2.1.1`; a bare version pins."""
    text = "" if constraint is None else str(constraint).strip()
    if text in {"", "*"}:
        return package
    if text[0].isdigit():
        return f"{package}=={text}"
    return f"{package}{text}" if text.startswith(_OPERATORS) else f"{package} {text}"


def _python_fields(node: dict[str, Any]) -> None:
    """A developer's `requirements` map, as the newest fields.

    `python` constrains the interpreter (`python_version`); every other key is a package
    installed in the session's own environment (`requirements`, a list of specifiers).
    """
    requirements = node.get("requirements")
    if not isinstance(requirements, dict):
        return
    if set(requirements) == {"file"}:
        node["requirements"] = requirements["file"]
        return
    packages = []
    for package, constraint in requirements.items():
        if str(package).strip().lower() == "python":
            if "python_version" not in node:
                node["python_version"] = None if constraint is None else str(constraint).strip()
        else:
            packages.append(_requirement(str(package).strip(), constraint))
    node["requirements"] = packages


_KIND_FIELDS: Final[dict[str, Callable[[dict[str, Any]], None]]] = {
    _NOTEBOOK: _notebook_fields,
    _DOCKER: _docker_fields,
    PYTHON_PROGRAM_KIND: _python_fields,
}
"""The older field names of each kind, rewritten in place to the newest ones."""


def _older_fields(node: dict[str, Any], member: msgspec.inspect.StructType) -> dict[str, Any]:
    """Rewrite the fields older forms gave a component of kind `member` (`node` is a copy)."""
    fields = {f.encode_name for f in member.fields}
    spec = node.get("spec")
    if "spec" not in fields and isinstance(spec, dict):
        del node["spec"]  # the 2023 form: the kind's own fields in a `spec:` block
        node = {**spec, **node}
    name = node.get("name")
    if "name" not in fields and "meta" in fields and "name" in node:
        meta = node.get("meta")
        if meta is None or (isinstance(meta, dict) and "name" not in meta):
            del node["name"]  # talks gave components a `name`; schema v1.0 has `meta.name`
            node["meta"] = {**(meta or {}), "name": name}
    rewrite = _KIND_FIELDS.get(str(member.tag))
    if rewrite is not None:
        rewrite(node)
    return node


def _single_from_list(document: dict[str, Any], key: str, what: str, path: str) -> None:
    """Older schemas had lists where the newest has one value: accept a list of one."""
    value = document.get(key)
    if not isinstance(value, list):
        return
    if len(value) > 1:
        raise _problem(f"schema v1.0 takes one {what}; got a list of {len(value)}", path)
    if value:
        document[key] = value[0]
    else:
        del document[key]


def _reshape_request(document: dict[str, Any]) -> dict[str, Any]:
    wrapped = document.get("request")
    if set(document) == {"request"} and isinstance(wrapped, dict):
        document = wrapped  # the 2023 form: `request: {executable: ...}`
    document = dict(document)
    resources = document.get("resources")
    if isinstance(resources, dict):
        # The 2024-2025 forms: `resources: {compute: [...], data: [...]}`.
        rest = dict(resources)
        for key in ("compute", "storage", "data"):
            if key in rest and key not in document:
                document[key] = rest.pop(key)
        if rest:
            document["resources"] = rest  # what is left is reported as unknown
        else:
            del document["resources"]
    _single_from_list(document, "compute", "compute resource", "$.compute")
    schedule = document.get("schedule")
    if isinstance(schedule, dict) and isinstance(schedule.get("requested"), dict):
        requested = dict(schedule["requested"])
        executing = requested.get("executing")
        if set(requested) == {"executing"} and isinstance(executing, dict):
            requested = dict(executing)  # the 2024 form: `requested: {executing: {...}}`
        _single_from_list(requested, "start", "start interval", "$.schedule.requested.start")
        document["schedule"] = {**schedule, "requested": requested}
    return document


def _reshape_update(document: dict[str, Any]) -> dict[str, Any]:
    wrapped = document.get("update")
    if set(document) == {"update"} and isinstance(wrapped, dict):
        return wrapped  # the Working Draft's `update: {...}` wrapper
    return document


# ------------------------------------------------------------------------- decoding
@dataclass(frozen=True)
class Decoded(Generic[T]):
    """A decoded document and the components set aside because their kind is unknown."""

    value: T
    unknown_kinds: tuple[UnknownKind, ...] = ()


def _dec_hook(target: type, value: Any) -> Any:
    if target is Duration:
        return parse_duration(value)
    if target is Interval:
        return Interval.parse(value)
    raise NotImplementedError(f"no decoder for {target}")


_UNKNOWN_FIELD: Final = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")
_MISSING_FIELD: Final = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")


def _validation_problem(error: msgspec.ValidationError, normaliser: _Normaliser) -> Problem:
    text = str(error)
    reason, _, where = text.rpartition(" - at `")
    if not reason:
        reason, where = text, "$`"
    path = normaliser.original_path(where.rstrip("`"))
    if match := _UNKNOWN_FIELD.match(reason):
        return Problem(f"{path}.{match['name']}", "unknown field")
    if match := _MISSING_FIELD.match(reason):
        return Problem(f"{path}.{match['name']}", "required field is missing")
    return Problem(path, reason.replace("`", ""))


@functools.cache
def _type_info(target: Any) -> msgspec.inspect.Type:
    """The description msgspec gives of a wire type, built once per type (building is slow)."""
    return msgspec.inspect.type_info(target)


def convert(document: dict[str, Any], target: Any, path: str = "$") -> Decoded[Any]:
    """Validate a parsed document as `target`, reading old dialects; set unknown kinds aside.

    `target` is a wire Struct or a tagged union of them (`AnyUpdate`, `AnySession`).

    Raises:
        Invalid: with one problem naming the JSON path and the reason.
    """
    normaliser = _Normaliser(side="requested" if target is ExecutionRequest else "offered")
    normalised = normaliser.value(document, _type_info(target), path)
    if normalised is _DROPPED:
        unknown = normaliser.unknown[0]
        raise _problem(f"unknown {unknown.family} kind {unknown.kind!r}", f"{path}.kind")
    try:
        value = msgspec.convert(normalised, target, dec_hook=_dec_hook)
    except msgspec.ValidationError as error:
        problem = _validation_problem(error, normaliser)
        raise Invalid(f"{problem.field}: {problem.reason}", [problem]) from None
    return Decoded(value, tuple(normaliser.unknown))


def decode_request(
    body: bytes, media: Media, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Decoded[ExecutionRequest]:
    """Decode an ExecutionRequest in any dialect we read; unknown kinds are set aside."""
    document = _reshape_request(parse_body(body, media, max_bytes=max_bytes))
    return convert(document, ExecutionRequest)


def decode_update(body: bytes, media: Media, *, max_bytes: int = DEFAULT_MAX_BYTES) -> AnyUpdate:
    """Decode one session update (bare, or in the older `update:` wrapper).

    Raises:
        Invalid: malformed, or of an update kind this broker does not know.
    """
    document = _reshape_update(parse_body(body, media, max_bytes=max_bytes))
    update: AnyUpdate = convert(document, AnyUpdate).value
    return update


def decode_document(
    body: bytes, media: Media, target: type[T], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Decoded[T]:
    """Decode a wire document (an offer set, an error) with the same rules as requests."""
    decoded: Decoded[T] = convert(parse_body(body, media, max_bytes=max_bytes), target)
    return decoded


def decode_session(
    body: bytes, media: Media, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Decoded[AnySession]:
    """Decode a session (simple or scheduled) with the same rules as requests."""
    decoded: Decoded[AnySession] = convert(parse_body(body, media, max_bytes=max_bytes), AnySession)
    return decoded


# ------------------------------------------------------------------------- encoding
def _enc_hook(value: Any) -> Any:
    if isinstance(value, Duration):
        return format_duration(value)
    if isinstance(value, Interval):
        return value.iso()
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _finish(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _finish(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_finish(value) for value in node]
    if isinstance(node, datetime):
        return format_instant(node)
    if isinstance(node, timedelta):
        return format_duration(node)
    return node


def to_builtins(value: Any) -> Any:
    """Plain JSON-ready objects in the newest form: ISO durations, UTC instants, no nulls."""
    return _finish(
        msgspec.to_builtins(value, enc_hook=_enc_hook, builtin_types=(datetime, timedelta))
    )


def encode(value: Any, media: Media) -> bytes:
    """Encode a wire Struct (or plain objects) as JSON or YAML."""
    tree = to_builtins(value)
    if media is Media.JSON:
        return msgspec.json.encode(tree)
    text = yaml.dump(tree, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True, width=100)
    return text.encode("utf-8")


# ------------------------------------------------------------------------- stored documents
@functools.cache
def _stored_decoder(target: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(target, dec_hook=_dec_hook)


def decode_stored(text: str | bytes, target: Any) -> Any:
    """Decode a document this broker stored (`encode(..., Media.JSON)`) as `target`.

    What the broker stores is already in the newest form, so msgspec reads it straight into
    the Structs, many times faster than `convert`, which walks the tree to read older
    dialects. A document that does not read straight (stored by an older release) goes
    through `convert`. Not for client input: its size is not capped.
    """
    try:
        return _stored_decoder(target).decode(text)
    except msgspec.ValidationError:
        return convert(msgspec.json.decode(text), target).value


def json_to_yaml(document: bytes) -> bytes:
    """The YAML form of a JSON document `encode` wrote (the same tree, libyaml's C emitter)."""
    text = yaml.dump(
        msgspec.json.decode(document),
        Dumper=yaml.CSafeDumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    return text.encode("utf-8")
