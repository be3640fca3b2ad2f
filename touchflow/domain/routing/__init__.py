"""Lead routing: territories, account owners, weighted round robin, caps, PTO, SLA (pure).

Two files, written by RevOps and reviewed in git: ``config/team.yaml`` (who can receive
leads, :mod:`.team`) and ``config/routing.yaml`` (how a lead finds its AE, :mod:`.rules`).

The modules, one job each:

- :mod:`.fields`: the field types and validators both files share.
- :mod:`.team`: ``team.yaml``, :class:`TeamConfig` and its members.
- :mod:`.rules`: ``routing.yaml``, :class:`RoutingConfig`, its rules and their pools.
- :mod:`.checks`: what involves both files (territories, pool members, non-empty pools),
  and the warnings about pools that could surprise (overlapping regions).
- :mod:`.loader`: reading and validating the files, :func:`load_router`.
- :mod:`.router`: :class:`Router` and its :class:`Decision`; eligibility, fallback and
  fairness (weighted round robin) are described there.
- :mod:`.backtesting`: replaying past leads, :func:`backtest` and its report.

Everything here is pure: ``now`` comes in, :class:`RoutingState` (ledger and today's counts)
comes in and is updated in place; ``touchflow.store.routing_store`` loads and saves it.
"""

from touchflow.domain.routing.backtesting import backtest, read_backtest_csv
from touchflow.domain.routing.checks import pool_warnings
from touchflow.domain.routing.loader import load_router, routing_from_yaml, team_from_yaml
from touchflow.domain.routing.router import Decision, LeadInput, LedgerEntry, Router, RoutingState

__all__ = [
    "Decision",
    "LeadInput",
    "LedgerEntry",
    "Router",
    "RoutingState",
    "backtest",
    "load_router",
    "pool_warnings",
    "read_backtest_csv",
    "routing_from_yaml",
    "team_from_yaml",
]
