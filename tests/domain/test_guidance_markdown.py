"""A card's Markdown becomes HTML with only the subset's markup: nothing in the text is trusted."""

from __future__ import annotations

from touchflow.domain.guidance.markdown import markdown_html


def test_the_subset_renders_and_soft_breaks_join_lines() -> None:
    text = (
        "Ask **what they like** about it. Then:\n"
        "- touchflow runs the cadences *and* the guidance;\n"
        "- trackers are reviewed in git,\n"
        "  not clicked together.\n\n"
        'Anchor on value: *"What would it be worth\nto you?"* See `pricing`.\n'
    )
    assert markdown_html(text) == (
        "<p>Ask <strong>what they like</strong> about it. Then:</p>"
        "<ul><li>touchflow runs the cadences <em>and</em> the guidance;</li>"
        "<li>trackers are reviewed in git, not clicked together.</li></ul>"
        "<p>Anchor on value: <em>&quot;What would it be worth to you?&quot;</em> "
        "See <code>pricing</code>.</p>"
    )


def test_links_only_to_web_and_mail_and_no_markup_gets_through() -> None:
    html = markdown_html(
        "[Pricing](https://x.example/p?a=1&b=2) [bad](javascript:alert(1)) "
        '<script>alert(1)</script> <img src=x onerror="alert(1)"> [q](https://x.example/"onx=1)'
    )
    assert (
        '<a href="https://x.example/p?a=1&amp;b=2" target="_blank" '
        'rel="noopener noreferrer">Pricing</a>'
    ) in html
    assert "javascript:" in html and 'href="javascript' not in html
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    # A quote cannot close the attribute: it stays escaped inside the URL.
    assert 'href="https://x.example/&quot;onx=1"' in html and "onerror=&quot;" in html
