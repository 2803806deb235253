"""Helpers for notebooks: glue numbers into the book's prose, and small result tables."""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence


def glue(name: str, value, display: bool = False) -> None:
    """Store ``value`` under ``name`` for ``{glue:text}`` in the book (myst-nb).

    Outside a book build without myst-nb (e.g. on Colab) nothing is stored; with
    ``display=True`` the value is shown either way.
    """
    try:
        from myst_nb import glue as _glue
    except ImportError:
        if display:
            from IPython.display import display as _display

            _display(value)
        return
    _glue(name, value, display=display)


def table(rows: Sequence[Mapping], floatfmt: str = "{:.3g}"):
    """A pandas-free HTML table of ``rows`` (dicts with the same keys) for notebooks."""
    from IPython.display import HTML

    if not rows:
        return HTML("<p>(no rows)</p>")
    keys = list(rows[0].keys())

    def cell(v) -> str:
        return html.escape(floatfmt.format(v) if isinstance(v, float) else str(v))

    pad = 'style="padding: 0.25em 0.9em; text-align: left"'
    head = "".join(f"<th {pad}>{html.escape(str(k))}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td {pad}>{cell(r[k])}</td>" for k in keys) + "</tr>" for r in rows)
    return HTML(f'<table class="table" style="border-collapse: collapse"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")
