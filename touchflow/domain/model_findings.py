"""Pydantic validation errors as ``file:line:col`` findings, for every YAML config.

Cadences (``cadences/*.yaml``), the ICP (``config/icp.yaml``) and the team and
routing files are parsed with :func:`touchflow.domain.yaml_source.parse_yaml` (which
keeps each value's position) and validated with a pydantic model. This module
turns what pydantic reports into findings at the right place in the file:

* an unknown key points at the key, with a "did you mean" from the model that
  sits there (:func:`model_at`, walked from the file's own root model);
* a missing key points at the mapping that lacks it;
* a check that raised :func:`at` points at ``loc + where`` (or its key);
* anything else gets the dotted path and pydantic's message.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from touchflow.domain.yaml_source import YamlDocument, parse_yaml
from touchflow.errors import ConfigFileError, Finding, FindingsError

__all__ = [
    "at",
    "findings_of",
    "hint",
    "label",
    "model_at",
    "model_findings",
    "model_from_yaml",
    "read_text",
    "reported_as",
]

M = TypeVar("M", bound=BaseModel)


def at(message: str, *where: str | int, key: bool = False) -> PydanticCustomError:
    """A validation error reported at ``loc + where``; ``key=True`` points at the key."""
    return PydanticCustomError(
        "touchflow", "{message}", {"message": message, "at": where, "key": key}
    )


def hint(value: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else `` (allowed: a, b, ...)``."""
    close = difflib.get_close_matches(value, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(choices)})"


def read_text(path: Path) -> str:
    """A file's text; a FindingsError (at line 1) when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FindingsError(Finding(str(path), 1, 1, f"cannot read file: {exc}")) from exc


@contextmanager
def reported_as(error: type[FindingsError]) -> Iterator[None]:
    """Findings of the shared readers (a file that cannot be read, bad YAML) raised as ``error``.

    Used as a decorator on a loader, so a broken ``icp.yaml`` is a
    :class:`~touchflow.errors.ConfigFileError` and a broken cadence a
    :class:`~touchflow.errors.CadenceError`, whichever step found the problem.
    """
    try:
        yield
    except error:
        raise
    except FindingsError as exc:
        raise error(exc.findings) from None


def label(loc: Sequence[Any], root: str) -> str:
    """``steps[2].channel`` for a pydantic location; ``root`` for the whole file."""
    out = ""
    for comp in loc:
        if isinstance(comp, int):
            out += f"[{comp}]"
        elif isinstance(comp, str) and not any(c in comp for c in "[]()'"):
            out += f".{comp}" if out else comp
    return out or root


def model_at(root: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model whose mapping sits at ``loc`` below ``root`` (None: not a model there).

    A list is stepped into by its index, or directly when the location has no
    index (a single mapping given where a list is allowed, see ``squash``); a
    mapping of names to models by the name.
    """
    model: Any = root
    for comp in loc:
        if get_origin(model) is dict:  # a mapping of names to models: step into the value
            model = get_args(model)[1]
            continue
        if get_origin(model) is list:
            model = get_args(model)[0]
            if isinstance(comp, int):
                continue
        if isinstance(comp, int):
            return None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        info = model.model_fields.get(comp)
        if info is None:
            return None
        model = info.annotation
        # Optional[X] / X | None -> X
        args = [a for a in get_args(model) if a is not type(None)]
        if get_origin(model) is not list and len(args) == 1:
            model = args[0]
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _in_file(doc: YamlDocument, loc: Sequence[Any]) -> tuple[Any, ...]:
    """``loc`` without the list index pydantic adds when one mapping stands for a list."""
    out: tuple[Any, ...] = ()
    for comp in loc:
        if isinstance(comp, int) and (*out, comp) not in doc.positions and out in doc.positions:
            continue
        out = (*out, comp)
    return out


def model_findings(
    doc: YamlDocument,
    exc: ValidationError,
    root: type[BaseModel],
    *,
    name: str,
    squash: bool = False,
) -> list[Finding]:
    """``exc`` (from validating ``doc.data`` with ``root``) as findings; ``name`` labels
    the whole file. ``squash``: the model accepts one mapping where a list is allowed,
    so locations drop the index pydantic adds for it."""

    def place(loc: Sequence[Any]) -> tuple[Any, ...]:
        return _in_file(doc, loc) if squash else tuple(loc)

    findings = []
    for err in exc.errors(include_url=False):
        loc = place(err["loc"])
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            key = loc[-1]
            message = f"unknown key {key!r}"
            model = model_at(root, loc[:-1])
            if model is not None and isinstance(key, str):
                # The keys people write: a field's alias where it has one (``from``).
                keys = [f.alias or name for name, f in model.model_fields.items()]
                message += hint(key, keys)
            findings.append(doc.finding(loc, message, key=True))
            continue
        if kind == "missing":
            findings.append(doc.finding(loc[:-1], f"missing required key {loc[-1]!r}"))
            continue
        if kind == "touchflow":
            loc = place((*loc, *ctx.get("at", ())))
            message = f"{label(loc, name)}: {ctx['message']}"
            findings.append(doc.finding(loc, message, key=bool(ctx.get("key"))))
            continue
        if loc and loc[-1] == "[key]":  # a bad mapping key (``windows: {ir: ...}``): at the key
            loc = loc[:-1]
            message = err["msg"].removeprefix("Value error, ")
            findings.append(doc.finding(loc, f"{label(loc, name)}: {message}", key=True))
            continue
        message = err["msg"].removeprefix("Value error, ")
        if kind != "value_error" and "input" in err:
            message = f"{message[:1].lower()}{message[1:]}"
            if not isinstance(err["input"], dict | list):
                message = f"{message}, got {err['input']!r}"
        findings.append(doc.finding(loc, f"{label(loc, name)}: {message}"))
    return findings


def model_from_yaml(
    model: type[M],
    text: str,
    path: str,
    *,
    not_a_mapping: str,
    empty_is_default: bool = False,
    name: str | None = None,
    squash: bool = False,
    checks: Callable[[YamlDocument, M], Iterable[Finding]] | None = None,
) -> tuple[M, YamlDocument]:
    """A config file's text validated with ``model``, and its document (positions).

    Raises :class:`~touchflow.errors.ConfigFileError` with every finding, each
    at its ``file:line:col``: YAML syntax, a file that is not a mapping
    (``not_a_mapping`` says what it should be), pydantic's errors, then
    ``checks`` (cross-field rules, run on a valid model only).
    ``empty_is_default``: an empty file is the model's defaults.
    """
    doc = parse_yaml(text, path)
    findings = list(doc.findings)
    parsed: M | None = None
    if doc.data is None and empty_is_default:
        parsed = model()
    elif not isinstance(doc.data, dict):
        findings.append(Finding(path, *doc.position_for(()), not_a_mapping))
    else:
        try:
            parsed = model.model_validate(doc.data)
        except ValidationError as exc:
            label_ = name or PurePosixPath(path).stem
            findings.extend(model_findings(doc, exc, model, name=label_, squash=squash))
        else:
            if checks is not None:
                findings.extend(checks(doc, parsed))
    if findings or parsed is None:
        raise ConfigFileError(sorted(set(findings)))
    return parsed, doc


def findings_of(load: Callable[[str, str], object], text: str, path: str) -> list[Finding]:
    """Every problem ``load`` finds in a config text (empty when it is valid)."""
    try:
        load(text, path)
    except FindingsError as exc:
        return exc.findings
    return []
