"""``intake``: a prospect file in, qualified leads out, in batches.

Import (stream, normalize, dedupe, match accounts) -> enrich the accounts ->
score every prospect -> route the unrouted ones to AEs -> queue their CRM
pushes. One Prefect task per stage, each working the whole base in batches
inside the core (never one task per prospect). Re-running it is safe: the
import changes nothing the second time, enrichment and scoring only write
changes, routing skips routed prospects and the CRM push is an upsert.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow

from touchflow.bootstrap import (
    checked_settings,
    crm_connector,
    database,
    enricher,
    load_settings,
)
from touchflow.domain.routing import load_router
from touchflow.domain.scoring import load_icp
from touchflow.entrypoints.flows.tasks import batch_task, flow_log, log_summary
from touchflow.services.enrichment import enrich_accounts
from touchflow.services.importer import load_aliases, run_import
from touchflow.services.routing import route_qualified
from touchflow.services.scoring import rescore_all

stage = batch_task(retry_delay_seconds=5)


@stage
def import_file(path: str, now: datetime) -> dict[str, int]:
    """Stream the file into the store; counts (bad rows go to the rejects file)."""
    settings = load_settings()
    aliases_file = settings.config_dir / "domain_aliases.yaml"
    summary = run_import(
        database(settings),
        Path(path),
        aliases=load_aliases(aliases_file) if aliases_file.exists() else None,
        now=now,
    )
    return {"new": summary.new, "updated": summary.updated, "rejected": summary.rejected_total}


@stage
def enrich(now: datetime) -> dict[str, int]:
    """Firmographics for every account (offline file first, then the REST provider)."""
    settings = load_settings()
    source = enricher(settings)
    if source is None:
        return {}
    try:
        with database(settings).begin() as conn:
            r = enrich_accounts(conn, source, now)
    finally:
        source.close()
    return {"enriched": r.enriched, "not_found": r.not_found}


@stage
def score(now: datetime) -> dict[str, int]:
    """Rescore the whole base against config/icp.yaml."""
    settings = load_settings()
    r = rescore_all(database(settings), load_icp(settings.config_dir / "icp.yaml"), now)
    return {"scored": r.scored, "changed": r.changed}


@stage
def route(now: datetime) -> dict[str, int]:
    """Route unrouted, qualified prospects to AEs and queue them for the CRM."""
    settings = load_settings()
    router = load_router(settings.config_dir)
    connector = crm_connector(settings)
    with database(settings).begin() as conn:
        decisions = route_qualified(
            conn, router, now, crm=connector.name if connector is not None else None
        )
    return {"routed": len(decisions), "fallback": sum(d.fallback for d in decisions)}


@flow(name="intake", log_prints=True, persist_result=False)
def intake(path: str | None = None, now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Import ``path`` (if given), then enrich, score and route the base."""
    started, log = time.perf_counter(), flow_log()
    checked_settings("worker", log=log.warning)
    at = now or datetime.now(UTC)
    out: dict[str, dict[str, int]] = {}
    if path:
        out["import"] = import_file(path, at)
    out["enrich"] = enrich(at)
    out["score"] = score(at)
    out["route"] = route(at)
    log_summary(log, "intake", out, started)
    return out


if __name__ == "__main__":
    import sys

    print(intake(sys.argv[1] if len(sys.argv) > 1 else None))
