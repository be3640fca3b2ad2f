"""Cadence versions in the store, and the per-process cache of their runtimes.

A cadence version is the cadence's YAML and templates stored under its content
hash; an enrollment is pinned to one. :class:`RuntimeCache` rebuilds a
:class:`~touchflow.domain.engine.CadenceRuntime` from that snapshot once per
process and version.

Functions take a SQLAlchemy ``Connection`` inside the caller's transaction, so
a CLI command or a flow decides what is atomic. Time comes in as ``now``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from touchflow.domain.cadence import Cadence, load_cadence_source
from touchflow.domain.engine import CadenceRuntime, SenderInfo
from touchflow.domain.unsubscribe import DEV_UNSUBSCRIBE_SECRET
from touchflow.store.prebuilt import dialect_insert
from touchflow.store.schema import cadence_versions

__all__ = ["RuntimeCache", "save_cadence_version"]


def save_cadence_version(conn: Connection, cadence: Cadence, now: datetime) -> str:
    """Store the cadence's YAML and files (templates, named calendars) under its content hash
    (idempotent)."""
    stmt = dialect_insert(conn, cadence_versions).values(
        version=cadence.version,
        cadence_id=cadence.id,
        yaml_text=cadence.yaml_text,
        source_path=cadence.source_path,
        templates=cadence.stored_files,
        created_at=now,
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["version"]))
    return cadence.version


class RuntimeCache:
    """Cadence runtimes by version, rebuilt from the stored snapshot (pinned versions)."""

    def __init__(
        self,
        public_url: str,
        unsubscribe_secret: str = DEV_UNSUBSCRIBE_SECRET,
        sender_defaults: SenderInfo | None = None,
    ) -> None:
        self.public_url = public_url
        self.unsubscribe_secret = unsubscribe_secret
        # For work outside a tick that computes due times (reconciliation).
        self.sender_defaults = sender_defaults
        self._by_version: dict[str, CadenceRuntime] = {}

    def add(self, cadence: Cadence) -> CadenceRuntime:
        runtime = self._by_version.get(cadence.version)
        if runtime is None:
            runtime = CadenceRuntime(
                cadence, public_url=self.public_url, unsubscribe_secret=self.unsubscribe_secret
            )
            self._by_version[cadence.version] = runtime
        return runtime

    def get(self, conn: Connection, version: str) -> CadenceRuntime:
        runtime = self._by_version.get(version)
        if runtime is None:
            row = conn.execute(
                select(cadence_versions).where(cadence_versions.c.version == version)
            ).one()
            cadence = load_cadence_source(row.yaml_text, row.source_path, row.templates)
            runtime = self.add(cadence)
            # Keep the stored key even if the loader's hash ever changes.
            self._by_version[version] = runtime
        return runtime
