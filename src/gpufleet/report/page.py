"""The frame every HTML report shares: one self-contained page, plotly.js inlined once, sections of charts."""

from __future__ import annotations

from html import escape
from typing import Any, Iterable

from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}.muted{color:#777}h2{margin-top:2em}"""


def chart_sections(sections: Iterable[tuple[str, list[Any]]], empty: str) -> list[str]:
    """Each section's heading and its plotly figures (no plotly.js: the page carries it once)."""
    out, n = [], 0
    for heading, figs in sections:
        out.append(f"<h2>{escape(heading)}</h2>")
        if not figs:
            out.append(f'<p class="muted">{escape(empty)}</p>')
        for fig in figs:
            n += 1
            out.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{n}",
                                   config={"displaylogo": False, "responsive": True}))
    return out


def page(title: str, body: list[str], css: str = CSS) -> str:
    head = (f'<meta charset="utf-8">\n<title>{escape(title)}</title>\n<style>{css}</style>\n'
            f'<script type="text/javascript">{get_plotlyjs()}</script>')
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{head}\n</head>\n<body>\n' + "\n".join(body) + \
        "\n</body>\n</html>\n"
