"""Thin Prefect shells over the core: load ids, batch, call the core and connectors."""
