"""Whether (and how) the bridge starts a call's transcript: the settings and the consent config.

``TOUCHFLOW_TRANSCRIPTS__SOURCE`` picks the source (off, twilio, media_stream);
``config/calls.yaml`` says, per prospect country, whether the call may be
transcribed at all and whether the prospect hears the announcement first.
An invalid ``calls.yaml`` means no transcription (logged): consent is never
assumed.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from sqlalchemy import Connection

from touchflow import bootstrap
from touchflow.domain.call_consent import CallsConfig
from touchflow.entrypoints.api.context import Context
from touchflow.errors import FindingsError
from touchflow.ports import TranscriptionStart
from touchflow.services.calls import call_country

_log = logging.getLogger("touchflow.api.transcripts")
TRANSCRIPTION_PATH = "/webhooks/twilio/transcription"


def calls_config(ctx: Context) -> CallsConfig | None:
    """The consent config, read once per app; None when it is invalid (logged)."""
    hit = ctx.cache.get("calls_config")
    if hit is None:
        try:
            hit = bootstrap.calls_config(ctx.settings)
        except FindingsError as exc:
            _log.error("config/calls.yaml is invalid, calls are not transcribed:\n%s", exc)
            hit = False
        ctx.cache["calls_config"] = hit
    return hit or None


async def transcription_plan(ctx: Context, task_id: int) -> TranscriptionStart | None:
    """How the bridge of ``task_id`` starts its transcript, or None (off, or no consent)."""
    source = ctx.settings.transcripts.source
    if source == "off":
        return None
    config = calls_config(ctx)
    if config is None:
        return None

    def lookup(conn: Connection) -> str | None:
        return call_country(conn, task_id)

    consent = config.for_country(await ctx.transaction(lookup))
    if not consent.transcribe:
        return None
    params = {"task_id": str(task_id), "consent": consent.mode, "language": consent.language}
    if source == "media_stream":
        url = bootstrap.media_stream_url(ctx.settings)
        return TranscriptionStart(
            source=source,
            url=url,
            language=consent.language,
            announcement=consent.announcement,
            parameters=tuple(params.items()),
        )
    base = ctx.settings.public_url.rstrip("/")
    query = urlencode({"task_id": task_id, "consent": consent.mode})
    return TranscriptionStart(
        source=source,
        url=f"{base}{TRANSCRIPTION_PATH}?{query}",
        language=consent.language,
        announcement=consent.announcement,
        partial_results=ctx.settings.transcripts.partial_results,
    )
