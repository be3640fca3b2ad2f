"""The core never imports Prefect, vendor SDKs, HTTP clients or connectors."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "touchflow"
FORBIDDEN = (
    "prefect",
    "sendgrid",
    "twilio",
    "httpx",
    "requests",
    "connectors",
    "flows",
    "aiosmtpd",
    "smtplib",
)
# The CLI is the interface layer: it reaches flows through the composition root,
# inside the commands that need them only (checked below: no module-level import).
INTERFACE = {"cli.py", "cli_ops.py", "cli_leads.py"}


def _imports(tree: ast.AST, top_level_only: bool) -> list[str]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))  # type: ignore[attr-defined]
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_imports(path: Path):
    tree = ast.parse(path.read_text())
    top_only = path.name in INTERFACE and path.parent == CORE
    bad = [n for n in _imports(tree, top_only) if n.split(".")[0] in FORBIDDEN]
    assert not bad, f"{path.relative_to(CORE)} imports {bad}"


def test_only_the_composition_root_reads_the_environment():
    offenders = []
    for path in CORE.rglob("*.py"):
        src = path.read_text()
        if "os.environ" in src or "getenv(" in src:
            offenders.append(str(path.relative_to(CORE)))
    assert not offenders
