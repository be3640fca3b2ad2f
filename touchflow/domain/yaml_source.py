"""YAML with positions: plain Python data plus the line and column of every key and value.

Cadence validation reports ``file:line:col``, so the loader must remember where
each value came from. :func:`parse_yaml` composes the node tree with
:class:`StrictSafeLoader` and builds the data itself, recording the 1-based
position of every value (``positions``) and of every mapping key
(``key_positions``), both keyed by the value's path, e.g. ``("steps", 2, "after")``.

:class:`StrictSafeLoader` fixes the two YAML 1.1 surprises that bite
hand-written config (python-statemachine's YAML reader does the same):

- only ``true``/``false`` are booleans: ``no``, ``on``, ``off``, ``yes``, ``y``
  and ``n`` stay strings (a step id ``no``, the country code ``NO``);
- base-60 numbers are gone: ``17:30`` is the string ``"17:30"``, not ``1050``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from touchflow.errors import Finding, FindingsError

#: A path into the data: mapping keys and sequence indexes, outermost first.
Path = tuple[Any, ...]
#: A 1-based ``(line, col)``.
Position = tuple[int, int]

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


class StrictSafeLoader(yaml.SafeLoader):
    """A SafeLoader whose booleans are only true/false and which has no base-60 numbers."""

    # A fresh dict of fresh lists: add_implicit_resolver appends to the lists
    # in place, and SafeLoader's own lists must stay untouched.
    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML's class-level registry
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


StrictSafeLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# SafeLoader's int and float patterns minus their sexagesimal alternatives.
StrictSafeLoader.add_implicit_resolver(
    _INT,
    re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    list("-+0123456789"),
)
StrictSafeLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


@dataclass
class YamlDocument:
    """Parsed YAML data with the position of every value and key.

    ``findings`` holds non-fatal problems found while building the data
    (duplicate keys, unsupported tags); the data is still usable.
    """

    path: str
    data: Any
    positions: dict[Path, Position] = field(default_factory=dict)
    key_positions: dict[Path, Position] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def position_for(self, loc: Iterable[Any]) -> Position:
        """The position of the longest known prefix of ``loc``.

        Components that are not in the data (pydantic's union member tags such
        as ``"list[str]"``, or a missing key) are skipped, so any pydantic
        ``loc`` lands on the closest value that exists in the file.
        """
        path: Path = ()
        best = self.positions.get((), (1, 1))
        for comp in loc:
            candidate = (*path, comp)
            if candidate in self.positions:
                path = candidate
                best = self.positions[candidate]
        return best

    def key_position(self, loc: Iterable[Any]) -> Position:
        """The position of the mapping key at ``loc`` (for unknown-key errors), else its value's."""
        loc = tuple(loc)
        if loc in self.key_positions:
            return self.key_positions[loc]
        return self.position_for(loc)

    def finding(self, loc: Iterable[Any], message: str, *, key: bool = False) -> Finding:
        """A :class:`Finding` at the value (or with ``key=True`` the key) at ``loc``."""
        line, col = self.key_position(loc) if key else self.position_for(loc)
        return Finding(self.path, line, col, message)


def _pos(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def syntax_finding(path: str, exc: yaml.YAMLError) -> Finding:
    """Turn a PyYAML error into a finding at its problem mark (else its context mark)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        parts = [p for p in (exc.context, exc.problem) if p]
        message = ", ".join(parts) or str(exc)
        if mark is not None:
            return Finding(path, mark.line + 1, mark.column + 1, f"YAML syntax error: {message}")
        return Finding(path, 1, 1, f"YAML syntax error: {message}")
    return Finding(path, 1, 1, f"YAML syntax error: {exc}")


class _Builder:
    """Walks a composed node tree into Python data, recording positions."""

    def __init__(self, loader: StrictSafeLoader, doc: YamlDocument) -> None:
        self.loader = loader
        self.doc = doc
        # Nodes being built right now: an alias back into one of them is a cycle.
        self.active: set[int] = set()

    def build(self, node: Node, path: Path) -> Any:
        self.doc.positions[path] = _pos(node)
        if id(node) in self.active:
            self.doc.findings.append(
                Finding(self.doc.path, *_pos(node), "recursive YAML alias is not supported")
            )
            return None
        if isinstance(node, ScalarNode):
            try:
                return self.loader.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                self.doc.findings.append(syntax_finding(self.doc.path, exc))
                return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                self._check_tag(node, _SEQ)
                return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
            if isinstance(node, MappingNode):
                self._check_tag(node, _MAP)
                return self._mapping(node, path)
        finally:
            self.active.discard(id(node))
        raise AssertionError(f"unexpected YAML node {node!r}")  # pragma: no cover

    def _check_tag(self, node: Node, expected: str) -> None:
        if node.tag != expected:
            self.doc.findings.append(
                Finding(self.doc.path, *_pos(node), f"unsupported YAML tag {node.tag!r}")
            )

    def _mapping(self, node: MappingNode, path: Path) -> dict[Any, Any]:
        # Keys written in this mapping (not pulled in by a `<<` merge): only
        # these can be duplicates; a merged key is meant to be overridden.
        own = {id(k) for k, _ in node.value if k.tag != _MERGE}
        try:
            self.loader.flatten_mapping(node)
        except yaml.YAMLError as exc:
            self.doc.findings.append(syntax_finding(self.doc.path, exc))
        result: dict[Any, Any] = {}
        first_seen: dict[Any, Position] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.doc.findings.append(
                    Finding(self.doc.path, *_pos(key_node), "mapping keys must be plain scalars")
                )
                continue
            try:
                key = self.loader.construct_object(key_node, deep=True)
            except yaml.YAMLError as exc:
                self.doc.findings.append(syntax_finding(self.doc.path, exc))
                continue
            if not isinstance(key, Hashable):  # pragma: no cover - scalars are hashable
                continue
            if id(key_node) in own:
                if key in first_seen:
                    line, _ = first_seen[key]
                    self.doc.findings.append(
                        Finding(
                            self.doc.path,
                            *_pos(key_node),
                            f"duplicate key {key!r} (first defined on line {line})",
                        )
                    )
                first_seen.setdefault(key, _pos(key_node))
            self.doc.key_positions[(*path, key)] = _pos(key_node)
            result[key] = self.build(value_node, (*path, key))
        return result


def parse_yaml(text: str, path: str) -> YamlDocument:
    """Parse one YAML document, keeping positions.

    Raises :class:`~touchflow.errors.FindingsError` with one finding at the problem mark when the
    text is not valid YAML; other problems (duplicate keys) are collected in
    :attr:`YamlDocument.findings`. An empty document gives ``data=None``.
    """
    doc = YamlDocument(path=path, data=None)
    loader = StrictSafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.data = _Builder(loader, doc).build(node, ())
    except yaml.YAMLError as exc:
        raise FindingsError(syntax_finding(path, exc)) from exc
    finally:
        loader.dispose()
    return doc


def load_yaml(text: str) -> Any:
    """Parse YAML with :class:`StrictSafeLoader` (no positions); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=StrictSafeLoader)
