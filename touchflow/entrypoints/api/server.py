"""The production app, as ``touchflow serve`` starts it under uvicorn."""

from __future__ import annotations

import gc

from fastapi import FastAPI

from touchflow import bootstrap
from touchflow.entrypoints.api.app import create_app
from touchflow.settings import Settings


def build_app(settings: Settings) -> FastAPI:
    """The production app: the configured store, dialer, lead intake, CRM and notifier."""
    tw = settings.twilio
    # Click-to-call answers 503 until Twilio is configured; the rest works without it.
    dialer = bootstrap.dialer(settings) if tw.account_sid and tw.auth_token else None
    return create_app(
        settings,
        dialer=dialer,
        leads=bootstrap.lead_services(settings),
        crm=bootstrap.crm_connector(settings),
        notifier=bootstrap.notifier(settings),
    )


def app_from_environment() -> FastAPI:
    """The app over this process's settings, for uvicorn's ``factory=True``.

    Refuses to start on unsafe production settings and names each provider
    key that is missing (:func:`touchflow.bootstrap.checked_settings`). Behind
    a reverse proxy set ``TOUCHFLOW_PUBLIC_URL`` to the public base URL:
    Twilio signatures are checked against it, not the local address.
    """
    app = build_app(bootstrap.checked_settings("serve"))
    # Everything loaded so far (libraries, config, cadences) lives as long as the
    # process: keep it out of the cyclic collector, whose full passes over it
    # were pauses of tens of ms in the middle of requests.
    gc.collect()
    gc.freeze()
    return app
