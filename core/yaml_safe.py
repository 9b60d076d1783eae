"""Strict, safe YAML reading through libyaml (PyYAML's C parser): the one loader to subclass.

`StrictLoader` is `yaml.CSafeLoader` (safe tags only, parsed by libyaml, about eight times
faster than PyYAML's pure-Python parser) with two checks a document reader needs:

- no aliases (`*name`): a "billion laughs" document would expand without bound, and publisher
  files and requests have no use for them. libyaml composes an alias as the very node its
  anchor names, so a node met twice in the composed tree is an alias; the tree is walked once
  before anything is constructed (and the text parsed again, to say where the alias is written,
  only when one is found).
- no duplicate keys: YAML would keep the last one silently. Keys must be plain scalars.

Nesting is bounded by libyaml itself (1,000 levels; deeper input is a `yaml.YAMLError`), so the
C parser cannot overflow its stack. Both checks raise `yaml.MarkedYAMLError` subclasses with the
line and column, like every other syntax error.

Subclasses adjust the implicit resolvers (which plain scalars become booleans or dates); see
`without_resolvers`. Pure: PyYAML only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

_PLAIN_KEY = (str, int, float, bool)


class AliasRefused(yaml.MarkedYAMLError):
    """A YAML alias (`*name`) was found."""


class StrictLoader(yaml.CSafeLoader):
    """`yaml.CSafeLoader` without aliases and with duplicate keys refused; see the module."""

    def __init__(self, stream: Any) -> None:
        # Kept to find where an alias is written, should there be one (libyaml's tree shares
        # the aliased node, which carries its anchor's position, not the alias's).
        self._source = stream if isinstance(stream, str | bytes) else None
        super().__init__(stream)

    def get_single_node(self) -> Any:
        """The document's node tree, refused when it holds an alias."""
        node = super().get_single_node()
        if node is not None and _shares_a_node(node):
            raise AliasRefused(
                problem="YAML aliases (*name) are not allowed here; repeat the value instead",
                problem_mark=_first_alias(self._source) or node.start_mark,
            )
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping, refused when a key is repeated or is not a plain scalar."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, _PLAIN_KEY):
                raise ConstructorError(
                    None, None, "a mapping key must be plain text", key_node.start_mark
                )
            if key in seen:
                raise ConstructorError(
                    None, None, f"the key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _shares_a_node(root: Node) -> bool:
    """True when a node appears twice in the tree (libyaml composes an alias as its anchor)."""
    seen: set[int] = {id(root)}
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, SequenceNode):
            children = node.value
        else:
            continue
        for child in children:
            if id(child) in seen:
                return True
            seen.add(id(child))
            stack.append(child)
    return False


def _first_alias(source: str | bytes | None) -> Any:
    """Where the first alias of a document is written (parsed again: only on refusal)."""
    if source is None:
        return None
    for event in yaml.parse(source, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent):
            return event.start_mark
    return None


def without_resolvers(loader: type[yaml.CSafeLoader], tags: Iterable[str]) -> None:
    """Stop `loader` (a subclass) resolving plain scalars to these tags (they stay strings).

    Example: `tag:yaml.org,2002:timestamp`, so that `2024-03-01` stays the text it was written as.
    """
    dropped = set(tags)
    loader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag not in dropped]
        for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
    }
