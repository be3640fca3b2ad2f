"""The Salesforce backend of the CRM contract suite: SalesforceCrm against SalesforceStandin.

The connector gets the stand-in's access token and no client credentials, so
a 401 is fatal at once, as the contract expects of every CRM; the token
refresh on INVALID_SESSION_ID is covered in ``tests/adapters/test_salesforce_crm.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.adapters.crm.backends import (
    CLIENT_TIMEOUT_S,
    PAGE_SIZE,
    STANDIN_HOLD_S,
    TEST_RETRY,
    fast_sleep,
)
from tests.support.standins.crm_base import CrmStandin
from tests.support.standins.salesforce_api import SalesforceStandin
from touchflow.adapters.salesforce.crm import SalesforceCrm
from touchflow.ports import CrmConnector


@contextmanager
def salesforce_backend() -> Iterator[tuple[SalesforceCrm, SalesforceStandin]]:
    """A fresh stand-in (query batches of PAGE_SIZE) and a connector with short timeouts."""
    with SalesforceStandin(batch_size=PAGE_SIZE, timeout_hold_s=STANDIN_HOLD_S) as standin:
        crm = SalesforceCrm(
            instance_url=standin.base_url,
            access_token=standin.credentials,
            changes_page_size=PAGE_SIZE,
            retry=TEST_RETRY,
            timeout_s=CLIENT_TIMEOUT_S,
            sleep=fast_sleep,
        )
        try:
            yield crm, standin
        finally:
            crm.close()


@contextmanager
def backend() -> Iterator[tuple[CrmConnector, CrmStandin | None]]:
    """What ``tests/adapters/crm/backends.py`` calls."""
    with salesforce_backend() as (crm, standin):
        yield crm, standin
