"""Every malformed cadence gives a finding at the exact file:line:col of the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from touchflow.domain.cadence import load_cadence, load_cadences, validate_paths
from touchflow.errors import CadenceError

TEMPLATES = {
    "email/intro.txt.j2": "Hi {{ prospect.first_name }}\n",
    "email/bump.txt.j2": "Bumping this.\n",
    "sms/nudge.txt.j2": "Hi {{ prospect.first_name | default('there') }}\n",
    "email/broken.txt.j2": "Hi\n\n{{ prospect.first_name | }}\n",
    "email/typo.txt.j2": "Hi {{ prospect.first_name }},\nAs {{ prospect.titel }} at\n",
    "email/unknown-var.txt.j2": "Hello\n\n  {{ discount_code }}\n",
    "email/include-missing.txt.j2": "Hi\n{% include 'email/nope.txt.j2' %}\n",
}

# Lines 1-5 of most cases; steps start on line 6.
HEAD = """\
id: bad
name: Bad
schedule:
  window: {days: [mon, tue], start: "09:00", end: "17:00"}
steps:
"""

INTRO = """\
  - id: intro
    channel: email
    subject: Hello
    template: email/intro.txt.j2
"""

CALL = """\
  - id: call-1
    channel: call
"""

NUDGE = """\
  - id: nudge
    channel: sms
    template: sms/nudge.txt.j2
    when: "{when}"
"""

CASES: list[tuple[str, str, str, str]] = [
    # (case id, YAML, expected "file:line:col", message substring)
    (
        "yaml-syntax",
        "id: bad\nname: [Bad\nsteps: []\n",
        "cadences/bad.yaml:3:6",
        "YAML syntax error",
    ),
    (
        "duplicate-key",
        HEAD.replace("name: Bad\n", "name: Bad\nname: Worse\n") + INTRO,
        "cadences/bad.yaml:3:1",
        "duplicate key 'name' (first defined on line 2)",
    ),
    (
        "not-a-mapping",
        "- id: bad\n- name: Bad\n",
        "cadences/bad.yaml:1:1",
        "a cadence must be a mapping",
    ),
    (
        "unknown-top-key",
        HEAD.replace("name: Bad\n", "name: Bad\ndescripton: typo\n") + INTRO,
        "cadences/bad.yaml:3:1",
        "unknown key 'descripton' (did you mean 'description'?)",
    ),
    (
        "unknown-step-key",
        HEAD + INTRO + "    subjet: Hi\n",
        "cadences/bad.yaml:10:5",
        "unknown key 'subjet' (did you mean 'subject'?)",
    ),
    (
        "missing-name",
        HEAD.replace("name: Bad\n", "") + INTRO,
        "cadences/bad.yaml:1:1",
        "missing required key 'name'",
    ),
    (
        "missing-window",
        HEAD.replace("  window:", "  timezone: prospect\n  x-window:") + INTRO,
        "cadences/bad.yaml:4:3",
        "missing required key 'window'",
    ),
    (
        "missing-channel",
        HEAD + "  - id: intro\n    template: email/intro.txt.j2\n",
        "cadences/bad.yaml:6:5",
        "missing required key 'channel'",
    ),
    (
        "wrong-type-name",
        HEAD.replace("name: Bad", "name: [Bad, Worse]") + INTRO,
        "cadences/bad.yaml:2:7",
        "name: input should be a valid string",
    ),
    (
        "wrong-type-jitter",
        HEAD.replace("steps:", '  jitter_minutes: "20"\nsteps:') + INTRO,
        "cadences/bad.yaml:5:19",
        "schedule.jitter_minutes: input should be a valid integer",
    ),
    (
        "jitter-out-of-range",
        HEAD.replace("steps:", "  jitter_minutes: 500\nsteps:") + INTRO,
        "cadences/bad.yaml:5:19",
        "less than or equal to 240",
    ),
    (
        "unknown-channel",
        HEAD + INTRO.replace("channel: email", "channel: fax"),
        "cadences/bad.yaml:7:14",
        "steps[0].channel: input should be 'email'",
    ),
    (
        "unknown-exit-event",
        HEAD.replace("steps:", "exit_on: [reply, ghosted]\nsteps:") + INTRO,
        "cadences/bad.yaml:5:18",
        "got 'ghosted'",
    ),
    (
        "empty-steps",
        HEAD.replace("steps:\n", "steps: []\n"),
        "cadences/bad.yaml:5:8",
        "at least one step",
    ),
    (
        "duplicate-step-id",
        HEAD + INTRO + INTRO,
        "cadences/bad.yaml:10:9",
        "duplicate step id 'intro' (first used on line 6)",
    ),
    (
        "duplicate-variant-id",
        HEAD
        + INTRO
        + "    variants:\n      - {id: a}\n      - {id: b}\n      - {id: a, weight: 2}\n",
        "cadences/bad.yaml:13:14",
        "duplicate variant id 'a'",
    ),
    (
        "variant-weight-zero",
        HEAD + INTRO + "    variants:\n      - {id: a, weight: 0}\n",
        "cadences/bad.yaml:11:25",
        "steps[0].variants[0].weight: must be at least 1, not 0",
    ),
    (
        "thread-not-email",
        HEAD + INTRO + "  - id: call-1\n    channel: call\n"
        "  - id: bump\n    channel: email\n    thread: call-1\n    template: email/bump.txt.j2\n",
        "cadences/bad.yaml:14:13",
        "thread 'call-1' must be an earlier email step, but it is a call",
    ),
    (
        "thread-later-step",
        HEAD + "  - id: bump\n    channel: email\n    thread: intro\n"
        "    template: email/bump.txt.j2\n" + INTRO,
        "cadences/bad.yaml:8:13",
        "thread 'intro' must be an earlier email step",
    ),
    (
        "thread-unknown-step",
        HEAD + INTRO + "  - id: bump\n    channel: email\n    thread: intor\n"
        "    template: email/bump.txt.j2\n",
        "cadences/bad.yaml:12:13",
        "thread 'intor' is not a step of this cadence",
    ),
    (
        "bad-timezone",
        HEAD.replace("schedule:\n", "schedule:\n  timezone: Mars/Olympus_Mons\n") + INTRO,
        "cadences/bad.yaml:4:13",
        "'Mars/Olympus_Mons' is not 'prospect', 'sender' or an IANA time zone",
    ),
    (
        "bad-fallback-timezone",
        HEAD.replace("schedule:\n", "schedule:\n  fallback_timezone: America/New_Yrok\n") + INTRO,
        "cadences/bad.yaml:4:22",
        "did you mean 'America/New_York'?",
    ),
    (
        "unknown-holiday-country",
        HEAD.replace("steps:", "  holidays: [US, XX]\nsteps:") + INTRO,
        "cadences/bad.yaml:5:18",
        "unknown holiday country 'XX'",
    ),
    (
        "holidays-wrong-type",
        HEAD.replace("steps:", "  holidays: yes\nsteps:") + INTRO,
        "cadences/bad.yaml:5:13",
        "schedule.holidays: must be 'prospect', 'none' or a list",
    ),
    (
        "bad-window-day",
        HEAD.replace("[mon, tue]", "[mon, funday]") + INTRO,
        "cadences/bad.yaml:4:24",
        "'funday' is not a day",
    ),
    (
        "start-not-hhmm",
        HEAD.replace('start: "09:00"', "start: 9am") + INTRO,
        "cadences/bad.yaml:4:37",
        "'9am' is not a time of day: use HH:MM",
    ),
    (
        "end-before-start",
        HEAD.replace('end: "17:00"', "end: 08:30") + INTRO,
        "cadences/bad.yaml:4:51",
        "window end 08:30 must be after start 09:00",
    ),
    (
        "bad-after",
        HEAD + INTRO.replace("    channel:", "    after: 2 weeks\n    channel:"),
        "cadences/bad.yaml:7:12",
        "'2 weeks' is not a delay",
    ),
    (
        "after-wrong-type",
        HEAD + INTRO.replace("    channel:", "    after: 3\n    channel:"),
        "cadences/bad.yaml:7:12",
        "steps[0].after: must be text like '2 business days'",
    ),
    (
        "id-not-kebab",
        HEAD.replace("id: bad", "id: Bad_Cadence") + INTRO,
        "cadences/bad.yaml:1:5",
        "id: 'Bad_Cadence' must be kebab-case",
    ),
    (
        "id-not-file-stem",
        HEAD.replace("id: bad", "id: good") + INTRO,
        "cadences/bad.yaml:1:5",
        "id: 'good' must equal the file name 'bad'",
    ),
    (
        "step-id-not-slug",
        HEAD + INTRO.replace("id: intro", "id: Intro Email"),
        "cadences/bad.yaml:6:9",
        "steps[0].id: 'Intro Email' must be lowercase letters and digits",
    ),
    (
        "email-without-template",
        HEAD + "  - id: intro\n    channel: email\n    subject: Hi\n",
        "cadences/bad.yaml:6:5",
        "email step 'intro' needs a template",
    ),
    (
        "sms-without-template",
        HEAD + INTRO + "  - id: text\n    after: 1 day\n    channel: sms\n",
        "cadences/bad.yaml:10:5",
        "sms step 'text' needs a template",
    ),
    (
        "email-without-subject",
        HEAD + "  - id: intro\n    channel: email\n    template: email/intro.txt.j2\n",
        "cadences/bad.yaml:6:5",
        "email step 'intro' needs a subject (or a thread",
    ),
    (
        "subject-on-sms",
        HEAD + INTRO + "  - id: text\n    channel: sms\n    subject: Hi\n"
        "    template: sms/nudge.txt.j2\n",
        "cadences/bad.yaml:12:5",
        "subject is only for email steps, not sms",
    ),
    (
        "template-missing",
        HEAD + INTRO.replace("intro.txt.j2", "intro.txt"),
        "cadences/bad.yaml:9:15",
        "template 'email/intro.txt' not found (templates/email/intro.txt)",
    ),
    (
        "template-outside-dir",
        HEAD + INTRO.replace("email/intro.txt.j2", "../secrets.txt"),
        "cadences/bad.yaml:9:15",
        "must be a relative path under templates/",
    ),
    (
        "variant-template-missing",
        HEAD
        + INTRO
        + "    variants:\n      - {id: a}\n      - {id: b, template: email/b.txt.j2}\n",
        "cadences/bad.yaml:12:27",
        "template 'email/b.txt.j2' not found",
    ),
    (
        "template-syntax-error",
        HEAD + INTRO.replace("intro.txt.j2", "broken.txt.j2"),
        "templates/email/broken.txt.j2:3:1",
        "template syntax error",
    ),
    (
        "template-unknown-prospect-attr",
        HEAD + INTRO.replace("intro.txt.j2", "typo.txt.j2"),
        "templates/email/typo.txt.j2:2:7",
        "unknown variable prospect.titel",
    ),
    (
        "template-unknown-variable",
        HEAD + INTRO.replace("intro.txt.j2", "unknown-var.txt.j2"),
        "templates/email/unknown-var.txt.j2:3:6",
        "unknown variable 'discount_code'",
    ),
    (
        "template-include-missing",
        HEAD + INTRO.replace("intro.txt.j2", "include-missing.txt.j2"),
        "templates/email/include-missing.txt.j2:2:1",
        "included template 'email/nope.txt.j2'",
    ),
    (
        "subject-unknown-attr",
        HEAD + INTRO.replace("subject: Hello", 'subject: "About {{ prospect.compnay }}"'),
        "cadences/bad.yaml:8:14",
        "unknown variable prospect.compnay",
    ),
    (
        "subject-syntax-error",
        HEAD + INTRO.replace("subject: Hello", 'subject: "About {{ prospect.company "'),
        "cadences/bad.yaml:8:14",
        "subject: template syntax error",
    ),
    (
        "when-does-not-compile",
        HEAD + INTRO + "    when: \"touched('intro' 'opened'\"\n",
        "cadences/bad.yaml:10:11",
        "when does not compile",
    ),
    (
        "when-unknown-step",
        HEAD + INTRO + "  - id: bump\n    thread: intro\n    channel: email\n"
        "    template: email/bump.txt.j2\n    when: \"not touched('intor', 'opened')\"\n",
        "cadences/bad.yaml:14:11",
        "touched('intor') names no step of this cadence",
    ),
    (
        "when-later-step",
        HEAD + INTRO + "    when: \"not touched('bump')\"\n"
        "  - id: bump\n    thread: intro\n    channel: email\n    template: email/bump.txt.j2\n",
        "cadences/bad.yaml:10:11",
        "touched('bump') must name an earlier step",
    ),
    (
        "when-unknown-event",
        HEAD + INTRO + "  - id: bump\n    thread: intro\n    channel: email\n"
        "    template: email/bump.txt.j2\n    when: \"not touched('intro', 'read')\"\n",
        "cadences/bad.yaml:14:11",
        "unknown event 'read'",
    ),
    (
        "when-bare-call-unknown-step",  # the call is the whole expression: checked too
        HEAD + INTRO + "    when: \"touched('intor')\"\n",
        "cadences/bad.yaml:10:11",
        "touched('intor') names no step of this cadence",
    ),
    (
        "when-unknown-outcome",
        HEAD + INTRO + CALL + NUDGE.format(when="outcome('call-1') in ['no_anwser', 'voicemail']"),
        "cadences/bad.yaml:15:11",
        "unknown outcome 'no_anwser' (did you mean 'no_answer'?)",
    ),
    (
        "when-unknown-outcome-equals",
        HEAD + INTRO + CALL + NUDGE.format(when="outcome('call-1') != 'conected'"),
        "cadences/bad.yaml:15:11",
        "unknown outcome 'conected' (did you mean 'connected'?)",
    ),
    (
        "when-outcome-event-typo",
        HEAD + INTRO + CALL + NUDGE.format(when="not touched('call-1', 'conected')"),
        "cadences/bad.yaml:15:11",
        "unknown event 'conected' (did you mean 'connected'?)",
    ),
    (
        "when-outcome-of-an-email",
        HEAD + INTRO + CALL + NUDGE.format(when="outcome('intro') == 'connected'"),
        "cadences/bad.yaml:15:11",
        "outcome('intro') is always none: 'intro' is a email step",
    ),
    (
        "when-outcome-event-of-an-email",
        HEAD + INTRO + CALL + NUDGE.format(when="touched('intro', 'voicemail')"),
        "cadences/bad.yaml:15:11",
        "'voicemail' is a task outcome, but 'intro' is a email step",
    ),
    (
        "when-outcome-later-step",
        HEAD + INTRO + NUDGE.format(when="outcome('call-1') == 'no_answer'") + CALL,
        "cadences/bad.yaml:13:11",
        "outcome('call-1') must name an earlier step",
    ),
    (
        "when-outcome-takes-one-literal",
        HEAD + INTRO + CALL + NUDGE.format(when="outcome(step) == 'no_answer'"),
        "cadences/bad.yaml:15:11",
        "outcome() needs a string literal",
    ),
    (
        "when-unknown-name",
        HEAD + INTRO + '    when: "prospect.title"\n',
        "cadences/bad.yaml:10:11",
        "unknown name 'prospect'",
    ),
]


def _write_tree(root: Path) -> None:
    for name, src in TEMPLATES.items():
        path = root / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(src)
    (root / "cadences").mkdir(exist_ok=True)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tmp dir with templates/ and cadences/, as the working directory (relative paths)."""
    _write_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _findings(yaml_text: str) -> list[str]:
    Path("cadences/bad.yaml").write_text(yaml_text)
    with pytest.raises(CadenceError) as info:
        load_cadence(Path("cadences/bad.yaml"), Path("templates"))
    return [str(f) for f in info.value.findings]


def test_the_base_case_is_valid(tree: Path) -> None:
    Path("cadences/bad.yaml").write_text(HEAD + INTRO)
    cadence = load_cadence(Path("cadences/bad.yaml"), Path("templates"))
    assert cadence.id == "bad"


@pytest.mark.parametrize(
    ("yaml_text", "where", "message"),
    [pytest.param(y, w, m, id=case) for case, y, w, m in CASES],
)
def test_malformed_cadence(tree: Path, yaml_text: str, where: str, message: str) -> None:
    findings = _findings(yaml_text)
    matching = [f for f in findings if f.startswith(f"{where}: error: ") and message in f]
    assert matching, f"expected {where}: ...{message}... in:\n" + "\n".join(findings)


def test_every_finding_of_a_file_is_reported(tree: Path) -> None:
    yaml_text = (
        "id: bad\n"
        "name: Bad\n"
        "schedule:\n"
        "  timezone: Nowhere/City\n"
        '  window: {days: [mon, funday], start: "09:00", end: "17:00"}\n'
        "steps:\n"
        "  - id: intro\n"
        "    channel: fax\n"
        "  - id: intro\n"
        "    channel: email\n"
        "    template: email/missing.txt.j2\n"
        "    after: 2 fortnights\n"
    )
    findings = _findings(yaml_text)
    locations = [f.split(": error:")[0] for f in findings]
    assert locations == [
        "cadences/bad.yaml:4:13",  # time zone
        "cadences/bad.yaml:5:24",  # day
        "cadences/bad.yaml:8:14",  # channel
        "cadences/bad.yaml:9:5",  # email without subject
        "cadences/bad.yaml:9:9",  # duplicate id
        "cadences/bad.yaml:11:15",  # template not found
        "cadences/bad.yaml:12:12",  # delay
    ], findings


def test_cadence_error_message_lists_findings(tree: Path) -> None:
    Path("cadences/bad.yaml").write_text(HEAD.replace("name: Bad", "name: [x]") + INTRO)
    with pytest.raises(CadenceError, match=r"cadences/bad.yaml:2:7: error: name"):
        load_cadence(Path("cadences/bad.yaml"), Path("templates"))


def test_load_cadences_collects_all_files(tree: Path) -> None:
    Path("cadences/one.yaml").write_text(HEAD.replace("id: bad", "id: one") + INTRO)
    Path("cadences/two.yaml").write_text(HEAD.replace("id: bad", "id: two").replace("[mon", "[xyz"))
    Path("cadences/three.yml").write_text("id: three\nname: [\n")
    with pytest.raises(CadenceError) as info:
        load_cadences(Path("cadences"), Path("templates"))
    paths = {f.path for f in info.value.findings}
    assert paths == {"cadences/two.yaml", "cadences/three.yml"}


def test_shared_template_problems_are_reported_once(tree: Path) -> None:
    body = INTRO.replace("intro.txt.j2", "typo.txt.j2")
    Path("cadences/one.yaml").write_text(HEAD.replace("id: bad", "id: one") + body)
    Path("cadences/two.yaml").write_text(HEAD.replace("id: bad", "id: two") + body)
    with pytest.raises(CadenceError) as info:
        load_cadences(Path("cadences"), Path("templates"))
    assert [str(f) for f in info.value.findings] == [
        "templates/email/typo.txt.j2:2:7: error: unknown variable prospect.titel: no prospect "
        "has it (use one of company, country, domain, email, fields, first_name, full_name, "
        "last_name, phone, timezone, title, or fields.<column>)"
    ]


def test_validate_paths_mixes_cadences_templates_and_config(tree: Path) -> None:
    Path("cadences/good.yaml").write_text(HEAD.replace("id: bad", "id: good") + INTRO)
    Path("cadences/bad.yaml").write_text(HEAD.replace('end: "17:00"', 'end: "25:00"') + INTRO)
    Path("config").mkdir()
    Path("config/icp.yaml").write_text("weights:\n  title: [vp, director\n")
    Path("config/team.yaml").write_text("members: []\n")
    findings = validate_paths(
        [Path("cadences"), Path("templates"), Path("config"), Path("nope.yaml")], Path("templates")
    )
    text = [str(f) for f in findings]
    assert any(t.startswith("cadences/bad.yaml:4:51: error:") and "'25:00'" in t for t in text)
    assert any(t.startswith("config/icp.yaml:3:1: error: YAML syntax error") for t in text), text
    assert any(t.startswith("nope.yaml:1:1: error: no such file") for t in text)
    # Every template is linted on its own, used by a cadence or not.
    assert any(t.startswith("templates/email/broken.txt.j2:3:1:") for t in text)
    assert any(t.startswith("templates/email/unknown-var.txt.j2:3:6:") for t in text)
    assert any(t.startswith("templates/email/include-missing.txt.j2:2:1:") for t in text)
    assert not any(t.startswith(("cadences/good.yaml", "config/team.yaml")) for t in text)
    # Findings are sorted and unique.
    assert findings == sorted(set(findings))


def test_validate_single_template_file(tree: Path) -> None:
    findings = validate_paths([Path("templates/email/typo.txt.j2")], Path("templates"))
    assert [(f.path, f.line, f.col) for f in findings] == [("templates/email/typo.txt.j2", 2, 7)]


@pytest.mark.parametrize(
    "when",
    [
        "outcome('call-1') in ['no_answer', 'voicemail']",
        "outcome('call-1') not in ('connected', 'meeting_booked')",
        "touched('call-1', 'connected') or outcome('call-1') == 'wrong_number'",
        "touched('call-1', 'completed') and not touched('intro', 'opened')",
    ],
)
def test_outcome_conditions_load(tree: Path, when: str) -> None:
    Path("cadences/bad.yaml").write_text(HEAD + INTRO + CALL + NUDGE.format(when=when))
    assert load_cadence(Path("cadences/bad.yaml"), Path("templates")).step("nudge").when == when
