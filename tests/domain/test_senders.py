"""Team mailboxes in team.yaml (validation) and who an enrollment sends as (the directory)."""

from __future__ import annotations

import textwrap

import pytest

from tests.support.harness import SENDER
from touchflow.domain.routing import team_from_yaml
from touchflow.domain.senders import SenderDirectory, team_senders
from touchflow.errors import ConfigFileError, OwnerRefused

TEAM = """\
working_hours: {timezone: Europe/Berlin, start: "09:00", end: "17:00"}
members:
  - email: Sam@YourCo.example
    name: Sam Rivera
    role: sdr
    mailbox:
      from: sam.rivera@mail.yourco.example
      title: SDR
      phone: "+1 646 555 0142"
      signature: |
        Sam Rivera
        yourco
      postal_address: "yourco Inc., 100 Broadway, New York"
      smtp: {host: smtp.yourco.example, username: sam, password_env: SAM_SMTP_PASSWORD}
      imap: {host: imap.yourco.example, username: sam, password_env: SAM_IMAP_PASSWORD}
  - email: lena@yourco.example
    name: Lena Vogel
    mailbox: {sendgrid: {}}
  - email: ana@yourco.example
    name: Ana Souza
"""


def _findings(text: str) -> list[str]:
    with pytest.raises(ConfigFileError) as caught:
        team_from_yaml(text)
    return [str(f) for f in caught.value.findings]


def _mailbox(body: str) -> str:
    head = "members:\n  - email: sam@yourco.example\n    name: Sam\n    mailbox:\n"
    return head + textwrap.indent(textwrap.dedent(body), "      ")


def test_a_mailbox_takes_the_members_identity_and_the_defaults_for_the_rest() -> None:
    team = team_from_yaml(TEAM)
    senders = team_senders(team, SENDER)
    assert set(senders) == {"sam@yourco.example", "lena@yourco.example"}  # Ana has no mailbox
    sam = senders["sam@yourco.example"]
    assert (sam.email, sam.name, sam.title, sam.phone) == (
        "sam.rivera@mail.yourco.example",
        "Sam Rivera",
        "SDR",
        "+1 646 555 0142",
    )
    assert sam.signature == "Sam Rivera\nyourco"  # the YAML block's last newline dropped
    assert sam.postal_address == "yourco Inc., 100 Broadway, New York"
    assert sam.company == SENDER.company
    assert sam.timezone == "Europe/Berlin"  # the team's working hours
    lena = senders["lena@yourco.example"]
    assert (lena.email, lena.name, lena.title, lena.signature) == (
        "lena@yourco.example",
        "Lena Vogel",
        None,
        None,
    )
    assert lena.postal_address == SENDER.postal_address  # the company's, configured once
    assert team.members[0].mailbox is not None and team.members[0].mailbox.smtp is not None
    assert team.members[0].mailbox.smtp.port == 587 and team.members[0].mailbox.smtp.starttls


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (
            "smtp: {host: smtp.x.example, username: sam, password: hunter2}\n",
            5,
            "mailbox.smtp.password: no secrets in team.yaml",
        ),
        (
            "imap:\n  host: imap.x.example\n  username: sam\n  password: hunter2\n",
            8,
            "mailbox.imap.password: no secrets in team.yaml",
        ),
        (
            "sendgrid: {api_key: SG.abc}\n",
            5,
            "mailbox.sendgrid.api_key: no secrets in team.yaml",
        ),
        (
            "smtp: {host: smtp.x.example, username: sam, password_env: 'my password'}\n",
            5,
            "'my password' is not an environment variable name",
        ),
        ("smtp: {host: smtp.x.example, username: sam}\n", 5, "add password_env"),
        (
            "smtp: {host: smtp.x.example}\nsendgrid: {}\n",
            6,
            "a mailbox sends through smtp or sendgrid, not both",
        ),
        ("from: not-an-address\n", 5, "mailbox.from"),
        ("timezone: Europe/Berln\n", 5, "mailbox.timezone"),
        ("phone: '646 555 0142'\n", 5, "mailbox.phone"),
        ("signatur: hi\n", 5, "unknown key 'signatur' (did you mean 'signature'?)"),
    ],
)
def test_mailbox_mistakes_are_findings_at_their_line(body: str, line: int, message: str) -> None:
    found = _findings(_mailbox(body))
    assert len(found) == 1, found
    assert found[0].startswith(f"config/team.yaml:{line}:"), found
    assert message in found[0]
    assert "hunter2" not in found[0] and "SG.abc" not in found[0]  # never echo a secret


def test_the_password_finding_suggests_an_env_var_name() -> None:
    (found,) = _findings(
        _mailbox("smtp: {host: smtp.x.example, username: sam.r@x.example, password: p}\n")
    )
    assert "password_env: SAM_R_PASSWORD" in found


def test_two_members_cannot_send_from_one_address() -> None:
    text = TEAM + "  - email: bo@yourco.example\n    name: Bo\n"
    text += "    mailbox: {from: sam.rivera@mail.yourco.example}\n"
    (found,) = _findings(text)
    assert "sam.rivera@mail.yourco.example already sends for sam@yourco.example" in found


# -- the directory ---------------------------------------------------------------------


def _directory() -> SenderDirectory:
    return SenderDirectory(SENDER, team_senders(team_from_yaml(TEAM), SENDER))


def test_the_owners_mailbox_decides_the_sender_else_the_stored_one() -> None:
    d = _directory()
    sam = d.for_enrollment("SAM@yourco.example", "old@x.example", "Old")
    assert sam.email == "sam.rivera@mail.yourco.example"
    # No mailbox for the owner: the stored sender (a team address keeps its identity).
    assert d.for_enrollment("ana@yourco.example", "sam.rivera@mail.yourco.example", None) is sam
    kept = d.for_enrollment("ana@yourco.example", "old@x.example", None)
    assert (kept.email, kept.name, kept.title) == ("old@x.example", SENDER.name, SENDER.title)
    assert d.for_enrollment(None, "old@x.example", None) is kept  # resolved once


def test_enroll_owner_rules() -> None:
    d = _directory()
    chosen = d.choose(" Sam@YourCo.example ", "sdr@touchflow.example")
    assert (chosen.owner, chosen.sender.email, chosen.from_team) == (
        "sam@yourco.example",
        "sam.rivera@mail.yourco.example",
        True,
    )
    with pytest.raises(OwnerRefused) as refused:
        d.choose("ana@yourco.example", "sdr@touchflow.example")
    assert not refused.value.usage
    assert "lena@yourco.example, sam@yourco.example" in str(refused.value)
    with pytest.raises(OwnerRefused) as bad:
        d.choose("not an email", "sdr@touchflow.example")
    assert bad.value.usage and "--owner 'not an email' is not an email address" in str(bad.value)
    # Without --owner: the default owner, and the default sender unless they have a mailbox.
    default = d.choose(None, "sdr@touchflow.example")
    assert (default.owner, default.sender, default.from_team) == (
        "sdr@touchflow.example",
        SENDER,
        False,
    )
    assert d.choose(None, "sam@yourco.example").from_team


def test_without_any_mailbox_every_owner_gets_the_default_sender() -> None:
    d = SenderDirectory(SENDER)
    chosen = d.choose("someone@me.example", "sdr@touchflow.example")
    assert (chosen.owner, chosen.sender, chosen.from_team) == ("someone@me.example", SENDER, False)
    with pytest.raises(OwnerRefused):
        d.choose("someone", "sdr@touchflow.example")
