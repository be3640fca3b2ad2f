"""The ``touchflow`` typer app and the helpers every command module shares.

Exit codes: 0 ok, 1 findings or failure, 2 usage error.

This is the interface layer: unlike the rest of ``touchflow/`` it may reach
the flows and connectors, and does so only inside the commands that need them
(through ``touchflow.bootstrap``, the composition root), so ``validate`` or
``simulate`` never start Prefect.
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer
from rich.console import Console
from typer.core import TyperGroup

from touchflow.domain.cadence import Cadence, load_cadence
from touchflow.errors import CadenceError, FindingsError, TouchflowError
from touchflow.settings import Settings

if TYPE_CHECKING:
    from touchflow.domain.pipeline import Pipeline

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class TouchflowGroup(TyperGroup):
    """The root command: one-line errors instead of tracebacks, and help without noise.

    Every command runs inside :meth:`invoke`, so a touchflow error, or a
    database that is missing, unreachable or without its schema, ends as
    ``error: ...`` on one line and exit code 1, under ``python -m touchflow``,
    the ``touchflow`` script and typer's test runner alike. Other exceptions
    are bugs and keep their traceback.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _tidy_help(self)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TouchflowError as exc:
            _print_error(str(exc))
            raise typer.Exit(1) from None
        except Exception as exc:
            from touchflow.bootstrap import explain_failure

            message = explain_failure(exc)
            if message is None:
                raise
            _print_error(message)
            raise typer.Exit(1) from None


def _print_error(message: str) -> None:
    err.print("[red]error:[/red] ", end="")
    err.print(message, markup=False)


#: Help for parameters many commands share, when a command does not give its own.
NOW_HELP = "Act as if it were this time (ISO 8601, e.g. 2026-12-02T20:30:00Z); default: now."
CADENCE_HELP = "A cadence id (enterprise-outbound) or its file (cadences/enterprise-outbound.yaml)."
_SHARED_HELP = {"now": NOW_HELP, "cadence_id": CADENCE_HELP}
_SHARED_METAVARS = {"now": "ISO8601", "at": "ISO8601", "start": "ISO8601"}

# RST roles and literals in docstrings (``x``, :func:`x`) read as noise in a terminal.
_RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_RST_LITERAL = re.compile(r"``(.+?)``")


def _plain(text: str) -> str:
    return _RST_LITERAL.sub(r"`\1`", _RST_ROLE.sub(r"`\1`", text))


def _tidy_help(command: Any) -> None:
    """Help texts without RST markup and without the parameter types typer prints.

    Typer shows ``<str>``, ``<bool>``, ``<int range> [1<=x<=3660]`` and
    ``<list[Path]>`` beside every parameter; here a value gets a word (``FILE``,
    ``N``, ``TEXT``, or its own ``metavar``), a flag gets none, and a range
    is said in the help text. ``--now`` and a CADENCE get their shared help
    when the command gives none.
    """
    if command.help:
        command.help = _plain(command.help)
    for param in command.params:
        if not param.help:
            param.help = _SHARED_HELP.get(param.name)
        if param.metavar is None:
            param.metavar = _SHARED_METAVARS.get(param.name)
        if param.help:
            param.help = _plain(param.help)
        span = _range_words(param.min, param.max) if param.help else None
        if span:
            param.help = f"{param.help} ({span})"
        param.min = param.max = None  # display only: the parser still checks the range
        if getattr(param, "is_bool_flag", False):
            param.metavar = ""
        elif param.metavar is None:
            word = _value_word(param)
            param.metavar = f"{word}..." if param.nargs != 1 else word
        if param.param_type_name == "argument":
            # Typer shows an argument's type beside its name: the name says enough.
            param.display_type_rich = lambda ctx: None
    command.get_help_option = _without_type(command.get_help_option)
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)


def _without_type(get_help_option: Any) -> Any:
    """``--help`` is made when help is shown: make it without its ``<bool>`` too."""

    def made(ctx: Any) -> Any:
        option = get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    return made


def _range_words(low: float | None, high: float | None) -> str | None:
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"at least {low}"
    if high is not None:
        return f"at most {high}"
    return None


def _value_word(param: Any) -> str:
    """A word for what a parameter takes: FILE, DIR, PATH, N, NUMBER, or TEXT (or its name)."""
    desc = param.type_descriptor
    kind = desc.annotation
    if desc.is_list or desc.is_tuple:
        kind = (get_args(kind) or (str,))[0]
    if desc.is_path or desc.is_file or kind is Path:
        return {"file": "FILE", "directory": "DIR"}.get(desc.path_type, "PATH")
    if kind is int:
        return "N"
    if kind is float:
        return "NUMBER"
    return param.name.upper() if param.param_type_name == "argument" else "TEXT"


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("touchflow")
        except PackageNotFoundError:  # running from a source tree that is not installed
            from touchflow import __version__ as number
        out.print(f"touchflow {number}")
        raise typer.Exit()


app = typer.Typer(
    name="touchflow",
    cls=TouchflowGroup,
    help="Code-first outreach cadences: validate, preview, simulate and run them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print touchflow's version and exit.",
        ),
    ] = False,
) -> None:
    """Code-first outreach cadences: validate, preview, simulate and run them."""


db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
task_app = typer.Typer(help="Work one task (call, LinkedIn, manual).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(task_app, name="task")


def current_settings() -> Settings:
    """This process's settings (environment and ``.env``), through the composition root."""
    from touchflow.bootstrap import load_settings

    return load_settings()


def parse_now(value: str | None) -> datetime:
    """``--now``/``--at`` as an aware time (now when not given); a usage error if unreadable."""
    from touchflow.domain.simulate import parse_instant

    if value is None:
        return datetime.now(UTC)
    try:
        return parse_instant(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}") from None


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` and return the exit (code 1) for the caller to raise."""
    _print_error(message)
    return typer.Exit(1)


def cadence_ids(settings: Settings) -> list[str]:
    """The cadences in the cadences folder, by id (a cadence's id is its file name)."""
    folder = settings.cadences_dir
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def cadence_path(settings: Settings, cadence: str) -> Path:
    """The file of a cadence given by id (``enterprise-outbound``) or by path (``cadences/x.yaml``).

    An unknown one is exit code 1 with the cadences there are and the nearest
    to what was typed.
    """
    looks_like_path = cadence.endswith((".yaml", ".yml")) or "/" in cadence or "\\" in cadence
    path = Path(cadence) if looks_like_path else settings.cadences_dir / f"{cadence}.yaml"
    if path.is_file():
        return path
    known = cadence_ids(settings)
    typed = Path(cadence).stem if looks_like_path else cadence
    near = difflib.get_close_matches(typed, known, n=1)
    hint = f"; did you mean {near[0]!r}" if near else ""
    listing = ", ".join(known) if known else f"none ({settings.cadences_dir} has no *.yaml)"
    raise fail(f"no cadence {cadence!r} ({path} does not exist){hint}; cadences: {listing}")


def cadence_id_of(settings: Settings, cadence: str) -> str:
    """The id of a cadence given by id or by path (see :func:`cadence_path`)."""
    path = cadence_path(settings, cadence)
    if path.parent.resolve() == settings.cadences_dir.resolve():
        return path.stem
    return cadence_or_exit(settings, cadence).id


def cadence_or_exit(settings: Settings, cadence: str) -> Cadence:
    """The cadence given by id or path, or its findings printed and exit code 1."""
    path = cadence_path(settings, cadence)
    try:
        return load_cadence(
            path, settings.templates_dir, settings.calendars_file, settings.guidance_file
        )
    except CadenceError as exc:
        for finding in exc.findings:
            err.print(str(finding), markup=False)
        raise typer.Exit(1) from None


def engine_for(settings: Settings) -> Any:
    """The configured database's engine (one per URL per process)."""
    from touchflow.bootstrap import database

    return database(settings)


def pipeline_or_exit(settings: Settings) -> Pipeline:
    """config/pipeline.yaml, or its findings printed and exit code 1."""
    from touchflow.domain.pipeline import load_pipeline

    path = settings.config_dir / "pipeline.yaml"
    if not path.exists():
        raise fail(f"no pipeline: {path} does not exist (stages, forecast categories)")
    try:
        return load_pipeline(path)
    except FindingsError as exc:
        for finding in exc.findings:
            out.print(str(finding), markup=False, soft_wrap=True)
        err.print(f"{len(exc.findings)} error(s)")
        raise typer.Exit(1) from None
