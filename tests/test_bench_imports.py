"""Every benchmark in ``bench/`` imports: a renamed module must not break ``make bench``.

The benchmarks run by hand (minutes each), so nothing else would notice an import
that no longer resolves until someone runs them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_benchmark_module_imports(path: Path) -> None:
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines its functions; main() runs only as __main__
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"
