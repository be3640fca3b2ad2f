"""Rendering: sandbox, missing-data semantics, lint and when-conditions."""

from __future__ import annotations

import pytest
from jinja2 import UndefinedError
from jinja2.sandbox import SecurityError

from touchflow.domain.prospects import Prospect
from touchflow.domain.render import (
    KNOWN_TOP_LEVEL,
    MissingValue,
    Renderer,
    build_context,
    lint_template,
    parse_condition,
    prospect_context,
)
from touchflow.errors import MissingDataError

SENDER = {"name": "Sam Rivera", "email": "sam@example.com", "title": None, "company": "Northwind"}


def _prospect(**kw: object) -> Prospect:
    base: dict[str, object] = {
        "email": "dana@acme.io",
        "first_name": "Dana",
        "last_name": "Reyes",
        "title": "VP Revenue Operations",
        "company": "Acme",
        "fields": {"industry": "fintech", "items": "a column named like a dict method"},
    }
    base.update(kw)
    return Prospect(**base)  # type: ignore[arg-type]


def _render(source: str, prospect: Prospect | None = None, **extra: object) -> str:
    ctx = build_context(prospect or _prospect(), SENDER, extra)
    return Renderer({}).render_string(source, ctx)


def test_render_template_and_string() -> None:
    renderer = Renderer(
        {"email/intro.txt.j2": "Hi {{ prospect.first_name }},\nAs {{ prospect.title }}...\n"}
    )
    ctx = build_context(_prospect(), SENDER, {"unsubscribe_url": "https://u/1"})
    assert renderer.render_template("email/intro.txt.j2", ctx) == (
        "Hi Dana,\nAs VP Revenue Operations...\n"  # trailing newline kept
    )
    assert renderer.render_string("{{ prospect.company }} x {{ sender.name }}", ctx) == (
        "Acme x Sam Rivera"
    )
    assert renderer.render_string("{{ unsubscribe_url }}", ctx) == "https://u/1"


def test_plain_text_is_not_html_escaped() -> None:
    assert _render("{{ prospect.company }}", _prospect(company="AT&T <Labs>")) == "AT&T <Labs>"


def test_full_name_and_fields() -> None:
    assert _render("{{ prospect.full_name }}") == "Dana Reyes"
    assert _render("{{ prospect.fields.industry }}") == "fintech"
    assert _render("{{ prospect.fields['industry'] }}") == "fintech"
    assert _render("{{ prospect.fields.items }}") == "a column named like a dict method"
    assert _render("{% if 'industry' in prospect.fields %}yes{% endif %}") == "yes"


def test_missing_field_raises_missing_data_error() -> None:
    prospect = _prospect(title=None)
    for source in (
        "As {{ prospect.title }} at {{ prospect.company }}",
        "{{ prospect.title | upper }}",
        "{{ prospect.title.lower() }}",
        "{{ 'As ' ~ prospect.title }}",
    ):
        with pytest.raises(MissingDataError) as info:
            _render(source, prospect)
        assert info.value.field == "prospect.title"
        assert "prospect.title" in str(info.value)


def test_missing_full_name_and_sender_field() -> None:
    with pytest.raises(MissingDataError, match=r"prospect\.full_name"):
        _render("{{ prospect.full_name }}", _prospect(first_name=None, last_name=None))
    with pytest.raises(MissingDataError) as info:
        _render("{{ sender.title }}")
    assert info.value.field == "sender.title"


def test_missing_fields_column() -> None:
    with pytest.raises(MissingDataError) as info:
        _render("{{ prospect.fields.employees }}")
    assert info.value.field == "prospect.fields.employees"
    assert _render("{{ prospect.fields.employees | default('a growing team') }}") == (
        "a growing team"
    )


def test_if_and_default_work_with_empty_fields() -> None:
    prospect = _prospect(title=None, first_name="")
    source = (
        "Hi {{ prospect.first_name | default('there') }}, "
        "{% if prospect.title %}as {{ prospect.title }}{% else %}no title{% endif %}"
        "{% if prospect.title is defined %}!{% endif %}"
    )
    assert _render(source, prospect) == "Hi there, no title"
    assert _render(source) == "Hi Dana, as VP Revenue Operations!"
    assert _render("{{ prospect.title or 'your team' }}", prospect) == "your team"


def test_missing_value_is_an_undefined() -> None:
    ctx = prospect_context(_prospect(phone=None))
    assert isinstance(ctx["phone"], MissingValue)
    assert not ctx["phone"]
    assert ctx["phone"].field_name == "prospect.phone"
    with pytest.raises(MissingDataError):
        str(ctx["phone"])


def test_unknown_attribute_is_a_template_bug() -> None:
    with pytest.raises(UndefinedError):
        _render("{{ prospect.titel }}")
    with pytest.raises(UndefinedError):
        _render("{{ coupon }}")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ prospect.fields.__init__ }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_sandbox_blocks_internals(source: str) -> None:
    with pytest.raises(SecurityError):
        _render(source)


def test_compiles_each_template_and_string_once(monkeypatch: pytest.MonkeyPatch) -> None:
    renderer = Renderer({"t.j2": "Hi {{ prospect.first_name }}"})
    compiled: list[str] = []
    original = renderer.env.from_string
    get_template = renderer.env.get_template

    def counting_from_string(source: str, *a: object, **kw: object):  # type: ignore[no-untyped-def]
        compiled.append(source)
        return original(source, *a, **kw)  # type: ignore[arg-type]

    def counting_get_template(name: str, *a: object, **kw: object):  # type: ignore[no-untyped-def]
        compiled.append(name)
        return get_template(name, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(renderer.env, "from_string", counting_from_string)
    monkeypatch.setattr(renderer.env, "get_template", counting_get_template)
    ctx = build_context(_prospect(), SENDER)
    for _ in range(100):
        renderer.render_string("{{ prospect.company }}", ctx)
        renderer.render_template("t.j2", ctx)
    assert compiled == ["{{ prospect.company }}", "t.j2"]


# --------------------------------------------------------------------------- lint


def test_lint_finds_unknown_prospect_attribute_with_position() -> None:
    source = "Hi {{ prospect.first_name }},\n\nAs {{ prospect.titel }} at {{ prospect.company }}\n"
    findings = lint_template("templates/email/x.txt.j2", source)
    assert [str(f) for f in findings] == [
        "templates/email/x.txt.j2:3:7: error: unknown variable prospect.titel: no prospect has "
        "it (use one of company, country, domain, email, fields, first_name, full_name, "
        "last_name, phone, timezone, title, or fields.<column>)"
    ]


def test_lint_accepts_every_known_name() -> None:
    source = (
        "{% set greeting = 'Hi' %}{{ greeting }} {{ prospect.first_name }}\n"
        "{% for n in range(2) %}{{ n }}{% endfor %}\n"
        "{{ prospect.fields.anything }} {{ prospect.fields['any column'] }}\n"
        "{{ prospect.full_name }} {{ prospect['email'] }} {{ sender.phone }}\n"
        "{{ unsubscribe_url }} {{ step.id }} {{ cadence.name }}\n"
        "{% include 'email/_signature.txt.j2' %}\n"
    )
    assert lint_template("t.j2", source) == []
    assert {"prospect", "sender", "unsubscribe_url", "step", "cadence"} == KNOWN_TOP_LEVEL


def test_lint_unknown_names_and_sender_attributes() -> None:
    source = "Hi\n{{ sender.nickname }} and {{ coupon_code }}\n{% include which %}\n"
    findings = lint_template("t.j2", source)
    assert [(f.line, f.col) for f in findings] == [(2, 4), (2, 30), (3, 4), (3, 12)]
    messages = " | ".join(f.message for f in findings)
    assert "sender.nickname" in messages
    assert "'coupon_code'" in messages
    assert "'which'" in messages
    assert "string literals" in messages


def test_lint_syntax_error_line() -> None:
    findings = lint_template("t.j2", "line one\nline two\n{% if prospect.title %}\nno end\n")
    assert len(findings) == 1
    assert findings[0].line == 4
    assert "template syntax error" in findings[0].message


# --------------------------------------------------------------------------- conditions


def test_conditions_with_touched() -> None:
    renderer = Renderer({})
    events = {("intro", "sent"), ("intro", "opened")}

    def touched(step_id: str, event: str) -> bool:
        return (step_id, event) in events

    assert renderer.condition("touched('intro')")(touched) is True
    assert renderer.condition("touched('intro', 'opened')")(touched) is True
    assert renderer.condition("not touched('intro', 'opened')")(touched) is False
    assert renderer.condition("touched('intro', event='clicked')")(touched) is False
    expr = "touched('intro', 'clicked') or touched('call-1', 'completed')"
    assert renderer.condition(expr)(touched) is False
    events.add(("call-1", "completed"))
    assert renderer.condition(expr)(touched) is True


def test_conditions_with_outcome() -> None:
    renderer = Renderer({})
    outcomes = {"call-1": "no_answer"}
    expr = "outcome('call-1') in ['no_answer', 'voicemail']"

    def touched(step_id: str, event: str) -> bool:
        return False

    assert renderer.condition(expr)(touched, outcomes.get) is True
    outcomes["call-1"] = "connected"
    assert renderer.condition(expr)(touched, outcomes.get) is False
    del outcomes["call-1"]  # no outcome yet (or the call was skipped)
    assert renderer.condition(expr)(touched, outcomes.get) is False
    assert renderer.condition("outcome('call-1') is none")(touched, outcomes.get) is True
    # Without an outcome function, no step has an outcome.
    assert renderer.condition(expr)(touched) is False


def test_parse_condition_lists_outcomes_and_their_steps() -> None:
    info = parse_condition(
        "outcome('call-1') in ['no_answer', 'voicemail'] or 'connected' == outcome('call-2')"
    )
    assert info.outcome_steps == ["call-1", "call-2"]
    assert sorted(info.outcomes) == ["connected", "no_answer", "voicemail"]
    assert info.names == set() and info.problems == []
    # A bare call is the expression's root node: it is found too.
    assert parse_condition("touched('intro')").calls == [("intro", "sent")]


def test_condition_is_compiled_once() -> None:
    renderer = Renderer({})
    renderer.condition("touched('a')")
    compiled = dict(renderer._conditions)
    renderer.condition("touched('a')")
    assert renderer._conditions == compiled
