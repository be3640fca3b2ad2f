"""Sandboxed Jinja2 rendering, missing-data semantics and template lint.

Templates are plain text (no HTML autoescaping) rendered in a
:class:`~jinja2.sandbox.SandboxedEnvironment` with :class:`~jinja2.StrictUndefined`.

Missing data never renders as a blank. An empty prospect field (or sender
field, or ``prospect.fields.<column>`` of an absent column) is a
:class:`MissingValue`: it is falsy, so ``{% if prospect.title %}`` works, the
``default`` filter replaces it, and any attempt to print it raises
:class:`~touchflow.errors.MissingDataError` naming the field, which holds the
enrollment in ``pending(missing_data)`` instead of sending "Hi ,".

A variable no prospect can have (``prospect.titel``) is a bug in the template,
not missing data: :func:`lint_template` finds it at validate time, and at render
time StrictUndefined raises :class:`jinja2.UndefinedError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from jinja2 import (
    DictLoader,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    Undefined,
    meta,
    nodes,
)
from jinja2.exceptions import TemplateNotFound
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from touchflow.domain.prospects import STANDARD_FIELDS, Prospect
from touchflow.errors import CadenceError, Finding, MissingDataError

#: Names a template may use at the top level.
KNOWN_TOP_LEVEL: frozenset[str] = frozenset(
    {"prospect", "sender", "unsubscribe_url", "step", "cadence"}
)
#: Attributes of ``prospect`` in templates (``fields.<column>`` is open-ended).
PROSPECT_ATTRIBUTES: frozenset[str] = frozenset({*STANDARD_FIELDS, "fields", "full_name"})
#: Attributes of ``sender`` in templates.
SENDER_FIELDS: tuple[str, ...] = (
    "name",
    "email",
    "title",
    "company",
    "phone",
    "postal_address",
    "signature",
)


class _Environment(SandboxedEnvironment):
    """The sandbox, with each template's globals flattened into a plain dict.

    Jinja hands every template a ChainMap of its globals and the environment's;
    every render copies it, and iterating a ChainMap costs ~10 µs, three times
    per message. Our environment's globals never change after creation, so a
    flat copy is equivalent.
    """

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}


def make_environment(templates: Mapping[str, str] | None = None) -> SandboxedEnvironment:
    """The one Jinja environment configuration used for rendering and for lint."""
    return _Environment(
        loader=DictLoader(dict(templates or {})),
        autoescape=False,  # plain-text email, SMS and scripts: escaping would corrupt them
        keep_trailing_newline=True,
        # Block tags on their own line leave no blank line behind, which is
        # what authors of plain-text copy expect.
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        # Templates of a loaded cadence never change (a new version is a new
        # Renderer), so skip the per-render up-to-date check and never evict.
        auto_reload=False,
        cache_size=-1,
    )


class MissingValue(Undefined):
    """An empty field: falsy, replaced by ``default``, raises MissingDataError when printed."""

    __slots__ = ()

    def __init__(self, name: str) -> None:
        super().__init__(name=name)

    @property
    def field_name(self) -> str:
        """The dotted name of the missing field, e.g. ``prospect.title``."""
        return self._undefined_name or "?"

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise MissingDataError(self.field_name)

    # Undefined renders as "" and iterates as empty; for a message that would
    # be a blank in front of a prospect, so every rendering path raises.
    __str__ = __iter__ = __len__ = __format__ = _fail_with_undefined_error

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"MissingValue({self.field_name!r})"


class FieldValues:
    """``prospect.fields``: extra CSV columns by name; an absent column is a MissingValue.

    Deliberately not a dict: Jinja looks attributes up before items, so on a
    dict a column named ``items`` or ``values`` would resolve to a method.
    """

    __slots__ = ("_prefix", "_values")

    def __init__(self, values: Mapping[str, Any], prefix: str = "prospect.fields") -> None:
        self._values = dict(values)
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Any:
        return _value_or_missing(self._values.get(name), f"{self._prefix}.{name}")

    def __contains__(self, name: object) -> bool:
        return _present(self._values.get(name)) if isinstance(name, str) else False

    def __iter__(self) -> Iterator[str]:
        return (k for k, v in self._values.items() if _present(v))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"FieldValues({self._values!r})"


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _value_or_missing(value: Any, name: str) -> Any:
    return value if _present(value) else MissingValue(name)


def prospect_context(prospect: Prospect) -> dict[str, Any]:
    """The ``prospect`` object templates see: every standard field, ``full_name`` and ``fields``."""
    ctx: dict[str, Any] = {
        name: _value_or_missing(getattr(prospect, name), f"prospect.{name}")
        for name in STANDARD_FIELDS
    }
    ctx["full_name"] = _value_or_missing(prospect.full_name, "prospect.full_name")
    ctx["fields"] = FieldValues(prospect.fields)
    return ctx


def sender_context(sender: Mapping[str, str | None]) -> dict[str, Any]:
    """The ``sender`` object templates see; empty entries are MissingValues named ``sender.<x>``."""
    return {name: _value_or_missing(sender.get(name), f"sender.{name}") for name in SENDER_FIELDS}


def build_context(
    prospect: Prospect,
    sender: Mapping[str, str | None],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The full render context: ``{"prospect": ..., "sender": ..., **extra}``.

    ``extra`` carries ``unsubscribe_url``, ``step`` and ``cadence``.
    """
    return {
        "prospect": prospect_context(prospect),
        "sender": sender_context(sender),
        **(extra or {}),
    }


class Renderer:
    """Renders the templates of one cadence version; compiles each template and string once."""

    def __init__(self, templates: Mapping[str, str]) -> None:
        self.env = make_environment(templates)
        self._templates: dict[str, Template] = {}
        self._strings: dict[str, Template] = {}
        self._conditions: dict[str, Callable[..., Any]] = {}

    def render_template(self, name: str, context: Mapping[str, Any]) -> str:
        """Render a named template; raises MissingDataError when it needs an empty field."""
        template = self._templates.get(name)
        if template is None:
            try:
                template = self.env.get_template(name)
            except TemplateNotFound as exc:
                raise CadenceError(
                    Finding(f"templates/{name}", 1, 1, "template not found")
                ) from exc
            self._templates[name] = template
        return template.render(context)

    def render_string(self, source: str, context: Mapping[str, Any]) -> str:
        """Render a template given as text (a subject line); compiled once per distinct text."""
        template = self._strings.get(source)
        if template is None:
            template = self._strings[source] = self.env.from_string(source)
        return template.render(context)

    def condition(self, expr: str) -> Condition:
        """Compile a step's ``when`` expression.

        The result takes a ``touched(step_id, event) -> bool`` function and an
        ``outcome(step_id) -> str | None`` function (the outcome of a task
        step, None while it has none) and evaluates the expression with
        ``touched(step_id, event='sent')`` and ``outcome(step_id)`` in scope; a third,
        ``tracker(step_id, name) -> bool`` (a tracker heard on the call of a call step's
        task, from its after-call summary), is ``tracker(...)`` (False when not given).
        """
        compiled = self._conditions.get(expr)
        if compiled is None:
            compiled = self._conditions[expr] = self.env.compile_expression(expr)

        def evaluate(
            touched: Callable[[str, str], bool],
            outcome: Callable[[str], str | None] = _no_outcome,
            tracker: Callable[[str, str], bool] = _no_tracker,
        ) -> bool:
            def touched_in_template(step_id: str, event: str = "sent") -> bool:
                return bool(touched(step_id, event))

            def tracker_in_template(step_id: str, name: str) -> bool:
                return bool(tracker(step_id, name))

            return bool(
                compiled(touched=touched_in_template, outcome=outcome, tracker=tracker_in_template)
            )

        return evaluate


#: A compiled ``when``: ``(touched, outcome, tracker) -> bool`` (:meth:`Renderer.condition`).
Condition = Callable[..., bool]


def _no_outcome(step_id: str) -> str | None:
    return None


def _no_tracker(step_id: str, name: str) -> bool:
    return False


# --------------------------------------------------------------------------- lint

#: Nodes that name another template (each has a ``template`` expression).
_TEMPLATE_REFS: tuple[
    type[nodes.Include | nodes.Import | nodes.FromImport | nodes.Extends], ...
] = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)

_TAG_SPAN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def _column(source: str, lineno: int, pattern: str) -> int:
    """1-based column of ``pattern`` inside a Jinja tag on line ``lineno``, else 1."""
    lines = source.splitlines()
    if not 1 <= lineno <= len(lines):
        return 1
    line = lines[lineno - 1]
    rx = re.compile(pattern)
    for span in _TAG_SPAN.finditer(line):
        match = rx.search(line, span.start(), span.end())
        if match:
            return match.start() + 1
    match = rx.search(line)  # a tag spanning several lines
    return match.start() + 1 if match else 1


def _const_str(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return None


def _attribute_of(node: nodes.Node, name: str) -> str | None:
    """``x`` for ``<name>.x`` or ``<name>['x']``, else None."""
    attr: str | None
    if isinstance(node, nodes.Getattr):
        target, attr = node.node, node.attr
    elif isinstance(node, nodes.Getitem):
        target, attr = node.node, _const_str(node.arg)
    else:
        return None
    if isinstance(target, nodes.Name) and target.name == name and target.ctx == "load":
        return attr
    return None


def parse_template(path_label: str, source: str) -> tuple[nodes.Template | None, list[Finding]]:
    """Parse a template; a syntax error becomes a finding at the error's line."""
    try:
        return make_environment().parse(source), []
    except TemplateSyntaxError as exc:
        return None, [
            Finding(path_label, exc.lineno or 1, 1, f"template syntax error: {exc.message}")
        ]


def lint_ast(
    path_label: str,
    source: str,
    ast: nodes.Template,
    *,
    at: tuple[int, int] | None = None,
) -> list[Finding]:
    """Variables in a parsed template that no render context can provide.

    ``at`` places every finding at one position (a template inside a YAML
    value, whose lines do not map to the file's lines).
    """
    env = make_environment()
    findings: list[Finding] = []

    def add(lineno: int, pattern: str, message: str) -> None:
        if at is not None:
            findings.append(Finding(path_label, at[0], at[1], message))
        else:
            findings.append(Finding(path_label, lineno, _column(source, lineno, pattern), message))

    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        attr = _attribute_of(node, "prospect")
        if attr is not None and attr not in PROSPECT_ATTRIBUTES:
            add(
                node.lineno,
                rf"prospect\s*(?:\.\s*{re.escape(attr)}\b|\[)",
                f"unknown variable prospect.{attr}: no prospect has it "
                f"(use one of {', '.join(sorted(PROSPECT_ATTRIBUTES))}, or fields.<column>)",
            )
        attr = _attribute_of(node, "sender")
        if attr is not None and attr not in SENDER_FIELDS:
            add(
                node.lineno,
                rf"sender\s*(?:\.\s*{re.escape(attr)}\b|\[)",
                f"unknown variable sender.{attr} (use one of {', '.join(SENDER_FIELDS)})",
            )
    allowed = KNOWN_TOP_LEVEL | set(env.globals)
    undeclared = meta.find_undeclared_variables(ast) - allowed
    if undeclared:
        reported: set[str] = set()
        for name_node in ast.find_all(nodes.Name):
            name = name_node.name
            if name in undeclared and name not in reported:
                reported.add(name)
                add(
                    name_node.lineno,
                    rf"\b{re.escape(name)}\b",
                    f"unknown variable {name!r} (templates can use "
                    f"{', '.join(sorted(KNOWN_TOP_LEVEL))})",
                )
    for ref in ast.find_all(_TEMPLATE_REFS):
        if _const_str(ref.template) is None:
            add(
                ref.lineno,
                r"include|import|from|extends",
                "included or imported template names must be string literals",
            )
    return sorted(findings)


def lint_template(path_label: str, source: str) -> list[Finding]:
    """All findings for one template: syntax errors and variables no render context has.

    Findings carry ``path_label`` and the template's own line numbers.
    """
    ast, findings = parse_template(path_label, source)
    if ast is None:
        return findings
    return lint_ast(path_label, source, ast)


def template_dependencies(ast: nodes.Template) -> list[tuple[str, int]]:
    """Templates a parsed template includes, imports or extends: ``(name, lineno)``."""
    deps: list[tuple[str, int]] = []
    for node in ast.find_all(_TEMPLATE_REFS):
        name = _const_str(node.template)
        if name is not None:
            deps.append((name, node.lineno))
    return deps


@dataclass
class ConditionInfo:
    """What a ``when`` expression refers to.

    ``calls`` lists each ``touched()`` call as ``(step_id, event)``;
    ``outcome_steps`` the step of each ``outcome()`` call; ``outcomes`` the
    string literals an ``outcome()`` call is compared with (``==``, ``!=``,
    ``in``, ``not in``); ``problems`` holds calls that cannot be checked
    statically; ``names`` other variables used; ``trackers`` each ``tracker()`` call
    as ``(step_id, tracker name)``.
    """

    calls: list[tuple[str, str]] = field(default_factory=list)
    outcome_steps: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    trackers: list[tuple[str, str]] = field(default_factory=list)


#: The functions a ``when`` expression may call.
CONDITION_FUNCTIONS = frozenset({"touched", "outcome", "tracker"})


def parse_condition(expr: str) -> ConditionInfo:
    """Parse a ``when`` expression; raises jinja2.TemplateSyntaxError if it does not compile."""
    env = make_environment()
    parser = Parser(env, expr, state="variable")
    node = parser.parse_expression()
    if not parser.stream.eos:
        token = parser.stream.current
        raise TemplateSyntaxError(f"unexpected {token.value!r} after the expression", token.lineno)
    info = ConditionInfo()
    for name_node in _self_and_descendants(node, nodes.Name):
        if name_node.name not in CONDITION_FUNCTIONS:
            info.names.add(name_node.name)
    for call in _self_and_descendants(node, nodes.Call):
        if _is_call_of(call, "touched"):
            _touched_call(call, info)
        elif _is_call_of(call, "outcome"):
            if len(call.args) != 1 or call.kwargs or call.dyn_args or call.dyn_kwargs:
                info.problems.append("outcome() takes one step id: outcome('call-1')")
                continue
            step_id = _const_str(call.args[0])
            if step_id is None:
                info.problems.append("outcome() needs a string literal: outcome('call-1')")
                continue
            info.outcome_steps.append(step_id)
        elif _is_call_of(call, "tracker"):
            pair = [_const_str(a) for a in call.args]
            if len(pair) != 2 or call.kwargs or call.dyn_args or call.dyn_kwargs:
                info.problems.append("tracker() takes a step id and a tracker: "
                                     "tracker('call-1', 'pricing')")  # fmt: skip
            elif pair[0] is None or pair[1] is None:
                info.problems.append(
                    "tracker() needs string literals: tracker('call-1', 'pricing')"
                )
            else:
                info.trackers.append((pair[0], pair[1]))
    for compare in _self_and_descendants(node, nodes.Compare):
        operands = [compare.expr, *(op.expr for op in compare.ops)]
        if not any(isinstance(o, nodes.Call) and _is_call_of(o, "outcome") for o in operands):
            continue
        for operand in operands:
            items = operand.items if isinstance(operand, nodes.List | nodes.Tuple) else [operand]
            info.outcomes.extend(v for item in items if (v := _const_str(item)) is not None)
    return info


_N = TypeVar("_N", bound=nodes.Node)


def _self_and_descendants(node: nodes.Node, kind: type[_N]) -> Iterator[_N]:
    """``node.find_all(kind)``, and ``node`` itself: a bare ``touched('x')`` is the root."""
    if isinstance(node, kind):
        yield node
    yield from node.find_all(kind)


def _is_call_of(call: nodes.Call, name: str) -> bool:
    return isinstance(call.node, nodes.Name) and call.node.name == name


def _touched_call(call: nodes.Call, info: ConditionInfo) -> None:
    args: dict[str, nodes.Expr] = dict(zip(("step_id", "event"), call.args, strict=False))
    for kw in call.kwargs:
        args[kw.key] = kw.value
    unknown = set(args) - {"step_id", "event"}
    if len(call.args) > 2 or unknown or call.dyn_args or call.dyn_kwargs:
        info.problems.append("touched() takes (step_id, event='sent')")
        return
    step_id = _const_str(args["step_id"]) if "step_id" in args else None
    event = _const_str(args["event"]) if "event" in args else "sent"
    if step_id is None or event is None:
        info.problems.append("touched() needs string literals: touched('intro', 'opened')")
        return
    info.calls.append((step_id, event))
