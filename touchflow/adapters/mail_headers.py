"""Headers every outbound email carries, whatever the transport (SMTP or SendGrid)."""

from __future__ import annotations

from touchflow.ports import OutboundEmail


def standard_headers(msg: OutboundEmail) -> dict[str, str]:
    """Message-ID, threading, one-click unsubscribe (RFC 2369/8058) and the touch key.

    ``List-Unsubscribe`` lists the https link first (the one RFC 8058 one-click
    uses), then the mailto fallback.
    """
    headers = {"Message-ID": msg.message_id}
    if msg.in_reply_to:
        headers["In-Reply-To"] = msg.in_reply_to
    if msg.references:
        headers["References"] = " ".join(msg.references)
    unsubscribe: list[str] = []
    if msg.list_unsubscribe_url:
        unsubscribe.append(f"<{msg.list_unsubscribe_url}>")
    if msg.list_unsubscribe_mailto:
        mailto = msg.list_unsubscribe_mailto
        if not mailto.lower().startswith("mailto:"):
            mailto = f"mailto:{mailto}"
        unsubscribe.append(f"<{mailto}>")
    if unsubscribe:
        headers["List-Unsubscribe"] = ", ".join(unsubscribe)
    if msg.list_unsubscribe_url:
        # RFC 8058 one-click: mailbox providers POST this body to the https URL.
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    headers["X-Touchflow-Touch"] = msg.touch_key
    return headers
