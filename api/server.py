"""``touchflow serve``: the API under uvicorn."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from flows import wiring
from touchflow.settings import Settings


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API until interrupted (one process; run more behind a proxy to scale).

    Behind a reverse proxy set ``TOUCHFLOW_PUBLIC_URL`` to the public base
    URL: Twilio signatures are checked against it, not the local address.
    """
    tw = settings.twilio
    # Click-to-call answers 503 until Twilio is configured; the rest works without it.
    dialer = wiring.dialer(settings) if tw.account_sid and tw.auth_token else None
    uvicorn.run(
        create_app(
            settings,
            dialer=dialer,
            leads=wiring.lead_services(settings),
            crm=wiring.crm_connector(settings),
            notifier=wiring.notifier(settings),
        ),
        host=host,
        port=port,
        proxy_headers=True,
        server_header=False,
        log_level="info",
    )
