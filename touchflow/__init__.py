"""touchflow: a code-first outreach cadence orchestrator for B2B sales teams.

The package is the pure domain core: it never imports Prefect, vendor SDKs or
HTTP clients (``tests/test_layers.py`` enforces this), and time always
comes in as an argument.
"""

__version__ = "0.1.0"
