"""One error tree for touchflow.

::

    TouchflowError
      ConfigError          bad or missing setting; names the env var or file
      FindingsError        a file touchflow reads is invalid: file:line:col findings
        CadenceError       a cadence or template: bad YAML, unknown template,
                           undefined variable
        ConfigFileError    icp.yaml, team.yaml, routing.yaml, a column map,
                           domain aliases, a routing backtest CSV
      ImportFileError      a prospect file cannot be imported at all (header,
                           no email column); bad rows are set aside
        ImportFormatError  a format or text encoding touchflow does not read
                           (a usage error: the CLI exits 2)
      MissingDataError     a template needs a prospect field that is empty
      TransitionError      an event not allowed in the enrollment's state
      LeadRejected         POST /leads: the lead cannot be taken as sent (422)
      IdempotencyConflict  an Idempotency-Key in use by a request still in flight
                           (409), or reused with another payload (422)
      OwnerRefused         an enrollment owner that is not an email address, or
                           not a team member with a mailbox
      CallRefused          click-to-call must not ring anyone; says why
        TaskNotFound       no task with that id
        CallNotPossible    never for this task as it is (not a call, no phone,
                           no time zone)
        CallNotAllowed     not now (task closed, opted out, suppressed, outside
                           contact hours)
      StoreUnavailable     the database could not be reached or stayed locked:
                           retry later (the API answers 503)
      ConnectorError       carries connector, operation, status, vendor code
        RetryableError     timeouts, 5xx
          RateLimited      429, with retry_after seconds
        FatalError         auth failure, 4xx misconfiguration
        DeliveryUnknown    the provider may or may not have accepted the
                           message (connection lost after the data went out):
                           the touch becomes ``unknown``, never resent blindly
        RecipientRejected  bounce, invalid number, opted out: becomes an
                           enrollment event, never fails the run

Connectors raise these ``from`` the vendor's exception, so vendor exception
types never leave a connector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


class TouchflowError(Exception):
    """Base of every error touchflow raises on purpose."""


class ConfigError(TouchflowError):
    """A bad or missing setting; the message names the env var or file."""


@dataclass(frozen=True, order=True)
class Finding:
    """One validation problem at a position in a file (1-based line and column).

    ``severity`` "warning": valid, but maybe not what the author meant; ``touchflow validate``
    prints it and still succeeds.
    """

    path: str
    line: int
    col: int
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.severity}: {self.message}"


class FindingsError(TouchflowError):
    """A file touchflow reads is invalid; carries one or more findings (file:line:col)."""

    def __init__(self, findings: list[Finding] | Finding) -> None:
        self.findings = [findings] if isinstance(findings, Finding) else list(findings)
        super().__init__("\n".join(str(f) for f in self.findings))


class CadenceError(FindingsError):
    """A cadence or template is invalid."""


class ConfigFileError(FindingsError):
    """A team configuration file (ICP, team, routing, column map, aliases) is invalid."""


class ImportFileError(TouchflowError, ValueError):
    """The input file cannot be imported at all (unknown format, no header, no email column)."""


class ImportFormatError(ImportFileError):
    """The file is in a format (``.xls``) or text encoding touchflow does not read."""


class MissingDataError(TouchflowError):
    """A template needs a prospect field that is empty: never send a blank."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"missing data: {field} is empty")


class TransitionError(TouchflowError):
    """An enrollment event that is not allowed in the enrollment's current state."""

    def __init__(self, event: str, state: str) -> None:
        self.event = event
        self.state = state
        super().__init__(f"event {event!r} is not allowed in state {state!r}")


class LeadRejected(TouchflowError):
    """The lead cannot be taken as sent (bad email, bad field): the API answers 422."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class IdempotencyConflict(TouchflowError):
    """An Idempotency-Key that cannot answer this request: in flight (409) or reused (422)."""

    def __init__(self, message: str, *, in_flight: bool) -> None:
        self.in_flight = in_flight
        super().__init__(message)


class OwnerRefused(TouchflowError):
    """An owner touchflow will not enroll under; ``usage``: the value is not an email at all."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


class CallRefused(TouchflowError):
    """A call that must not be placed; the message says why."""


class TaskNotFound(CallRefused):
    """No task has this id."""


class CallNotPossible(CallRefused):
    """The task can never be called as it is (not a call, no phone, no time zone)."""


class CallNotAllowed(CallRefused):
    """The call is not allowed now (task closed, opted out, suppressed, quiet hours)."""


class StoreUnavailable(TouchflowError):
    """The store could not be reached or stayed locked: the caller should retry later."""


class ConnectorError(TouchflowError):
    """A connector operation failed; says which connector, operation and status."""

    def __init__(
        self,
        message: str,
        *,
        connector: str,
        operation: str,
        status: int | None = None,
        vendor_code: str | None = None,
    ) -> None:
        self.connector = connector
        self.operation = operation
        self.status = status
        self.vendor_code = vendor_code
        parts = [f"{connector}.{operation}"]
        if status is not None:
            parts.append(f"status {status}")
        if vendor_code:
            parts.append(f"code {vendor_code}")
        super().__init__(f"{' '.join(parts)}: {message}")


class RetryableError(ConnectorError):
    """A transient failure (timeout, 5xx): the same call may succeed later."""


class RateLimited(RetryableError):
    """The provider asked us to slow down (429); retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class FatalError(ConnectorError):
    """A failure that retrying will not fix: auth, misconfiguration, bad request."""


class DeliveryUnknown(ConnectorError):
    """The message may have been accepted: the touch is marked ``unknown``, not resent."""


class RecipientRejected(ConnectorError):
    """The recipient cannot receive this message (bounce, invalid number, opted out).

    It becomes an enrollment event (bounce or opt-out); it never fails a run.
    """

    def __init__(self, message: str, *, kind: str = "bounce", **kw: object) -> None:
        self.kind = kind  # "bounce" | "opt_out" | "invalid"
        super().__init__(message, **kw)  # type: ignore[arg-type]
