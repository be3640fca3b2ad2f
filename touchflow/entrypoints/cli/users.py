"""``touchflow users add|list|remove``: who may sign in to the dashboard.

Registered on the main ``touchflow`` app by :mod:`touchflow.entrypoints.cli`.
Passwords are read from a prompt (typed twice, not echoed) or, for scripts,
from standard input with ``--password-stdin``; never from an argument (it
would land in the shell's history and the process list).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from touchflow.entrypoints.cli.app import app, current_settings, engine_for, fail, out

users_app = typer.Typer(help="Dashboard users: add, list, remove.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="Their email (what they sign in with).")],
    role: Annotated[
        str,
        typer.Option(
            "--role", help="admin (everything), manager (their team) or rep (their own numbers)."
        ),
    ],
    manager: Annotated[
        str | None,
        typer.Option("--manager", help="Their manager's email: that manager sees their numbers."),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    no_password: Annotated[
        bool,
        typer.Option(
            "--no-password",
            help="No password: they sign in only through the reverse proxy's header.",
        ),
    ] = False,
) -> None:
    """Add a user (or change an existing one's role, manager and password)."""
    from touchflow.services.users import UserError, add_user

    if role not in ("admin", "manager", "rep"):
        raise typer.BadParameter("--role must be admin, manager or rep")
    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not no_password:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        new = add_user(
            engine_for(current_settings()),
            email,
            role,
            datetime.now(UTC),
            manager=manager,
            password=password,
        )
    except UserError as exc:
        raise fail(str(exc)) from None
    out.print(f"{'added' if new else 'updated'} {email.strip().lower()} ({role})")


@users_app.command("list")
def users_list() -> None:
    """The users, with their role, manager and whether they have a password."""
    from touchflow.services.users import list_users

    rows = list_users(engine_for(current_settings()))
    if not rows:
        out.print("no users yet: touchflow users add EMAIL --role admin")
        return
    table = Table("email", "role", "manager", "sign-in")
    for u in rows:
        table.add_row(
            u.email, u.role, u.manager_email or "", "password" if u.has_password else "proxy only"
        )
    out.print(table)


@users_app.command("remove")
def users_remove(email: Annotated[str, typer.Argument(help="The user's email.")]) -> None:
    """Remove a user: their sessions stop working at their next request."""
    from touchflow.services.users import remove_user

    if not remove_user(engine_for(current_settings()), email):
        raise fail(f"no user {email!r}")
    out.print(f"removed {email.strip().lower()}")
