"""MailboxEmailSender: each message through its From mailbox's sender, else the default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from touchflow.adapters.fakes import FakeEmailSender
from touchflow.adapters.mailboxes import MailboxEmailSender
from touchflow.errors import ConfigError, FatalError
from touchflow.ports import EmailSender, OutboundEmail


def _mail(n: int, from_addr: str) -> OutboundEmail:
    return OutboundEmail(
        touch_key=f"t{n}",
        message_id=f"<t{n}@x.example>",
        from_addr=from_addr,
        to_addr=f"p{n}@acme.example",
        subject="Hi",
        text="Hello",
    )


def _counting(sender: FakeEmailSender, builds: list[str], name: str) -> Callable[[], EmailSender]:
    def build() -> EmailSender:
        builds.append(name)
        return sender

    return build


def test_messages_go_through_their_mailbox_and_results_keep_their_order() -> None:
    default, ana, ben = FakeEmailSender(), FakeEmailSender(), FakeEmailSender()
    builds: list[str] = []
    router = MailboxEmailSender(
        default,
        {
            "Ana@YourCo.example": _counting(ana, builds, "ana"),
            "ben@yourco.example": _counting(ben, builds, "ben"),
        },
    )
    batch = [
        _mail(1, "ben@yourco.example"),
        _mail(2, "ana@yourco.example"),
        _mail(3, "sam@touchflow.example"),
        _mail(4, "ANA@yourco.example"),
    ]
    results = router.send_batch(batch)
    assert [r.touch_key for r in results] == ["t1", "t2", "t3", "t4"]
    assert all(r.ok for r in results)
    assert [m.touch_key for m in ana.sent] == ["t2", "t4"] and ana.batches == 1
    assert [m.touch_key for m in ben.sent] == ["t1"]
    assert [m.touch_key for m in default.sent] == ["t3"]
    router.send_batch([_mail(5, "ana@yourco.example")])
    assert sorted(builds) == ["ana", "ben"]  # each built once, on first use
    router.close()
    assert ana.closed and ben.closed and default.closed


def test_a_mailbox_that_cannot_be_built_fails_only_its_own_messages() -> None:
    default = FakeEmailSender()

    def broken() -> Any:
        raise ConfigError("ANA_SMTP_PASSWORD is not set (smtp.password_env of ana's mailbox)")

    router = MailboxEmailSender(default, {"ana@yourco.example": broken})
    results = router.send_batch([_mail(1, "ana@yourco.example"), _mail(2, "sam@x.example")])
    assert isinstance(results[0].error, FatalError)
    assert "ANA_SMTP_PASSWORD is not set" in str(results[0].error)
    assert results[1].ok and [m.touch_key for m in default.sent] == ["t2"]
