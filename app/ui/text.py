"""Small HTML renderings of untrusted text (generations, dataset rows, tokens), escaped before any markup.

Everything that ends up in ``st.markdown(..., unsafe_allow_html=True)`` goes through :func:`inert_html` here:
HTML is escaped, and so is every character Markdown gives a meaning to, and line breaks become ``<br>`` (a blank
line would end the HTML block and hand the rest to the Markdown parser). So a generation or an uploaded prompt
containing ``<script>`` or ``![x](http://…)`` is shown as text: nothing in it runs, links or is fetched.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

__all__ = ["diff_html", "diff_words", "highlight_tokens_html", "inert_html", "md", "token_label"]

_WORD = re.compile(r"\s+|[^\s]+")
_BOX = "font-family:monospace;white-space:pre-wrap;line-height:1.9;"
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")
# HTML's specials and Markdown's, each as a numeric character reference (one pass, so no reference is re-escaped)
_INERT = str.maketrans({c: f"&#{ord(c)};" for c in "&<>\"'\\`*_{}[]()#+-.!|~$:="})


def inert_html(text: object) -> str:
    """Untrusted text as HTML that neither an HTML nor a Markdown parser can act on: every special character of
    either as a numeric character reference, line breaks as ``<br>`` (so the block never ends mid-text)."""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return lines.translate(_INERT).replace("\n", "<br>")


def md(text: object) -> str:
    """Untrusted text made inert for Streamlit's markdown (alerts, captions): no links, images, HTML or LaTeX."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def token_label(token: str) -> str:
    """A token as readable text: newlines and tabs made visible, empty tokens shown as ∅."""
    if token == "":
        return "∅"
    return token.replace("\n", "⏎").replace("\t", "⇥")


def highlight_tokens_html(tokens: Sequence[str], values: Sequence[float], vmax: float | None = None) -> str:
    """Tokens with a background whose opacity follows the feature's activation (tooltip: the value)."""
    if len(tokens) != len(values):
        raise ValueError(f"{len(tokens)} tokens but {len(values)} values")
    top = vmax if vmax is not None and vmax > 0 else max([v for v in values if v > 0], default=1.0)
    spans = []
    for token, value in zip(tokens, values, strict=True):
        alpha = min(1.0, max(0.0, value / top)) if top > 0 else 0.0
        spans.append(
            f'<span title="{value:.3g}" style="background:rgba(221,107,32,{alpha:.2f});border-radius:3px;'
            f'padding:0 1px">{inert_html(token_label(token))}</span>'
        )
    return f'<div style="{_BOX}">{"".join(spans)}</div>'


def diff_words(before: str, after: str) -> list[tuple[str, str]]:
    """Word-level diff as (kind, text) pieces with kind in {"same", "removed", "added"}."""
    a, b = _WORD.findall(before), _WORD.findall(after)
    pieces: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            pieces.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(("removed", "".join(a[i1:i2])))
        if j2 > j1:
            pieces.append(("added", "".join(b[j1:j2])))
    return pieces


def diff_html(before: str, after: str, side: str) -> str:
    """One side of a side-by-side diff, both readable as plain text: ``side="before"`` marks (in red) the words the
    other reply lacks, ``"after"`` marks (in green) the words it added; nothing is struck through."""
    if side not in ("before", "after"):
        raise ValueError(f"side must be 'before' or 'after', got {side!r}")
    hidden = "added" if side == "before" else "removed"
    out = []
    for kind, text in diff_words(before, after):
        if kind == hidden:
            continue
        safe = inert_html(text)
        if kind == "removed":
            out.append(f'<mark style="background:#fed7d7" title="not in the steered reply">{safe}</mark>')
        elif kind == "added":
            out.append(f'<mark style="background:#c6f6d5" title="not in the unsteered reply">{safe}</mark>')
        else:
            out.append(safe)
    return f'<div style="{_BOX}">{"".join(out) or "<em>(empty)</em>"}</div>'
