"""Tables. SQLAlchemy Core, so the hot paths can use executemany without ORM overhead.

Invariant that keeps the tick cheap: ``enrollments.next_due_at`` is non-NULL
only while an enrollment can be claimed: pending or active (not waiting on a
task, not held for missing data), or paused until a known time (out of
office, an account's reply), which the claim resumes. The due query is then
one index range scan, however many enrollments are waiting or finished.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (same on SQLite and PostgreSQL)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


prospects = Table(
    "prospects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("first_name", String(200)),
    Column("last_name", String(200)),
    Column("title", String(300)),
    Column("company", String(300)),
    Column("domain", String(255), index=True),
    Column("phone", String(32)),
    Column("country", String(2)),
    Column("timezone", String(64)),
    Column("fields", JSON, nullable=False, default=dict),
    Column("opted_out_at", UTCDateTime()),
    Column("bounced_at", UTCDateTime()),
    # When the prospect gave consent to receive texts (cadences `requires: [sms_consent]`).
    Column("sms_consent_at", UTCDateTime()),
    # Normalization (issue 4): the company account, persona, address flags.
    Column("account_id", ForeignKey("accounts.id"), index=True),
    Column("seniority", String(16)),  # c_level|vp|director|manager|ic
    Column("department", String(16)),  # sales|marketing|revops|engineering|finance|it|hr|...
    Column("email_free", Boolean),  # a free-mail provider (gmail.com, ...)
    Column("email_role", Boolean),  # a role address (info@, sales@, ...)
    # Where each value came from: {"title": {"source": "import", "at": "..."}, ...}.
    # Enrichment fills only empty or enriched values, never a human's.
    Column("field_sources", JSON),
    # The latest ICP score (history in score_history) and lifecycle stage.
    Column("score", Integer),
    Column("grade", String(1)),  # A-D
    Column("lifecycle", String(16)),  # lead|mql|sql|disqualified
    Column("scored_at", UTCDateTime()),
    # Routing and the CRM: the AE who owns the lead, the CRM's person id.
    Column("ae_email", String(320), index=True),
    Column("crm_person_id", String(100)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False, index=True),
)

cadence_versions = Table(
    "cadence_versions",
    metadata,
    # The content hash of the YAML and its templates: enrollments are pinned to it.
    Column("version", String(32), primary_key=True),
    Column("cadence_id", String(100), nullable=False, index=True),
    Column("yaml_text", Text, nullable=False),
    Column("source_path", String(500), nullable=False),
    Column("templates", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("prospect_id", ForeignKey("prospects.id"), nullable=False, index=True),
    Column("cadence_id", String(100), nullable=False),
    Column("cadence_version", ForeignKey("cadence_versions.version"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", String(200)),
    Column("step_index", Integer, nullable=False, default=0),
    Column("attempt", Integer, nullable=False, default=1),
    Column("next_due_at", UTCDateTime()),
    Column("owner_email", String(320), nullable=False),
    Column("sender_email", String(320), nullable=False),
    Column("sender_name", String(200)),
    # Wall-clock time a worker claimed it; NULL when free. See ledger.recover().
    Column("claimed_at", UTCDateTime()),
    Column("last_executed_at", UTCDateTime()),
    Column("enrolled_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("prospect_id", "cadence_id"),
    Index("ix_enrollments_next_due_at", "next_due_at"),
    # Partial: only in-flight claims are indexed (few rows), and the planner can
    # never pick it for the due query's `claimed_at IS NULL`, which would sort
    # every due row instead of walking ix_enrollments_next_due_at.
    Index(
        "ix_enrollments_claimed_at",
        "claimed_at",
        sqlite_where=text("claimed_at IS NOT NULL"),
        postgresql_where=text("claimed_at IS NOT NULL"),
    ),
    Index("ix_enrollments_cadence_id_state", "cadence_id", "state"),
)

touches = Table(
    "touches",
    metadata,
    Column("id", Integer, primary_key=True),
    # Deterministic: "<enrollment>-<step>-<attempt>". The unique constraint is the
    # claim: a second worker's insert of the same key does nothing.
    Column("key", String(200), nullable=False, unique=True),
    Column("enrollment_id", ForeignKey("enrollments.id"), nullable=False, index=True),
    Column("step_id", String(100), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("variant", String(50)),
    Column("status", String(16), nullable=False),  # queued|sending|sent|failed|unknown|skipped
    Column("provider_id", String(300)),
    Column("message_id", String(300)),
    Column("subject", String(1000)),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("executed_at", UTCDateTime(), nullable=False),  # the tick's `now`
    Column("claimed_at", UTCDateTime(), nullable=False),  # wall clock
    # Random per claimed batch: tells a worker which rows its insert-on-conflict won.
    Column("claim_token", String(32)),
    Column("sent_at", UTCDateTime()),
    Column("error", Text),
    Index("ix_touches_status", "status"),
    # Replies are matched to touches through In-Reply-To / References.
    Index("ix_touches_message_id", "message_id"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("touch_key", String(200), nullable=False, unique=True),
    Column("enrollment_id", ForeignKey("enrollments.id"), nullable=False, index=True),
    Column("step_id", String(100), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("owner_email", String(320), nullable=False, index=True),
    Column("title", String(500), nullable=False),
    Column("body", Text),
    Column("status", String(16), nullable=False),  # open|done|skipped
    Column("outcome", String(50)),
    Column("notes", Text),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("completed_at", UTCDateTime()),
    Index("ix_tasks_status_due_at", "status", "due_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("prospect_id", ForeignKey("prospects.id"), index=True),
    Column("enrollment_id", ForeignKey("enrollments.id")),
    Column("touch_key", String(200), index=True),
    Column("type", String(32), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("source", String(50), nullable=False),
    # Provider's event id; duplicates of a webhook delivery are dropped on it.
    Column("provider_event_id", String(200), unique=True),
    Column("payload", JSON),
    Column("created_at", UTCDateTime(), nullable=False),
    # Speed to lead's first completed task of an enrollment (migration 0016): partial.
    Index(
        "ix_events_task_completed_enrollment_id",
        "enrollment_id",
        "occurred_at",
        sqlite_where=text("source = 'task' AND type = 'completed'"),
        postgresql_where=text("source = 'task' AND type = 'completed'"),
    ),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # email|phone|domain
    Column("value", String(320), nullable=False),
    Column("reason", String(100), nullable=False),
    Column("source", String(50), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("kind", "value"),
)

send_counts = Table(
    "send_counts",
    metadata,
    # Rolling-window send caps: messages claimed per mailbox or recipient domain
    # per 5-minute bucket of the tick's clock. Summing a window's buckets is a
    # short index range scan, however many touches the ledger holds.
    Column("scope", String(16), primary_key=True),  # mailbox|domain
    Column("key", String(320), primary_key=True),
    Column("bucket", UTCDateTime(), primary_key=True),
    Column("n", Integer, nullable=False),
)

cadence_pauses = Table(
    "cadence_pauses",
    metadata,
    # The bounce shield (or an operator) paused a cadence: no enrollment of it
    # is claimed until `touchflow cadence resume` sets resumed_at.
    Column("id", Integer, primary_key=True),
    Column("cadence_id", String(100), nullable=False, index=True),
    Column("reason", String(300), nullable=False),
    Column("sends", Integer, nullable=False, default=0),
    Column("bounces", Integer, nullable=False, default=0),
    Column("paused_at", UTCDateTime(), nullable=False),
    Column("resumed_at", UTCDateTime()),
)

accounts = Table(
    "accounts",
    metadata,
    # One company, keyed on its primary domain (aliases resolve to it).
    Column("id", Integer, primary_key=True),
    Column("domain", String(255), nullable=False, unique=True),
    Column("name", String(300)),
    Column("industry", String(100)),
    Column("employees", Integer),
    Column("revenue_band", String(32)),
    Column("country", String(2)),
    Column("technologies", JSON),
    Column("field_sources", JSON),
    Column("owner_email", String(320)),  # the AE who owns the account
    Column("crm_company_id", String(100)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

score_history = Table(
    "score_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("prospect_id", ForeignKey("prospects.id"), nullable=False, index=True),
    Column("score", Integer, nullable=False),
    Column("fit", Integer, nullable=False),
    Column("engagement", Integer, nullable=False),
    Column("grade", String(1), nullable=False),
    Column("lifecycle", String(16), nullable=False),
    # [{"points": 25, "rule": "industry", "why": "industry software"}, ...]
    Column("reasons", JSON, nullable=False),
    Column("icp_version", String(32), nullable=False),  # hash of config/icp.yaml
    Column("scored_at", UTCDateTime(), nullable=False),
)

route_assignments = Table(
    "route_assignments",
    metadata,
    # Every routing decision, kept: who got the lead, by which rule, and whether
    # it was accepted within the SLA or rerouted.
    Column("id", Integer, primary_key=True),
    Column("prospect_id", ForeignKey("prospects.id"), nullable=False, index=True),
    Column("assignee_email", String(320), nullable=False),
    Column("rule", String(100), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("status", String(16), nullable=False),  # assigned|accepted|rerouted
    Column("assigned_at", UTCDateTime(), nullable=False),
    Column("sla_due_at", UTCDateTime()),
    Column("accepted_at", UTCDateTime()),
    Column("rerouted_at", UTCDateTime()),
    Index("ix_route_assignments_assignee_email_assigned_at", "assignee_email", "assigned_at"),
    Index("ix_route_assignments_status_sla_due_at", "status", "sla_due_at"),
    # Speed to lead reads a window's leads first (migration 0016): received in it, and
    # the first or latest assignment of a prospect (by id).
    Index("ix_route_assignments_assigned_at", "assigned_at"),
    Index("ix_route_assignments_prospect_id_id", "prospect_id", "id"),
)

routing_ledger = Table(
    "routing_ledger",
    metadata,
    # The persistent fairness state of weighted round robin, per pool and member.
    Column("pool", String(100), primary_key=True),
    Column("member_email", String(320), primary_key=True),
    Column("assigned", Integer, nullable=False),  # leads given in this pool
    Column("credit", Float, nullable=False),  # levelling while away (PTO, new member)
    Column("updated_at", UTCDateTime(), nullable=False),
)

crm_links = Table(
    "crm_links",
    metadata,
    # Local record -> the CRM's id, so pushes update instead of duplicating.
    Column("crm", String(20), primary_key=True),
    Column("kind", String(16), primary_key=True),  # person|company|deal|activity
    Column("local_key", String(320), primary_key=True),  # email | domain | touch key
    Column("external_id", String(100), nullable=False),
    Column("synced_at", UTCDateTime(), nullable=False),
)

crm_outbox = Table(
    "crm_outbox",
    metadata,
    # Pushes to the CRM, queued in the same transaction as the change that
    # caused them and retried until done: a CRM outage loses nothing.
    Column("id", Integer, primary_key=True),
    Column("crm", String(20), nullable=False),
    Column("operation", String(32), nullable=False),  # push_lead|log_activity
    Column("key", String(320), nullable=False),  # idempotency: one row per operation+key
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending|done|failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("last_error", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("done_at", UTCDateTime()),
    UniqueConstraint("crm", "operation", "key"),
    Index("ix_crm_outbox_status_next_attempt_at", "status", "next_attempt_at"),
)

crm_cursors = Table(
    "crm_cursors",
    metadata,
    # Where the last pull of CRM changes stopped.
    Column("crm", String(20), primary_key=True),
    Column("since", UTCDateTime(), nullable=False),
    Column("cursor", String(500)),
    Column("updated_at", UTCDateTime(), nullable=False),
)

lead_requests = Table(
    "lead_requests",
    metadata,
    # POST /leads idempotency (the IETF Idempotency-Key draft): a key is claimed
    # ("processing") in its own transaction before the lead is processed, then
    # "done" with the answer; the same key and payload answer the same decision.
    Column("idempotency_key", String(200), primary_key=True),
    Column("prospect_id", ForeignKey("prospects.id")),
    Column("response", JSON),  # null while processing
    Column("created_at", UTCDateTime(), nullable=False, index=True),
    # SHA-256 of the payload; null on keys stored before it was recorded.
    Column("payload_hash", String(64)),
    Column("state", String(10), nullable=False, server_default="done"),
)

call_transcripts = Table(
    "call_transcripts",
    metadata,
    # One row per transcribed call (a Twilio Call SID); segments hang off it.
    Column("call_sid", String(64), primary_key=True),
    Column("task_id", ForeignKey("tasks.id")),  # null when the call is not a task's
    Column("status", String(8), nullable=False),  # live|ended
    Column("source", String(16), nullable=False),  # twilio|media_stream
    Column("language", String(16)),
    Column("consent", String(16)),  # the consent mode the call ran under
    Column("started_at", UTCDateTime(), nullable=False, index=True),
    Column("ended_at", UTCDateTime()),
)

call_segments = Table(
    "call_segments",
    metadata,
    # (call_sid, track, seq) is the segment: a redelivery is the same row, a
    # final replaces the partial of the same seq, never the other way round.
    Column("call_sid", ForeignKey("call_transcripts.call_sid"), primary_key=True),
    Column("track", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("said_by", String(8), nullable=False),  # rep|prospect
    Column("text", Text, nullable=False),
    Column("final", Boolean, nullable=False),
    Column("stability", Float),
    Column("confidence", Float),
    Column("language", String(16)),
    Column("at", UTCDateTime(), nullable=False, index=True),
)

call_summaries = Table(
    "call_summaries",
    metadata,
    # The after-call summary of a transcribed call, one per call (a second
    # summary of the same call replaces the first). Not tied to the transcript:
    # the summary is the task's record and outlives the transcript's retention.
    Column("call_sid", String(64), primary_key=True),
    Column("task_id", ForeignKey("tasks.id"), index=True),  # null when not a task's call
    Column("enrollment_id", ForeignKey("enrollments.id")),
    Column("prospect_id", ForeignKey("prospects.id")),
    Column("summary", JSON, nullable=False),  # CallSummary.to_dict()
    Column("ended_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

call_tracker_hits = Table(
    "call_tracker_hits",
    metadata,
    # One row per moment a tracker was heard: reporting (which trackers fire
    # most) and cadence conditions (tracker('call-1', 'pricing')) read these.
    Column("id", Integer, primary_key=True),
    Column("call_sid", String(64), nullable=False, index=True),
    Column("task_id", ForeignKey("tasks.id"), index=True),
    Column("enrollment_id", ForeignKey("enrollments.id")),
    Column("tracker", String(100), nullable=False, index=True),
    Column("said_by", String(8), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
)

call_cards = Table(
    "call_cards",
    metadata,
    # What the live guidance showed on a call: its cards and checklist ticks, in the
    # order they fired (id: also the live poller's high-water mark across processes).
    # ``key`` makes a card once per call whichever process fires it: ``card:<tracker>:
    # <track>:<seq>`` for a phrase heard, ``nudge:<tracker>`` for a not-said-within
    # tracker, ``check:<item>`` for a checklist tick.
    Column("id", Integer, primary_key=True),
    Column("call_sid", ForeignKey("call_transcripts.call_sid"), nullable=False),
    Column("key", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # card|checklist
    Column("tracker", String(100), nullable=False),
    Column("data", JSON, nullable=False),  # the event as the screen receives it
    Column("at", UTCDateTime(), nullable=False),  # when it was said (or the deadline)
    Column("origin", String(32), nullable=False),  # the serve process that fired it
    UniqueConstraint("call_sid", "key"),
)

# -- Deals (issue 11): from `touchflow deals import` and each CRM's deal pull. A deal
# is keyed on (source, deal_id): `csv` or the CRM's name, and that source's id.
deals = Table(
    "deals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(20), nullable=False),
    Column("deal_id", String(100), nullable=False),
    Column("name", String(300)),
    Column("account_domain", String(255), index=True),
    Column("owner_email", String(320)),
    Column("amount", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("stage", String(100), nullable=False),
    Column("forecast_category", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("close_date", Date),
    Column("closed_at", UTCDateTime()),
    Column("outcome", String(8)),  # won|lost; NULL while open
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("source", "deal_id"),
    Index("ix_deals_outcome", "outcome"),
    Index("ix_deals_updated_at", "updated_at"),
)

deal_stage_changes = Table(
    "deal_stage_changes",
    metadata,
    # The deal entered `stage` at `entered_at`: one row per change, recorded once.
    Column("id", Integer, primary_key=True),
    Column("source", String(20), nullable=False),
    Column("deal_id", String(100), nullable=False),
    Column("stage", String(100), nullable=False),
    Column("entered_at", UTCDateTime(), nullable=False),
    UniqueConstraint("source", "deal_id", "entered_at", "stage"),
    Index("ix_deal_stage_changes_entered_at", "entered_at"),
)

deal_close_dates = Table(
    "deal_close_dates",
    metadata,
    # The deal's expected close date became `close_date` at `changed_at` (a CRM's
    # field history, or `deals import --close-dates`): recorded once per change.
    Column("id", Integer, primary_key=True),
    Column("source", String(20), nullable=False),
    Column("deal_id", String(100), nullable=False),
    Column("close_date", Date, nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
    UniqueConstraint("source", "deal_id", "changed_at", "close_date"),
)

deal_contacts = Table(
    "deal_contacts",
    metadata,
    # A person on a deal with their buying-committee role (CRM's, or inferred from title).
    Column("id", Integer, primary_key=True),
    Column("source", String(20), nullable=False),
    Column("deal_id", String(100), nullable=False),
    # The email when known, else "crm:<contact id>": one row per person per deal.
    Column("contact_key", String(320), nullable=False),
    Column("email", String(320), index=True),
    Column("crm_contact_id", String(100)),
    Column("role", String(32), nullable=False),
    Column("inferred", Boolean, nullable=False),
    # When the row last changed (migration 0014): the committee read model's mark.
    Column("updated_at", UTCDateTime(), index=True),
    UniqueConstraint("source", "deal_id", "contact_key"),
)

committee_coverage = Table(
    "committee_coverage",
    metadata,
    # Buying-committee coverage of each open deal (services/committee.coverage_by_deal),
    # kept up to date from marks instead of computed per pipeline report.
    Column("source", String(20), primary_key=True),
    Column("deal_id", String(100), primary_key=True),
    Column("account_domain", String(255)),
    Column("owner_email", String(320)),
    Column("score", Float, nullable=False),
    Column("single_threaded", Boolean, nullable=False),
)

read_model_state = Table(
    "read_model_state",
    metadata,
    # A read model's marks: what it has folded in (committee_coverage's, by name).
    Column("name", String(64), primary_key=True),
    Column("state", JSON, nullable=False),
)

pipeline_snapshots = Table(
    "pipeline_snapshots",
    metadata,
    # Each open deal as it stood on a day (`touchflow snapshot`): history even where
    # the CRM keeps none. One row per date and deal; a rerun of the day replaces it.
    Column("snapshot_date", Date, primary_key=True),
    Column("source", String(20), primary_key=True),
    Column("deal_id", String(100), primary_key=True),
    Column("stage", String(100), nullable=False),
    Column("forecast_category", String(16), nullable=False),
    Column("amount", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("close_date", Date),
    Column("owner_email", String(320)),
    Column("account_domain", String(255)),
)

# -- reporting read model (rollups.py; docs/reporting.md) ---------------------
# Maintained from high-water marks over the ledger, events, tasks, enrollments
# and score history; a mark and the counters it covers commit in one
# transaction. Missing dimensions are '' (part of the primary key).

rollup_counts = Table(
    "rollup_counts",
    metadata,
    # One counter per UTC day and dimension: sent, delivered, opened, ...,
    # tasks_created, tasks_done:<outcome> (the metric names in rollups.METRICS).
    Column("day", Date, primary_key=True),
    Column("cadence_id", String(100), primary_key=True),
    Column("step_id", String(100), primary_key=True),
    Column("variant", String(50), primary_key=True),
    Column("channel", String(16), primary_key=True),
    Column("owner_email", String(320), primary_key=True),
    Column("mailbox", String(320), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("n", Integer, nullable=False),
)

rollup_cadence = Table(
    "rollup_cadence",
    metadata,
    # rollup_counts summed over channel, owner and mailbox (migration 0010): the
    # cadences report without --owner reads a twelfth of the rows.
    Column("day", Date, primary_key=True),
    Column("cadence_id", String(100), primary_key=True),
    Column("step_id", String(100), primary_key=True),
    Column("variant", String(50), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("n", Integer, nullable=False),
)

rollup_delivery = Table(
    "rollup_delivery",
    metadata,
    # Email deliverability per UTC day, sending mailbox and recipient domain.
    Column("day", Date, primary_key=True),
    Column("mailbox", String(320), primary_key=True),
    Column("domain", String(255), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("n", Integer, nullable=False),
    # The dashboard (migration 0015): a window's bounces and spam complaints without
    # reading its sends, then the chosen domains' counters.
    Index("ix_rollup_delivery_metric_day", "metric", "day"),
    Index("ix_rollup_delivery_domain_day", "domain", "day"),
)

rollup_mailbox = Table(
    "rollup_mailbox",
    metadata,
    # rollup_delivery summed over the recipient domain (migration 0018): a mailbox's
    # totals over a year read ~22,000 rows, not every (day, mailbox, domain) one.
    Column("day", Date, primary_key=True),
    Column("mailbox", String(320), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("n", Integer, nullable=False),
)

rollup_funnel = Table(
    "rollup_funnel",
    metadata,
    # One row per enrollment: when it first reached each stage of the funnel.
    Column("enrollment_id", Integer, primary_key=True),
    Column("prospect_id", Integer, nullable=False, index=True),
    Column("cadence_id", String(100), nullable=False, index=True),
    Column("owner_email", String(320), nullable=False),
    Column("enrolled_at", UTCDateTime(), nullable=False),
    Column("contacted_at", UTCDateTime()),
    Column("engaged_at", UTCDateTime()),
    Column("replied_at", UTCDateTime()),
    Column("meeting_at", UTCDateTime()),
    Column("sql_at", UTCDateTime()),
    # From deals (migration 0010): a deal of the prospect's account created after the
    # first contact, and its win (rollups.deal_stage_times).
    Column("opportunity_at", UTCDateTime()),
    Column("won_at", UTCDateTime()),
    Index("ix_rollup_funnel_owner_email", "owner_email"),
    # A dashboard's window (migration 0015): the enrollments of its days, not all of them.
    Index("ix_rollup_funnel_enrolled_at", "enrolled_at"),
)

rollup_seen = Table(
    "rollup_seen",
    metadata,
    # Outcome events count once per touch (two replies to one email are one reply).
    Column("unit", String(200), primary_key=True),
    Column("metric", String(64), primary_key=True),
)

rollup_marks = Table(
    "rollup_marks",
    metadata,
    # The highest row id of each source folded into the rollups.
    Column("source", String(32), primary_key=True),
    Column("mark", Integer, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

rollup_pending = Table(
    "rollup_pending",
    metadata,
    # Rows at or below a mark that are not folded in yet: "gap" (an id not yet
    # visible: a transaction still open, or a burnt sequence value; dropped
    # after an hour) or "unsettled" (a touch still sending or unknown).
    Column("source", String(32), primary_key=True),
    Column("row_id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("seen_at", UTCDateTime(), nullable=False),
)

users = Table(
    "users",
    metadata,
    # Who may sign in to the dashboard (`touchflow users add`). A manager sees
    # the owners whose `manager_email` is theirs (and team.yaml's `manager:`).
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # admin|manager|rep
    Column("manager_email", String(320), index=True),
    # Argon2id (PHC string); null: signs in only through the reverse-proxy header.
    Column("password_hash", String(200)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

forecast_results = Table(
    "forecast_results",
    metadata,
    # The dashboard's forecast and backtest (services/forecasting.py), computed once per
    # key and shared by every process: the viewer scope ("all" or a hash of the owners),
    # the settings that change the numbers, the as-of day and the deals' version.
    # status "computing" is a claim (one computation per key), "done" has the result.
    Column("scope", String(64), primary_key=True),
    Column("settings_key", String(64), primary_key=True),
    Column("as_of_day", Date, primary_key=True),
    Column("deals_version", String(200), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),  # wall clock of the claim
    Column("as_of", UTCDateTime()),  # the moment the forecast is as of
    Column("computed_at", UTCDateTime()),  # wall clock
    Column("result", JSON),
    Index("ix_forecast_results_latest", "scope", "settings_key", "computed_at"),
)
