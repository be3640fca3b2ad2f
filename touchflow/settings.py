"""Settings: one pydantic-settings model, env prefix ``TOUCHFLOW_``, ``.env`` support.

Nested models use ``__`` in env names, e.g. ``TOUCHFLOW_SMTP__HOST=mail.example.com``.
Only the composition root (``touchflow/bootstrap.py``) builds a Settings from the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from touchflow.domain.unsubscribe import DEV_UNSUBSCRIBE_SECRET

#: Query parameters of a URL that carry a secret (libpq's ``?password=``, API keys).
_SECRET_PARAMS = ("password", "passwd", "pwd", "token", "secret", "key", "apikey", "api_key")


def redact_url(url: str) -> str:
    """``url`` fit to print: its password (and secret query parameters) replaced by ``***``.

    ``postgresql://app:s3cret@db:5432/tf`` -> ``postgresql://app:***@db:5432/tf``.
    Every URL touchflow prints or logs goes through this, so no secret reaches
    a terminal, a CI log or a bug report.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL (a bad port): show only what cannot hold a secret
        return url.split("@")[-1] if "@" in url else url
    shown = url
    if password is not None:
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        shown = shown.replace(parts.netloc, f"{user}:***@{host}", 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*/:"
            )
            shown = shown.replace(f"?{parts.query}", f"?{query}", 1)
    return shown


class SmtpSettings(BaseModel):
    """The mailbox touchflow sends email through (the rep's SMTP server or a relay)."""

    host: str = "127.0.0.1"
    port: int = 8025
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    ssl: bool = False
    timeout_s: float = 30.0
    # Connections one process sends through in parallel (per mailbox).
    pool_size: int = Field(default=4, ge=1, le=32)


class SenderDefaults(BaseModel):
    """Owner and mailbox used by ``touchflow enroll`` until routing assigns them."""

    owner_email: str = "sdr@touchflow.example"
    name: str = "Sam Rivera"
    email: str = "sam@touchflow.example"
    title: str | None = "Account Development"
    company: str | None = "touchflow"
    phone: str | None = None
    timezone: str = "America/New_York"  # used when a cadence says `timezone: sender`


class SendgridSettings(BaseModel):
    """SendGrid v3 Mail Send and the signed Event Webhook."""

    api_key: SecretStr | None = None
    host: str = "https://api.sendgrid.com"  # tests point it at a local stand-in
    sandbox_mode: bool = False
    timeout_s: float = 10.0
    concurrency: int = Field(default=16, ge=1, le=128)
    # Base64 public key from the Event Webhook settings page (signed webhooks).
    webhook_public_key: str | None = None
    webhook_max_age_s: int = Field(default=300, ge=1)
    # Shared secret expected as ?token= on the Inbound Parse URL (Parse is unsigned).
    inbound_parse_token: SecretStr | None = None


class TwilioSettings(BaseModel):
    """Twilio Programmable Messaging and Voice."""

    account_sid: str | None = None
    auth_token: SecretStr | None = None
    base_url: str | None = None  # None: api.twilio.com; tests use a local stand-in
    from_number: str | None = None  # E.164; the sender's own phone is used when set
    timeout_s: float = 10.0
    concurrency: int = Field(default=8, ge=1, le=64)


class TranscriptSettings(BaseModel):
    """Live call transcripts (docs/calls.md): which source, which track is the rep."""

    # off: no transcription; twilio: Twilio Real-Time Transcription callbacks;
    # media_stream: a Twilio Media Stream into touchflow's own offline recogniser.
    source: Literal["off", "twilio", "media_stream"] = "off"
    # On the SDR's leg (the one that runs the bridge TwiML) the inbound track is
    # what the SDR says, the outbound track what the prospect says.
    rep_track: Literal["inbound_track", "outbound_track"] = "inbound_track"
    # wss://host/media-stream as Twilio reaches it; None: TOUCHFLOW_PUBLIC_URL's
    # host with wss:// (ws:// for http://) and /media-stream.
    media_stream_url: str | None = None
    partial_results: bool = True
    # A live call with no new segment for this long lost its stop event: the
    # summary sweep (`touchflow guidance summarise`, the summarise_calls flow) ends
    # and summarises it.
    summary_idle_minutes: int = Field(default=30, ge=1)


class CapSettings(BaseModel):
    """Send limits of one mailbox (None: no limit)."""

    hourly: int | None = Field(default=100, ge=1)
    daily: int | None = Field(default=500, ge=1)


class TickSettings(BaseModel):
    """How the scheduled tick splits its work over the Prefect workers (PostgreSQL only)."""

    shards: int = Field(default=4, ge=1, le=64)  # tick-shard flow runs a tick submits at most
    shard_budget_s: int = Field(default=240, ge=1)  # a shard stops claiming after this long


class ComplianceSettings(BaseModel):
    """Deliverability and consent rules enforced when a touch is claimed."""

    mailbox: CapSettings = CapSettings()
    # Per-mailbox overrides, keyed by address: TOUCHFLOW_COMPLIANCE__MAILBOXES='{"a@x.com": {...}}'
    mailboxes: dict[str, CapSettings] = Field(default_factory=dict)
    recipient_domain_daily: int | None = Field(default=50, ge=1)
    bounce_shield_threshold: float = Field(default=0.05, gt=0, le=1)
    bounce_shield_min_sends: int = Field(default=50, ge=1)
    # The postal address every email must carry (CAN-SPAM); `touchflow validate`
    # refuses email templates without it and without an unsubscribe link.
    postal_address: str = "touchflow Inc., 548 Market St, San Francisco, CA 94104, USA"
    require_footer: bool = True


class ImapMailboxSettings(BaseModel):
    """One rep's mailbox polled for replies (IMAP)."""

    host: str
    port: int = 993
    username: str
    password: SecretStr
    ssl: bool = True  # implicit TLS; set false and starttls true for port 143
    starttls: bool = False
    folder: str = "INBOX"
    # Handled messages are moved here (None: only flagged \\Seen).
    processed_folder: str | None = "touchflow-processed"
    # Where `unknown` touches are looked for (None: the folder marked \\Sent, else "Sent").
    sent_folder: str | None = None


class RepliesSettings(BaseModel):
    """Reply handling: mailboxes to poll and how long pauses last."""

    # TOUCHFLOW_REPLIES__MAILBOXES='[{"host": "imap.example.com", "username": ..., ...}]'
    mailboxes: list[ImapMailboxSettings] = Field(default_factory=list)
    poll_limit: int = Field(default=500, ge=1)
    ooo_default_days: int = Field(default=7, ge=1)  # out of office without a return date
    account_pause_days: int = Field(default=14, ge=1)  # `on_account_reply: pause`


class CrmSettings(BaseModel):
    """The CRM touchflow keeps in sync (the system of record)."""

    provider: Literal["none", "fake", "hubspot", "salesforce", "pipedrive"] = "none"
    base_url: str | None = None  # the vendor's API by default; tests use a stand-in
    token: SecretStr | None = None  # HubSpot private-app token / Pipedrive API token
    # Salesforce: instance URL and OAuth client credentials.
    instance_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    # Pipedrive: the key of the organization custom field holding the domain
    # (without it organizations are matched on their exact name).
    pipedrive_domain_field: str | None = None
    batch_size: int = Field(default=100, ge=1, le=1000)  # outbox rows per push
    max_attempts: int = Field(default=8, ge=1)  # then the push is `failed`, visibly
    owner_change_pause_days: int = Field(default=3, ge=0)


class EnrichmentSettings(BaseModel):
    """Where firmographics come from: a local file first, then an optional REST provider."""

    # Relative paths are read from the config directory.
    firmographics: Path | None = Path("firmographics.csv")
    base_url: str | None = None  # a REST enrichment provider; None: offline only
    api_key: SecretStr | None = None
    path_template: str = "/v1/companies/{domain}"
    # touchflow field -> dotted path in the provider's JSON (JSON in the env var).
    field_map: dict[str, str] | None = None
    max_per_second: float = Field(default=10.0, gt=0)
    retries: int = Field(default=3, ge=0)
    cache_path: Path = Path(".touchflow/enrichment-cache.sqlite")


class LeadSettings(BaseModel):
    """Inbound speed to lead (``POST /leads``)."""

    inbound_cadence: str | None = "inbound-fast-follow"  # enrolled on arrival; None: none
    notify_webhook_url: str | None = None  # Slack-compatible incoming webhook
    notify_email: bool = False  # else email the AE through the email transport


class ReportSettings(BaseModel):
    """``touchflow report`` and the dashboard: the A/B decision rule and thresholds."""

    ab_metric: Literal["replies", "meetings"] = "replies"  # never opens (Apple MPP)
    ab_min_sends: int = Field(default=100, ge=1)  # per variant, before any winner
    ab_threshold: float = Field(default=0.95, gt=0.5, lt=1)  # P(best) a winner needs
    spam_threshold: float = Field(default=0.003, gt=0, le=1)  # Gmail/Yahoo sender rules: 0.3%
    # deliverability: recipient domains with fewer sends (per mailbox) are one "(other)" row
    domain_min_sends: int = Field(default=1, ge=1)
    # the dashboard's deliverability page: per mailbox, the N recipient domains with the
    # most bounces and spam complaints (the rest one "(other)" row)
    dashboard_domain_top: int = Field(default=20, ge=1)
    # How long a dashboard page waits for a forecast it had to start computing before it
    # shows the latest stored one (marked stale) or "computing" (docs/forecast.md).
    forecast_wait_s: float = Field(default=3.0, ge=0, le=120)


#: The development session secret: fine locally, refused in production.
DEV_SESSION_SECRET = "touchflow-development-session-secret"


class AuthSettings(BaseModel):
    """Dashboard sign-in: signed session cookies, or a trusted reverse proxy's header."""

    session_secret: SecretStr = Field(
        default=SecretStr(DEV_SESSION_SECRET),
        description="Signs the session cookie and derives CSRF tokens; set it in production.",
    )
    session_max_age_s: int = Field(default=12 * 3600, ge=60)
    # None: Secure when the request came over https; true/false forces it.
    cookie_secure: bool | None = None
    # Reverse-proxy mode: the header holding the signed-in email (X-Forwarded-Email,
    # X-Auth-Request-Email ...), believed only from these peer addresses. The
    # user must exist (`touchflow users add EMAIL --role ...`, no password).
    proxy_header: str | None = None
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    # Failed sign-ins (in one serve process) before the form answers 429 for a while:
    # per email, which stops guessing one password, and per client address, which
    # stops spraying many accounts from one place.
    signin_failures_per_email: int = Field(default=5, ge=1)
    signin_failures_per_address: int = Field(default=30, ge=1)
    signin_failure_window_s: float = Field(default=900.0, gt=0)


class LiveSettings(BaseModel):
    """Live updates (server-sent events) of the dashboard and the live call screens."""

    poll_interval_s: float = Field(default=2.0, gt=0)  # one query per process per interval
    heartbeat_s: float = Field(default=15.0, gt=0)
    queue_size: int = Field(default=256, ge=1)  # per subscriber; a full queue drops it
    replay: int = Field(default=1000, ge=0)  # events kept for Last-Event-ID reconnects
    guidance_tick_s: float = Field(default=1.0, gt=0)  # not-said-within trackers, reordering


class Settings(BaseSettings):
    """Everything touchflow reads from the environment or ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="TOUCHFLOW_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    env: Literal["development", "production"] = Field(
        default="development",
        description="production: serve and the workers refuse development secrets and samples.",
    )
    database_url: str = Field(
        default="sqlite:///touchflow.db",
        description=(
            "SQLAlchemy URL: sqlite:///file.db (the default, in the working directory) or "
            "postgresql://user:password@host:5432/dbname (postgres:// is accepted too)."
        ),
    )
    cadences_dir: Path = Path("cadences")
    templates_dir: Path = Path("templates")
    config_dir: Path = Path("config")
    outbox_dir: Path = Path("outbox")
    email_transport: Literal["smtp", "sendgrid", "outbox"] = "smtp"
    sms_transport: Literal["twilio", "outbox"] = "outbox"
    smtp: SmtpSettings = SmtpSettings()
    sender: SenderDefaults = SenderDefaults()
    compliance: ComplianceSettings = ComplianceSettings()
    tick: TickSettings = TickSettings()
    replies: RepliesSettings = RepliesSettings()
    crm: CrmSettings = CrmSettings()
    enrichment: EnrichmentSettings = EnrichmentSettings()
    leads: LeadSettings = LeadSettings()
    reports: ReportSettings = ReportSettings()
    sendgrid: SendgridSettings = SendgridSettings()
    twilio: TwilioSettings = TwilioSettings()
    transcripts: TranscriptSettings = TranscriptSettings()
    auth: AuthSettings = AuthSettings()
    live: LiveSettings = LiveSettings()
    public_url: str = "http://localhost:8000"
    unsubscribe_secret: SecretStr = Field(
        default=SecretStr(DEV_UNSUBSCRIBE_SECRET),
        description="HMAC key of the signed one-click unsubscribe tokens; set it in production.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="Expected in X-API-Key by the API's non-webhook endpoints."
    )
    unsubscribe_mailto: str | None = "unsubscribe@touchflow.example"
    batch_size: int = Field(default=1000, ge=1, description="Enrollments claimed per batch task.")
    claim_lease_s: int = Field(
        default=600,
        ge=0,
        description="A touch left `sending` longer than this (wall clock) is marked unknown.",
    )
    record_every: int = Field(
        default=50,
        ge=1,
        description="Send outcomes are committed every this many messages: a crash leaves "
        "at most this many touches `unknown`.",
    )

    @property
    def calendars_file(self) -> Path:
        """``config/calendars.yaml``: the shared calendars cadences name (need not exist)."""
        return self.config_dir / "calendars.yaml"

    @property
    def guidance_file(self) -> Path:
        """``config/guidance.yaml``: call trackers, cards, checklist (need not exist)."""
        return self.config_dir / "guidance.yaml"

    @property
    def calls_file(self) -> Path:
        """``config/calls.yaml``: transcript consent per country and retention (need not exist)."""
        return self.config_dir / "calls.yaml"

    @property
    def production(self) -> bool:
        """``TOUCHFLOW_ENV=production``, or any database but a SQLite file (a shared store)."""
        return self.env == "production" or not self.database_url.startswith("sqlite")
