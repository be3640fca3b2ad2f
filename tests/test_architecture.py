"""The package's shape, enforced: tiers (import-linter contracts), entry points, the wheel.

The contracts themselves live in ``pyproject.toml`` (``[tool.importlinter]``)
and ``make test`` runs ``lint-imports`` over the real tree. The tests here show
each contract catches the violation it exists for, that every module imports
on its own (no import cycle that only some import orders survive), that both
entry points start, and that only the composition root reads the environment.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "touchflow"
BIN = Path(sys.executable).parent

# One import each contract exists to forbid, as the issue found them (or would).
VIOLATIONS = {
    # The "pure core" imported the store.
    "touchflow/domain/cadence.py": ("tiers", "touchflow.store.schema"),
    # The CLI imported the flows and the API.
    "touchflow/entrypoints/cli/ops.py": ("edges", "touchflow.entrypoints.flows.poll_replies"),
    # The domain reached for SQL.
    "touchflow/domain/scoring.py": ("pure-domain", "sqlalchemy"),
    # A use case started a Prefect task.
    "touchflow/services/tick.py": ("services", "prefect"),
    # An adapter wrote to the store.
    "touchflow/adapters/notify.py": ("adapters", "touchflow.store.enrollments"),
    # A route parsed a vendor payload with the vendor's SDK.
    "touchflow/entrypoints/api/calls.py": ("thin-edges", "twilio"),
    # A CLI command opened a transaction and queried the tables itself.
    "touchflow/entrypoints/cli/leads.py": ("edges-use-services", "touchflow.store.schema"),
}


def _contract_names() -> dict[str, str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c["name"] for c in config["contracts"]}


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lint-imports"), "--config", str(cwd / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": str(BIN)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_each_contract_fails_on_its_violation(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "touchflow", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    clean = _lint_imports(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    for path, (_, module) in VIOLATIONS.items():
        target = tmp_path / path
        target.write_text(target.read_text() + f"\nimport {module}  # injected\n")
    broken = _lint_imports(tmp_path)
    assert broken.returncode != 0
    names = _contract_names()
    assert set(names) == {contract for contract, _ in VIOLATIONS.values()}, "a contract untested"
    for path, (contract, module) in VIOLATIONS.items():
        assert f"{names[contract]} BROKEN" in broken.stdout, (contract, broken.stdout)
        importer = path.removesuffix(".py").replace("/", ".")
        assert f"{importer} -> {module}" in broken.stdout.replace("\n", " "), (path, broken.stdout)


MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if "migrations" not in p.parts and p.name != "__main__.py"
)

# Imports every module first in a fresh set of touchflow modules: a cycle that
# only works in one import order (cli <-> cli_leads once did) fails here.
_EACH_ON_ITS_OWN = textwrap.dedent(
    """
    import importlib, sys, traceback
    failed = []
    for name in sys.argv[1:]:
        for loaded in [m for m in sys.modules if m == "touchflow" or m.startswith("touchflow.")]:
            del sys.modules[loaded]
        try:
            importlib.import_module(name)
        except Exception:
            failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
    print("\\n".join(failed))
    sys.exit(1 if failed else 0)
    """
)


def test_every_module_imports_on_its_own() -> None:
    assert len(MODULES) > 80
    run = subprocess.run(
        [sys.executable, "-c", _EACH_ON_ITS_OWN, *MODULES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "-m", "touchflow", "--help"], [str(BIN / "touchflow"), "--help"]],
    ids=["python -m touchflow", "touchflow"],
)
def test_entry_points_start(command: list[str]) -> None:
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for name in ("validate", "preview", "simulate", "run", "serve", "status", "import", "route"):
        assert name in run.stdout


def test_preview_does_not_load_vendor_sdks() -> None:
    probe = (
        "import sys; from touchflow.entrypoints.cli import app; import touchflow.bootstrap; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'twilio', 'sendgrid', 'prefect'}))"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_serve_names_an_app_factory_that_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from typer.testing import CliRunner
    from uvicorn.importer import import_from_string

    from touchflow.entrypoints.cli import app

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: seen.update(target=target, **kw))
    result = CliRunner().invoke(app, ["serve", "--port", "8123", "--no-access-log"])
    assert result.exit_code == 0, result.output
    assert seen["factory"] is True and seen["port"] == 8123 and seen["access_log"] is False
    assert callable(import_from_string(seen["target"]))


def _reads_environment(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}:
            return True
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Settings":
            return True  # building Settings() reads the environment
    return False


def test_only_the_composition_root_reads_the_environment() -> None:
    readers = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if _reads_environment(p)}
    assert readers == {"touchflow/bootstrap.py"}


def test_the_wheel_holds_the_touchflow_package_only() -> None:
    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = find_packages(where=str(ROOT), **config["packages"]["find"])
    assert found and all(p == "touchflow" or p.startswith("touchflow.") for p in found), found
    assert "touchflow.entrypoints.api" in found and "touchflow.adapters.twilio" in found
