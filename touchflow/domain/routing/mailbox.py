"""A team member's mailbox in ``config/team.yaml``: who their email goes out as, and how (pure)::

    members:
      - email: sam@yourco.com
        name: Sam Rivera
        role: sdr
        mailbox:
          from: sam@yourco.com           # the From address (default: the member's email)
          name: Sam Rivera                # the display name (default: the member's name)
          title: Account Development Rep
          phone: "+1 646 555 0142"
          signature: |                    # templates print it as {{ sender.signature }}
            Sam Rivera | yourco
          postal_address: "yourco Inc., 100 Broadway, New York, NY 10005, USA"
          smtp: {host: smtp.office365.com, port: 587, username: sam@yourco.com,
                 password_env: SAM_SMTP_PASSWORD}
          imap: {host: outlook.office365.com, username: sam@yourco.com,
                 password_env: SAM_IMAP_PASSWORD}

Secrets are never written here: a password or API key is named by the
environment variable that holds it (``password_env``, ``api_key_env``), which
the composition root reads. A literal ``password:`` is a validation error, so
a reviewed file in git never carries one.

How a mailbox sends: ``smtp:`` through its own server with its own login,
``sendgrid:`` through SendGrid (the deployment's key, or ``api_key_env``), and
with neither through the deployment's email transport, with this From address.
"""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from touchflow.domain.cadence import _check_zone
from touchflow.domain.model_findings import at as _at
from touchflow.domain.phones import to_e164
from touchflow.domain.routing.fields import ConfigModel, Email

__all__ = ["ImapAccount", "Mailbox", "SendgridAccount", "SmtpAccount"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Keys that would hold a secret in the file itself, and the key to use instead.
_LITERAL_SECRETS = {"password": "password_env", "api_key": "api_key_env"}


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(
            f"{value!r} is not an environment variable name (letters, digits and '_', "
            "e.g. SAM_SMTP_PASSWORD)"
        )
    return value


class _Account(ConfigModel):
    """A server login whose secret lives in an environment variable, never in the file."""

    @model_validator(mode="before")
    @classmethod
    def _no_literal_secret(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for literal, ref in _LITERAL_SECRETS.items():
                if literal in data:
                    raise _at(
                        f"no secrets in team.yaml (it is reviewed in git): move the {literal} "
                        f"to an environment variable and name it, e.g. "
                        f"{ref}: {_example_env(data)}",
                        literal,
                        key=True,
                    )
        return data


def _example_env(data: dict[str, Any]) -> str:
    user = str(data.get("username") or "rep").split("@", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9]+", "_", user).strip("_").upper() or "REP"
    return f"{stem}_PASSWORD" if "password" in data else f"{stem}_SENDGRID_KEY"


class SmtpAccount(_Account):
    """The member's own SMTP server and login (submission on 587 with STARTTLS by default)."""

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password_env: str | None = None  # the variable holding the password
    starttls: bool = True
    ssl: bool = False  # implicit TLS (port 465); then starttls is ignored
    timeout_s: float = Field(default=30.0, gt=0)
    # Parallel connections per sending process (Microsoft 365 allows 3 per mailbox).
    pool_size: int = Field(default=4, ge=1, le=32)

    @field_validator("password_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        return _opt_env(value)

    @model_validator(mode="after")
    def _login_complete(self) -> Self:
        if (self.username is None) != (self.password_env is None):
            missing = "password_env" if self.password_env is None else "username"
            raise _at(f"a login needs both username and password_env: add {missing}", missing)
        return self


class SendgridAccount(_Account):
    """Send through SendGrid; ``api_key_env`` names a key of its own (a subuser's)."""

    api_key_env: str | None = None  # None: the deployment's TOUCHFLOW_SENDGRID__API_KEY

    @field_validator("api_key_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        return _opt_env(value)


class ImapAccount(_Account):
    """The member's mailbox polled for replies."""

    host: str
    port: int = Field(default=993, ge=1, le=65535)
    username: str
    password_env: str
    ssl: bool = True  # implicit TLS; set false and starttls true for port 143
    starttls: bool = False
    folder: str = "INBOX"
    processed_folder: str | None = "touchflow-processed"
    sent_folder: str | None = None  # None: the folder the server marks \\Sent, else "Sent"

    @field_validator("password_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return _check_env_name(value)


def _opt_env(value: str | None) -> str | None:
    return None if value is None else _check_env_name(value)


class Mailbox(ConfigModel):
    """The identity a member's email goes out under, and the accounts behind it."""

    from_: Email | None = Field(default=None, alias="from")  # None: the member's email
    name: str | None = None  # None: the member's name
    title: str | None = None
    company: str | None = None  # None: TOUCHFLOW_SENDER__COMPANY
    phone: str | None = None
    signature: str | None = None
    postal_address: str | None = None  # None: TOUCHFLOW_COMPLIANCE__POSTAL_ADDRESS
    timezone: str | None = None  # for `timezone: sender` cadences; None: working hours' zone
    smtp: SmtpAccount | None = None
    sendgrid: SendgridAccount | None = None
    imap: ImapAccount | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        if self.smtp is not None and self.sendgrid is not None:
            raise _at("a mailbox sends through smtp or sendgrid, not both", "sendgrid", key=True)
        if self.signature is not None:
            self.signature = self.signature.rstrip("\n")
        return self

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        # Kept as written (templates print it), but it must be a real number with
        # its country code: texts may go out from it (no TOUCHFLOW_TWILIO__FROM_NUMBER).
        if value is not None:
            to_e164(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)
