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
        lambda m: f'<a href="{m.group(2)}" target="_blank" rel="noopener noreferrer">'
        f"{m.group(1)}</a>",
        out,
    )
    out = _BOLD.sub(r"<strong>\1</strong>", out)
    out = _EM.sub(r"<em>\1</em>", out)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], out)


def markdown_html(text: str) -> str:
    """``text`` (a card's Markdown) as HTML that carries no markup of its own."""
    blocks: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.rstrip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if all(_BULLET.match(line) for line in lines):
            items = "".join(f"<li>{_inline(_BULLET.sub('', line))}</li>" for line in lines)
            blocks.append(f"<ul>{items}</ul>")
        else:
            blocks.append("<p>" + "<br>".join(_inline(line.strip()) for line in lines) + "</p>")
    return "".join(blocks)
