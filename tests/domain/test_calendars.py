"""Blackout dates, windows per country and shared calendars (config/calendars.yaml).

The calendar mechanics (a day with hours of its own, blackout ranges, their interplay with
DST and public holidays) are tested on :class:`BusinessCalendar`; the rest goes through a
cadence file as users write it: which window a prospect of a given country gets, that the
Nowruz break is skipped, that format v1 files load as before, and that every mistake is
reported at its ``file:line:col``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from touchflow.domain.cadence import (
    CALENDARS_SNAPSHOT,
    cadence_version,
    load_cadence,
    load_cadence_source,
    validate_paths,
)
from touchflow.domain.calendar import Blackout, BusinessCalendar, SendWindow
from touchflow.domain.engine import CadenceRuntime, EnrollmentView, SenderInfo
from touchflow.domain.prospects import Prospect
from touchflow.domain.simulate import simulate
from touchflow.errors import CadenceError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CALENDARS = ROOT / "config" / "calendars.yaml"
TEHRAN = ZoneInfo("Asia/Tehran")
DUBAI = ZoneInfo("Asia/Dubai")
RIYADH = ZoneInfo("Asia/Riyadh")
BERLIN = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")
SAT = 5
SENDER = SenderInfo(email="sam@yourco.example", name="Sam", postal_address="1 Main St")


# -- the calendar: a day's own hours -------------------------------------------------------

# Iran: Saturday to Wednesday 08:00-16:00, Thursday 08:00-12:00.
IR_WEEK = SendWindow(
    frozenset({5, 6, 0, 1, 2, 3}), time(8), time(16), day_hours=((3, time(8), time(12)),)
)


def test_a_thursday_half_day_closes_at_noon() -> None:
    cal = BusinessCalendar(TEHRAN, IR_WEEK)
    thursday = date(2026, 5, 14)
    assert thursday.weekday() == 3
    assert cal.is_open(datetime(2026, 5, 14, 11, 59, tzinfo=TEHRAN))
    assert not cal.is_open(datetime(2026, 5, 14, 12, 0, tzinfo=TEHRAN))
    assert cal.is_open(datetime(2026, 5, 13, 15, 59, tzinfo=TEHRAN))  # Wednesday: full day
    # After Thursday's close: Friday is not a window day, Saturday opens at 08:00.
    after = cal.next_open(datetime(2026, 5, 14, 12, 30, tzinfo=TEHRAN))
    assert after.astimezone(TEHRAN) == datetime(2026, 5, 16, 8, 0, tzinfo=TEHRAN)
    # A Wednesday 14:00 touch + 1 business day lands on Thursday 14:00, after the half day.
    later = cal.add_business_days(datetime(2026, 5, 13, 14, 0, tzinfo=TEHRAN), 1)
    assert later.astimezone(TEHRAN) == datetime(2026, 5, 16, 8, 0, tzinfo=TEHRAN)


def test_jitter_stays_inside_the_half_day() -> None:
    cal = BusinessCalendar(TEHRAN, IR_WEEK)
    start = datetime(2026, 5, 14, 11, 50, tzinfo=TEHRAN)
    for seed in map(str, range(50)):
        shifted = cal.apply_jitter(start, 120, seed).astimezone(TEHRAN)
        assert shifted.date() == start.date() and shifted.time() < time(12)


@pytest.mark.parametrize(
    "window",
    [
        SendWindow(frozenset({0}), time(8), time(17), day_hours=((3, time(8), time(12)),)),
        SendWindow(frozenset({3}), time(8), time(17), day_hours=((3, time(12), time(8)),)),
        SendWindow(
            frozenset({3}),
            time(8),
            time(17),
            day_hours=((3, time(8), time(12)), (3, time(9), time(12))),
        ),
    ],
    ids=["day-not-in-days", "end-before-start", "twice"],
)
def test_unusable_day_hours_are_rejected(window: SendWindow) -> None:
    with pytest.raises(ValueError):
        BusinessCalendar(TEHRAN, window)


# -- the calendar: blackouts ---------------------------------------------------------------


def test_annual_blackouts_repeat_and_may_wrap_the_year_end() -> None:
    nowruz = Blackout(date(2000, 3, 20), date(2000, 4, 2), annual=True, name="Nowruz")
    assert nowruz.covers(date(2026, 3, 20)) and nowruz.covers(date(2031, 4, 2))
    assert not nowruz.covers(date(2026, 3, 19)) and not nowruz.covers(date(2026, 4, 3))
    year_end = Blackout(date(2000, 12, 24), date(2000, 1, 1), annual=True)
    assert year_end.covers(date(2026, 12, 31)) and year_end.covers(date(2027, 1, 1))
    assert not year_end.covers(date(2027, 1, 2)) and not year_end.covers(date(2026, 6, 1))
    one_off = Blackout(date(2026, 3, 20), date(2026, 4, 2))
    assert one_off.covers(date(2026, 3, 25)) and not one_off.covers(date(2027, 3, 25))


def test_blackouts_holidays_and_dst_together() -> None:
    """Berlin, Easter 2027: Good Friday (26 Mar) and Easter Monday (29 Mar) are holidays, the
    clocks go forward on Sunday 28 Mar, and 30-31 Mar are blacked out. One business day after
    Thursday 25 Mar 09:15 CET is Thursday 1 Apr 09:15 CEST: the wall time survives the switch."""
    window = SendWindow(frozenset(range(5)), time(8), time(17))
    cal = BusinessCalendar(BERLIN, window, ["DE"], [Blackout(date(2027, 3, 30), date(2027, 3, 31))])
    start = datetime(2027, 3, 25, 9, 15, tzinfo=BERLIN)
    due = cal.add_business_days(start, 1)
    assert due == datetime(2027, 4, 1, 7, 15, tzinfo=UTC)  # 09:15 at UTC+2
    assert due.astimezone(BERLIN).time() == time(9, 15)
    assert cal.is_blackout(date(2027, 3, 30)) and not cal.is_holiday(date(2027, 3, 30))
    assert cal.is_holiday(date(2027, 3, 29)) and not cal.is_blackout(date(2027, 3, 29))
    # "2 days" from Sunday 28 Mar 10:00 is Tuesday, blacked out: the next opening is Thursday.
    assert cal.add_days(datetime(2027, 3, 28, 10, 0, tzinfo=BERLIN), 2) == datetime(
        2027, 4, 1, 6, 0, tzinfo=UTC
    )


def test_a_blackout_before_a_holiday_and_a_fall_back_weekend() -> None:
    """New York, November 2026: clocks fall back on Sunday 1 Nov; a blackout on Monday 2 Nov
    and Veterans Day (Wednesday 11 Nov) are both skipped by business days."""
    window = SendWindow(frozenset(range(5)), time(9), time(17))
    cal = BusinessCalendar(NY, window, ["US"], [Blackout(date(2026, 11, 2), date(2026, 11, 2))])
    friday = datetime(2026, 10, 30, 10, 0, tzinfo=NY)  # EDT, UTC-4
    assert cal.add_business_days(friday, 1) == datetime(2026, 11, 3, 15, 0, tzinfo=UTC)  # EST
    assert cal.add_business_days(friday, 7) == datetime(2026, 11, 12, 15, 0, tzinfo=UTC)


# -- cadences ------------------------------------------------------------------------------

TEMPLATES = {"email/intro.txt.j2": "Hi {{ prospect.first_name | default('there') }}\n"}

MIXED = """\
id: mena-outbound
name: MENA outbound
schedule:
  timezone: prospect
  window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}
  holidays: prospect
  calendars: [company, iran-business, gulf-business]
steps:
  - id: intro
    channel: email
    subject: Hello
    template: email/intro.txt.j2
  - id: bump
    after: 1 business day
    channel: email
    subject: Again
    template: email/intro.txt.j2
  - id: last
    after: 1 business day
    channel: email
    subject: Last
    template: email/intro.txt.j2
"""


def _tree(tmp_path: Path, cadence: str, calendars: str | None = None) -> Path:
    (tmp_path / "cadences").mkdir(exist_ok=True)
    (tmp_path / "config").mkdir(exist_ok=True)
    for name, text in TEMPLATES.items():
        path = tmp_path / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    cadence_id = cadence.split("\n", 1)[0].removeprefix("id: ")
    target = tmp_path / "cadences" / f"{cadence_id}.yaml"
    target.write_text(cadence)
    if calendars is not None:
        (tmp_path / "config" / "calendars.yaml").write_text(calendars)
    return target


def _load(tmp_path: Path, cadence: str, calendars: str | None = None):  # type: ignore[no-untyped-def]
    path = _tree(tmp_path, cadence, calendars)
    return load_cadence(path, tmp_path / "templates", tmp_path / "config" / "calendars.yaml")


@pytest.fixture
def mixed(tmp_path: Path) -> CadenceRuntime:
    """The mixed Iran/Gulf/EU cadence with the shipped sample config/calendars.yaml."""
    cadence = _load(tmp_path, MIXED, SAMPLE_CALENDARS.read_text(encoding="utf-8"))
    return CadenceRuntime(cadence)


def _first_due(runtime: CadenceRuntime, prospect: Prospect, at: datetime) -> datetime:
    view = EnrollmentView(f"k:{prospect.email}", "t", prospect, SENDER)
    return runtime.first_due(view, at)


def test_an_iranian_prospect_gets_saturday_and_skips_the_nowruz_break(
    mixed: CadenceRuntime,
) -> None:
    ir = Prospect(email="reza@example.ir", country="IR")
    # Saturday is a working day in Iran: enrolled on a Friday, the first touch is Saturday.
    due = _first_due(mixed, ir, datetime(2026, 5, 15, 10, 0, tzinfo=TEHRAN))
    assert due.astimezone(TEHRAN) == datetime(2026, 5, 16, 8, 0, tzinfo=TEHRAN)
    # Enrolled on Thursday 19 March 2026 after the half day: the holidays package alone would
    # send on Wednesday 25 March; the break runs to 2 April, so Saturday 4 April 08:00.
    due = _first_due(mixed, ir, datetime(2026, 3, 19, 12, 30, tzinfo=TEHRAN))
    assert due.astimezone(TEHRAN) == datetime(2026, 4, 4, 8, 0, tzinfo=TEHRAN)
    assert due.astimezone(TEHRAN).weekday() == SAT
    # Never inside 20 Mar - 2 Apr, whenever the enrollment starts, in any year.
    for year in (2026, 2027, 2028):
        at = datetime(year, 3, 15, 9, 0, tzinfo=TEHRAN)
        for _ in range(40):
            d = _first_due(mixed, ir, at).astimezone(TEHRAN).date()
            assert not date(year, 3, 20) <= d <= date(year, 4, 2), d
            at += timedelta(hours=11)


def test_the_same_cadence_without_the_calendar_sends_inside_the_break(tmp_path: Path) -> None:
    """The trial's bug, kept visible: public holidays alone leave most of the break open."""
    plain = MIXED.replace("  calendars: [company, iran-business, gulf-business]\n", "")
    plain = plain.replace(
        '  window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}\n',
        '  window: {days: [sat, sun, mon, tue, wed], start: "08:00", end: "16:00"}\n',
    )
    runtime = CadenceRuntime(_load(tmp_path, plain))
    ir = Prospect(email="reza@example.ir", country="IR")
    due = _first_due(runtime, ir, datetime(2026, 3, 19, 12, 30, tzinfo=TEHRAN))
    assert due.astimezone(TEHRAN).date() == date(2026, 3, 25)


def test_gulf_prospects_are_never_scheduled_on_saturday(tmp_path: Path) -> None:
    # The default window includes Saturday: only the Gulf windows keep it out.
    six_days = MIXED.replace(
        "days: [mon, tue, wed, thu, fri]", "days: [mon, tue, wed, thu, fri, sat]"
    )
    cadence = _load(tmp_path, six_days, SAMPLE_CALENDARS.read_text(encoding="utf-8"))
    prospects = [
        Prospect(email=f"p{i}@example.com", country=country, first_name="A")
        for i, country in enumerate(["AE", "SA", "QA", "KW", "BH", "OM"] * 3)
    ]
    start = datetime(2026, 6, 4, 6, 0, tzinfo=UTC)  # a Thursday
    touches = 0
    for offset in range(0, 9 * 24, 5):  # enrollments spread over nine days
        at = start + timedelta(hours=offset)
        for record in simulate(cadence, prospects, start=at, days=20, sender=SENDER):
            if "step" not in record:
                continue
            country = next(p.country for p in prospects if p.email == record["prospect"])
            zone = DUBAI if country == "AE" else RIYADH
            local = datetime.fromisoformat(record["at"]).astimezone(zone)
            assert local.weekday() != SAT, (country, local)
            # The UAE works Monday-Friday, the others Sunday-Thursday.
            assert local.weekday() != (6 if country == "AE" else 4), (country, local)
            touches += 1
    assert touches > 0


def test_a_friday_touch_for_the_uae_and_a_sunday_one_for_saudi_arabia(
    mixed: CadenceRuntime,
) -> None:
    thursday_evening = datetime(2026, 6, 4, 18, 0, tzinfo=UTC)
    ae = _first_due(mixed, Prospect(email="a@x.ae", country="AE"), thursday_evening)
    sa = _first_due(mixed, Prospect(email="s@x.sa", country="SA"), thursday_evening)
    assert ae.astimezone(DUBAI) == datetime(2026, 6, 5, 9, 0, tzinfo=DUBAI)  # Friday
    assert sa.astimezone(RIYADH) == datetime(2026, 6, 7, 9, 0, tzinfo=RIYADH)  # Sunday


def test_countries_without_rules_get_the_default_window_and_share_a_calendar(
    mixed: CadenceRuntime,
) -> None:
    de = Prospect(email="d@x.de", country="DE", timezone="Europe/Berlin")
    at = datetime(2026, 3, 23, 8, 30, tzinfo=BERLIN)  # Monday, inside Nowruz
    assert _first_due(mixed, de, at).astimezone(BERLIN) == datetime(
        2026, 3, 23, 9, 0, tzinfo=BERLIN
    )
    # Not blacked out by Nowruz (that blackout is for IR), but by the company's year end.
    cal = mixed.calendar_for(de, SENDER)
    assert not cal.is_blackout(date(2026, 3, 25)) and cal.is_blackout(date(2026, 12, 28))
    # Memoised per key: a second German prospect (phone only) gets the same object.
    other = Prospect(email="e@x.de", phone="+49 30 1234567", timezone="Europe/Berlin")
    assert mixed.calendar_for(other, SENDER) is cal
    assert mixed.calendar_for(Prospect(email="r@x.ir", country="IR"), SENDER) is not cal


def test_the_cadence_own_windows_and_blackouts_come_first(tmp_path: Path) -> None:
    own = MIXED.replace(
        "  calendars: [company, iran-business, gulf-business]\n",
        "  calendar: iran-business\n"
        '  windows: {IR: {days: [sun, mon], start: "10:00", end: "11:00"}}\n'
        "  blackouts:\n"
        "    - 2026-05-17\n"
        "    - {from: 2026-05-24, to: 2026-05-25, countries: [IR]}\n",
    )
    runtime = CadenceRuntime(_load(tmp_path, own, SAMPLE_CALENDARS.read_text(encoding="utf-8")))
    ir = Prospect(email="r@x.ir", country="IR")
    # Saturday is not in this cadence's IR window; Sunday 17 May is blacked out: Monday.
    due = _first_due(runtime, ir, datetime(2026, 5, 16, 9, 0, tzinfo=TEHRAN))
    assert due.astimezone(TEHRAN) == datetime(2026, 5, 18, 10, 0, tzinfo=TEHRAN)
    due = _first_due(runtime, ir, datetime(2026, 5, 19, 9, 0, tzinfo=TEHRAN))
    assert due.astimezone(TEHRAN) == datetime(2026, 5, 31, 10, 0, tzinfo=TEHRAN)
    # The IR-only range does not touch a US prospect; the plain date does.
    us = runtime.calendar_for(Prospect(email="u@x.com", country="US"), SENDER)
    assert us.is_blackout(date(2026, 5, 17)) and not us.is_blackout(date(2026, 5, 24))


# -- format v1, versions ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["enterprise-outbound", "inbound-fast-follow"])
def test_format_v1_cadences_load_and_hash_as_before(name: str) -> None:
    path = ROOT / "cadences" / f"{name}.yaml"
    cadence = load_cadence(path, ROOT / "templates", SAMPLE_CALENDARS)
    assert cadence == load_cadence(path, ROOT / "templates")
    # A v1 file's version is still the hash of its YAML and templates, nothing else.
    assert cadence.version == cadence_version(cadence.yaml_text, cadence.templates)
    assert cadence.stored_files == cadence.templates
    assert cadence.schedule.windows == {} and cadence.schedule.blackouts == []


def test_a_pinned_version_keeps_its_calendars(tmp_path: Path) -> None:
    text = SAMPLE_CALENDARS.read_text(encoding="utf-8")
    cadence = _load(tmp_path, MIXED, text)
    assert cadence.stored_files[CALENDARS_SNAPSHOT] == text
    again = load_cadence_source(cadence.yaml_text, cadence.source_path, cadence.stored_files)
    assert again.version == cadence.version
    assert again.calendar_specs == cadence.calendar_specs
    # Editing the calendars file makes a new version (new enrollments get it).
    edited = _load(tmp_path, MIXED, text.replace("from: 03-20", "from: 03-19"))
    assert edited.version != cadence.version


# -- validation ------------------------------------------------------------------------------

HEAD = """\
id: bad
name: Bad
schedule:
  window: {days: [mon, tue], start: "09:00", end: "17:00"}
"""
STEPS = """\
steps:
  - {id: intro, channel: email, subject: Hi, template: email/intro.txt.j2}
"""

CADENCE_CASES = [
    # (case id, schedule lines after window, expected "file:line:col", message substring)
    (
        "country-lowercase",
        '  windows: {ir: {days: [sat], start: "08:00", end: "16:00"}}\n',
        "cadences/bad.yaml:5:13",
        "'ir' is not an ISO country code (did you mean 'IR'?)",
    ),
    (
        "region-name",
        '  windows:\n    mena: {days: [sat], start: "08:00", end: "16:00"}\n',
        "cadences/bad.yaml:6:5",
        "region names are not supported",
    ),
    (
        "half-day-not-a-day",
        '  windows:\n    IR: {days: [sat], start: "08:00", end: "16:00", thu: "08:00-12:00"}\n',
        "cadences/bad.yaml:6:53",
        "thu has hours of its own but is not one of the window's days",
    ),
    (
        "half-day-backwards",
        '  windows:\n    IR: {days: [thu], start: "08:00", end: "16:00", thu: "12:00-08:00"}\n',
        "cadences/bad.yaml:6:58",
        "the end must be after the start",
    ),
    (
        "half-day-not-hours",
        '  windows:\n    IR: {days: [thu], start: "08:00", end: "16:00", thu: "morning"}\n',
        "cadences/bad.yaml:6:58",
        'use "HH:MM-HH:MM"',
    ),
    (
        "blackout-typo",
        "  blackouts:\n    - {form: 2026-03-20, to: 2026-04-02}\n",
        "cadences/bad.yaml:6:8",
        "unknown key 'form' (did you mean 'from'?)",
    ),
    (
        "blackout-backwards",
        "  blackouts:\n    - {from: 2026-04-02, to: 2026-03-20}\n",
        "cadences/bad.yaml:6:30",
        "to (2026-03-20) is before from (2026-04-02)",
    ),
    (
        "blackout-mixed",
        "  blackouts:\n    - {from: 03-20, to: 2026-04-02}\n",
        "cadences/bad.yaml:6:25",
        "both be YYYY-MM-DD (one range) or both MM-DD (every year)",
    ),
    (
        "blackout-bad-date",
        "  blackouts:\n    - {from: 02-30}\n",
        "cadences/bad.yaml:6:14",
        "'02-30' is not a date",
    ),
    (
        "blackout-country",
        "  blackouts:\n    - {from: 03-20, countries: [Iran]}\n",
        "cadences/bad.yaml:6:33",
        "'Iran' is not an ISO country code",
    ),
    (
        "both-calendar-keys",
        "  calendar: iran-business\n  calendars: [company]\n",
        "cadences/bad.yaml:5:3",
        "use either calendar or calendars, not both",
    ),
    (
        "unknown-calendar",
        "  calendars: [company, iran-busines]\n",
        "cadences/bad.yaml:5:24",
        "calendar 'iran-busines' is not defined in ",
    ),
]


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [case[1:] for case in CADENCE_CASES],
    ids=[case[0] for case in CADENCE_CASES],
)
def test_schedule_mistakes_name_line_and_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, where: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    _tree(tmp_path, HEAD + extra + STEPS, SAMPLE_CALENDARS.read_text(encoding="utf-8"))
    with pytest.raises(CadenceError) as exc:
        load_cadence(Path("cadences/bad.yaml"), Path("templates"), Path("config/calendars.yaml"))
    found = [str(f) for f in exc.value.findings]
    assert any(f.startswith(f"{where}: error:") and message in f for f in found), found


def test_unknown_calendar_suggests_the_nearest(tmp_path: Path) -> None:
    with pytest.raises(CadenceError, match="did you mean 'iran-business'"):
        _load(
            tmp_path,
            HEAD + "  calendar: iran-busines\n" + STEPS,
            SAMPLE_CALENDARS.read_text(encoding="utf-8"),
        )


def test_naming_a_calendar_without_a_calendars_file(tmp_path: Path) -> None:
    with pytest.raises(CadenceError) as exc:
        _load(tmp_path, HEAD + "  calendar: nowruz\n" + STEPS)
    (finding,) = exc.value.findings
    assert (finding.line, finding.col) == (5, 13)
    assert "there is no calendars file" in finding.message
    assert str(tmp_path / "config" / "calendars.yaml") in finding.message


CALENDAR_FILE_CASES = [
    (
        "unknown-key",
        "calendars:\n  nowruz:\n    blackout: [{from: 03-20}]\n",
        "config/calendars.yaml:3:5",
        "unknown key 'blackout' (did you mean 'blackouts'?)",
    ),
    (
        "bad-name",
        "calendars:\n  Nowruz: {}\n",
        "config/calendars.yaml:2:3",
        "must be kebab-case",
    ),
    (
        "window-end",
        'calendars:\n  x:\n    windows:\n      AE: {days: [mon], start: "17:00", end: "09:00"}\n',
        "config/calendars.yaml:4:46",
        "window end 09:00 must be after start 17:00",
    ),
    (
        "not-a-mapping",
        "- nowruz\n",
        "config/calendars.yaml:1:1",
        "must be a mapping",
    ),
    (
        "yaml-syntax",
        "calendars:\n  x: {blackouts: [}\n",
        "config/calendars.yaml:2:19",
        "YAML syntax error",
    ),
]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [case[1:] for case in CALENDAR_FILE_CASES],
    ids=[case[0] for case in CALENDAR_FILE_CASES],
)
def test_calendars_file_mistakes_name_line_and_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, where: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    _tree(tmp_path, HEAD + "  calendar: nowruz\n" + STEPS, text)
    # validate reports the file itself ...
    found = [str(f) for f in validate_paths([Path("config")], Path("templates"))]
    assert any(f.startswith(f"{where}: error:") and message in f for f in found), found
    # ... and a cadence naming one of its calendars cannot load, for the same reason.
    with pytest.raises(CadenceError) as exc:
        load_cadence(Path("cadences/bad.yaml"), Path("templates"), Path("config/calendars.yaml"))
    assert any(str(f).startswith(f"{where}: error:") for f in exc.value.findings)


def test_the_shipped_sample_is_valid_and_names_the_nowruz_break() -> None:
    assert validate_paths([SAMPLE_CALENDARS], ROOT / "templates") == []
    iran = load_cadence_source(
        MIXED,
        "cadences/mena-outbound.yaml",
        {**TEMPLATES, CALENDARS_SNAPSHOT: SAMPLE_CALENDARS.read_text()},
    ).calendar_specs[1]
    (nowruz,) = iran.blackouts
    assert nowruz.countries == ["IR"]
    assert str(nowruz.to_blackout()) == "Nowruz break 03-20..04-02 every year"


def test_describe_reads_like_the_week_it_is() -> None:
    nowruz = Blackout(date(2000, 3, 20), date(2000, 4, 2), annual=True, name="Nowruz break")
    cal = BusinessCalendar(TEHRAN, IR_WEEK, ["IR"], [nowruz])
    assert cal.describe() == (
        "Asia/Tehran, sat sun mon tue wed 08:00-16:00, thu 08:00-12:00; holidays of IR; "
        "blackouts: Nowruz break 03-20..04-02 every year"
    )
    office = BusinessCalendar(NY, SendWindow(frozenset(range(5)), time(8), time(17, 30)))
    assert office.describe() == "America/New_York, mon tue wed thu fri 08:00-17:30"
