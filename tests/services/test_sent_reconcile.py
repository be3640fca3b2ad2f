"""Reply polling settles `unknown` SMTP touches from the Sent folder (real Dovecot, both DBs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.support.harness import SENDER, Harness, make_cadence, prospect
from tests.support.imap_server import dovecot_server
from touchflow.adapters.fakes import FakeEmailSender
from touchflow.adapters.imap.replies import ImapMailbox
from touchflow.adapters.smtp.email_sender import MESSAGE_POLICY, build_message
from touchflow.errors import DeliveryUnknown
from touchflow.services.replies import poll_mailbox, reconcile_sent
from touchflow.store.schema import touches

SAT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
PASSWORD = "pw-sent"


def _lost() -> DeliveryUnknown:
    return DeliveryUnknown("no final reply", connector="smtp", operation="data")


def _status(h: Harness, email: str) -> str:
    enr = h.enrollment(email)
    with h.engine.connect() as conn:
        return str(
            conn.execute(
                select(touches.c.status).where(touches.c.enrollment_id == enr.id)
            ).scalar_one()
        )


def test_a_poll_marks_unknown_touches_found_in_the_sent_folder_sent(db, tmp_path):
    email = FakeEmailSender(fail={"gone@x.example": _lost(), "lost@x.example": _lost()})
    h = Harness(db, make_cadence(tmp_path), email=email)
    h.add([prospect(a) for a in ("ok@x.example", "gone@x.example", "lost@x.example")], SAT)
    assert h.tick(MON).unknown == 2
    # The server had accepted (and saved) "gone" before the connection broke.
    [went] = [m for m in email.attempts if m.to_addr == "gone@x.example"]
    user = SENDER.email
    with dovecot_server({user: PASSWORD}) as imap:
        conn = imap.connect(user)
        conn.create('"Sent"')
        conn.logout()
        imap.append(user, build_message(went).as_bytes(MESSAGE_POLICY), folder="Sent")
        with ImapMailbox(imap.host, imap.port, user, PASSWORD) as mailbox:
            counts = poll_mailbox(mailbox, h.engine, h.runtimes, now=MON + timedelta(minutes=5))
            assert counts == {"reconciled": 1}
            assert not poll_mailbox(mailbox, h.engine, h.runtimes, now=MON + timedelta(minutes=6))
            assert reconcile_sent(mailbox, h.engine, h.runtimes, now=MON) == 0

    assert _status(h, "gone@x.example") == "sent"
    gone = h.enrollment("gone@x.example")
    assert (gone.state, gone.reason) == ("active", None)  # on to its next step
    assert gone.next_due_at is not None and gone.next_due_at > MON
    assert _status(h, "lost@x.example") == "unknown"  # not in Sent: stays for a person
    assert h.enrollment("lost@x.example").state == "failed"


def test_a_missing_sent_folder_does_not_break_reply_polling(db, tmp_path, caplog):
    email = FakeEmailSender(fail={"gone@x.example": _lost()})
    h = Harness(db, make_cadence(tmp_path), email=email)
    h.add([prospect("gone@x.example")], SAT)
    assert h.tick(MON).unknown == 1
    user = SENDER.email
    with (
        dovecot_server({user: PASSWORD}) as imap,
        ImapMailbox(imap.host, imap.port, user, PASSWORD, sent_folder="Nope") as mailbox,
    ):
        assert poll_mailbox(mailbox, h.engine, h.runtimes, now=MON) == {}
    assert "sent folder of imap:" in caplog.text
    assert _status(h, "gone@x.example") == "unknown"
