"""CLI commands for operating the channels: pauses, suppressions, serve, calls, replies.

Registered on the main ``touchflow`` app by :mod:`touchflow.entrypoints.cli.commands`. Like the
CLI, this is the interface layer: flows, connectors and the API are imported
inside the commands that need them, never at module level.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from touchflow.domain.phones import to_e164
from touchflow.domain.prospects import normalize_email
from touchflow.entrypoints.cli.app import (
    app,
    cadence_id_of,
    current_settings,
    engine_for,
    err,
    fail,
    out,
    parse_now,
    task_app,
)
from touchflow.errors import ConfigError, ConnectorError

cadence_app = typer.Typer(help="Pause and resume whole cadences.", no_args_is_help=True)
suppress_app = typer.Typer(
    help="The global do-not-contact list (email, phone, domain).", no_args_is_help=True
)
app.add_typer(cadence_app, name="cadence")
app.add_typer(suppress_app, name="suppress")

KINDS = ("email", "phone", "domain")


COUNTRY_HELP = "Country of a phone number written without +country code (e.g. US)."


def _normalize(kind: str, value: str, country: str | None = None) -> str:
    if kind not in KINDS:
        raise typer.BadParameter(f"kind must be one of {', '.join(KINDS)}")
    if kind == "email":
        return normalize_email(value)
    if kind == "phone":
        try:
            return to_e164(value, country)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value.strip().lower().removeprefix("@")


# -- cadences ----------------------------------------------------------------------


@cadence_app.command("pause")
def cadence_pause(
    cadence_id: Annotated[str, typer.Argument(metavar="CADENCE")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why, shown by status and cadence paused.")
    ] = "paused by an operator",
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Stop claiming a cadence's enrollments until it is resumed."""
    from touchflow.services.cadence_pauses import pause_cadence

    settings = current_settings()
    cadence_id = cadence_id_of(settings, cadence_id)
    if not pause_cadence(engine_for(settings), cadence_id, reason, parse_now(now)):
        raise fail(f"{cadence_id} is already paused")
    out.print(f"{cadence_id}: paused ({reason})")


@cadence_app.command("resume")
def cadence_resume(
    cadence_id: Annotated[str, typer.Argument(metavar="CADENCE")],
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Resume a paused cadence; the bounce shield starts a fresh sample from now."""
    from touchflow.services.cadence_pauses import resume_cadence

    settings = current_settings()
    if cadence_id.endswith((".yaml", ".yml")):  # a path; a removed cadence resumes by id
        cadence_id = cadence_id_of(settings, cadence_id)
    if not resume_cadence(engine_for(settings), cadence_id, parse_now(now)):
        raise fail(f"{cadence_id} is not paused")
    out.print(f"{cadence_id}: resumed; its due touches go out at the next tick")


@cadence_app.command("paused")
def cadence_paused() -> None:
    """Cadences paused now, with why (the bounce shield says its numbers)."""
    from touchflow.services.cadence_pauses import paused_cadences

    rows = paused_cadences(engine_for(current_settings()))
    if not rows:
        out.print("no cadence is paused")
        return
    t = Table(title="Paused cadences")
    for col in ("cadence", "since (UTC)", "reason"):
        t.add_column(col)
    for r in rows:
        t.add_row(r.cadence_id, r.paused_at.isoformat()[:16], r.reason)
    out.print(t)


# -- suppressions ------------------------------------------------------------------


@suppress_app.command("add")
def suppress_add(
    kind: Annotated[str, typer.Argument(metavar="email|phone|domain", help="What VALUE is.")],
    value: Annotated[str, typer.Argument(help="The address, number or company domain.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why, kept on record with the suppression.")
    ] = "manual",
    country: Annotated[str | None, typer.Option("--country", help=COUNTRY_HELP)] = None,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Never contact this address, number or company domain again (from the next tick)."""
    from touchflow.services.suppressions import suppress

    value = _normalize(kind, value, country)
    at = parse_now(now)
    suppress(engine_for(current_settings()), kind, value, reason=reason, source="cli", now=at)
    out.print(f"suppressed {kind} {value} ({reason})")


@suppress_app.command("remove")
def suppress_remove(
    kind: Annotated[str, typer.Argument(metavar="email|phone|domain", help="What VALUE is.")],
    value: Annotated[str, typer.Argument(help="The address, number or company domain.")],
    country: Annotated[str | None, typer.Option("--country", help=COUNTRY_HELP)] = None,
) -> None:
    """Lift a suppression (only with the person's consent: it is on record why it was added)."""
    from touchflow.services.suppressions import lift_suppression

    value = _normalize(kind, value, country)
    if not lift_suppression(engine_for(current_settings()), kind, value):
        raise fail(f"{kind} {value} is not suppressed")
    out.print(f"{kind} {value}: no longer suppressed")


@suppress_app.command("list")
def suppress_list(
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only email, phone or domain suppressions.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")] = 100,
) -> None:
    """The most recent suppressions with their source and reason."""
    from touchflow.services.suppressions import recent_suppressions

    found = recent_suppressions(engine_for(current_settings()), kind, limit)
    counts = found.counts
    t = Table(title="Suppressions " + ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())))
    for col in ("kind", "value", "reason", "source", "since (UTC)"):
        t.add_column(col)
    for r in found.rows:
        t.add_row(r.kind, r.value, r.reason, r.source, r.created_at.isoformat()[:16])
    out.print(t)


def print_guards(now_text: str | None = None) -> None:
    """The guard section of ``touchflow status``: pauses, mailbox usage, suppressions."""
    from touchflow.bootstrap import cap_policy
    from touchflow.services.status import guard_status

    settings = current_settings()
    policy = cap_policy(settings)
    found = guard_status(engine_for(settings), parse_now(now_text))
    usage, counts = found.mailbox_usage, found.suppressions
    for p in found.pauses:
        err.print(f"[yellow]paused:[/yellow] {p.cadence_id} since {p.paused_at:%Y-%m-%d %H:%M}: "
                  f"{p.reason} (touchflow cadence resume {p.cadence_id})")  # fmt: skip
    if usage:
        t = Table(title="Mailboxes (rolling windows)")
        for col in ("mailbox", "last hour", "hourly cap", "last 24 h", "daily cap"):
            t.add_column(col, justify="left" if col == "mailbox" else "right")
        for mailbox, hour, day in usage:
            caps = policy.for_mailbox(mailbox)
            t.add_row(mailbox, str(hour), str(caps.hourly or "-"), str(day), str(caps.daily or "-"))
        out.print(t)
    if counts:
        out.print("suppressed: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))


# -- the API and calls -------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[
        str, typer.Option("--host", help="The address to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port to listen on.")] = 8000,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = True,
) -> None:
    """Run the API: webhooks, one-click unsubscribe, click-to-call, POST /leads.

    One process; run several behind a proxy to scale.
    """
    import uvicorn

    from touchflow.bootstrap import checked_settings

    # Refuse unsafe settings here, with a clean message; the app factory checks
    # them again (and logs the missing keys) for deployments that run uvicorn.
    settings = checked_settings("serve", log=lambda _: None)
    # Reverse-proxy sign-in trusts a header only from TOUCHFLOW_AUTH__TRUSTED_PROXIES,
    # so the peer address must be the TCP peer's, not one rewritten from X-Forwarded-For.
    proxy_headers = not settings.auth.proxy_header
    # By name, not by import: the API is another edge (uvicorn imports it).
    uvicorn.run(
        "touchflow.entrypoints.api.server:app_from_environment",
        factory=True,
        host=host,
        port=port,
        proxy_headers=proxy_headers,
        server_header=False,
        log_level="info",
        access_log=access_log,
    )


@task_app.command("call")
def task_call(
    task_id: Annotated[
        int, typer.Argument(metavar="ID", help="The task id (see touchflow tasks).")
    ],
    agent_number: Annotated[
        str | None,
        typer.Option("--agent-number", help="Your phone, rung first (default: the sender's)."),
    ] = None,
    country: Annotated[str | None, typer.Option("--country", help=COUNTRY_HELP)] = None,
) -> None:
    """Click-to-call: Twilio rings you, then bridges the prospect of this call task."""
    from touchflow.bootstrap import dialer
    from touchflow.services.calls import place_call

    settings = current_settings()
    agent = agent_number or settings.sender.phone
    caller_id = settings.twilio.from_number or settings.sender.phone
    if not agent or not caller_id:
        raise fail("give --agent-number, and set TOUCHFLOW_TWILIO__FROM_NUMBER (the caller id)")
    try:
        agent, caller_id = to_e164(agent, country), to_e164(caller_id, country)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    base = settings.public_url.rstrip("/")
    sid = place_call(
        engine_for(settings),
        dialer(settings),
        task_id,
        agent_number=agent,
        from_number=caller_id,
        twiml_url=f"{base}/twilio/voice/bridge/{task_id}",
        status_callback_url=f"{base}/webhooks/twilio/call-status?task_id={task_id}",
        now=parse_now(None),
    )
    out.print(f"calling {agent} now (call {sid}); answer to be connected to the prospect.")
    out.print(f"afterwards: touchflow task done {task_id} --outcome connected --notes '...'")


@app.command("replies")
def replies_poll() -> None:
    """Poll the reps' mailboxes once (what the poll-replies deployment runs).

    The mailboxes of ``TOUCHFLOW_REPLIES__MAILBOXES`` and every ``mailbox.imap``
    in config/team.yaml. A mailbox that cannot be opened for want of its
    password is named on stderr (exit 1) after the others were polled.
    """
    from collections import Counter

    from touchflow.bootstrap import reply_mailboxes, reply_poll

    settings = current_settings()
    boxes = reply_mailboxes(settings)
    if not boxes:
        out.print(
            "no mailboxes configured "
            "(TOUCHFLOW_REPLIES__MAILBOXES, or mailbox.imap in config/team.yaml)"
        )
        return
    poll = reply_poll(settings)
    counts: Counter[str] = Counter()
    unopened = 0
    for box in boxes:
        try:
            opened = box.open()
        except ConfigError as exc:
            unopened += 1
            err.print(f"[red]error:[/red] not polled: {box.label}: {exc}")
            continue
        with opened as mailbox:
            counts += poll(mailbox, now=parse_now(None))
    out.print(", ".join(f"{k}: {n}" for k, n in sorted(counts.items())) or "no new messages")
    if unopened:
        raise typer.Exit(1)


@app.command("reconcile")
def reconcile() -> None:
    """Settle touches whose delivery is unknown, from the reps' Sent folders.

    First the claims of crashed ticks older than the lease are recovered
    (their in-flight touches become `unknown`, as at the start of a tick);
    then every `unknown` email touch is looked for, by its Message-ID, in
    the Sent folder of each IMAP mailbox (`TOUCHFLOW_REPLIES__MAILBOXES` and
    `mailbox.imap` in config/team.yaml): found means sent. `touchflow
    replies` (and the poll-replies flow) does the Sent-folder part at every
    poll. Exit 1 when touches stay `unknown` or a mailbox could not be read.
    """
    from touchflow.bootstrap import reply_mailboxes, runtimes, ticker
    from touchflow.services.replies import reconcile_sent
    from touchflow.services.status import enrollment_status
    from touchflow.services.tick import recover_step

    settings = current_settings()
    now = parse_now(None)
    with ticker(settings) as tk:
        recovered = recover_step(tk, now, announce=out.print)["unknown"]
    engine = engine_for(settings)
    cache = runtimes(settings)
    settled = 0
    unread = 0
    boxes = reply_mailboxes(settings)
    for box in boxes:
        try:
            with box.open() as mailbox:
                settled += reconcile_sent(mailbox, engine, cache, now=now)
        except (ConfigError, ConnectorError) as exc:
            unread += 1
            err.print(f"[red]error:[/red] Sent folder not searched: {box.label}: {exc}")
    left = sum(
        n
        for (_ch, st), n in enrollment_status(engine, cache).touches_by_status.items()
        if st == "unknown"
    )
    out.print(
        f"recovered from crashed ticks: {recovered}; found in Sent folders: {settled} "
        f"(of {len(boxes)} mailboxes); still unknown: {left}"
    )
    if left:
        out.print("touchflow retry --force resends them (a recipient may get a message twice)")
    if left or unread:
        raise typer.Exit(1)


@task_app.command("show")
def task_show(
    task_id: Annotated[
        int, typer.Argument(metavar="ID", help="The task id (see touchflow tasks).")
    ],
) -> None:
    """A task with its prospect, their local time and the script or message to use."""
    from touchflow.domain.calendar import resolve_timezone
    from touchflow.services.tasks import task_with_prospect

    row = task_with_prospect(engine_for(current_settings()), task_id)
    if row is None:
        raise fail(f"no task {task_id}")
    zone = resolve_timezone(row.timezone, row.phone, row.country, "UTC")
    local = parse_now(None).astimezone(zone)
    name = " ".join(n for n in (row.first_name, row.last_name) if n) or row.email
    due = f"{row.due_at:%Y-%m-%d %H:%M} UTC"
    out.print(f"[bold]{row.title}[/bold]  ({row.channel}, {row.status}, due {due})")
    out.print(
        f"{name} <{row.email}>, {row.company or '-'}; phone {row.phone or '-'}; "
        f"their time now {local:%a %H:%M} ({zone.key})"
    )
    if row.channel == "call":
        out.print(f"call it: touchflow task call {task_id}")
    out.print()
    out.print(row.body or "(no script)", markup=False)
    from touchflow.domain.guidance.summary import summary_lines
    from touchflow.services.call_summaries import task_summaries

    for stored in task_summaries(engine_for(current_settings()), task_id):
        out.print()
        out.print("[bold]After the call[/bold]")
        out.print("\n".join(summary_lines(stored.summary)), markup=False)
