"""The HTML side of the API: the Jinja2 templates and static files the dashboard pages share.

Templates live in ``entrypoints/api/templates`` (``base.html``: the layout,
navigation and filters bar; one template per page), static files in
``entrypoints/api/static`` (``vendor/`` holds Chart.js and its licence, served
from here: no CDN). Both ship as package data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

__all__ = ["NAV", "STATIC_DIR", "static_files", "templates"]

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
templates = Jinja2Templates(directory=str(_HERE / "templates"))

#: The dashboard's sections: (path, label); a None path is not built yet (shown, not linked).
NAV: tuple[tuple[str | None, str], ...] = (
    ("/dashboard", "Overview"),
    ("/dashboard/cadences", "Cadences"),
    ("/dashboard/team", "Team"),
    ("/dashboard/deliverability", "Deliverability"),
    ("/dashboard/pipeline", "Pipeline & forecast"),
    ("/dashboard/accounts", "Accounts"),
    ("/calls", "Live calls"),
)


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(STATIC_DIR))
