"""touchflow's HTTP API (FastAPI): provider webhooks, one-click unsubscribe, click-to-call.

``touchflow serve`` runs :func:`touchflow.entrypoints.api.server.serve`; tests build the app with
:func:`create_app` over their own engine, dialer and clock.
"""

from touchflow.entrypoints.api.app import create_app

__all__ = ["create_app"]
