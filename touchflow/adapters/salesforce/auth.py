"""Salesforce auth: the OAuth 2.0 access token and the ``Authorization`` header.

:class:`SalesforceAuth` fetches a token with the client-credentials flow
(``POST /services/oauth2/token``) when none was given or the one in use was
refused; :class:`BearerTransport` puts the current token on every request.
:class:`~touchflow.adapters.salesforce.crm.SalesforceCrm` is both: it holds the
token state these read (set in its ``__init__``) and builds its HTTP clients
on a :class:`BearerTransport`.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import httpx

from touchflow.adapters._http import error_for_exception
from touchflow.adapters._http.client import RetryPolicy, map_status
from touchflow.adapters.salesforce.errors import CONNECTOR, salesforce_error
from touchflow.errors import ConnectorError, FatalError, RetryableError

__all__ = ["BearerTransport", "SalesforceAuth"]


class BearerTransport(httpx.BaseTransport):
    """Sets ``Authorization: Bearer <current token>`` on every request, so a refresh
    applies to the next request of every thread without rebuilding the client."""

    def __init__(self, inner: httpx.BaseTransport, token: Callable[[], str | None]) -> None:
        self._inner = inner
        self._token = token

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        token = self._token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class SalesforceAuth:
    """The token methods of :class:`~touchflow.adapters.salesforce.crm.SalesforceCrm`.

    A mixin: the connector sets the attributes below in its ``__init__``.
    """

    token_url: str
    retry: RetryPolicy
    token_fetches: int
    _client_id: str | None
    _client_secret: str | None
    _token: str | None
    _token_lock: threading.Lock
    _token_client: httpx.Client
    _sleep: Callable[[float], None]

    def _current_token(self) -> str | None:
        return self._token

    @property
    def can_refresh(self) -> bool:
        """Whether client credentials are configured (a 401 can be answered by a new token)."""
        return bool(self._client_id and self._client_secret)

    def authenticate(self, *, stale: str | None = None) -> str:
        """Fetch an access token with the client-credentials flow; the token.

        ``stale``: the token a request was refused with; when another thread
        already replaced it, that newer token is returned without a fetch.
        """
        operation = "authenticate"
        with self._token_lock:
            if self._token and self._token != stale:
                return self._token
            if not self.can_refresh:
                raise FatalError(
                    "the access token was refused and no client credentials are configured",
                    connector=CONNECTOR,
                    operation=operation,
                    status=401,
                    vendor_code="INVALID_SESSION_ID",
                )
            form = {
                "grant_type": "client_credentials",
                "client_id": self._client_id or "",
                "client_secret": self._client_secret or "",
            }
            attempts = max(1, self.retry.max_attempts)
            for attempt in range(1, attempts + 1):
                error: ConnectorError
                try:
                    self.token_fetches += 1
                    response = self._token_client.post(self.token_url, data=form)
                except httpx.HTTPError as exc:
                    error = error_for_exception(exc, connector=CONNECTOR, operation=operation)
                else:
                    if response.is_success:
                        try:
                            token = str(response.json()["access_token"])
                        except (ValueError, KeyError, TypeError) as exc:
                            raise FatalError(
                                "token response without access_token",
                                connector=CONNECTOR,
                                operation=operation,
                                status=response.status_code,
                            ) from exc
                        self._token = token
                        return token
                    error = map_status(
                        response,
                        connector=CONNECTOR,
                        operation=operation,
                        error_parser=salesforce_error,
                    )
                    if response.status_code == 400:  # invalid_client / invalid_grant: auth
                        error = FatalError(
                            f"token request refused ({salesforce_error(response)[0]})",
                            connector=CONNECTOR,
                            operation=operation,
                            status=400,
                            vendor_code=error.vendor_code,
                        )
                if not isinstance(error, RetryableError) or attempt == attempts:
                    raise error
                self._sleep(self.retry.backoff(attempt, random.random()))
        raise AssertionError("unreachable")  # pragma: no cover
