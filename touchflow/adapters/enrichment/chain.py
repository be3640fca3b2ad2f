"""Several enrichers asked in order: the first that knows a domain answers for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from touchflow.domain.enrich import Firmographics
from touchflow.errors import ConfigError
from touchflow.ports import Enricher

__all__ = ["ChainEnricher"]


class ChainEnricher:
    """Asks each enricher in turn for the domains the previous ones did not find."""

    def __init__(self, enrichers: Sequence[Enricher], *, name: str = "chain") -> None:
        if not enrichers:
            raise ConfigError("ChainEnricher needs at least one enricher")
        self.name = name
        self.enrichers = tuple(enrichers)

    def __repr__(self) -> str:
        return f"ChainEnricher({', '.join(e.name for e in self.enrichers)})"

    def lookup(self, domains: Sequence[str]) -> dict[str, Firmographics]:
        found: dict[str, Firmographics] = {}
        remaining = list(dict.fromkeys(domains))
        for enricher in self.enrichers:
            if not remaining:
                break
            hits = enricher.lookup(remaining)
            for domain, firm in hits.items():
                found[domain] = firm if firm.source else _with_source(firm, enricher.name)
            remaining = [d for d in remaining if d not in hits]
        return found

    def close(self) -> None:
        errors: list[BaseException] = []
        for enricher in self.enrichers:
            try:
                enricher.close()
            except Exception as exc:  # close the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]


def _with_source(firm: Firmographics, source: str) -> Firmographics:
    return replace(firm, source=source)
