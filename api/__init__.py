"""touchflow's HTTP API (FastAPI): provider webhooks, one-click unsubscribe, click-to-call.

``touchflow serve`` runs :func:`api.server.serve`; tests build the app with
:func:`create_app` over their own engine, dialer and clock.
"""

from api.app import create_app

__all__ = ["create_app"]
