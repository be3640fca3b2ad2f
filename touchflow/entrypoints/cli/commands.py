"""Cadence commands: validate, preview, simulate, import, enroll, run, status, tasks, events."""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from touchflow.domain.cadence import validate_paths
from touchflow.domain.compliance import footer_findings
from touchflow.domain.prospects import Prospect, normalize_email
from touchflow.domain.senders import OwnerSender
from touchflow.entrypoints.cli.app import (
    NOW_HELP,
    app,
    cadence_or_exit,
    current_settings,
    db_app,
    engine_for,
    err,
    fail,
    out,
    parse_now,
    task_app,
)
from touchflow.entrypoints.cli.leads import config_findings
from touchflow.entrypoints.cli.ops import print_guards
from touchflow.errors import MissingDataError
from touchflow.settings import Settings, redact_url

# -- validate / preview / simulate -------------------------------------------------


@app.command()
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Cadence files, template files or folders (default: all)."),
    ] = None,
) -> None:
    """Check cadences, templates and config; print ``path:line:col: error: message``.

    Warnings (``path:line:col: warning: message``) are printed too but do not fail the check.
    """
    settings = current_settings()
    if not paths:
        # Cadences and templates are what there is to check: without them "ok"
        # would be a lie. config/ is optional (ICP, routing, team).
        absent = [
            f"{folder} ({setting})"
            for folder, setting in (
                (settings.cadences_dir, "TOUCHFLOW_CADENCES_DIR"),
                (settings.templates_dir, "TOUCHFLOW_TEMPLATES_DIR"),
            )
            if not folder.is_dir()
        ]
        if absent:
            raise fail(
                f"no such folder: {', '.join(absent)}; run touchflow from the project folder"
            )
    targets = paths or [
        p
        for p in (settings.cadences_dir, settings.templates_dir, settings.config_dir)
        if p.exists()
    ]
    missing = [p for p in targets if not p.exists()]
    if missing:
        raise fail(f"no such file or folder: {', '.join(map(str, missing))}")
    rules = settings.compliance
    policy = (
        partial(
            footer_findings,
            templates_label=str(settings.templates_dir),
            postal_address=rules.postal_address,
        )
        if rules.require_footer
        else None
    )
    findings = validate_paths(
        targets, settings.templates_dir, policy, settings.calendars_file, settings.guidance_file
    )
    if settings.config_dir in targets:
        findings = sorted(set(findings) | set(config_findings(settings)))
    for finding in findings:
        out.print(str(finding), markup=False, soft_wrap=True)
    # Warnings are printed but do not fail: the files are valid, maybe not what was meant.
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    if errors:
        err.print(f"{errors} error(s)" + (f", {warnings} warning(s)" if warnings else ""))
        raise typer.Exit(1)
    if warnings:
        err.print(f"{warnings} warning(s)")
    err.print(f"ok: {', '.join(map(str, targets))}")


SAMPLE_PROSPECT = Prospect(
    email="jordan.lee@northwind.example",
    first_name="Jordan",
    last_name="Lee",
    title="VP Revenue Operations",
    company="Northwind Analytics",
    domain="northwind.example",
    phone="+14155550100",
    country="US",
    timezone="America/Los_Angeles",
    fields={"industry": "Software", "employees": "850"},
)


@app.command()
def preview(
    cadence_id: Annotated[str, typer.Argument(metavar="CADENCE")],
    prospect: Annotated[
        str | None, typer.Option("--prospect", help="Email of a stored prospect.")
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="Use a built-in sample prospect.")
    ] = False,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner",
            help="Render as this team member's mailbox (config/team.yaml). "
            "Default: TOUCHFLOW_SENDER__OWNER_EMAIL's, else the default sender.",
        ),
    ] = None,
) -> None:
    """Render every step of a cadence for one prospect, as the tick would send it.

    The engine renders each step (every variant; the prospect's own is marked)
    as if every earlier step had gone out, so a threaded bump shows the
    ``Re:`` subject and the unsubscribe link the prospect would get.
    """
    from touchflow.bootstrap import runtimes
    from touchflow.domain.cadence import choose_variant
    from touchflow.domain.engine import EnrollmentView, ExecutedStep, enrollment_key

    if (prospect is None) == (not sample):
        raise typer.BadParameter("give exactly one of --prospect EMAIL or --sample")
    settings = current_settings()
    sender = _owner_and_sender(settings, owner).sender
    cadence = cadence_or_exit(settings, cadence_id)
    who = SAMPLE_PROSPECT if sample else _stored_prospect(settings, normalize_email(prospect or ""))
    runtime = runtimes(settings).add(cadence)
    key = enrollment_key(cadence.id, who.email)
    view = EnrollmentView(key, "preview", who, sender)
    # The window, holidays and blackouts this prospect's touches are timed by.
    out.print(f"Schedule: {runtime.calendar_for(who, view.sender).describe()}", markup=False)
    at = parse_now(None)
    problems = 0
    for n, step in enumerate(cadence.steps, 1):
        chosen = choose_variant(step, key)
        for variant in step.variants or [None]:
            label = f"{n}. {step.id} [{step.channel}]"
            if variant is not None:
                label += f" variant {variant.id}" + (
                    " (this prospect)" if variant == chosen else ""
                )
            if step.after:
                label += f", {step.after} after the previous step"
            if step.when:
                label += f", when {step.when}"
            out.rule(label)
            unreachable = runtime.unreachable(step, who)
            if unreachable is not None:
                # Not a problem: the tick skips the step and the cadence goes on.
                out.print(
                    f"[yellow]would skip: {unreachable} ({_NO_PHONE_WHY[step.channel]})[/yellow]"
                )
                break
            try:
                touch = runtime.render_step(view, n - 1, variant.id if variant else None)
            except MissingDataError as exc:
                problems += 1
                out.print(f"[yellow]would hold: missing_data ({exc.field} is empty)[/yellow]")
                continue
            if touch.subject:
                out.print(f"Subject: {touch.subject}", markup=False)
            if touch.body:
                out.print(touch.body, markup=False)
            if variant is None or variant == chosen:  # what later steps thread on
                view.executed[step.id] = ExecutedStep(
                    step.id, at, message_id=touch.message_id, subject=touch.subject
                )
    if problems:
        raise typer.Exit(1)


def _owner_and_sender(settings: Settings, owner: str | None) -> OwnerSender:
    """``--owner`` (None: not given) as an owner and sender; exit 2 or 1 when refused."""
    from touchflow.bootstrap import sender_directory
    from touchflow.errors import OwnerRefused

    try:
        return sender_directory(settings).choose(owner, settings.sender.owner_email)
    except OwnerRefused as exc:
        if exc.usage:  # not an email address at all
            raise typer.BadParameter(str(exc)) from None
        raise fail(str(exc)) from None


_NO_PHONE_WHY = {
    "sms": "no phone number that takes texts",
    "call": "no usable phone number",
}


def _stored_prospect(settings: Settings, email: str) -> Prospect:
    from touchflow.services.prospects import stored_prospect

    found = stored_prospect(engine_for(settings), email)
    if found is None:
        raise fail(f"no prospect {email!r} in the database (import it, or use --sample)")
    return found


@app.command()
def simulate(
    cadence_id: Annotated[str, typer.Argument(metavar="CADENCE")],
    prospects_csv: Annotated[
        Path,
        typer.Option(
            "--prospects",
            exists=True,
            dir_okay=False,
            help="CSV of prospects, read as import reads it.",
        ),
    ],
    start: Annotated[str, typer.Option("--start", help="ISO 8601 enrollment time.")],
    days: Annotated[
        int, typer.Option("--days", min=1, max=3660, help="How many days to simulate.")
    ] = 30,
    events_csv: Annotated[
        Path | None,
        typer.Option(
            "--events",
            exists=True,
            dir_okay=False,
            help="CSV of email,event,at[,step][,tracker]: exit events, opened/clicked, task "
            "outcomes (tracker: what a call's summary heard, e.g. pricing;competitor).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Dry run: every step the tick would send, create, skip or defer. No writes, no sends.

    Prospects are read as ``import`` reads them; rejected rows are reported
    (exit 1) and not simulated.
    """
    from touchflow.bootstrap import sender_defaults
    from touchflow.domain.normalize import Rejection
    from touchflow.domain.simulate import read_events_csv
    from touchflow.domain.simulate import simulate as run_simulation
    from touchflow.services.importer import read_prospects

    settings = current_settings()
    cadence = cadence_or_exit(settings, cadence_id)
    good: list[Prospect] = []
    first_line: dict[str, int] = {}
    rejected: Counter[str] = Counter()
    try:
        # Read as `import` reads it: a file simulate accepts is one import accepts.
        for line, item in read_prospects(prospects_csv):
            where = f"{prospects_csv}:{line}"
            if isinstance(item, Rejection):
                rejected[item.code] += 1
                err.print(f"{where}: rejected: {item}", markup=False)
                continue
            for issue in item.warnings:
                err.print(f"{where}: warning: {issue}", markup=False)
            if item.email in first_line:
                err.print(
                    f"{where}: duplicate of line {first_line[item.email]}: simulated once",
                    markup=False,
                )
                continue
            first_line[item.email] = line
            good.append(item.to_prospect())
        events = read_events_csv(events_csv) if events_csv else []
        records = run_simulation(
            cadence,
            good,
            start=parse_now(start),
            days=days,
            sender=sender_defaults(settings),
            events=events,
            public_url=settings.public_url,
        )
    except ValueError as exc:  # ImportFileError is one; so are bad events files
        where = f"{events_csv}: " if events_csv and str(exc).startswith("line ") else ""
        raise fail(f"{where}{exc}") from None
    if rejected:
        reasons = ", ".join(f"{k} {v}" for k, v in rejected.most_common())
        err.print(f"{sum(rejected.values())} row(s) rejected ({reasons}): not simulated")
    if as_json:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        if rejected:
            raise typer.Exit(1)
        return
    table = Table(title=f"{cadence.name}: {len(good)} prospect(s), {days} day(s)")
    for col in ("at (UTC)", "local", "prospect", "step", "channel", "status", "detail"):
        table.add_column(col)
    for r in records:
        local = r["local_at"][:16] + r["local_at"][-6:] if "local_at" in r else ""
        if "exit" in r:
            status, detail = "[bold]exit[/bold]", f"{r['exit']} {r.get('field', '')}".strip()
        elif r["status"] == "skipped":
            status, detail = "[yellow]skipped[/yellow]", r["reason"]
        elif r["status"] == "ignored":
            status, detail = "ignored", f"{r['event']}: {r['reason']}"
        elif r["status"] == "task":
            detail = r.get("outcome", "open")
            if r.get("done_at", r["at"]) != r["at"]:
                detail += f" at {r['done_at'][:16]}"
            status = "task"
        else:
            status, detail = "sent", (f"variant {r['variant']}" if r["variant"] else "")
        table.add_row(
            r["at"][:16], local, r["prospect"], r.get("step", ""), r.get("channel", ""),
            status, detail,
        )  # fmt: skip
    out.print(table)
    touches = Counter(r["channel"] for r in records if r.get("status") in ("sent", "task"))
    skipped = Counter(r["reason"] for r in records if r.get("status") == "skipped")
    exits = Counter(r["exit"] for r in records if "exit" in r)
    out.print(f"touches: {dict(touches)}  skipped: {dict(skipped)}  exits: {dict(exits)}")
    if rejected:
        raise typer.Exit(1)


# -- database, import, enroll -------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema (Alembic) on TOUCHFLOW_DATABASE_URL."""
    from touchflow.services.database import upgrade_schema

    settings = current_settings()
    upgrade_schema(engine_for(settings))
    out.print(f"database at head: {redact_url(settings.database_url)}", markup=False)


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            metavar="FILE",
            help="The prospects: a CSV, JSONL or Excel (.xlsx) file.",
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv | jsonl | xlsx (default: by the file suffix)"),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            "--encoding",
            help="A CSV file's text encoding, e.g. cp1256 for a CSV saved by Excel on a "
            "Persian or Arabic Windows (default: UTF-8).",
        ),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option("--map", help="YAML: touchflow field -> your column name.", exists=True),
    ] = None,
    aliases: Annotated[
        Path | None,
        typer.Option("--aliases", help="Domain aliases (default config/domain_aliases.yaml)."),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            help="Where bad rows go (default FILE.rejects.<suffix>; .csv for a workbook).",
        ),
    ] = None,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Stream prospects in from CSV, JSONL or Excel (.xlsx): normalized, merged, matched.

    Good rows load in batches; bad rows are reported with their line and reason
    and written aside; rows of one email are merged into one (conflicts are
    reported with both lines); re-importing the same file changes nothing.
    """
    import codecs

    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from touchflow.errors import ConfigFileError, ImportFileError, ImportFormatError
    from touchflow.services.importer import load_aliases, load_mapping, run_import

    settings = current_settings()
    if fmt is not None and fmt not in ("csv", "jsonl", "xlsx"):
        raise typer.BadParameter("--format must be csv, jsonl or xlsx")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise typer.BadParameter(
                f"unknown encoding {encoding!r} (for example utf-8, cp1256, utf-16, latin-1)",
                param_hint="--encoding",
            ) from None
    workbook = (fmt or file.suffix.lower().lstrip(".")) in ("xlsx", "xlsm")
    suffix = ".csv" if workbook else file.suffix
    rejects = rejects or file.with_name(f"{file.stem}.rejects{suffix}")
    alias_file = aliases or settings.config_dir / "domain_aliases.yaml"
    try:
        column_map = load_mapping(mapping) if mapping else None
        alias_table = load_aliases(alias_file) if alias_file.exists() else None
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task(f"importing {file.name}", total=file.stat().st_size)
            summary = run_import(
                engine_for(settings),
                file,
                fmt=fmt,  # type: ignore[arg-type]
                mapping=column_map,
                aliases=alias_table,
                rejects_path=rejects,
                now=parse_now(now),
                progress=lambda n: bar.update(task, completed=n),
                encoding=encoding,
            )
    except ConfigFileError as exc:
        for finding in exc.findings:
            err.print(str(finding), markup=False)
        raise fail(str(exc)) from None
    except ImportFormatError as exc:
        err.print("[red]error:[/red] " + escape(str(exc)))
        raise typer.Exit(2) from None
    except ImportFileError as exc:
        raise fail(str(exc)) from None
    for line in summary.warning_lines:
        err.print(line, markup=False)
    for line in summary.conflict_lines:
        err.print(f"conflict: {line}", markup=False)
    out.print(str(summary), markup=False)
    if summary.rejected["invalid_utf8"] and encoding is None:
        err.print(
            "hint: the file is not UTF-8; name its encoding with --encoding "
            "(a CSV saved by Excel on a Persian or Arabic Windows is --encoding cp1256)"
        )
    if summary.rejected_total:
        raise typer.Exit(1)


@app.command()
def enroll(
    cadence_id: Annotated[str, typer.Argument(metavar="CADENCE")],
    all_: Annotated[bool, typer.Option("--all", help="Every stored prospect.")] = False,
    prospects_csv: Annotated[
        Path | None,
        typer.Option(
            "--prospects", exists=True, dir_okay=False, help="CSV whose emails to enroll."
        ),
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner",
            help="The SDR who owns them: their mailbox in config/team.yaml sends. "
            "Default: TOUCHFLOW_SENDER__OWNER_EMAIL.",
        ),
    ] = None,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Enroll prospects in a cadence, pinned to its current version.

    The owner's mailbox (config/team.yaml) is who the emails come from. Once
    any team member has a mailbox, an owner without one is refused; with none
    configured, every owner sends as the default sender (TOUCHFLOW_SENDER__*).
    """
    from touchflow.bootstrap import runtimes
    from touchflow.domain.normalize import Normalized
    from touchflow.services.enrollments import enroll_prospects
    from touchflow.services.importer import read_prospects

    if all_ == (prospects_csv is not None):
        raise typer.BadParameter("give exactly one of --all or --prospects FILE")
    settings = current_settings()
    chosen = _owner_and_sender(settings, owner)
    cadence = cadence_or_exit(settings, cadence_id)
    at = parse_now(now)
    emails: list[str] | None = None
    if prospects_csv is not None:
        emails = [
            item.email
            for _line, item in read_prospects(prospects_csv)
            if isinstance(item, Normalized)
        ]
    result = enroll_prospects(
        engine_for(settings),
        runtimes(settings).add(cadence),
        emails,
        owner_email=chosen.owner,
        sender=chosen.sender,
        now=at,
    )
    sender = chosen.sender
    who = f"{sender.name} <{sender.email}>" if sender.name else sender.email
    out.print(
        f"owner {chosen.owner}, sending as {who}: "
        + (
            f"their mailbox in {settings.config_dir / 'team.yaml'}"
            if chosen.from_team
            else "the default sender (TOUCHFLOW_SENDER__*; no team mailbox for this owner)"
        ),
        markup=False,
    )
    if result.not_imported:
        err.print(
            f"{result.not_imported} email(s) are not imported yet; "
            f"run `touchflow import {prospects_csv}` first"
        )
    out.print(
        f"{cadence.id} (version {cadence.version}): {result.enrolled} enrolled, "
        f"{result.already} already enrolled, {result.suppressed} refused (opted out, "
        f"bounced or suppressed)"
        + (
            f", {result.outside_audience} outside the audience (score/grade)"
            if result.outside_audience
            else ""
        )
    )


# -- running ------------------------------------------------------------------------


@app.command()
def run(
    now: Annotated[
        str | None,
        typer.Option("--now", metavar="ISO8601", help="Tick as if it were this time."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, help="Enrollments claimed per batch (TOUCHFLOW_BATCH_SIZE)."
        ),
    ] = None,
) -> None:
    """One tick now: send what is due, create due tasks (what the run-cadences flow runs).

    When nothing is due and no claim is outstanding it says so and stops,
    without building the senders. Sends that failed are listed with the
    provider's message and a count each; the exit code is then 1.
    """
    from touchflow.bootstrap import ticker
    from touchflow.services.reporting import refresh
    from touchflow.services.status import due_work, send_failures
    from touchflow.services.tick import recover_step, tick_until_idle

    settings = current_settings()
    at = parse_now(now)
    engine = engine_for(settings)
    work = due_work(engine, at)
    if work.idle:
        refresh(engine)  # events may have come in since the last tick
        nxt = f"{work.next_due_at:%Y-%m-%d %H:%M} UTC" if work.next_due_at else "none"
        out.print(f"nothing due at {at:%Y-%m-%d %H:%M} UTC; next touch due: {nxt}")
        return
    started = datetime.now(UTC)  # the ledger's claimed_at is wall-clock time
    with ticker(settings) as tk:
        report = tick_until_idle(
            tk,
            at,
            batch_size or settings.batch_size,
            recover=partial(recover_step, announce=out.print),
        ).as_dict()
    refresh(engine)  # the rollups are never more than one tick behind
    table = Table(title=f"tick at {at.isoformat()}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for k, v in report.items():
        table.add_row(k, str(v))
    out.print(table)
    _print_failures(send_failures(engine, started), "Sends that failed in this tick")
    if report.get("failed") or report.get("unknown"):
        raise typer.Exit(1)


def _print_failures(rows: list[tuple[str, str, int]], title: str) -> None:
    """Failed sends grouped by the connector's message, with counts."""
    if not rows:
        return
    t = Table(title=title)
    for col in ("channel", "why (the provider's message)", "count"):
        t.add_column(col, justify="right" if col == "count" else "left")
    for channel, error, n in rows:
        t.add_row(channel, error, str(n))
    out.print(t)


@app.command()
def status() -> None:
    """Enrollments by cadence, state and step; touches by channel and status.

    Enrollments a tick has claimed and not settled yet are shown as ``in flight``
    with the age of the oldest claim (their touches are ``sending``), not under
    their state: they are being sent, not waiting.
    """
    from touchflow.bootstrap import runtimes
    from touchflow.services.status import enrollment_status, send_failures

    settings = current_settings()
    rep = enrollment_status(engine_for(settings), runtimes(settings))
    wall = datetime.now(UTC)  # claims are stamped with the wall clock
    lease = timedelta(seconds=settings.claim_lease_s)
    t = Table(title="Enrollments")
    for col in ("cadence", "state", "reason", "count"):
        t.add_column(col, justify="right" if col == "count" else "left")
    rows = [(cid, state, reason, n) for (cid, state, reason), n in rep.enrollments_by_state.items()]
    # Claimed by a tick that has not recorded the outcome yet: being sent, not waiting.
    rows += [
        (f.cadence_id, IN_FLIGHT, _claim_age(f, wall, lease), f.enrollments) for f in rep.in_flight
    ]
    for cid, state, reason, n in sorted(rows):
        t.add_row(cid, state, reason, str(n))
    out.print(t)
    lost = sum(f.enrollments for f in rep.in_flight if wall - f.oldest_claim > lease)
    if lost:
        out.print(
            f"{lost} in flight past the {_duration(lease)} claim lease (TOUCHFLOW_CLAIM_LEASE_S): "
            "their worker was lost; the next tick marks their touches unknown"
        )
    s = Table(title="Open enrollments by current step")
    for col in ("cadence", "step", "count"):
        s.add_column(col, justify="right" if col == "count" else "left")
    for (cid, step), n in sorted(rep.active_by_step.items()):
        s.add_row(cid, step, str(n))
    out.print(s)
    u = Table(title="Touches")
    for col in ("channel", "status", "count"):
        u.add_column(col, justify="right" if col == "count" else "left")
    for (channel, st), n in sorted(rep.touches_by_status.items()):
        u.add_row(channel, f"{st} ({IN_FLIGHT})" if st in ("sending", "queued") else st, str(n))
    out.print(u)
    out.print(
        f"open tasks: {rep.open_tasks}; next touch due: "
        f"{rep.next_due_at.isoformat() if rep.next_due_at else '-'}"
    )
    since = datetime.now(UTC) - timedelta(days=1)
    _print_failures(send_failures(engine_for(settings), since), "Send failures, last 24 h")
    print_guards()


#: How ``status`` shows a claimed enrollment and a ``sending`` touch.
IN_FLIGHT = "in flight"


def _claim_age(flight: Any, wall: datetime, lease: timedelta) -> str:
    """``claimed 42 s ago``, or ``claimed 2 h ago, past the lease``."""
    age = wall - flight.oldest_claim
    return f"claimed {_duration(age)} ago" + (", past the lease" if age > lease else "")


def _duration(delta: timedelta) -> str:
    """42 s, 7 min, 3 h 5 min, 2 d 4 h: the two largest units."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        rest = minutes % 60
        return f"{hours} h" + (f" {rest} min" if rest else "")
    rest = hours % 24
    return f"{days} d" + (f" {rest} h" if rest else "")


@app.command("tasks")
def list_tasks_cmd(
    owner: Annotated[
        str | None, typer.Option("--owner", help="Only this SDR's tasks (their email).")
    ] = None,
    state: Annotated[str, typer.Option("--status", help="open, done, skipped or all.")] = "open",
    due: Annotated[
        str,
        typer.Option(
            "--due",
            help="today: due by the end of the SDR's day (overdue ones too); "
            "overdue: due before now; any: whenever.",
        ),
    ] = "any",
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            metavar="ZONE",
            help="The SDR's time zone, e.g. Europe/Berlin (default: their working_hours "
            "in config/team.yaml, else TOUCHFLOW_SENDER__TIMEZONE).",
        ),
    ] = None,
    now: Annotated[str | None, typer.Option("--now", metavar="ISO8601", help=NOW_HELP)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")] = 50,
) -> None:
    """The SDRs' task list: calls, LinkedIn touches and manual steps.

    Each task shows when it is due in the SDR's time and in the prospect's
    own time, with the prospect's phone, so a call list can be worked in order.
    """
    from touchflow.domain.calendar import resolve_timezone
    from touchflow.services.tasks import list_tasks

    if state not in ("open", "done", "skipped", "all"):
        raise typer.BadParameter("--status must be open, done, skipped or all")
    if due not in ("today", "overdue", "any"):
        raise typer.BadParameter("--due must be today, overdue or any")
    settings = current_settings()
    at = parse_now(now)
    zone = _sdr_zone(settings, owner, tz)
    local = at.astimezone(zone)
    before = {
        "today": (local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)),
        "overdue": at,
        "any": None,
    }[due]
    rows = list_tasks(engine_for(settings), owner=owner, status=state, due_before=before)
    title = f"Tasks ({state}" + ("" if due == "any" else f", due {due}") + f"): {len(rows)}"
    t = Table(title=title)
    columns = ["id", f"due ({zone.key})", "their time", "channel", "prospect", "phone"]
    columns += ([] if owner else ["owner"]) + ["title", "status"]  # one SDR's: no owner column
    for col in columns:
        t.add_column(col)
    for r in rows[:limit]:
        theirs = resolve_timezone(r.timezone, r.phone, r.country, "UTC")
        name = " ".join(n for n in (r.first_name, r.last_name) if n)
        cells = [
            str(r.id),
            f"{r.due_at.astimezone(zone):%a %d %b %H:%M}",
            f"{r.due_at.astimezone(theirs):%a %H:%M} {theirs.key}",
            r.channel,
            f"{name} <{r.email}>" if name else r.email,
            r.phone or "-",
        ]
        cells += ([] if owner else [r.owner_email]) + [
            r.title,
            r.status + (f" ({r.outcome})" if r.outcome else ""),
        ]
        t.add_row(*cells)
    out.print(t)


def _sdr_zone(settings: Settings, owner: str | None, tz: str | None) -> Any:
    """The SDR's zone: --tz, else their working hours in team.yaml, else the sender's."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = tz
    team_file = settings.config_dir / "team.yaml"
    if name is None and owner and team_file.exists():
        from touchflow.domain.routing.loader import team_from_yaml
        from touchflow.errors import FindingsError

        try:
            team = team_from_yaml(team_file.read_text(encoding="utf-8"), str(team_file))
        except FindingsError:
            team = None  # `touchflow validate` reports it; the list still works
        member = next(
            (m for m in (team.members if team else []) if m.email.lower() == owner.lower()), None
        )
        if member is not None and member.working_hours is not None:
            name = member.working_hours.timezone
    try:
        return ZoneInfo(name or settings.sender.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(f"unknown time zone {name!r} (e.g. Europe/Berlin)") from None


@task_app.command("done")
def task_done(
    task_ids: Annotated[
        list[int] | None,
        typer.Argument(metavar="ID", help="The task ids (see touchflow tasks)."),
    ] = None,
    all_due: Annotated[
        bool,
        typer.Option("--all-due", help="Every open task due by now (--now); with --owner, theirs."),
    ] = False,
    owner: Annotated[
        str | None, typer.Option("--owner", help="With --all-due: only this SDR's tasks.")
    ] = None,
    outcome: Annotated[
        str,
        typer.Option(
            "--outcome",
            help="completed, skipped, connected, "
            "voicemail, no_answer, wrong_number, meeting_booked, "
            "not_interested",
        ),
    ] = "completed",
    notes: Annotated[
        str | None, typer.Option("--notes", help="What happened, kept with the task.")
    ] = None,
    now: Annotated[str | None, typer.Option("--now", metavar="ISO8601", help=NOW_HELP)] = None,
) -> None:
    """Complete tasks; each says what it did to its enrollment (timed from now).

    A task already done is reported as such and left alone, so running the
    same command twice changes nothing.
    """
    from touchflow.bootstrap import runtimes, sender_defaults
    from touchflow.services.tasks import TASK_OUTCOMES, complete_tasks

    if outcome not in TASK_OUTCOMES:
        raise typer.BadParameter(f"--outcome must be one of {', '.join(TASK_OUTCOMES)}")
    if bool(task_ids) == all_due:
        raise typer.BadParameter("give task ids or --all-due")
    if owner and not all_due:
        raise typer.BadParameter("--owner goes with --all-due")
    settings = current_settings()
    at = parse_now(now)
    result = complete_tasks(
        engine_for(settings),
        runtimes(settings),
        sender_defaults(settings),
        None if all_due else task_ids,
        outcome=outcome,
        at=at,
        notes=notes,
        owner=owner,
    )
    for d in result.done:
        out.print(f"task {d.task_id} ({d.title}): {outcome}; {_effect(d)}", markup=False)
    for r in result.already:
        when = f", {r.completed_at:%Y-%m-%d %H:%M} UTC" if r.completed_at else ""
        out.print(
            f"task {r.id} ({r.title}): already {r.status} ({r.outcome}{when}); nothing changed",
            markup=False,
        )
    if all_due and not result.done and not result.already:
        out.print(
            f"no open task due by {at:%Y-%m-%d %H:%M} UTC" + (f" for {owner}" if owner else "")
        )
    if result.missing:
        raise fail(f"no task {', '.join(map(str, result.missing))} (see touchflow tasks)")


def _effect(d: Any) -> str:
    """What completing a task did to its enrollment, in words."""
    enrollment = f"enrollment {d.enrollment_id}"
    # A meeting on a cadence that does not exit on one: this enrollment goes on.
    others = f"; meeting booked: {d.ended} other enrollment(s) ended" if d.ended else ""
    if d.effect == "advanced":
        due = f"{d.next_due_at:%Y-%m-%d %H:%M} UTC"
        return f"{enrollment} advanced to step {d.step_id}, due {due}{others}"
    if d.effect == "ended":
        return f"meeting booked: {d.ended} enrollment(s) of the prospect ended"
    if d.effect == "finished":
        why = "the last step is done" if d.reason == "completed" else d.reason
        return f"{enrollment} finished ({why}){others}"
    return f"{enrollment} unchanged: it is {d.state}" + (f" ({d.reason})" if d.reason else "")


@app.command()
def event(
    email: Annotated[str, typer.Argument(help="The prospect's email address.")],
    kind: Annotated[
        str,
        typer.Argument(metavar="reply|bounce|unsubscribe|meeting_booked", help="What happened."),
    ],
    at: Annotated[
        str | None, typer.Option("--at", help="When it happened (ISO 8601); default: now.")
    ] = None,
) -> None:
    """Record a reply, bounce, unsubscribe or booked meeting for a prospect."""
    from touchflow.bootstrap import runtimes
    from touchflow.domain.enrollment import EXIT_EVENTS
    from touchflow.services.enrollments import record_exit_event

    if kind not in EXIT_EVENTS:
        raise typer.BadParameter(f"event must be one of {', '.join(EXIT_EVENTS)}")
    settings = current_settings()
    when = parse_now(at)
    res = record_exit_event(
        engine_for(settings),
        runtimes(settings),
        email,
        kind,
        when,
        source="cli",
        account_pause_days=settings.replies.account_pause_days,
    )
    if res is None:
        raise fail(f"no prospect {email!r}")
    text = f"{email}: {kind}: {res.ended} enrollment(s) ended, {res.kept} kept going"
    if res.account_paused or res.account_finished:
        text += (
            f"; at the same account {res.account_paused} paused, "
            f"{res.account_finished} finished (on_account_reply)"
        )
    out.print(text)


@app.command()
def retry(
    ids: Annotated[
        list[int] | None,
        typer.Argument(
            metavar="ENROLLMENT_ID", help="The failed enrollments (see touchflow status)."
        ),
    ] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Every failed enrollment.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Requeue delivery_unknown ones too: their touch may have arrived; "
            "check the provider or the rep's Sent folder first.",
        ),
    ] = False,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Requeue failed enrollments (after a send failure or a delivery found not to arrive).

    An enrollment failed with ``delivery_unknown`` is left alone without
    ``--force``: its touch was handed to the provider (or about to be) when
    the worker was lost or the provider stopped answering, so it may have been
    delivered, and requeuing it would send that step a second time.
    """
    from touchflow.services.enrollments import retry_failed

    if bool(ids) == all_failed:
        raise typer.BadParameter("give enrollment ids or --all-failed")
    done = retry_failed(
        engine_for(current_settings()), None if all_failed else ids, parse_now(now), force=force
    )
    if done.requeued:
        out.print(f"{done.requeued} enrollment(s) requeued; the next tick runs their step again")
    if done.unknown:
        shown = ", ".join(str(i) for i in done.unknown[:10])
        more = f" and {len(done.unknown) - 10} more" if len(done.unknown) > 10 else ""
        raise fail(
            f"{len(done.unknown)} enrollment(s) not requeued ({shown}{more}): their touch is "
            "unknown and may have been delivered (the worker was lost or the provider timed "
            "out after taking it); check the provider or the rep's Sent folder, then requeue "
            "the ones that did not arrive with --force"
        )
    if not done.requeued:
        raise fail("no failed enrollment to retry")
