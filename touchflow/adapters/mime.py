"""Received mail as touchflow reads it: RFC 5322 bytes to an InboundMessage, HTML to text.

Shared by every adapter that receives mail (IMAP polling, SendGrid Inbound
Parse in raw mode), so a reply reads the same however it arrived.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from touchflow.domain.replies import InboundMessage

__all__ = ["KEPT_HEADERS", "html_to_text", "message_ids", "parse_message"]

# Headers classification reads (see touchflow.domain.replies.classify), kept as they came.
KEPT_HEADERS = (
    "Auto-Submitted",
    "Content-Type",
    "X-Autoreply",
    "X-Autorespond",
    "Precedence",
    "X-Failed-Recipients",
)

_MSG_ID = re.compile(r"<[^<>\s]+>")


def message_ids(value: str) -> list[str]:
    """Every ``<msg-id>`` in a header value, in order."""
    return _MSG_ID.findall(value)


def _header_str(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a header the policy cannot parse at all
        value = None
    if value is None:
        raw = [v for k, v in msg.raw_items() if k.lower() == name.lower()]
        value = raw[0] if raw else ""
    return " ".join(str(value).split())


def _ids(value: str) -> tuple[str, ...]:
    found = tuple(_MSG_ID.findall(value))
    if found:
        return found
    value = value.strip()
    return (f"<{value.strip('<>')}>",) if value and " " not in value else ()


def _addresses(msg: Message, name: str) -> tuple[str, ...]:
    values = [str(v) for v in msg.get_all(name, [])] if msg.get_all(name) else []
    out = []
    for _, addr in getaddresses(values):
        addr = addr.strip().lower()
        if addr and addr not in out:
            out.append(addr)
    return tuple(out)


def _date(msg: Message, fallback: datetime) -> datetime:
    raw = _header_str(msg, "Date")
    if raw:
        try:
            parsed = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return fallback if fallback.tzinfo is not None else fallback.replace(tzinfo=UTC)


def _part_text(part: Message) -> str:
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else None
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, ValueError, AssertionError):
        pass  # unknown charset or broken encoding: decode by hand below
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _body_text(msg: EmailMessage) -> str:
    """The plain-text body; HTML converted to text when there is no plain text."""
    for kind in ("plain", "html"):
        try:
            part = msg.get_body(preferencelist=(kind,))
        except Exception:
            part = None
        if part is not None:
            text = _part_text(part)
            return html_to_text(text) if kind == "html" else text
    # multipart/report and friends: the first text part that is not an attachment
    for kind in ("text/plain", "text/html"):
        for part in msg.walk():
            if part.get_content_type() == kind and part.get_content_disposition() != "attachment":
                text = _part_text(part)
                return html_to_text(text) if kind == "text/html" else text
    return ""


def parse_message(raw: bytes, *, fallback_date: datetime) -> InboundMessage:
    """Parse an RFC 5322 message into an :class:`~touchflow.domain.replies.InboundMessage`.

    ``fallback_date`` (the server's INTERNALDATE, or the webhook's arrival time)
    is used when the Date header is missing or unreadable. Addresses are bare
    and lower-case; Message-IDs keep their angle brackets.
    """
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    message_ids = _ids(_header_str(msg, "Message-ID"))
    in_reply_to = _ids(_header_str(msg, "In-Reply-To"))
    senders = _addresses(msg, "From") or _addresses(msg, "Sender") or _addresses(msg, "Return-Path")
    headers = {name: _header_str(msg, name) for name in KEPT_HEADERS if msg.get(name) is not None}
    if "Content-Type" in headers:
        headers["Content-Type"] = _header_str(msg, "Content-Type")
    return InboundMessage(
        message_id=message_ids[0] if message_ids else None,
        from_addr=senders[0] if senders else "",
        subject=_header_str(msg, "Subject"),
        text=_body_text(msg).replace("\r\n", "\n").strip(),
        received_at=_date(msg, fallback_date),
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=_ids(_header_str(msg, "References")),
        to_addrs=_addresses(msg, "To"),
        headers=headers,
    )


# --------------------------------------------------------------------------- HTML to text

_BLOCK_TAGS = frozenset(
    {"address", "article", "aside", "dd", "div", "dl", "dt", "figcaption", "footer", "form",
     "header", "li", "main", "nav", "section", "tr"}
)  # fmt: skip
# Blocks that stand apart: a blank line before and after.
_PARAGRAPH_TAGS = frozenset(
    {"blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "ol", "p", "pre", "table", "ul"}
)
_SKIP_TAGS = frozenset({"script", "style", "head", "title", "template"})


class _HtmlText(HTMLParser):
    """Text of an HTML mail: blocks become lines, ``<blockquote>`` lines get a ``> `` prefix."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._line_depth = 0
        self._quote_depth = 0
        self._skip = 0
        self._pre = 0

    def _flush(self, *, force: bool = False) -> None:
        text = "".join(self._line)
        text = text if self._pre else " ".join(text.split())
        if text or force:
            self.lines.append(("> " * self._line_depth + text).rstrip())
        self._line = []
        self._line_depth = self._quote_depth

    def _paragraph(self) -> None:
        self._flush()
        if self.lines and self.lines[-1].strip("> "):
            self.lines.append((">" + " >" * (self._quote_depth - 1)) if self._quote_depth else "")

    def _boundary(self, tag: str) -> None:
        if tag in _PARAGRAPH_TAGS:
            self._paragraph()
        elif tag == "br":
            self._flush(force=True)
        else:
            self._flush()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
            return
        if tag in _BLOCK_TAGS or tag in _PARAGRAPH_TAGS or tag == "br":
            self._boundary(tag)
        if tag == "blockquote":
            self._quote_depth += 1
            self._line_depth = self._quote_depth
        elif tag == "pre":
            self._pre += 1
        elif tag == "li":
            self._line.append("- ")
        elif tag == "td" and self._line:
            self._line.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS or tag in _PARAGRAPH_TAGS or tag == "br":
            self._boundary(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
            return
        if tag in _BLOCK_TAGS or tag in _PARAGRAPH_TAGS:
            self._boundary(tag)
        if tag == "blockquote":
            self._quote_depth = max(0, self._quote_depth - 1)
            self._line_depth = self._quote_depth
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if not self._line:
            self._line_depth = self._quote_depth
        if self._pre:
            for i, part in enumerate(data.split("\n")):
                if i:
                    self._flush(force=True)
                self._line.append(part)
            return
        self._line.append(data)

    def text(self) -> str:
        self._flush()
        return "\n".join(self.lines).strip()


def html_to_text(html: str) -> str:
    """Readable text of an HTML email body (no links, no styles); quotes keep a ``>`` prefix."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient; this is a last resort for odd input
        return " ".join(re.sub(r"<[^>]*>", " ", html).split())
    return parser.text()
