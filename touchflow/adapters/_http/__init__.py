"""HTTP plumbing shared by the HTTP adapters.

:mod:`.errors` holds the rules every HTTP adapter shares (``Retry-After``,
status -> error, exception table); :mod:`.client` is the CRM connectors'
keep-alive client with retries and quota slow-down, built on them.
"""

from touchflow.adapters._http.errors import (
    HTTPX_ERRORS,
    ExceptionRule,
    HeaderLookup,
    NaiveDates,
    ResetHeader,
    describe,
    error_for_exception,
    error_for_status,
    parse_retry_after,
)

__all__ = [
    "HTTPX_ERRORS",
    "ExceptionRule",
    "HeaderLookup",
    "NaiveDates",
    "ResetHeader",
    "describe",
    "error_for_exception",
    "error_for_status",
    "parse_retry_after",
]
