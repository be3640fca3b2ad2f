"""Cadence commands: validate, preview, simulate, import, enroll, run, status, tasks, events."""

from __future__ import annotations

import json
import sys
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from touchflow.domain.cadence import validate_paths
from touchflow.domain.compliance import footer_findings
from touchflow.domain.prospects import Prospect, normalize_email
from touchflow.entrypoints.cli.app import (
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
from touchflow.settings import Settings

# -- validate / preview / simulate -------------------------------------------------


@app.command()
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Cadence files, template files or folders (default: all)."),
    ] = None,
) -> None:
    """Check cadences, templates and config; print ``path:line:col: error: message``."""
    settings = current_settings()
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
    findings = validate_paths(targets, settings.templates_dir, policy)
    if settings.config_dir in targets:
        findings = sorted(set(findings) | set(config_findings(settings)))
    for finding in findings:
        out.print(str(finding), markup=False, soft_wrap=True)
    if findings:
        err.print(f"{len(findings)} error(s)")
        raise typer.Exit(1)
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
) -> None:
    """Render every step of a cadence for one prospect, as the tick would send it.

    The engine renders each step (every variant; the prospect's own is marked)
    as if every earlier step had gone out, so a threaded bump shows the
    ``Re:`` subject and the unsubscribe link the prospect would get.
    """
    from touchflow.bootstrap import runtimes, sender_defaults
    from touchflow.domain.cadence import choose_variant
    from touchflow.domain.engine import EnrollmentView, ExecutedStep, enrollment_key

    if (prospect is None) == (not sample):
        raise typer.BadParameter("give exactly one of --prospect EMAIL or --sample")
    settings = current_settings()
    cadence = cadence_or_exit(settings, cadence_id)
    who = SAMPLE_PROSPECT if sample else _stored_prospect(settings, normalize_email(prospect or ""))
    runtime = runtimes(settings).add(cadence)
    key = enrollment_key(cadence.id, who.email)
    view = EnrollmentView(key, "preview", who, sender_defaults(settings))
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


def _stored_prospect(settings: Settings, email: str) -> Prospect:
    from touchflow.services.prospects import stored_prospect

    found = stored_prospect(engine_for(settings), email)
    if found is None:
        raise fail(f"no prospect {email!r} in the database (import it, or use --sample)")
    return found


@app.command()
def simulate(
    cadence_id: Annotated[str, typer.Argument(metavar="CADENCE")],
    prospects_csv: Annotated[Path, typer.Option("--prospects", exists=True, dir_okay=False)],
    start: Annotated[str, typer.Option("--start", help="ISO 8601 enrollment time.")],
    days: Annotated[int, typer.Option("--days", min=1, max=3660)] = 30,
    events_csv: Annotated[
        Path | None,
        typer.Option("--events", exists=True, dir_okay=False, help="CSV of email,event,at."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Dry run: when each touch would go out. No database writes, no sends."""
    from touchflow.bootstrap import sender_defaults
    from touchflow.domain.normalize import Rejection
    from touchflow.domain.simulate import read_events_csv
    from touchflow.domain.simulate import simulate as run_simulation
    from touchflow.services.importer import read_prospects

    settings = current_settings()
    cadence = cadence_or_exit(settings, cadence_id)
    good: list[Prospect] = []
    rejected = 0
    try:
        # Read as `import` reads it: a file simulate accepts is one import accepts.
        for line, item in read_prospects(prospects_csv):
            if isinstance(item, Rejection):
                rejected += 1
                err.print(f"{prospects_csv}:{line}: skipped: {item.message}", markup=False)
            else:
                good.append(item.to_prospect())
        events = read_events_csv(events_csv) if events_csv else []
    except ValueError as exc:  # ImportFileError is one
        raise fail(str(exc)) from None
    records = run_simulation(
        cadence,
        good,
        start=parse_now(start),
        days=days,
        sender=sender_defaults(settings),
        events=events,
        public_url=settings.public_url,
    )
    if as_json:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return
    table = Table(title=f"{cadence.name}: {len(good)} prospect(s), {days} day(s)")
    for col in ("at (UTC)", "local", "prospect", "step", "channel", "variant / exit"):
        table.add_column(col)
    for r in records:
        if "exit" in r:
            table.add_row(
                r["at"][:16],
                "",
                r["prospect"],
                "",
                "",
                f"[bold]exit: {r['exit']}[/bold] {r.get('field', '')}",
            )
        else:
            table.add_row(
                r["at"][:16],
                r["local_at"][:16] + r["local_at"][-6:],
                r["prospect"],
                r["step"],
                r["channel"],
                r["variant"] or "",
            )
    out.print(table)
    touches = Counter(r["channel"] for r in records if "channel" in r)
    exits = Counter(r["exit"] for r in records if "exit" in r)
    out.print(f"touches: {dict(touches)}  exits: {dict(exits)}")
    if rejected:
        raise typer.Exit(1)


# -- database, import, enroll -------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema (Alembic) on TOUCHFLOW_DATABASE_URL."""
    from touchflow.services.database import upgrade_schema

    settings = current_settings()
    upgrade_schema(engine_for(settings))
    out.print(f"database at head: {settings.database_url}")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="FILE")],
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
    owner: Annotated[str | None, typer.Option("--owner", help="The SDR who owns them.")] = None,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Enroll prospects in a cadence, pinned to its current version."""
    from touchflow.bootstrap import runtimes, sender_defaults
    from touchflow.domain.normalize import Normalized
    from touchflow.services.enrollments import enroll_prospects
    from touchflow.services.importer import read_prospects

    if all_ == (prospects_csv is not None):
        raise typer.BadParameter("give exactly one of --all or --prospects FILE")
    settings = current_settings()
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
        owner_email=owner or settings.sender.owner_email,
        sender=sender_defaults(settings),
        now=at,
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
    now: Annotated[str | None, typer.Option("--now", help="Tick as if it were this time.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
) -> None:
    """One tick now: send what is due, create due tasks (what the run-cadences flow runs)."""
    from touchflow.bootstrap import ticker
    from touchflow.services.tick import recover_step, tick_until_idle

    settings = current_settings()
    at = parse_now(now)
    with ticker(settings) as tk:
        report = tick_until_idle(
            tk,
            at,
            batch_size or settings.batch_size,
            recover=partial(recover_step, announce=out.print),
        ).as_dict()
    table = Table(title=f"tick at {at.isoformat()}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for k, v in report.items():
        table.add_row(k, str(v))
    out.print(table)
    if report.get("failed") or report.get("unknown"):
        raise typer.Exit(1)


@app.command()
def status() -> None:
    """Enrollments by cadence, state and step; touches by channel and status."""
    from touchflow.bootstrap import runtimes
    from touchflow.services.status import enrollment_status

    settings = current_settings()
    rep = enrollment_status(engine_for(settings), runtimes(settings))
    t = Table(title="Enrollments")
    for col in ("cadence", "state", "reason", "count"):
        t.add_column(col, justify="right" if col == "count" else "left")
    for (cid, state, reason), n in sorted(rep.enrollments_by_state.items()):
        t.add_row(cid, state, reason, str(n))
    out.print(t)
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
        u.add_row(channel, st, str(n))
    out.print(u)
    out.print(
        f"open tasks: {rep.open_tasks}; next touch due: "
        f"{rep.next_due_at.isoformat() if rep.next_due_at else '-'}"
    )
    print_guards()


@app.command("tasks")
def list_tasks_cmd(
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    state: Annotated[str, typer.Option("--status", help="open | done | skipped | all")] = "open",
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
) -> None:
    """The SDRs' task list: calls, LinkedIn touches and manual steps."""
    from touchflow.services.tasks import list_tasks

    rows = list_tasks(engine_for(current_settings()), owner=owner, status=state)
    t = Table(title=f"Tasks ({state}): {len(rows)}")
    for col in ("id", "due (UTC)", "channel", "prospect", "owner", "title", "status"):
        t.add_column(col)
    for r in rows[:limit]:
        t.add_row(
            str(r.id),
            r.due_at.isoformat()[:16],
            r.channel,
            r.email,
            r.owner_email,
            r.title,
            r.status + (f" ({r.outcome})" if r.outcome else ""),
        )
    out.print(t)


@task_app.command("done")
def task_done(
    task_id: Annotated[int, typer.Argument(metavar="ID")],
    outcome: Annotated[
        str,
        typer.Option(
            "--outcome",
            help="completed, skipped, connected, "
            "voicemail, no_answer, wrong_number, meeting_booked, "
            "not_interested",
        ),
    ] = "completed",
    notes: Annotated[str | None, typer.Option("--notes")] = None,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Complete a task; the enrollment moves on (timed from now)."""
    from touchflow.bootstrap import runtimes, sender_defaults
    from touchflow.services.tasks import TASK_OUTCOMES, complete_task

    if outcome not in TASK_OUTCOMES:
        raise typer.BadParameter(f"--outcome must be one of {', '.join(TASK_OUTCOMES)}")
    settings = current_settings()
    done = complete_task(
        engine_for(settings),
        runtimes(settings),
        sender_defaults(settings),
        task_id,
        outcome,
        parse_now(now),
        notes,
    )
    if not done:
        raise fail(f"no open task {task_id}")
    out.print(f"task {task_id}: {outcome}")


@app.command()
def event(
    email: Annotated[str, typer.Argument()],
    kind: Annotated[str, typer.Argument(metavar="reply|bounce|unsubscribe|meeting_booked")],
    at: Annotated[str | None, typer.Option("--at")] = None,
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
        engine_for(settings), runtimes(settings), email, kind, when, source="cli"
    )
    if res is None:
        raise fail(f"no prospect {email!r}")
    out.print(f"{email}: {kind}: {res.ended} enrollment(s) ended, {res.kept} kept going")


@app.command()
def retry(
    ids: Annotated[list[int] | None, typer.Argument(metavar="[ENROLLMENT_ID ...]")] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Every failed enrollment.")
    ] = False,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Requeue failed enrollments (after a send failure or a delivery found not to arrive)."""
    from touchflow.services.enrollments import retry_failed

    if bool(ids) == all_failed:
        raise typer.BadParameter("give enrollment ids or --all-failed")
    n = retry_failed(engine_for(current_settings()), None if all_failed else ids, parse_now(now))
    if not n:
        raise fail("no failed enrollment to retry")
    out.print(f"{n} enrollment(s) requeued; the next tick runs their step again")

