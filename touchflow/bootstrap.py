"""The composition root: turns :class:`Settings` into concrete adapters and services.

Nothing else in touchflow reads the environment (:func:`load_settings`);
tests build their own wiring from an explicit Settings. Adapters are built
lazily, importing their vendor SDK only when one is asked for. Before working,
``serve`` and the flows check the settings their role needs
(:func:`checked_settings`): production refuses development secrets and the
sample sender, and a missing provider key is named at start-up.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine

from touchflow.domain.call_consent import CallsConfig
from touchflow.domain.compliance import BounceShield, CapPolicy, MailboxCaps
from touchflow.domain.engine import SenderInfo
from touchflow.domain.routing.team import TeamConfig
from touchflow.domain.senders import SenderDirectory, team_senders
from touchflow.domain.unsubscribe import DEV_UNSUBSCRIBE_SECRET
from touchflow.errors import ConfigError
from touchflow.ports import (
    CrmConnector,
    DealSource,
    Dialer,
    EmailEventWebhook,
    EmailSender,
    Enricher,
    InboundEmailWebhook,
    MediaStreamReader,
    MessagingWebhook,
    Notifier,
    SmsSender,
)
from touchflow.services.crm_sync import CrmSync, team_owner_ids
from touchflow.services.leads import LeadServices
from touchflow.services.replies import poll_mailbox
from touchflow.services.reporting import ReportContext
from touchflow.services.tick import Ticker
from touchflow.settings import DEV_SESSION_SECRET, ImapMailboxSettings, Settings, redact_url
from touchflow.store.cadence_versions import RuntimeCache as RuntimeCache  # for the edges
from touchflow.store.db import database_problem, make_engine, schema_problem, url_problem

if TYPE_CHECKING:  # adapters are imported when built: `preview` loads no vendor SDK
    from touchflow.adapters.imap.replies import ImapMailbox
    from touchflow.adapters.twilio.sms_voice import TwilioSmsSender
    from touchflow.domain.guidance import Guidance
    from touchflow.domain.pipeline import Pipeline
    from touchflow.domain.routing.mailbox import ImapAccount, Mailbox
    from touchflow.domain.routing.team import Member, TeamConfig
    from touchflow.domain.scoring import IcpConfig
    from touchflow.services.call_summaries import CallSummaries

_log = logging.getLogger("touchflow")

_pinned: Settings | None = None


def load_settings(**overrides: Any) -> Settings:
    """The settings of this process: the environment and ``.env``, then ``overrides``.

    The only place touchflow reads its environment: everything else takes a
    :class:`Settings` (or the values it needs) as an argument. Inside
    :func:`pinned_settings` it answers the pinned settings instead.
    """
    if _pinned is not None and not overrides:
        return _pinned
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_settings_errors(exc)) from None


#: The environment variable behind :attr:`Settings.database_url`.
DATABASE_SETTING = "TOUCHFLOW_DATABASE_URL"


def _settings_errors(exc: ValidationError) -> str:
    """Pydantic's errors as the environment variables a person sets, one per line."""
    lines = []
    for error in exc.errors():
        name = "TOUCHFLOW_" + "__".join(str(part) for part in error["loc"]).upper()
        lines.append(f"{name}: {error['msg']}")
    return "\n".join(lines)


@contextmanager
def pinned_settings(settings: Settings) -> Iterator[Settings]:
    """Make every :func:`load_settings` in this process answer ``settings`` for a while.

    The flows load their settings when they run, as they must on a worker;
    the demo runs the same flows in-process on settings of its own.
    """
    global _pinned
    before, _pinned = _pinned, settings
    try:
        yield settings
    finally:
        _pinned = before


Role = Literal["serve", "worker"]

#: The sample sender of a fresh checkout (SenderDefaults): fine locally, never in production.
_SAMPLE_DOMAIN = "@touchflow.example"


@dataclass(frozen=True)
class StartupReport:
    """What a process found wrong with its settings before doing any work."""

    refusals: tuple[str, ...]  # it must not start
    warnings: tuple[str, ...]  # it starts, but a part of it will not work


def startup_report(settings: Settings, role: Role) -> StartupReport:
    """Check the settings ``role`` needs: ``serve`` (the API) or ``worker`` (the flows).

    In production (:attr:`Settings.production`) the development unsubscribe
    secret and the sample sender are refusals: links would be forgeable and
    mail would go out as somebody else. A provider key that a configured
    transport cannot work without is a refusal everywhere; a webhook key the
    API lacks is a warning naming the setting (that route answers 503).
    """
    refusals: list[str] = []
    warnings: list[str] = []
    if settings.production:
        if settings.unsubscribe_secret.get_secret_value() == DEV_UNSUBSCRIBE_SECRET:
            refusals.append(
                "TOUCHFLOW_UNSUBSCRIBE_SECRET is the development default: set a secret of your own"
            )
        if role == "serve" and settings.auth.session_secret.get_secret_value() in (
            DEV_SESSION_SECRET,
            "",
        ):
            refusals.append(
                "TOUCHFLOW_AUTH__SESSION_SECRET is the development default: set a secret of "
                "your own (it signs the dashboard's session cookies)"
            )
        sample = [
            name
            for name, value in (
                ("TOUCHFLOW_SENDER__EMAIL", settings.sender.email),
                ("TOUCHFLOW_SENDER__OWNER_EMAIL", settings.sender.owner_email),
                ("TOUCHFLOW_UNSUBSCRIBE_MAILTO", settings.unsubscribe_mailto or ""),
            )
            if value.endswith(_SAMPLE_DOMAIN)
        ]
        if sample:
            refusals.append(f"{', '.join(sample)}: still the sample sender ({_SAMPLE_DOMAIN})")
        if role == "worker":
            # A mailbox whose secret is missing fails only its own sends (the
            # tick says why); a production worker refuses to start that way.
            refusals += mailbox_secrets_missing(settings)
    # The same checks the builders below make when they are called: asked first.
    unusable = [_crm_setting_missing(settings), _database_url_refusal(settings)]
    if role == "worker":
        if settings.email_transport == "sendgrid":
            unusable.append(_sendgrid_key_missing(settings))
        if settings.sms_transport == "twilio":
            unusable.append(_twilio_keys_missing(settings))
    refusals += [problem for problem in unusable if problem is not None]
    if role == "serve":
        missing = [
            (setting, route)
            for setting, route, present in (
                (
                    "TOUCHFLOW_SENDGRID__WEBHOOK_PUBLIC_KEY",
                    "POST /webhooks/sendgrid/events",
                    bool(settings.sendgrid.webhook_public_key),
                ),
                (
                    "TOUCHFLOW_SENDGRID__INBOUND_PARSE_TOKEN",
                    "POST /webhooks/sendgrid/inbound",
                    settings.sendgrid.inbound_parse_token is not None,
                ),
                (
                    "TOUCHFLOW_TWILIO__AUTH_TOKEN",
                    "the /webhooks/twilio/* and /twilio/voice/* routes",
                    settings.twilio.auth_token is not None,
                ),
                (
                    "TOUCHFLOW_API_KEY",
                    "POST /leads and POST /tasks/{id}/call",
                    settings.api_key is not None,
                ),
            )
            if not present
        ]
        warnings += [f"{setting} is not set: {route} answer 503" for setting, route in missing]
        if settings.sendgrid.webhook_public_key:
            try:
                email_event_webhook(settings)
            except ConfigError as exc:
                refusals.append(str(exc))
    return StartupReport(tuple(refusals), tuple(warnings))


def _database_url_refusal(settings: Settings) -> str | None:
    problem = url_problem(settings.database_url)
    if problem is None:
        return None
    return f"{DATABASE_SETTING}={redact_url(settings.database_url)}: {problem}"


def _sendgrid_key_missing(settings: Settings) -> str | None:
    if settings.sendgrid.api_key is None:
        return "TOUCHFLOW_EMAIL_TRANSPORT=sendgrid needs TOUCHFLOW_SENDGRID__API_KEY"
    return None


def _twilio_keys_missing(settings: Settings) -> str | None:
    tw = settings.twilio
    if not tw.account_sid or tw.auth_token is None:
        return "Twilio needs TOUCHFLOW_TWILIO__ACCOUNT_SID and TOUCHFLOW_TWILIO__AUTH_TOKEN"
    return None


def _crm_setting_missing(settings: Settings) -> str | None:
    c = settings.crm
    if c.provider in ("hubspot", "pipedrive") and not (c.token and c.token.get_secret_value()):
        return f"TOUCHFLOW_CRM__PROVIDER={c.provider} needs TOUCHFLOW_CRM__TOKEN"
    if c.provider == "salesforce" and not c.instance_url:
        return "TOUCHFLOW_CRM__PROVIDER=salesforce needs TOUCHFLOW_CRM__INSTANCE_URL"
    return None


def checked_settings(role: Role, log: Callable[[str], object] | None = None) -> Settings:
    """This process's settings, checked for ``role``: a ConfigError listing every refusal.

    A worker also connects and checks that the database has touchflow's
    schema (:func:`schema_refusal`): a flow run pointed at the wrong place
    fails at its start with one line, instead of creating an empty SQLite
    file and failing in its first query. Warnings go to ``log`` (default: the
    ``touchflow`` logger).
    """
    settings = load_settings()
    report = startup_report(settings, role)
    for warning in report.warnings:
        (log or _log.warning)(f"warning: {warning}")
    refusals = list(report.refusals)
    if role == "worker" and _database_url_refusal(settings) is None:
        refusals += [r for r in [schema_refusal(settings)] if r is not None]
    if len(refusals) == 1:
        raise ConfigError(f"touchflow {role} refuses to start: {refusals[0]}")
    if refusals:
        raise ConfigError(
            f"touchflow {role} refuses to start:\n" + "\n".join(f"  - {r}" for r in refusals)
        )
    return settings


def schema_refusal(settings: Settings) -> str | None:
    """Why the configured database cannot be worked on (no file, no schema, an old one...).

    One line naming ``TOUCHFLOW_DATABASE_URL`` (password masked); None when
    the schema is current. Never creates a SQLite file.
    """
    problem = schema_problem(database(settings))
    if problem is None:
        return None
    return f"{DATABASE_SETTING}={redact_url(settings.database_url)}: {problem}"


def sender_defaults(settings: Settings) -> SenderInfo:
    """The default sender (mailbox and person) from settings."""
    s = settings.sender
    return SenderInfo(
        email=s.email,
        name=s.name,
        title=s.title,
        company=s.company,
        phone=s.phone,
        timezone=s.timezone,
        postal_address=settings.compliance.postal_address,
    )


def team(settings: Settings) -> TeamConfig | None:
    """``config/team.yaml``, validated (ConfigFileError with findings); None when absent."""
    path = settings.config_dir / "team.yaml"
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    return _team_at(str(path), stamp)


def guidance(settings: Settings) -> Guidance | None:
    """``config/guidance.yaml`` compiled once per process (and again after an edit).

    None when the file is absent (no live guidance); a ConfigFileError when invalid.
    """
    path = settings.config_dir / "guidance.yaml"
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    return _guidance_at(str(path), stamp)


@lru_cache(maxsize=2)
def _guidance_at(path: str, stamp: int) -> Guidance:
    from touchflow.domain.guidance import load_guidance

    return load_guidance(Path(path))


@lru_cache(maxsize=4)
def _team_at(path: str, stamp: int) -> TeamConfig:
    # Keyed on the file's mtime: a tick every 5 minutes reads it once, an edit is seen.
    from touchflow.domain.model_findings import read_text
    from touchflow.domain.routing import team_from_yaml

    return team_from_yaml(read_text(Path(path)), path)


def sender_directory(settings: Settings) -> SenderDirectory:
    """Who enrollments send as: team.yaml mailboxes by owner, over :func:`sender_defaults`."""
    defaults = sender_defaults(settings)
    found = team(settings)
    return SenderDirectory(
        defaults,
        team_senders(found, defaults) if found is not None else {},
        source=str(settings.config_dir / "team.yaml"),
    )


def _secret(name: str, where: str) -> str:
    """The value of the environment variable ``name`` (or ``.env``); a ConfigError naming it."""
    value = os.environ.get(name)
    if not value:
        value = _dotenv().get(name)
    if not value:
        raise ConfigError(f"{name} is not set ({where})")
    return value


def _dotenv() -> dict[str, str | None]:
    from dotenv import dotenv_values

    return dict(dotenv_values(".env")) if os.path.exists(".env") else {}


def _mailboxes(settings: Settings) -> list[tuple[Member, Mailbox]]:
    found = team(settings)
    if found is None:
        return []
    return [(m, m.mailbox) for m in found.members if m.mailbox is not None]


def _where(settings: Settings, member: Member, key: str) -> str:
    return f"{key} of {member.email}'s mailbox in {settings.config_dir / 'team.yaml'}"


def mailbox_secrets_missing(settings: Settings) -> list[str]:
    """Each team mailbox secret whose environment variable is not set, as a sentence."""
    missing: list[str] = []
    sending = settings.email_transport != "outbox"
    for member, box in _mailboxes(settings):
        smtp, sendgrid = (box.smtp, box.sendgrid) if sending else (None, None)
        refs = [
            ("smtp.password_env", smtp.password_env if smtp else None),
            ("sendgrid.api_key_env", sendgrid.api_key_env if sendgrid else None),
            ("imap.password_env", box.imap.password_env if box.imap else None),
        ]
        for key, name in refs:
            if name is None:
                continue
            try:
                _secret(name, _where(settings, member, key))
            except ConfigError as exc:
                missing.append(str(exc))
    return missing


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def database(settings: Settings) -> Engine:
    """One engine per database URL per process.

    A URL that cannot work (unknown scheme, no driver, a SQLite file whose
    folder is missing or read-only) is a :class:`ConfigError` naming
    ``TOUCHFLOW_DATABASE_URL``, before anything connects.
    """
    refusal = _database_url_refusal(settings)
    if refusal is not None:
        raise ConfigError(refusal)
    return _engine_for(settings.database_url.strip())


def explain_failure(exc: BaseException, settings: Settings | None = None) -> str | None:
    """One line for a person about a database failure, naming the setting; None for others.

    The edges call this on an exception they are about to let through: a
    database without the schema, a server that does not answer, a database that
    does not exist are first-day mistakes, not tracebacks. The URL is shown with
    its password masked.
    """
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError:
            return None
    problem = database_problem(exc, settings.database_url)
    if problem is None:
        return None
    return f"{DATABASE_SETTING}={redact_url(settings.database_url)}: {problem}"


def email_sender(settings: Settings) -> EmailSender:
    """The deployment's transport, with each team mailbox's own SMTP or SendGrid sender.

    ``TOUCHFLOW_EMAIL_TRANSPORT=outbox`` writes every message to files, whatever
    the mailboxes say (nothing leaves the machine). Otherwise a message from a
    team mailbox with ``smtp:`` or ``sendgrid:`` goes through that mailbox's
    sender, built on first use; every other message through the transport.
    """
    default = _transport_sender(settings)
    if settings.email_transport == "outbox":
        return default
    own = {
        member.from_address or member.email: partial(_mailbox_sender, settings, member, box)
        for member, box in _mailboxes(settings)
        if box.smtp is not None or box.sendgrid is not None
    }
    if not own:
        return default
    from touchflow.adapters.mailboxes import MailboxEmailSender

    return MailboxEmailSender(default, own)


def _mailbox_sender(settings: Settings, member: Member, box: Mailbox) -> EmailSender:
    """One team mailbox's sender: its SMTP server and login, or SendGrid."""
    if box.smtp is not None:
        from touchflow.adapters.smtp.email_sender import SmtpEmailSender

        smtp = box.smtp
        password = None
        if smtp.password_env is not None:
            password = _secret(smtp.password_env, _where(settings, member, "smtp.password_env"))
        return SmtpEmailSender(
            smtp.host,
            smtp.port,
            username=smtp.username,
            password=password,
            starttls=smtp.starttls and not smtp.ssl,
            ssl=smtp.ssl,
            timeout=smtp.timeout_s,
            pool_size=smtp.pool_size,
        )
    assert box.sendgrid is not None  # what email_sender selects on
    key_env = box.sendgrid.api_key_env
    if key_env is None:
        return _sendgrid(settings, None)
    return _sendgrid(settings, _secret(key_env, _where(settings, member, "sendgrid.api_key_env")))


def _sendgrid(settings: Settings, api_key: str | None) -> EmailSender:
    """SendGrid with ``api_key``, or the deployment's (a ConfigError naming it when unset)."""
    from touchflow.adapters.sendgrid.email_sender import SendgridEmailSender

    sg = settings.sendgrid
    if api_key is None:
        missing = _sendgrid_key_missing(settings)
        if missing is not None:
            raise ConfigError(missing)
        assert sg.api_key is not None  # what _sendgrid_key_missing checks
        api_key = sg.api_key.get_secret_value()
    return SendgridEmailSender(
        api_key,
        host=sg.host,
        sandbox_mode=sg.sandbox_mode,
        timeout_s=sg.timeout_s,
        concurrency=sg.concurrency,
    )


def _transport_sender(settings: Settings) -> EmailSender:
    """SMTP (the rep's mailbox or a local sink), SendGrid, or the ``outbox/`` of .eml files."""
    if settings.email_transport == "outbox":
        from touchflow.adapters.outbox.email_sender import OutboxEmailSender

        return OutboxEmailSender(settings.outbox_dir / "email")
    if settings.email_transport == "sendgrid":
        return _sendgrid(settings, None)
    from touchflow.adapters.smtp.email_sender import SmtpEmailSender

    smtp = settings.smtp
    return SmtpEmailSender(
        smtp.host,
        smtp.port,
        username=smtp.username,
        password=smtp.password.get_secret_value() if smtp.password else None,
        starttls=smtp.starttls,
        ssl=smtp.ssl,
        timeout=smtp.timeout_s,
        pool_size=smtp.pool_size,
    )


def _twilio(settings: Settings) -> TwilioSmsSender:
    from touchflow.adapters.twilio.sms_voice import TwilioSmsSender

    missing = _twilio_keys_missing(settings)
    if missing is not None:
        raise ConfigError(missing)
    tw = settings.twilio
    assert tw.account_sid and tw.auth_token is not None  # what _twilio_keys_missing checks
    return TwilioSmsSender(
        tw.account_sid,
        tw.auth_token.get_secret_value(),
        base_url=tw.base_url,
        status_callback_url=f"{settings.public_url.rstrip('/')}/webhooks/twilio/message-status",
        timeout_s=tw.timeout_s,
        concurrency=tw.concurrency,
    )


def sms_sender(settings: Settings) -> SmsSender:
    """Twilio, or ``outbox/sms.jsonl`` (the default, for local runs)."""
    if settings.sms_transport == "twilio":
        return _twilio(settings)
    from touchflow.adapters.outbox.sms_sender import OutboxSmsSender

    return OutboxSmsSender(settings.outbox_dir)


def dialer(settings: Settings) -> Dialer:
    """Click-to-call through Twilio Voice."""
    return _twilio(settings)


def runtimes(settings: Settings) -> RuntimeCache:
    """Cadence runtimes that sign unsubscribe links with the deployment's secret."""
    return RuntimeCache(
        settings.public_url,
        settings.unsubscribe_secret.get_secret_value(),
        sender_defaults(settings),
    )


def cap_policy(settings: Settings) -> CapPolicy:
    """Send caps from ``settings.compliance``."""
    c = settings.compliance
    return CapPolicy(
        MailboxCaps(c.mailbox.hourly, c.mailbox.daily),
        {k.lower(): MailboxCaps(v.hourly, v.daily) for k, v in c.mailboxes.items()},
        c.recipient_domain_daily,
    )


def report_context(
    settings: Settings, now: datetime, *, with_pipeline: bool = True
) -> ReportContext:
    """What ``touchflow report`` and the dashboard compare against: caps, shield, team, A/B
    rule, and the pipeline config (when ``config/pipeline.yaml`` exists and is wanted: the
    ``pipeline`` report needs it, the others do not read it)."""
    c, r = settings.compliance, settings.reports
    has_pipeline = with_pipeline and (settings.config_dir / "pipeline.yaml").exists()
    return ReportContext(
        now=now,
        caps=cap_policy(settings),
        shield_threshold=c.bounce_shield_threshold,
        shield_min_sends=c.bounce_shield_min_sends,
        spam_threshold=r.spam_threshold,
        domain_min_sends=r.domain_min_sends,
        dashboard_domain_top=r.dashboard_domain_top,
        team=team(settings),
        ab_metric=r.ab_metric,
        ab_min_sends=r.ab_min_sends,
        ab_threshold=r.ab_threshold,
        pipeline=pipeline(settings) if has_pipeline else None,
    )


def bounce_shield(settings: Settings) -> BounceShield:
    c = settings.compliance
    return BounceShield(c.bounce_shield_threshold, c.bounce_shield_min_sends)


def ticker(
    settings: Settings,
    *,
    email: EmailSender | None = None,
    sms: SmsSender | None = None,
    cache: RuntimeCache | None = None,
) -> Ticker:
    """A Ticker over the configured database and senders (overridable for tests)."""
    return Ticker(
        database(settings),
        email=email or email_sender(settings),
        sms=sms or sms_sender(settings),
        sender_defaults=sender_directory(settings),
        runtimes=cache or runtimes(settings),
        unsubscribe_mailto=settings.unsubscribe_mailto,
        lease=timedelta(seconds=settings.claim_lease_s),
        record_every=settings.record_every,
        caps=cap_policy(settings),
        bounce_shield=bounce_shield(settings),
        sms_from=settings.twilio.from_number,
    )


def crm_connector(settings: Settings) -> CrmConnector | None:
    """The configured CRM connector, or None when ``TOUCHFLOW_CRM__PROVIDER=none``."""
    c = settings.crm
    token = c.token.get_secret_value() if c.token else None
    if c.provider == "none":
        return None
    if c.provider == "fake":
        return fake_crm()
    missing = _crm_setting_missing(settings)
    if missing is not None:
        raise ConfigError(missing)
    if c.provider == "hubspot":
        from touchflow.adapters.hubspot.crm import HubspotCrm

        return HubspotCrm(token or "", **({"base_url": c.base_url} if c.base_url else {}))
    if c.provider == "pipedrive":
        from touchflow.adapters.pipedrive.crm import PipedriveCrm

        return PipedriveCrm(
            token or "",
            org_domain_field=c.pipedrive_domain_field,
            **({"base_url": c.base_url} if c.base_url else {}),
        )
    from touchflow.adapters.salesforce.crm import SalesforceCrm

    return SalesforceCrm(
        instance_url=c.instance_url,
        access_token=token,
        client_id=c.client_id,
        client_secret=c.client_secret.get_secret_value() if c.client_secret else None,
    )


def crm_sync(settings: Settings) -> CrmSync | None:
    """The sync steps over the configured CRM and store; None when no CRM is configured."""
    connector = crm_connector(settings)
    if connector is None:
        return None
    return CrmSync(
        database(settings),
        connector,
        runtimes(settings),
        batch_size=settings.crm.batch_size,
        max_attempts=settings.crm.max_attempts,
        owner_change_pause=timedelta(days=settings.crm.owner_change_pause_days),
        owner_ids=team_owner_ids(team(settings)),
    )


def pipeline(settings: Settings) -> Pipeline:
    """``config/pipeline.yaml`` of this project (ConfigFileError with its findings if bad)."""
    from touchflow.domain.pipeline import load_pipeline

    path = settings.config_dir / "pipeline.yaml"
    if not path.exists():
        raise ConfigError(f"no pipeline: {path} does not exist (stages, forecast categories)")
    return load_pipeline(path)


def deal_source(settings: Settings) -> DealSource:
    """The configured CRM as a source of deals; ConfigError when there is none."""
    connector = crm_connector(settings)
    if connector is None:
        raise ConfigError("no CRM configured: set TOUCHFLOW_CRM__PROVIDER")
    return connector


def required_crm_sync(settings: Settings) -> CrmSync:
    """:func:`crm_sync`, or a :class:`ConfigError` naming the setting when no CRM is configured."""
    sync = crm_sync(settings)
    if sync is None:
        raise ConfigError("no CRM configured: set TOUCHFLOW_CRM__PROVIDER")
    return sync


def reply_poll(settings: Settings) -> Callable[..., Counter[str]]:
    """:func:`~touchflow.services.replies.poll_mailbox` bound to this store and reply settings.

    Call it as ``poll(mailbox, now=...)``.
    """
    r = settings.replies
    return partial(
        poll_mailbox,
        engine=database(settings),
        cache=runtimes(settings),
        limit=r.poll_limit,
        ooo_default_days=r.ooo_default_days,
        account_pause_days=r.account_pause_days,
    )


@lru_cache(maxsize=1)
def fake_crm() -> CrmConnector:
    """One in-memory CRM per process, so what one flow task pushed the next one sees."""
    from touchflow.adapters.fake_crm import FakeCrm

    return FakeCrm()


def enricher(settings: Settings) -> Enricher | None:
    """The offline firmographics file, then the REST provider if configured (first hit wins)."""
    from touchflow.adapters.enrichment.chain import ChainEnricher
    from touchflow.adapters.enrichment.http_enricher import HttpEnricher, SqliteCache
    from touchflow.adapters.enrichment.offline import OfflineEnricher

    e = settings.enrichment
    chain: list[Enricher] = []
    if e.firmographics is not None:
        path = e.firmographics
        if not path.is_absolute():
            path = settings.config_dir / path
        if path.exists():
            chain.append(OfflineEnricher(path))
    if e.base_url:
        chain.append(
            HttpEnricher(
                e.base_url,
                api_key=e.api_key.get_secret_value() if e.api_key else None,
                path_template=e.path_template,
                field_map=e.field_map,
                max_per_second=e.max_per_second,
                retries=e.retries,
                cache=SqliteCache(e.cache_path),
            )
        )
    if not chain:
        return None
    return chain[0] if len(chain) == 1 else ChainEnricher(chain)


def lead_services(settings: Settings) -> LeadServices:
    """Everything ``POST /leads`` needs, from settings and the config files that exist."""
    from touchflow.domain.cadence import load_cadence
    from touchflow.domain.routing import load_router
    from touchflow.domain.scoring import load_icp
    from touchflow.services.leads import LeadServices

    cfg = settings.config_dir
    inbound = None
    if settings.leads.inbound_cadence:
        path = settings.cadences_dir / f"{settings.leads.inbound_cadence}.yaml"
        inbound = runtimes(settings).add(
            load_cadence(
                path, settings.templates_dir, settings.calendars_file, settings.guidance_file
            )
        )
    aliases: dict[str, str] = {}
    if (cfg / "domain_aliases.yaml").exists():
        from touchflow.services.importer import load_aliases

        aliases = load_aliases(cfg / "domain_aliases.yaml")
    connector = crm_connector(settings)
    return LeadServices(
        sender=sender_defaults(settings),
        default_owner=settings.sender.owner_email,
        inbound=inbound,
        aliases=aliases,
        enricher=enricher(settings),
        icp=load_icp(cfg / "icp.yaml") if (cfg / "icp.yaml").exists() else None,
        router=load_router(cfg) if (cfg / "team.yaml").exists() else None,
        crm=connector.name if connector is not None else None,
    )


def notifier(settings: Settings) -> Notifier | None:
    """How AEs hear about new leads: a Slack-compatible webhook, email, or not at all."""
    from touchflow.adapters.notify import EmailNotifier, WebhookNotifier

    if settings.leads.notify_webhook_url:
        return WebhookNotifier(settings.leads.notify_webhook_url)
    if settings.leads.notify_email:
        return EmailNotifier(email_sender(settings), settings.sender.email)
    return None


@dataclass(frozen=True)
class ReplyMailbox:
    """One mailbox to poll for replies: a label for messages, and how to open it."""

    label: str  # the IMAP username
    open: Callable[[], ImapMailbox]  # a ConfigError when its password is not set


def reply_mailboxes(settings: Settings) -> list[ReplyMailbox]:
    """Every mailbox polled for replies: ``TOUCHFLOW_REPLIES__MAILBOXES``, then team.yaml's.

    A team member's ``mailbox.imap`` joins the list unless the same login
    (host and username) is already configured in the environment. Its password
    is read when the mailbox is opened, so one missing secret fails that
    mailbox alone.
    """
    env = settings.replies.mailboxes
    found = [ReplyMailbox(cfg.username, partial(mailbox, cfg)) for cfg in env]
    seen = {(cfg.host.lower(), cfg.username.lower()) for cfg in env}
    for member, box in _mailboxes(settings):
        imap = box.imap
        if imap is None or (imap.host.lower(), imap.username.lower()) in seen:
            continue
        seen.add((imap.host.lower(), imap.username.lower()))
        found.append(ReplyMailbox(imap.username, partial(_team_imap, settings, member, imap)))
    return found


def _team_imap(settings: Settings, member: Member, imap: ImapAccount) -> ImapMailbox:
    password = _secret(imap.password_env, _where(settings, member, "imap.password_env"))
    return mailbox(
        ImapMailboxSettings(
            host=imap.host,
            port=imap.port,
            username=imap.username,
            password=SecretStr(password),
            ssl=imap.ssl,
            starttls=imap.starttls,
            folder=imap.folder,
            processed_folder=imap.processed_folder,
            sent_folder=imap.sent_folder,
        )
    )


def mailbox(cfg: ImapMailboxSettings) -> ImapMailbox:
    """A rep's mailbox over IMAP, from its settings (a context manager: it logs out)."""
    from touchflow.adapters.imap.replies import ImapMailbox

    return ImapMailbox(
        cfg.host,
        cfg.port,
        cfg.username,
        cfg.password.get_secret_value(),
        ssl=cfg.ssl,
        starttls=cfg.starttls,
        folder=cfg.folder,
        processed_folder=cfg.processed_folder,
        sent_folder=cfg.sent_folder,
    )


def email_event_webhook(settings: Settings) -> EmailEventWebhook:
    """SendGrid's signed Event Webhook; a ConfigError naming the key when it is not set."""
    sg = settings.sendgrid
    if not sg.webhook_public_key:
        raise ConfigError("TOUCHFLOW_SENDGRID__WEBHOOK_PUBLIC_KEY is not set")
    from touchflow.adapters.sendgrid.webhooks import SendgridWebhooks

    return SendgridWebhooks(sg.webhook_public_key, sg.webhook_max_age_s)


def inbound_email_webhook(settings: Settings) -> InboundEmailWebhook:
    """SendGrid Inbound Parse (authenticated by the route's shared token)."""
    from touchflow.adapters.sendgrid.webhooks import SendgridInboundParse

    return SendgridInboundParse()


def messaging_webhook(settings: Settings) -> MessagingWebhook:
    """Twilio's signed callbacks; a ConfigError naming the token when it is not set."""
    token = settings.twilio.auth_token
    if token is None or not token.get_secret_value():
        raise ConfigError("TOUCHFLOW_TWILIO__AUTH_TOKEN is not set")
    from touchflow.adapters.twilio.webhooks import TwilioWebhooks

    return TwilioWebhooks(token.get_secret_value(), rep_track=settings.transcripts.rep_track)


def calls_config(settings: Settings) -> CallsConfig:
    """``config/calls.yaml`` (transcript consent and retention); the defaults when absent.

    A ConfigFileError (file:line:col) when it is invalid.
    """
    path = settings.calls_file
    if not path.exists():
        return CallsConfig()
    from touchflow.domain.call_consent import calls_config_from_yaml
    from touchflow.domain.model_findings import read_text

    return calls_config_from_yaml(read_text(path), str(path))


def call_guidance(settings: Settings) -> Guidance | None:
    """``config/guidance.yaml`` compiled (one automaton per process); None when absent.

    Compiled once per file version (keyed on its mtime): every call of the process,
    live or after the call, shares it. A ConfigFileError (file:line:col) when invalid.
    """
    path = settings.guidance_file
    if not path.exists():
        return None
    return _guidance_at(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=2)
def _guidance_at(path: str, stamp: int) -> Guidance:
    from touchflow.domain.guidance import load_guidance

    return load_guidance(Path(path))


def icp_config(settings: Settings) -> IcpConfig | None:
    """``config/icp.yaml``, or None when there is none."""
    from touchflow.domain.scoring import load_icp

    path = settings.config_dir / "icp.yaml"
    return load_icp(path) if path.exists() else None


def call_summaries(settings: Settings, engine: Engine | None = None) -> CallSummaries | None:
    """The after-call summaries over the store (``engine``, default the configured database);
    None without ``config/guidance.yaml``."""
    guidance = call_guidance(settings)
    if guidance is None:
        return None
    from touchflow.services.call_summaries import CallSummaries

    return CallSummaries(
        engine if engine is not None else database(settings),
        guidance,
        icp=icp_config(settings),
        idle=timedelta(minutes=settings.transcripts.summary_idle_minutes),
    )


def media_stream_url(settings: Settings) -> str:
    """The wss:// URL Twilio opens the Media Stream to (and signs)."""
    if settings.transcripts.media_stream_url:
        return settings.transcripts.media_stream_url
    base = settings.public_url.rstrip("/")
    scheme, _, rest = base.partition("://")
    return ("wss" if scheme == "https" else "ws") + "://" + rest + "/media-stream"


def media_stream_transcriber(settings: Settings, now: Callable[[], datetime]) -> MediaStreamReader:
    """One Media Stream connection's reader: the offline recogniser per track.

    pocketsphinx with the US-English model its wheel ships (no download).
    """
    from touchflow.adapters.speech import MediaStreamTranscriber, PocketsphinxRecognizer

    return MediaStreamTranscriber(
        PocketsphinxRecognizer, now, rep_track=settings.transcripts.rep_track
    )
