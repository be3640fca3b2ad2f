"""Every rep sends as themselves: team.yaml mailboxes decide the From, the sign-off and the caps.

The end-to-end case runs the tick through the composition root against real SMTP
servers (one :class:`LocalSmtpSink` per rep, each requiring that rep's login).
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, update

from tests.support.harness import SENDER, TEMPLATES, Harness, make_cadence, prospect
from tests.support.standins.sendgrid_api import SendgridStandin
from touchflow import bootstrap
from touchflow.adapters.fakes import FakeEmailSender
from touchflow.adapters.smtp.sink import LocalSmtpSink
from touchflow.domain.compliance import CapPolicy, MailboxCaps
from touchflow.domain.engine import SenderInfo
from touchflow.domain.routing import team_from_yaml
from touchflow.domain.senders import SenderDirectory, team_senders
from touchflow.services.enrollments import enroll_prospects
from touchflow.settings import SendgridSettings, Settings, SmtpSettings
from touchflow.store.prospects import upsert_prospects
from touchflow.store.schema import enrollments

# The sinks take AUTH without TLS here: aiosmtpd warns about it, rightly, but this is 127.0.0.1.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

MON_10_NY = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # Monday 10:00 New York

MAIL_ONLY = """\
id: mail-only
name: Mail only
schedule:
  timezone: prospect
  window: {days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "23:59"}
  holidays: none
steps:
  - id: intro
    channel: email
    subject: "Hi {{ prospect.first_name }}"
    template: email/intro.txt.j2
  - id: bump
    after: 1 day
    channel: email
    thread: intro
    template: email/bump.txt.j2
"""

SIGNED = {
    **TEMPLATES,
    "email/intro.txt.j2": (
        "Hi {{ prospect.first_name }},\n\nA short note.\n\n"
        "{% if sender.signature %}{{ sender.signature }}{% else %}{{ sender.name }}{% endif %}\n\n"
        "--\nOpt out: {{ unsubscribe_url }}\n{{ sender.postal_address }}\n"
    ),
}

ANA_OFFICE = "yourco Inc., 100 Broadway, New York, NY 10005, USA"
BEN_OFFICE = "yourco GmbH, Friedrichstrasse 68, 10117 Berlin, Germany"


def team_yaml(ana_port: int = 2525, ben_port: int = 2526) -> str:
    return textwrap.dedent(
        f"""\
        members:
          - email: ana@yourco.example
            name: Ana Souza
            role: sdr
            mailbox:
              title: SDR
              phone: "+1 646 555 0142"
              signature: |
                Ana Souza
                Sales Development, yourco
              postal_address: "{ANA_OFFICE}"
              smtp: {{host: 127.0.0.1, port: {ana_port}, username: ana-login,
                     password_env: TF_TEST_ANA_SMTP, starttls: false}}
          - email: ben@yourco.example
            name: Ben Keller
            role: sdr
            mailbox:
              from: ben.keller@mail.yourco.example
              signature: "Ben Keller | yourco Berlin"
              postal_address: "{BEN_OFFICE}"
              smtp: {{host: 127.0.0.1, port: {ben_port}, username: ben-login,
                     password_env: TF_TEST_BEN_SMTP, starttls: false}}
          - email: carla@yourco.example
            name: Carla Diaz
        """
    )


def _settings(root: Path, db_url: str, default_port: int, **values: object) -> Settings:
    cdir, tdir = root / "cadences", root / "templates"
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        **values,
        database_url=db_url,
        config_dir=root / "config",
        cadences_dir=cdir,
        templates_dir=tdir,
        email_transport="smtp",
        smtp=SmtpSettings(host="127.0.0.1", port=default_port),
    )


def test_two_reps_send_from_their_own_mailboxes_through_their_own_logins(
    tmp_path: Path, migrated_sqlite, monkeypatch: pytest.MonkeyPatch
) -> None:
    cadence = make_cadence(tmp_path, MAIL_ONLY, SIGNED)
    monkeypatch.setenv("TF_TEST_ANA_SMTP", "ana-pw")
    monkeypatch.setenv("TF_TEST_BEN_SMTP", "ben-pw")
    with (
        LocalSmtpSink(auth=("ana-login", "ana-pw"), auth_require_tls=False) as ana_sink,
        LocalSmtpSink(auth=("ben-login", "ben-pw"), auth_require_tls=False) as ben_sink,
        LocalSmtpSink() as default_sink,
    ):
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "team.yaml").write_text(team_yaml(ana_sink.port, ben_sink.port))
        settings = _settings(tmp_path, migrated_sqlite(tmp_path / "tf.db"), default_sink.port)
        engine = bootstrap.database(settings)
        cache = bootstrap.runtimes(settings)
        runtime = cache.add(cadence)
        directory = bootstrap.sender_directory(settings)
        with engine.begin() as conn:
            upsert_prospects(
                conn,
                [prospect(f"{who}{i}@acme{i}.example") for who in ("a", "b", "d") for i in (1, 2)],
                MON_10_NY,
            )
        for owner, who in (
            ("ana@yourco.example", "a"),
            ("ben@yourco.example", "b"),
            (None, "d"),
        ):
            chosen = directory.choose(owner, settings.sender.owner_email)
            enroll_prospects(
                engine,
                runtime,
                [f"{who}{i}@acme{i}.example" for i in (1, 2)],
                owner_email=chosen.owner,
                sender=chosen.sender,
                now=MON_10_NY,
            )

        with bootstrap.ticker(settings, cache=cache) as tk:
            report = tk.run(MON_10_NY, 100)

        assert report.sent == 6, report
        for sink, login, from_addr, name, signature, office, people in (
            (ana_sink, "ana-login", "ana@yourco.example", "Ana Souza",
             "Ana Souza\nSales Development, yourco", ANA_OFFICE, {"a1", "a2"}),
            (ben_sink, "ben-login", "ben.keller@mail.yourco.example", "Ben Keller",
             "Ben Keller | yourco Berlin", BEN_OFFICE, {"b1", "b2"}),
        ):  # fmt: skip
            assert [m for _mech, m in sink.logins] == [login]  # each rep's own credentials
            assert {m.envelope_from for m in sink.messages} == {from_addr}
            assert {m.rcpt_tos[0].split("@")[0] for m in sink.messages} == people
            for received in sink.messages:
                msg = received.parse()
                assert parseaddr(msg["From"]) == (name, from_addr)
                body = msg.get_content().replace("\r\n", "\n")
                assert signature in body and office in body
                assert "Sam Rivera" not in body and "Springfield" not in body
                assert msg["Message-ID"].endswith(f"@{from_addr.split('@')[1]}>")
        # An owner without a team mailbox still sends as the default sender.
        assert {m.envelope_from for m in default_sink.messages} == {"sam@touchflow.example"}
        assert len(default_sink.messages) == 2


def test_a_rep_whose_password_is_not_set_fails_alone_and_says_which_variable(
    tmp_path: Path, migrated_sqlite, monkeypatch: pytest.MonkeyPatch
) -> None:
    cadence = make_cadence(tmp_path, MAIL_ONLY, SIGNED)
    monkeypatch.delenv("TF_TEST_ANA_SMTP", raising=False)
    monkeypatch.setenv("TF_TEST_BEN_SMTP", "ben-pw")
    with LocalSmtpSink(auth=("ben-login", "ben-pw"), auth_require_tls=False) as ben_sink:
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "team.yaml").write_text(team_yaml(ben_port=ben_sink.port))
        settings = _settings(tmp_path, migrated_sqlite(tmp_path / "tf.db"), ben_sink.port)
        engine = bootstrap.database(settings)
        cache = bootstrap.runtimes(settings)
        directory = bootstrap.sender_directory(settings)
        owners = {"a@acme.example": "ana@yourco.example", "b@bco.example": "ben@yourco.example"}
        with engine.begin() as conn:
            upsert_prospects(conn, [prospect(p) for p in owners], MON_10_NY)
        for email, owner in owners.items():
            chosen = directory.choose(owner, settings.sender.owner_email)
            enroll_prospects(
                engine,
                cache.add(cadence),
                [email],
                owner_email=chosen.owner,
                sender=chosen.sender,
                now=MON_10_NY,
            )
        with bootstrap.ticker(settings, cache=cache) as tk:
            report = tk.run(MON_10_NY, 100)
        assert (report.sent, report.failed) == (1, 1)
        assert [m.envelope_from for m in ben_sink.messages] == ["ben.keller@mail.yourco.example"]
        with engine.connect() as conn:
            reasons = {r.owner_email: r.reason for r in conn.execute(enrollments.select())}
        assert "TF_TEST_ANA_SMTP is not set" in reasons["ana@yourco.example"]
        assert reasons["ben@yourco.example"] is None


SENDGRID_TEAM = """\
members:
  - email: cy@yourco.example
    name: Cy Park
    mailbox:
      signature: "Cy Park, yourco Seoul"
      postal_address: "yourco Korea, 1 Teheran-ro, Seoul"
      sendgrid: {api_key_env: TF_TEST_CY_SENDGRID}
  - email: di@yourco.example
    name: Di Rossi
    mailbox:
      signature: "Di Rossi, yourco Milano"
      sendgrid: {}
"""


def test_reps_with_sendgrid_send_with_their_from_address_and_their_own_key(
    tmp_path: Path, migrated_sqlite, monkeypatch: pytest.MonkeyPatch
) -> None:
    cadence = make_cadence(tmp_path, MAIL_ONLY, SIGNED)
    monkeypatch.setenv("TF_TEST_CY_SENDGRID", "SG.cy-subuser")
    # The stand-in knows Cy's key only: Di, without a key of her own, goes out with
    # the deployment's, which it refuses, so each mailbox's key is seen to be used.
    with SendgridStandin(api_key="SG.cy-subuser") as account, LocalSmtpSink() as default_sink:
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "team.yaml").write_text(SENDGRID_TEAM)
        settings = _settings(
            tmp_path,
            migrated_sqlite(tmp_path / "tf.db"),
            default_sink.port,
            sendgrid=SendgridSettings(api_key=SecretStr("SG.deployment"), host=account.url),
        )
        engine = bootstrap.database(settings)
        cache = bootstrap.runtimes(settings)
        directory = bootstrap.sender_directory(settings)
        owners = {"p@acme.example": "cy@yourco.example", "q@bco.example": "di@yourco.example"}
        with engine.begin() as conn:
            upsert_prospects(conn, [prospect(p) for p in owners], MON_10_NY)
        for email, owner in owners.items():
            chosen = directory.choose(owner, settings.sender.owner_email)
            enroll_prospects(
                engine,
                cache.add(cadence),
                [email],
                owner_email=chosen.owner,
                sender=chosen.sender,
                now=MON_10_NY,
            )
        with bootstrap.ticker(settings, cache=cache) as tk:
            report = tk.run(MON_10_NY, 100)
        (cy,) = account.messages
        assert cy.body["from"] == {"email": "cy@yourco.example", "name": "Cy Park"}
        text = cy.body["content"][0]["value"]
        assert "Cy Park, yourco Seoul" in text and "1 Teheran-ro, Seoul" in text
        assert (report.sent, report.failed) == (1, 1)
        assert default_sink.messages == []  # neither went through the SMTP transport
        with engine.connect() as conn:
            reasons = {r.owner_email: r.reason for r in conn.execute(enrollments.select())}
        assert "401" in reasons["di@yourco.example"]


# -- caps are per mailbox ----------------------------------------------------------


def _directory() -> SenderDirectory:
    team = team_from_yaml(team_yaml())
    return SenderDirectory(SENDER, team_senders(team, SENDER))


def _add_for(h: Harness, stem: str, owner: str, sender: SenderInfo) -> None:
    people = [prospect(f"{stem}{i}@{stem}{i}.example") for i in range(3)]
    h.add(people, MON_10_NY, owner=owner, sender=sender)


def test_two_reps_caps_are_independent(db: Engine, tmp_path: Path) -> None:
    directory = _directory()
    h = Harness(
        db,
        make_cadence(tmp_path, MAIL_ONLY, SIGNED),
        senders=directory,
        caps=CapPolicy(MailboxCaps(hourly=None, daily=2), {}, None),
    )
    ana, ben = (directory.for_owner(o) for o in ("ana@yourco.example", "ben@yourco.example"))
    assert ana is not None and ben is not None
    _add_for(h, "a", "ana@yourco.example", ana)
    _add_for(h, "b", "ben@yourco.example", ben)
    report = h.tick(MON_10_NY)
    # Each mailbox sends its own two: Ana's cap does not hold Ben's mail back.
    assert (report.sent, report.capped) == (4, 2)
    by_from: dict[str, int] = {}
    for m in h.email.sent:
        by_from[m.from_addr] = by_from.get(m.from_addr, 0) + 1
    assert by_from == {"ana@yourco.example": 2, "ben.keller@mail.yourco.example": 2}


def test_a_per_mailbox_cap_override_applies_to_that_rep_only(db: Engine, tmp_path: Path) -> None:
    directory = _directory()
    policy = CapPolicy(
        MailboxCaps(hourly=None, daily=None),
        {"ana@yourco.example": MailboxCaps(hourly=None, daily=1)},
        None,
    )
    h = Harness(db, make_cadence(tmp_path, MAIL_ONLY, SIGNED), senders=directory, caps=policy)
    ana, ben = (directory.for_owner(o) for o in ("ana@yourco.example", "ben@yourco.example"))
    assert ana is not None and ben is not None
    _add_for(h, "a", "ana@yourco.example", ana)
    _add_for(h, "b", "ben@yourco.example", ben)
    report = h.tick(MON_10_NY)
    assert (report.sent, report.capped) == (4, 2)


def test_an_owner_change_hands_the_next_touch_to_the_new_owners_mailbox(
    db: Engine, tmp_path: Path
) -> None:
    directory = _directory()
    h = Harness(
        db, make_cadence(tmp_path, MAIL_ONLY, SIGNED), email=FakeEmailSender(), senders=directory
    )
    ana = directory.for_owner("ana@yourco.example")
    assert ana is not None
    h.add([prospect("p@acme.example")], MON_10_NY, owner="ana@yourco.example", sender=ana)
    h.tick(MON_10_NY)
    with db.begin() as conn:  # routing or the CRM reassigns the prospect
        conn.execute(update(enrollments).values(owner_email="ben@yourco.example"))
    h.run_until(MON_10_NY + timedelta(days=2))
    assert [m.from_addr for m in h.email.sent] == [
        "ana@yourco.example",
        "ben.keller@mail.yourco.example",
    ]
    # An owner without a mailbox keeps the sender stored on the enrollment.
    kept = directory.for_enrollment("carla@yourco.example", "x@y.example", "X")
    assert (kept.email, kept.name, kept.postal_address) == (
        "x@y.example",
        "X",
        SENDER.postal_address,
    )


SMS_ONLY = """\
id: sms-only
name: SMS only
schedule:
  timezone: prospect
  window: {days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "23:59"}
  holidays: none
steps:
  - id: nudge
    channel: sms
    template: sms/nudge.txt.j2
"""


def test_texts_without_a_twilio_number_come_from_the_reps_phone_in_e164(
    db: Engine, tmp_path: Path
) -> None:
    directory = _directory()
    h = Harness(db, make_cadence(tmp_path, SMS_ONLY, SIGNED), senders=directory)
    ana = directory.for_owner("ana@yourco.example")
    assert ana is not None and ana.phone == "+1 646 555 0142"  # as written in team.yaml
    h.add([prospect("p@acme.example")], MON_10_NY, owner="ana@yourco.example", sender=ana)
    h.tick(MON_10_NY)
    assert [(m.from_number, m.body) for m in h.sms.sent] == [
        ("+16465550142", "Hi Ann, Ana Souza here. Reply STOP to opt out.")
    ]
