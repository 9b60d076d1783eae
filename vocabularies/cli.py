"""`voexec vocab ...`: look at vocabularies from a terminal, and refresh the cached ones.

- `voexec vocab list`: the vocabularies the service would load, which version and copy of each
  (our own, the shipped snapshot of a date, a cached copy fetched at a time), and what failed;
- `voexec vocab show NAME [TERM] [--depth N]`: the top level as a tree with descendant counts,
  or one concept (labels, definition, broader and narrower, path to the top, deprecation);
- `voexec vocab refresh [NAME ...]`: fetch the configured IVOA vocabularies again and replace
  their cached copies (the only way the cache is ever refreshed); exits 1, saying so on
  stderr, when any could not be fetched.

Commands return an exit status; domain errors propagate to `voexec.cli.main`, which prints them.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    # Imported when a command runs, not when the `voexec` parser is built: loading
    # vocabularies brings rdflib and httpx.
    from core.settings import Settings
    from vocabularies.expand import TreeNode
    from vocabularies.model import Concept, Vocabulary

WIDTH: Final = 100
_FIELD: Final = 13  # width of the field names in `show NAME TERM`


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Mount `vocab` and its subcommands on the root parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML settings file (default: $VOEXEC_CONFIG)")

    vocab = commands.add_parser("vocab", help="browse vocabularies and refresh their cache")
    actions = vocab.add_subparsers(dest="vocab_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", parents=[common], help="list the loaded vocabularies")
    listing.set_defaults(func=_list)

    show = actions.add_parser(
        "show", parents=[common], help="show a vocabulary's top level, or one concept"
    )
    show.add_argument("name", help="vocabulary name, e.g. uat, software-function")
    show.add_argument("term", nargs="?", help="a concept: short term, label or URI")
    show.add_argument(
        "--depth", type=int, default=1, help="levels shown below the top level (default: 1)"
    )
    show.set_defaults(func=_show)

    refresh = actions.add_parser(
        "refresh", parents=[common], help="fetch the IVOA vocabularies again into the cache"
    )
    refresh.add_argument("names", nargs="*", help="which ones (default: vocabularies.names)")
    refresh.set_defaults(func=_refresh)


def _settings(args: argparse.Namespace) -> Settings:
    from core.settings import load_settings

    return load_settings(args.config)


def _list(args: argparse.Namespace) -> int:
    from vocabularies.registry import load_registry

    settings = _settings(args)
    registry = load_registry(settings.vocabularies, settings.data_dir)
    for vocab in registry:
        origin = registry.origin(vocab.name)
        version = f"version {origin.version}, " if origin.version else ""
        print(f"{vocab.name:<20} {len(vocab.concepts):>5} concepts  {vocab.title}")
        print(f"{'':<20} {origin.kind}: {version}{origin.describe()}")
    for problem in registry.problems:
        print(f"not loaded: {problem}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from vocabularies import expand
    from vocabularies.registry import load_vocabulary

    settings = _settings(args)
    vocab, origin = load_vocabulary(settings.vocabularies, settings.data_dir, args.name)
    if args.term is None:
        roots = expand.tree(vocab, depth=max(args.depth, 0))
        print(f"{vocab.name}: {vocab.title} ({len(vocab.concepts)} concepts, {origin.kind})")
        print(f"{len(roots)} top-level concepts; (n) counts the concepts beneath each")
        for node in roots:
            _print_tree(node, indent=0)
        return 0
    _print_concept(vocab, _find_concept(vocab, args.term))
    return 0


def _find_concept(vocab: Vocabulary, text: str) -> Concept:
    """The concept `text` names: exactly by term (deprecated ones too), else as resolved."""
    from vocabularies.model import UnknownConcept
    from vocabularies.resolve import resolve

    if text in vocab.concepts:
        return vocab.concepts[text]
    resolution = resolve(vocab, text)
    if resolution.term is None:
        raise UnknownConcept(vocab.name, text, resolution.suggestions)
    if resolution.warning:
        print(f"note: {resolution.warning}")
    return vocab.concepts[resolution.term]


def _print_tree(node: TreeNode, indent: int) -> None:
    count = f" ({node.descendants})" if node.descendants else ""
    print(f"{'  ' * indent}{node.label} [{node.term}]{count}")
    for child in node.children:
        _print_tree(child, indent + 1)


def _print_concept(vocab: Vocabulary, concept: Concept) -> None:
    def field(name: str, value: str) -> None:
        if value:
            lines = textwrap.wrap(
                value, WIDTH - _FIELD, break_on_hyphens=False, break_long_words=False
            ) or [""]
            print(f"{name:<{_FIELD}}{lines[0]}")
            for line in lines[1:]:
                print(f"{'':<{_FIELD}}{line}")

    from vocabularies import expand

    def named(terms: tuple[str, ...] | list[str]) -> str:
        return "; ".join(f"{vocab.label_of(t)} [{t}]" for t in terms)

    print(f"{concept.label} [{vocab.name}:{concept.term}]")
    field("URI", concept.uri)
    field("Also called", "; ".join(concept.alt_labels))
    field("Definition", concept.definition)
    path = expand.path_to_root(vocab, concept.term)
    field("Path", " > ".join(vocab.label_of(t) for t in path))
    field("Broader", named(concept.broader) or "(none: top level)")
    field("Narrower", named(concept.narrower) or "(none)")
    field("Descendants", str(vocab.descendant_counts[concept.term]))
    if concept.deprecated:
        replacement = named([concept.use_instead]) if concept.use_instead else "no replacement"
        field("Deprecated", f"yes; use instead: {replacement}")
    if concept.preliminary:
        field("Preliminary", "yes: the term may still change")
    field("Same as", "; ".join(concept.exact_match))


def _refresh(args: argparse.Namespace) -> int:
    from vocabularies.registry import refresh_vocabularies

    settings = _settings(args)
    outcomes = refresh_vocabularies(
        settings.vocabularies, settings.data_dir, names=list(args.names) or None
    )
    for outcome in outcomes:
        print(f"{outcome.name:<20} {outcome.status:<10} {outcome.detail}")
    failed = [outcome.name for outcome in outcomes if outcome.status == "failed"]
    if failed:
        print(
            f"error: {', '.join(failed)} could not be refreshed from "
            f"{settings.vocabularies.base_url}; what was loaded before (a cached copy, or the "
            "snapshot shipped with voexec) stays in use",
            file=sys.stderr,
        )
        return 1
    return 0
