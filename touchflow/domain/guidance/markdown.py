"""A card's Markdown as safe HTML: the small subset cards use, everything else escaped.

Cards are written by marketing ops in git, but the HTML lands on every rep's screen, so
nothing in the text is trusted: the text is HTML-escaped first and only then given the
markup of this subset. Supported: paragraphs (blank lines), ``- `` / ``* `` bullets,
``**bold**``, ``*italic*``, ```code```, and ``[label](https://...)`` links (``http``,
``https`` and ``mailto`` only; anything else stays text). Links open in a new tab with
``rel="noopener noreferrer"``.
"""

from __future__ import annotations

import html
import re

__all__ = ["markdown_html"]

_LINK = re.compile(r"\[([^\]\n]{1,300})\]\(((?:https?://|mailto:)[^\s()<>\"']{1,2000})\)")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_EM = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_BULLET = re.compile(r"^\s*[-*]\s+")
_CODE = re.compile(r"`([^`\n]+)`")


def _inline(text: str) -> str:
    out = html.escape(text, quote=True)
    codes: list[str] = []

    def keep_code(m: re.Match[str]) -> str:
        codes.append(f"<code>{m.group(1)}</code>")
        return f"\x00{len(codes) - 1}\x00"

    out = _CODE.sub(keep_code, out)
    # The URL was escaped with the rest (&amp; stays &amp; inside the attribute: correct).
    out = _LINK.sub(
        lambda m: (
            f'<a href="{m.group(2)}" target="_blank" rel="noopener noreferrer">{m.group(1)}</a>'
        ),
        out,
    )
    out = _BOLD.sub(r"<strong>\1</strong>", out)
    out = _EM.sub(r"<em>\1</em>", out)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], out)


def markdown_html(text: str) -> str:
    """``text`` (a card's Markdown) as HTML that carries no markup of its own.

    Lines of a paragraph are joined with a space (soft breaks, as in Markdown); a bullet
    starts a list item, an indented line after it continues the item.
    """
    blocks: list[str] = []
    para: list[str] = []
    items: list[list[str]] = []

    def close() -> None:
        if para:
            blocks.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()
        if items:
            lis = "".join(f"<li>{_inline(' '.join(item))}</li>" for item in items)
            blocks.append(f"<ul>{lis}</ul>")
            items.clear()

    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            close()
        elif _BULLET.match(line):
            if para:
                close()
            items.append([_BULLET.sub("", line).strip()])
        elif items and raw[:1].isspace():
            items[-1].append(line.strip())
        else:
            if items:
                close()
            para.append(line.strip())
    close()
    return "".join(blocks)
