"""Write the API's contract: ``python -m touchflow.entrypoints.api.write_openapi [PATH]``.

PATH defaults to ``docs/openapi.json``; ``tests/api/test_contract.py`` fails
when the checked-in copy differs from what the code serves, so a change to
the contract is a visible diff in review.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import create_engine

from touchflow import bootstrap
from touchflow.entrypoints.api.app import create_app
from touchflow.entrypoints.api.contract import render

DEFAULT = Path("docs/openapi.json")


def document() -> str:
    """The document the code serves, as checked in."""
    # It depends on the code only (no setting shows in it): an in-memory store will do.
    return render(create_app(bootstrap.load_settings(), engine=create_engine("sqlite://")))


def main(argv: list[str] | None = None) -> int:
    """Write the contract to ``argv[0]`` (default ``docs/openapi.json``)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0].startswith("-"):  # --help, or a mistyped option: never a file name
        print(__doc__)
        return 0 if args[0] in ("-h", "--help") else 2
    target = Path(args[0]) if args else DEFAULT
    target.write_text(document(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
