"""Test helpers: a small cadence with every channel, prospects, and a tick driver."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from touchflow.adapters.fakes import FakeEmailSender, FakeSmsSender
from touchflow.domain.cadence import Cadence, load_cadence
from touchflow.domain.engine import SenderInfo
from touchflow.domain.prospects import Prospect
from touchflow.services.tick import Ticker, TickReport
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.enrollments import apply_exit_event, enroll
from touchflow.store.prospects import find_prospect_id, upsert_prospects
from touchflow.store.schema import enrollments, prospects
from touchflow.store.tasks import complete_tasks, list_tasks

CADENCE_YAML = """\
id: t-cadence
name: Test cadence
schedule:
  timezone: prospect
  fallback_timezone: America/New_York
  window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}
  holidays: prospect
exit_on: [reply, bounce, unsubscribe, meeting_booked]
steps:
  - id: intro
    channel: email
    subject: "Hi {{ prospect.first_name }}"
    template: email/intro.txt.j2
    variants:
      - {id: a, weight: 1}
      - {id: b, weight: 1, subject: "Question for {{ prospect.company }}"}
  - id: call-1
    after: 2 business days
    channel: call
    template: call/script.md.j2
  - id: bump
    after: 1 business day
    channel: email
    thread: intro
    template: email/bump.txt.j2
  - id: nudge
    after: 1 day
    channel: sms
    template: sms/nudge.txt.j2
  - id: breakup
    after: 3 business days
    channel: email
    subject: "Closing the loop, {{ prospect.first_name }}"
    template: email/breakup.txt.j2
    when: "not touched('bump', 'opened')"
"""

TEMPLATES = {
    "email/intro.txt.j2": (
        "Hi {{ prospect.first_name }},\n\nAs {{ prospect.title }} at {{ prospect.company }}, "
        "you own pipeline.\n\n{{ sender.name }}\nUnsubscribe: {{ unsubscribe_url }}\n"
    ),
    "email/bump.txt.j2": "Bumping this, {{ prospect.first_name }}.\n{{ unsubscribe_url }}\n",
    "email/breakup.txt.j2": "Last note from me.\n{{ unsubscribe_url }}\n",
    "call/script.md.j2": "Call {{ prospect.first_name }} about {{ prospect.company }}.\n",
    "sms/nudge.txt.j2": (
        "Hi {{ prospect.first_name }}, {{ sender.name }} here. Reply STOP to opt out."
    ),
}


def cadence_yaml(cadence_id: str = "t-cadence", exit_on: str | None = None) -> str:
    """The test cadence under another id and/or with another ``exit_on`` list."""
    text = CADENCE_YAML.replace("id: t-cadence", f"id: {cadence_id}")
    if exit_on is not None:
        text = text.replace(
            "exit_on: [reply, bounce, unsubscribe, meeting_booked]", f"exit_on: [{exit_on}]"
        )
    return text


SENDER = SenderInfo(
    email="sam@touchflow.example",
    name="Sam Rivera",
    title="AE",
    company="touchflow",
    phone="+12125550199",
    timezone="America/New_York",
    postal_address="1 Test Way, Springfield, USA",
)


def write_cadence(
    root: Path, yaml_text: str = CADENCE_YAML, templates: dict[str, str] | None = None
) -> tuple[Path, Path]:
    """Write a cadence and its templates under ``root``; return (cadences dir, templates dir)."""
    cdir, tdir = root / "cadences", root / "templates"
    cdir.mkdir(parents=True, exist_ok=True)
    for name, src in (templates or TEMPLATES).items():
        (tdir / name).parent.mkdir(parents=True, exist_ok=True)
        (tdir / name).write_text(src)
    first_line = yaml_text.splitlines()[0]
    cid = first_line.split(":", 1)[1].strip()
    (cdir / f"{cid}.yaml").write_text(yaml_text)
    return cdir, tdir


def make_cadence(
    root: Path, yaml_text: str = CADENCE_YAML, templates: dict[str, str] | None = None
) -> Cadence:
    cdir, tdir = write_cadence(root, yaml_text, templates)
    cid = yaml_text.splitlines()[0].split(":", 1)[1].strip()
    return load_cadence(cdir / f"{cid}.yaml", tdir)


def prospect(email: str, tz: str = "America/New_York", country: str = "US", **kw: Any) -> Prospect:
    base: dict[str, Any] = {
        "first_name": "Ann",
        "last_name": "Lee",
        "title": "VP Sales",
        "company": "Acme",
        "phone": "+12125550123",
    }
    base.update(kw)
    return Prospect(email=email, timezone=tz, country=country, **base)


class Harness:
    """A store with one cadence and fake senders, driven with an explicit clock."""

    def __init__(
        self,
        engine: Engine,
        cadence: Cadence,
        *,
        email: Any = None,
        sms: Any = None,
        senders: Any = SENDER,
        **ticker_kw: Any,
    ) -> None:
        self.engine = engine
        self.cadence = cadence
        self.runtimes = RuntimeCache("http://localhost:8000")
        self.runtime = self.runtimes.add(cadence)
        self.email = email or FakeEmailSender()
        self.sms = sms or FakeSmsSender()
        self.ticker = Ticker(
            engine,
            email=self.email,
            sms=self.sms,
            sender_defaults=senders,
            runtimes=self.runtimes,
            **ticker_kw,
        )

    def add(
        self,
        people: list[Prospect],
        now: datetime,
        *,
        owner: str = "sdr@x.example",
        sender: SenderInfo = SENDER,
    ) -> None:
        """Store ``people``; enroll every prospect not yet enrolled, as ``owner`` and ``sender``."""
        with self.engine.begin() as conn:
            upsert_prospects(conn, people, now)
            enroll(conn, self.runtime, None, owner_email=owner, sender=sender, now=now)

    def tick(self, now: datetime, batch: int = 100) -> TickReport:
        return self.ticker.run(now, batch)

    def exit_event(self, email: str, kind: str, at: datetime) -> Any:
        """Record a reply/bounce/unsubscribe/meeting for a prospect, as the CLI does."""
        with self.engine.begin() as conn:
            pid = find_prospect_id(conn, email)
            return apply_exit_event(conn, self.runtimes, pid, kind, at, source="test")

    def complete_due_tasks(self, now: datetime, outcome: str = "completed") -> int:
        with self.engine.begin() as conn:
            ids = [t.id for t in list_tasks(conn) if t.due_at <= now]
            return complete_tasks(conn, self.runtimes, SENDER, ids, outcome=outcome, at=now)

    def next_due(self) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(select(func.min(enrollments.c.next_due_at))).scalar()

    def run_until(self, end: datetime) -> None:
        """Tick exactly at every due time (tasks completed when created) until ``end``."""
        while True:
            due = self.next_due()
            if due is None or due > end:
                return
            self.tick(due)
            self.complete_due_tasks(due)

    def enrollment(self, email: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(
                select(enrollments)
                .join(prospects, prospects.c.id == enrollments.c.prospect_id)
                .where(prospects.c.email == email)
            ).one()


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def days(n: float) -> timedelta:
    return timedelta(days=n)
