"""The CRM backends the contract suite runs against.

Each entry of :data:`BACKENDS` is a zero-argument callable returning a context
manager that yields ``(connector, standin)``: a :class:`touchflow.domain.crm.CrmConnector`
wired to a fresh :class:`tests.support.standins.crm_base.CrmStandin` on 127.0.0.1,
or ``(FakeCrm, None)`` for the in-memory fake (which offers the data controls
itself and has no HTTP to fail).

Connectors are built for speed: :data:`TEST_RETRY` (``MAX_ATTEMPTS`` attempts,
millisecond backoff), a ``CLIENT_TIMEOUT_S`` client timeout, stand-ins that
hold a ``"timeout"`` request for ``STANDIN_HOLD_S``, and a ``fast_sleep`` that
caps every wait at 20 ms (the stand-ins' scripted failures do not depend on
time, so waiting less changes nothing but the duration).

``salesforce`` comes from ``tests/adapters/crm/salesforce_backend.py``, written with the
Salesforce connector: it must define ``backend()`` returning such a context
manager, built with :data:`TEST_RETRY`, ``fast_sleep`` and the timeouts above.
Until that module exists the parameter is skipped with the reason.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from tests.support.standins.crm_base import CrmStandin
from touchflow.adapters._http.client import RetryPolicy
from touchflow.adapters.fake_crm import FakeCrm
from touchflow.ports import CrmConnector

MAX_ATTEMPTS = 4
TEST_RETRY = RetryPolicy(
    max_attempts=MAX_ATTEMPTS, backoff_base_s=0.005, backoff_max_s=0.02, max_retry_after_s=60.0
)
CLIENT_TIMEOUT_S = 0.3
STANDIN_HOLD_S = 0.6
PAGE_SIZE = 2

Backend = Callable[[], AbstractContextManager[tuple[CrmConnector, CrmStandin | None]]]


def fast_sleep(seconds: float) -> None:
    time.sleep(min(seconds, 0.02))


@contextmanager
def fake() -> Iterator[tuple[CrmConnector, CrmStandin | None]]:
    crm = FakeCrm(page_size=PAGE_SIZE)
    yield crm, None
    crm.close()


@contextmanager
def hubspot() -> Iterator[tuple[CrmConnector, CrmStandin | None]]:
    from tests.support.standins.hubspot_api import HubspotStandin
    from touchflow.adapters.hubspot.crm import HubspotCrm

    with HubspotStandin(page_size=PAGE_SIZE, timeout_hold_s=STANDIN_HOLD_S) as standin:
        crm = HubspotCrm(
            standin.credentials,
            base_url=standin.base_url,
            retry=TEST_RETRY,
            timeout=CLIENT_TIMEOUT_S,
            sleep=fast_sleep,
        )
        try:
            yield crm, standin
        finally:
            crm.close()


@contextmanager
def pipedrive() -> Iterator[tuple[CrmConnector, CrmStandin | None]]:
    from tests.support.standins.pipedrive_api import DOMAIN_FIELD_KEY, PipedriveStandin
    from touchflow.adapters.pipedrive.crm import PipedriveCrm

    with PipedriveStandin(page_size=PAGE_SIZE, timeout_hold_s=STANDIN_HOLD_S) as standin:
        crm = PipedriveCrm(
            standin.credentials,
            base_url=standin.base_url,
            org_domain_field=DOMAIN_FIELD_KEY,
            retry=TEST_RETRY,
            timeout=CLIENT_TIMEOUT_S,
            sleep=fast_sleep,
        )
        try:
            yield crm, standin
        finally:
            crm.close()


def salesforce() -> AbstractContextManager[tuple[CrmConnector, CrmStandin | None]]:
    try:
        module = importlib.import_module("tests.adapters.crm.salesforce_backend")
    except ModuleNotFoundError as exc:
        if exc.name != "tests.adapters.crm.salesforce_backend":
            raise
        pytest.skip("tests/adapters/crm/salesforce_backend.py does not exist yet")
    return module.backend()


BACKENDS: dict[str, Backend] = {
    "fake": fake,
    "hubspot": hubspot,
    "pipedrive": pipedrive,
    "salesforce": salesforce,
}
