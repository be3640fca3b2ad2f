"""OutboxEmailSender: one .eml file per touch, atomic and idempotent."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from pathlib import Path

from touchflow.adapters.outbox.email_sender import OutboxEmailSender, outbox_filename
from touchflow.errors import FatalError
from touchflow.ports import OutboundEmail

MakeEmail = Callable[..., OutboundEmail]


def test_writes_a_parseable_eml_per_touch(tmp_path: Path, make_email: MakeEmail) -> None:
    outbox = tmp_path / "outbox"  # created on first use
    msg = make_email(
        1,
        subject="Grüße aus Köln",
        in_reply_to="<prev@mail.acme.test>",
        references=("<prev@mail.acme.test>",),
        list_unsubscribe_url="https://links.acme.test/u/abc",
    )
    sender = OutboxEmailSender(outbox)
    [result] = sender.send_batch([msg])

    assert result.ok
    assert result.provider_id == msg.message_id
    path = sender.path_for(msg.touch_key)
    assert path.parent == outbox
    assert [p.name for p in outbox.iterdir()] == [path.name]  # no temp files left
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == msg.message_id
    assert parsed["Subject"] == "Grüße aus Köln"
    assert parsed["X-Touchflow-Touch"] == msg.touch_key
    assert parsed["In-Reply-To"] == "<prev@mail.acme.test>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "message number 1." in parsed.get_content()


def test_second_send_of_a_touch_writes_nothing(tmp_path: Path, make_email: MakeEmail) -> None:
    sender = OutboxEmailSender(tmp_path)
    first = make_email(1)
    assert sender.send_batch([first])[0].ok
    path = sender.path_for(first.touch_key)
    before = (path.read_bytes(), path.stat().st_mtime_ns)

    # Same touch key, different content: the file on disk wins, with its Message-ID.
    again = make_email(1, message_id="<other@mail.acme.test>", subject="changed")
    [result] = sender.send_batch([again])
    assert result.ok
    assert result.provider_id == first.message_id
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert len(list(tmp_path.iterdir())) == 1


def test_touch_keys_map_to_distinct_safe_file_names(tmp_path: Path, make_email: MakeEmail) -> None:
    keys = ["a:b", "a_b", "a/b", "../escape", ".", "x" * 400]
    names = [outbox_filename(k) for k in keys]
    assert len(set(names)) == len(keys)
    assert all("/" not in n and not n.startswith(".") and len(n) < 255 for n in names)

    sender = OutboxEmailSender(tmp_path / "out")
    results = sender.send_batch([make_email(i, touch_key=k) for i, k in enumerate(keys)])
    assert all(r.ok for r in results)
    assert len(list((tmp_path / "out").iterdir())) == len(keys)
    assert not (tmp_path / "escape.eml").exists()


def test_errors_come_back_per_message(tmp_path: Path, make_email: MakeEmail) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    [blocked] = OutboxEmailSender(not_a_dir / "outbox").send_batch([make_email(1)])
    assert isinstance(blocked.error, FatalError)
    assert blocked.error.operation == "write"

    sender = OutboxEmailSender(tmp_path / "ok")
    bad, good = sender.send_batch([make_email(1, headers={"X-Bad": "a\nb"}), make_email(2)])
    assert isinstance(bad.error, FatalError) and bad.error.operation == "build"
    assert good.ok
