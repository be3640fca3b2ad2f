"""Scoring the base against the ICP: rescore everyone, explain one prospect's score.

``touchflow score`` and the ``intake`` flow rescore every prospect in one
transaction (:func:`rescore_all`); ``touchflow explain`` recomputes one
prospect's score with its reasons next to what is stored (:func:`explain_score`,
read-only). ``POST /leads`` scores its one lead inside
:func:`touchflow.services.leads.process_lead`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from touchflow.domain.prospects import normalize_email
from touchflow.domain.scoring import IcpConfig
from touchflow.store.scores import Explanation, RescoreReport, explain, rescore

__all__ = ["Explanation", "RescoreReport", "explain_score", "rescore_all"]


def rescore_all(engine: Engine, icp: IcpConfig, now: datetime) -> RescoreReport:
    """Score every prospect as of ``now`` and store what changed (with its history)."""
    with engine.begin() as conn:
        return rescore(conn, icp, now)


def explain_score(engine: Engine, icp: IcpConfig, email: str, now: datetime) -> Explanation | None:
    """Why the prospect at ``email`` scores what they score now, and their history.

    None when no prospect has that address. Nothing is written.
    """
    with engine.connect() as conn:
        return explain(conn, icp, normalize_email(email), now)
