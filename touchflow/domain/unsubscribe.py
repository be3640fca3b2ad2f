"""Signed one-click unsubscribe tokens (RFC 8058): one per touch, no login needed.

A token is ``<touch key>.<signature>``; the signature is a truncated
HMAC-SHA256 of the key under the deployment's secret, so a link cannot be
forged for another touch, and a token is only as long as a URL can carry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_SIG_BYTES = 16
#: A touch key is at most 200 characters (the ledger's column); a token adds the signature.
MAX_TOKEN_LENGTH = 256
#: The default of Settings.unsubscribe_secret, for local runs; production sets its own.
DEV_UNSUBSCRIBE_SECRET = "change-me-unsubscribe-secret"


def _signature(touch_key: str, secret: str) -> str:
    mac = hmac.new(secret.encode(), touch_key.encode(), hashlib.sha256).digest()[:_SIG_BYTES]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign(touch_key: str, secret: str) -> str:
    """The token for ``touch_key``."""
    return f"{touch_key}.{_signature(touch_key, secret)}"


def verify(token: str, secret: str) -> str | None:
    """The touch key a token was signed for, or None if it is malformed or forged.

    Tokens are ASCII (touch keys and base64url): anything else, or anything
    longer than :data:`MAX_TOKEN_LENGTH`, is refused before comparing, because
    ``hmac.compare_digest`` raises on a ``str`` with non-ASCII characters.
    """
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        return None
    key, sep, sig = token.rpartition(".")
    if not sep or not key:
        return None
    return key if hmac.compare_digest(sig, _signature(key, secret)) else None


def unsubscribe_url(public_url: str, touch_key: str, secret: str) -> str:
    """The link a touch carries in its footer and List-Unsubscribe header."""
    return f"{public_url.rstrip('/')}/unsubscribe/{sign(touch_key, secret)}"
