"""Reading a publisher's `ivoa-executable.yaml`: parse, validate every field, normalise.

`check_document(source, vocabularies=..., validate_executable=...)` turns YAML or JSON text (or
an already parsed mapping) into normalised `ExecutableSpec`s, or into problems that each name a
field path (`executables[0].executable.image.digest`) and a reason a packager can act on, with
suggestions where we can guess the intent. Every field is checked, not just the first wrong one,
so one round trip fixes a file. Warnings (a deprecated subject and its replacement, a deprecated
SPDX id) are kept apart: they never stop a publication.

Older forms of the `executable` block (the packagers' and developers' metadata shown in the
IVOA talks: `type`, `repository`/`image`/`tag`/`digest`, a `requirements` map) are read too:
the broker's codec rewrites the block to the newest form (`normalise_executable`), so what is
stored, indexed and handed off is the newest form. Such metadata has no entry name: it falls
back to the name of the repository the file is published from.

Pure: no I/O. The Execution Broker check comes in as functions (the catalogue never imports
the broker); vocabularies come in as a registry.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from catalogue import documents
from catalogue.executables import canonical_block, kind_of, kinds_vocabulary, pinning_problems
from catalogue.model import ExecutableSpec, Links
from catalogue.spdx import LicenceCheck, check_licence
from catalogue.timing import format_duration, parse_duration
from core.errors import Problem, Unavailable
from vocabularies.model import UnknownVocabulary
from vocabularies.registry import VocabularyRegistry
from vocabularies.resolve import resolve

MAX_EXECUTABLES: Final = 100
GPU_VENDORS: Final = ("nvidia", "amd", "intel")
DATA_SCHEMES: Final = ("http", "https", "s3", "ivo", "ftp", "rucio")
LINK_URLS: Final = ("homepage", "documentation", "source", "issues")
SUBJECTS, FUNCTIONS, MESSENGERS = "uat", "software-function", "messenger"

ExecutableValidator = Callable[[Mapping[str, Any]], list[Problem]]
"""Checks an Execution Broker `executable` block; problem fields are relative to the block."""
ExecutableNormaliser = Callable[[Mapping[str, Any]], dict[str, Any]]
"""An `executable` block in the broker's newest form (unchanged when it cannot be read)."""


@dataclass(frozen=True)
class CheckedExecutable:
    """One executable of a document that passed every check, normalised."""

    spec: ExecutableSpec
    field: str
    """Its path in the document (`executables[2]`, or `` for a single executable)."""


@dataclass
class CheckedDocument:
    """The outcome of checking one document."""

    executables: list[CheckedExecutable] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing stops the publication."""
        return not self.problems


def check_document(
    source: str | bytes | Mapping[str, Any],
    *,
    vocabularies: VocabularyRegistry,
    validate_executable: ExecutableValidator,
    require_vocabularies: bool = True,
    normalise_executable: ExecutableNormaliser | None = None,
    repository: str | None = None,
) -> CheckedDocument:
    """Parse and check a publisher's document; see the module docstring.

    Args:
        source: YAML or JSON text (bytes are read as UTF-8), or a parsed mapping.
        vocabularies: where subjects, functions and messengers are resolved.
        validate_executable: the broker's check of an `executable` block.
        require_vocabularies: when False, values of a vocabulary this server has not loaded
            are kept as written, with a warning, instead of raising `Unavailable` (for the
            bundled demo on an offline machine; never for what packagers publish).
        normalise_executable: the broker's rewriting of an `executable` block to its newest
            form; without it, blocks are kept as written.
        repository: URL of the repository the document is published from; its name is the
            entry name of an executable that gives none.

    Returns:
        The normalised executables when there are no problems; otherwise the problems
        (and no executables). Warnings either way.

    Raises:
        Unavailable: a vocabulary needed for the check is not loaded on this server.
    """
    result = CheckedDocument()
    data = documents.load(source, result.problems)
    if result.problems:
        return result
    items = _executable_items(data, result.problems)
    checker = _Checker(vocabularies, validate_executable, result, require_vocabularies)
    checker.normalise_executable = normalise_executable
    checker.repository = repository
    checker.default_name = repository_name(repository) if repository else None
    for where, raw in items:
        spec = checker.executable(raw, where)
        if spec is not None:
            result.executables.append(CheckedExecutable(spec, where))
    _check_unique_names(result)
    if result.problems:
        result.executables = []
    if isinstance(source, str | bytes):
        text = source if isinstance(source, str) else source.decode("utf-8")
        result.problems = documents.in_source_order(text, result.problems)
        result.warnings = documents.in_source_order(text, result.warnings)
    return result


def repository_name(url: str) -> str | None:
    """A repository's name as an entry name (None when nothing of it makes one).

    `https://gitlab.example.org/group/Newton-Rahpson.git` gives `newton-rahpson`.
    """
    last = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    slug = re.sub(r"[^a-z0-9]+", "-", last.lower()).strip("-")[:64].strip("-")
    return slug or None


def _executable_items(data: Any, problems: list[Problem]) -> list[tuple[str, Any]]:
    if not isinstance(data, dict):
        problems.append(
            Problem(
                documents.DOCUMENT,
                "must be a mapping: one executable, or `executables:` and a list",
            )
        )
        return []
    if "executables" not in data:
        return [("", data)]
    extra = sorted(str(key) for key in data if key != "executables")
    for key in extra:
        problems.append(
            Problem(key, "unexpected beside `executables:`; move it into an executable")
        )
    listed = data["executables"]
    if not isinstance(listed, list) or not listed:
        problems.append(Problem("executables", "must be a non-empty list of executables"))
        return []
    if len(listed) > MAX_EXECUTABLES:
        problems.append(Problem("executables", f"at most {MAX_EXECUTABLES} executables per file"))
        return []
    return [(f"executables[{index}]", item) for index, item in enumerate(listed)]


def _check_unique_names(result: CheckedDocument) -> None:
    seen: dict[str, str] = {}
    for item in result.executables:
        if item.spec.name in seen:
            result.problems.append(
                Problem(
                    documents.join(item.field, "name"),
                    f"{item.spec.name!r} is already the name of {seen[item.spec.name]}; "
                    "names must be unique within a file",
                )
            )
        seen.setdefault(item.spec.name, item.field)


class _Checker:
    """Checks executables one by one, adding problems and warnings to one result."""

    def __init__(
        self,
        vocabularies: VocabularyRegistry,
        validate_executable: ExecutableValidator,
        result: CheckedDocument,
        require_vocabularies: bool,
    ) -> None:
        self.vocabularies = vocabularies
        self.validate_executable = validate_executable
        self.result = result
        self.require_vocabularies = require_vocabularies
        self.normalise_executable: ExecutableNormaliser | None = None
        self.repository: str | None = None
        """Where the document is published from: the location of a program that gives none."""
        self.default_name: str | None = None
        """The repository's name: the entry name of an executable that gives none."""

    def problem(self, where: str, reason: str, suggestions: tuple[str, ...] = ()) -> None:
        self.result.problems.append(Problem(where, reason, suggestions))

    def executable(self, raw: Any, where: str) -> ExecutableSpec | None:
        """The normalised spec, or None after recording its problems."""
        before = len(self.result.problems)
        if isinstance(raw, dict) and "name" not in raw and self.default_name is not None:
            raw = {"name": self.default_name, **raw}
        spec = documents.convert(raw, ExecutableSpec, where, self.result.problems)
        self._explain_name(before, where)
        if spec is None:
            # Structure is wrong somewhere; still check the fields we can read, so that the
            # packager sees every problem of the file at once.
            if isinstance(raw, dict):
                self._check_loose_fields(raw, where)
            return None
        spec = self._normalise(spec, where)
        return spec if len(self.result.problems) == before else None

    def _explain_name(self, since: int, where: str) -> None:
        """Say what a valid name looks like, instead of quoting a regular expression."""
        field = documents.join(where, "name")
        problems = self.result.problems
        for index in range(since, len(problems)):
            if problems[index].field == field and "wrong form" in problems[index].reason:
                shown = problems[index].reason.split(" has the wrong form")[0]
                slug = re.sub(r"[^a-z0-9]+", "-", shown.strip("'\"").lower()).strip("-")[:64]
                problems[index] = Problem(
                    field,
                    f"{shown} is not a valid name: use lower-case letters, digits and '-', "
                    "starting and ending with a letter or digit",
                    (slug,) if slug else (),
                )

    def _check_loose_fields(self, raw: dict[str, Any], where: str) -> None:
        for name, vocabulary in (
            ("subjects", SUBJECTS),
            ("functions", FUNCTIONS),
            ("messengers", MESSENGERS),
        ):
            values = raw.get(name)
            if isinstance(values, list) and all(isinstance(v, str) for v in values):
                self._terms(values, vocabulary, documents.join(where, name))
        if isinstance(raw.get("licence"), str):
            self._licence(raw["licence"], documents.join(where, "licence"))
        needs = raw.get("needs")
        if isinstance(needs, dict) and isinstance(needs.get("duration"), str):
            self._duration(needs["duration"], documents.join(where, "needs.duration"))
        authors = raw.get("authors")
        for index, author in enumerate(authors if isinstance(authors, list) else []):
            if isinstance(author, dict) and isinstance(author.get("orcid"), str):
                self._orcid(author["orcid"], documents.join(where, f"authors[{index}].orcid"))
        gpus = needs.get("gpus") if isinstance(needs, dict) else None
        if isinstance(gpus, dict) and isinstance(gpus.get("vendor"), str):
            self._gpu_vendor(gpus["vendor"], documents.join(where, "needs.gpus.vendor"))
        self._loose_links_and_data(raw, where)
        block = raw.get("executable")
        if isinstance(block, dict):
            self._executable_block(block, documents.join(where, "executable"))

    def _loose_links_and_data(self, raw: dict[str, Any], where: str) -> None:
        links = raw.get("links")
        if isinstance(links, dict):
            for name in LINK_URLS:
                if isinstance(links.get(name), str):
                    self._url(links[name], documents.join(where, f"links.{name}"))
            if isinstance(links.get("doi"), str):
                self._doi(links["doi"], documents.join(where, "links.doi"))
        data = raw.get("data")
        for i, expected in enumerate(data if isinstance(data, list) else []):
            examples = expected.get("examples") if isinstance(expected, dict) else None
            for j, location in enumerate(examples if isinstance(examples, list) else []):
                if isinstance(location, str):
                    self._location(location, documents.join(where, f"data[{i}].examples[{j}]"))

    def _normalise(self, spec: ExecutableSpec, where: str) -> ExecutableSpec:

        def at(name: str) -> str:
            return documents.join(where, name)

        authors = [
            msgspec.structs.replace(
                author, orcid=self._orcid(author.orcid, at(f"authors[{i}].orcid"))
            )
            for i, author in enumerate(spec.authors)
        ]
        needs = spec.needs
        if needs.duration is not None:
            needs = msgspec.structs.replace(
                needs, duration=self._duration(needs.duration, at("needs.duration"))
            )
        if needs.gpus is not None and needs.gpus.vendor is not None:
            vendor = self._gpu_vendor(needs.gpus.vendor, at("needs.gpus.vendor"))
            needs = msgspec.structs.replace(
                needs, gpus=msgspec.structs.replace(needs.gpus, vendor=vendor)
            )
        for i, expected in enumerate(spec.data):
            for j, location in enumerate(expected.examples):
                self._location(location, at(f"data[{i}].examples[{j}]"))
        return msgspec.structs.replace(
            spec,
            title=spec.title.strip(),
            summary=spec.summary.strip(),
            authors=authors,
            licence=self._licence(spec.licence, at("licence")),
            keywords=_unique(k.strip() for k in spec.keywords),
            subjects=self._terms(spec.subjects, SUBJECTS, at("subjects")),
            functions=self._terms(spec.functions, FUNCTIONS, at("functions")),
            messengers=self._terms(spec.messengers, MESSENGERS, at("messengers")),
            needs=needs,
            links=self._links(spec, at("links")),
            executable=self._executable_block(spec.executable, at("executable")),
        )

    # ------------------------------------------------------------------ one check per concern
    def _terms(self, values: list[str], vocabulary_name: str, where: str) -> list[str]:
        if not values:
            return []
        try:
            vocabulary = self.vocabularies.get(vocabulary_name)
        except UnknownVocabulary as error:
            # A server without the vocabulary cannot judge the file: that is our fault, not
            # the packager's, so it is not reported as a problem with the document.
            reason = f"the {vocabulary_name!r} vocabulary is not loaded on this server"
            if self.require_vocabularies:
                raise Unavailable(reason) from error
            self.result.warnings.append(Problem(where, f"not checked: {reason}"))
            return _unique(value.strip() for value in values)
        terms: list[str] = []
        for index, text in enumerate(values):
            resolution = resolve(vocabulary, text)
            item = f"{where}[{index}]"
            if resolution.term is None:
                self.problem(
                    item,
                    f"{text!r} is not a concept of the {vocabulary_name} vocabulary",
                    tuple(resolution.suggestions),
                )
                continue
            if resolution.warning:
                self.result.warnings.append(Problem(item, resolution.warning, (resolution.term,)))
            if resolution.term not in terms:
                terms.append(resolution.term)
        return terms

    def _duration(self, text: str, where: str) -> str:
        try:
            return format_duration(parse_duration(text))
        except ValueError as error:
            self.problem(where, str(error))
            return text

    def _licence(self, text: str, where: str) -> str:
        check = _checked_licence(text)
        for warning in check.warnings:
            self.result.warnings.append(Problem(where, warning))
        if check.expression is None:
            self.problem(
                where, check.problem or "not an SPDX licence expression", check.suggestions
            )
            return text
        return check.expression

    def _orcid(self, text: str | None, where: str) -> str | None:
        if text is None:
            return None
        bare = re.sub(r"^https?://orcid\.org/", "", text.strip())
        if not re.fullmatch(r"\d{4}-\d{4}-\d{4}-\d{3}[\dX]", bare):
            self.problem(where, f"{text!r} is not an ORCID iD (e.g. 0000-0002-1825-0097)")
        elif not _orcid_checksum_ok(bare):
            self.problem(where, f"{text!r}: the check digit is wrong; copy the iD from orcid.org")
        return bare

    def _location(self, location: str, where: str) -> None:
        scheme = location.partition(":")[0].lower()
        if scheme not in DATA_SCHEMES or "://" not in location:
            self.problem(
                where,
                f"{location!r} is not a data location; "
                "use an http(s)://, s3://, ivo:// or rucio:// URI",
            )

    def _links(self, spec: ExecutableSpec, where: str) -> Links:
        links = spec.links
        for name in LINK_URLS:
            url = getattr(links, name)
            if url is not None:
                self._url(url, f"{where}.{name}")
        if links.doi is None:
            return links
        doi = self._doi(links.doi, f"{where}.doi")
        return links if doi is None else msgspec.structs.replace(links, doi=doi)

    def _url(self, url: str, where: str) -> None:
        if not re.match(r"^https?://[^\s/]+", url):
            self.problem(where, f"{url!r} is not an http(s) URL")

    def _doi(self, text: str, where: str) -> str | None:
        """The bare DOI, or None after recording a problem."""
        doi = re.sub(r"^(https?://(dx\.)?doi\.org/|doi:)", "", text.strip(), flags=re.I)
        if not re.fullmatch(r"10\.\d{4,9}/\S+", doi):
            self.problem(where, f"{text!r} is not a DOI (e.g. 10.5281/zenodo.1234567)")
            return None
        return doi

    def _gpu_vendor(self, text: str, where: str) -> str:
        vendor = text.strip().lower()
        if vendor not in GPU_VENDORS:
            self.problem(where, f"{text!r} is not a GPU vendor we know", GPU_VENDORS)
        return vendor

    def _executable_block(self, block: dict[str, Any], where: str) -> dict[str, Any]:
        vocabulary = kinds_vocabulary(self.vocabularies)
        known = tuple(sorted(vocabulary.concepts)) if vocabulary is not None else ()
        block = canonical_block(block, vocabulary)
        if self.normalise_executable is not None:
            block = self.normalise_executable(block)
        kind = block.get("kind")
        if not isinstance(kind, str) or not kind.strip():
            self.problem(
                f"{where}.kind", "is required: the Execution Broker kind of the executable", known
            )
            return block
        term = kind_of(kind, vocabulary)
        if term == "python-program" and "location" not in block and self.repository:
            # A developer's metadata lives in the program's own repository.
            block = {**block, "location": self.repository}
        problems = self.validate_executable(block)
        if not problems:
            problems = pinning_problems(term, block)
        for problem in problems:
            suggestions = problem.suggestions or (known if problem.field == "kind" else ())
            self.problem(documents.join(where, problem.field), problem.reason, suggestions)
        return block


@functools.lru_cache(maxsize=4096)
def _checked_licence(text: str) -> LicenceCheck:
    """`check_licence`, kept per text (a frozen answer).

    A harvest meets the same few licences again and again: parsing an SPDX expression was a
    sixth of checking a document.
    """
    return check_licence(text)


def _unique(values: Any) -> list[str]:
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(value.casefold(), value)
    return list(seen.values())


def _orcid_checksum_ok(orcid: str) -> bool:
    """ISO 7064 MOD 11-2, the check digit ORCID uses."""
    digits = orcid.replace("-", "")
    total = 0
    for char in digits[:-1]:
        total = (total + int(char)) * 2
    check = (12 - total % 11) % 11
    return digits[-1] == ("X" if check == 10 else str(check))
