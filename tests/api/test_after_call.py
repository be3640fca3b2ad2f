"""End to end, after the call: a scripted call through the signed Twilio transcription
webhook, its stop, and then the summary on the task, the call activity in the CRM
stand-in (HubSpot over HTTP), the cadence's next step taken or skipped by ``tracker()``,
and the prospect's score moved by the trackers' score events."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.api.conftest import MON, World, make_settings
from tests.conftest import ROOT
from tests.services.test_call_summaries import BRANCHY
from tests.support.harness import Harness, make_cadence, prospect
from touchflow.adapters.fakes import FakeDialer
from touchflow.entrypoints.api import create_app
from touchflow.store.schema import enrollments, prospects, touches
from touchflow.store.tasks import list_tasks

PATH = "/webhooks/twilio/transcription"
PRICING, QUIET = "ann@acme.example", "bob@globex.example"
CALL_DAY = MON + timedelta(days=2, hours=1)


def _world(db: Any, tmp_path: Path) -> World:
    config = tmp_path / "config"
    config.mkdir()
    for name in ("guidance.yaml", "icp.yaml"):
        shutil.copy(ROOT / "config" / name, config / name)
    h = Harness(db, make_cadence(tmp_path, BRANCHY))
    people = [
        prospect(PRICING, phone="+12125550101"),
        prospect(QUIET, first_name="Bob", phone="+12125550102"),
    ]
    h.add(people, MON - timedelta(days=2))
    h.tick(MON)
    h.tick(CALL_DAY)
    clock, dialer = [CALL_DAY], FakeDialer()
    app = create_app(
        make_settings(config_dir=str(config), transcripts={"source": "twilio"}),
        engine=db,
        runtimes=h.runtimes,
        dialer=dialer,
        clock=lambda: clock[0],
    )
    return World(db, h, TestClient(app), dialer, clock)


def _cb(sid: str, event: str, at: str, **fields: Any) -> dict[str, str]:
    form = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": sid,
        "TranscriptionSid": "GT" + "b" * 32,
        "TranscriptionEvent": event,
        "Timestamp": at,
        "ProviderName": "google",
    }
    form.update({k: str(v) for k, v in fields.items()})
    return form


def _said(sid: str, seq: int, text: str, at: str, track: str) -> dict[str, str]:
    return _cb(sid, "transcription-content", at, Track=track, SequenceId=seq, LanguageCode="en-US",
               Final="true", Stability="0.9",
               TranscriptionData=json.dumps({"transcript": text, "confidence": 0.9}))  # fmt: skip


# On the SDR's leg the inbound track is the rep, the outbound track the prospect.
PRICING_SCRIPT = [
    (1, "Hi Ann, what are you using for sales calls today?", "inbound_track", "16:00:02"),
    (1, "We use Gong and we are not happy.", "outbound_track", "16:00:07"),
    (2, "How much does it cost per seat?", "outbound_track", "16:00:15"),
    (2, "Let me book a demo as a next step.", "inbound_track", "16:00:25"),
]
QUIET_SCRIPT = [
    (1, "Hi Bob, is this a good time?", "inbound_track", "16:00:02"),
    (1, "Not now, call me later.", "outbound_track", "16:00:06"),
]


def _play(world: World, sid: str, task_id: int, script: list[Any]) -> None:
    q = f"?task_id={task_id}&consent=announce"
    day = "2026-12-02T"
    forms = [_cb(sid, "transcription-started", day + "16:00:00.000Z", LanguageCode="en-US")]
    forms += [_said(sid, seq, text, f"{day}{t}.000Z", track) for seq, text, track, t in script]
    forms.append(forms[2])  # a redelivery changes nothing
    forms.append(_cb(sid, "transcription-stopped", day + "16:00:40.000Z"))
    forms.append(forms[-1])  # the stop twice: one summary
    for form in forms:
        r = world.post_twilio(PATH + q, form)
        assert r.status_code == 204, r.text


def test_a_call_through_the_webhook_reaches_the_task_the_crm_the_cadence_and_the_score(
    db, tmp_path
):
    from tests.adapters.crm.backends import hubspot
    from touchflow.domain.scoring import load_icp
    from touchflow.services.crm_sync import CrmSync
    from touchflow.store.call_summaries import summary_of_task
    from touchflow.store.scores import rescore

    world = _world(db, tmp_path)
    icp = load_icp(tmp_path / "config" / "icp.yaml")
    with db.begin() as conn:
        rescore(conn, icp, CALL_DAY)
    score_before = {e: world.prospect(e).score for e in (PRICING, QUIET)}
    with db.connect() as conn:
        task = {t.email: t for t in list_tasks(conn)}
    # A forged stop is refused and summarises nothing.
    forged = _cb("CA-ann", "transcription-stopped", "2026-12-02T16:00:01.000Z")
    assert world.client.post(PATH, data=forged).status_code == 403

    with world.client:
        _play(world, "CA-ann", task[PRICING].id, PRICING_SCRIPT)
        _play(world, "CA-bob", task[QUIET].id, QUIET_SCRIPT)

    # The summary is on the task.
    with db.connect() as conn:
        (ann,) = summary_of_task(conn, task[PRICING].id)
        (bob,) = summary_of_task(conn, task[QUIET].id)
    heard = {t.tracker: [(m.said_by, m.offset_s) for m in t.moments] for t in ann.summary.trackers}
    assert heard["competitor"] == [("prospect", 7.0)] and heard["pricing"] == [("prospect", 15.0)]
    assert ann.summary.checklist["next-step"] and not ann.summary.checklist["budget"]
    assert ann.summary.duration_s == 40 and ann.summary.questions_by_prospect == 1
    assert not {"competitor", "pricing"} & {t.tracker for t in bob.summary.trackers}

    # The score: asked_for_pricing (15) + competitor_mentioned (10) for Ann, nothing for Bob.
    assert world.prospect(PRICING).score == score_before[PRICING] + 25
    assert world.prospect(QUIET).score == score_before[QUIET]

    # The CRM: the sync queues the summaries with every other activity and logs each as
    # the call activity, once, over HTTP to the HubSpot stand-in.
    later = CALL_DAY + timedelta(minutes=5)
    with hubspot() as (crm, standin):
        assert standin is not None
        sync = CrmSync(db, crm, world.harness.runtimes, batch_size=100, max_attempts=3,
                       owner_change_pause=timedelta(days=3))  # fmt: skip
        for _ in range(2):
            sync.queue(later)
            assert sync.push(later)["failed"] == 0
        titles = {
            i: standin.record("activity", i).get("hs_call_title") or ""
            for i in standin.objects["calls"]  # type: ignore[attr-defined]
        }
        summaries = [i for i, title in titles.items() if title.startswith("Call summary: ")]
        assert len(summaries) == 2  # Ann's call and Bob's
        bodies = [standin.record("activity", i)["hs_call_body"] for i in summaries]
    (ann_body,) = [b for b in bodies if "Call CA-ann" in b]
    assert '0:15 prospect: "How much does it cost per seat?"' in ann_body

    # The cadence: Ann gets the pricing follow-up, Bob the plain bump.
    world.harness.complete_due_tasks(later, outcome="connected")
    world.harness.tick(CALL_DAY + timedelta(days=1, hours=1))
    world.harness.tick(CALL_DAY + timedelta(days=2, hours=1))
    with db.connect() as conn:
        steps = conn.execute(
            select(prospects.c.email, touches.c.step_id, touches.c.status)
            .join(enrollments, enrollments.c.prospect_id == prospects.c.id)
            .join(touches, touches.c.enrollment_id == enrollments.c.id)
            .where(touches.c.step_id.in_(("pricing-follow-up", "bump")))
        ).all()
    assert sorted(steps) == [
        (PRICING, "bump", "skipped"),
        (PRICING, "pricing-follow-up", "sent"),
        (QUIET, "bump", "sent"),
        (QUIET, "pricing-follow-up", "skipped"),
    ]
