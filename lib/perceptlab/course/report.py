"""Helpers for notebooks: glue numbers into the book's prose, and small result tables."""
from __future__ import annotations

import html
import json
import math
import os
import warnings
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


class ClaimError(AssertionError):
    """A sentence of the book is not supported by this run's numbers (raised in strict mode only)."""


def check_claim(expression: str, values: Mapping[str, float]) -> bool:
    """Evaluate one claim, a Python expression over the names in ``values`` (plus abs, min, max)."""
    return bool(eval(expression, {"__builtins__": {}}, {"abs": abs, "min": min, "max": max, **values}))  # noqa: S307


def claims(notebook: str, values: Mapping[str, float], checks: Sequence[str]) -> dict[str, bool]:
    """Check the claims a notebook's prose makes against this run's numbers, and print them.

    ``values`` are the run's numbers (floats), ``checks`` the prose's claims as expressions over
    them (e.g. ``"gap_refined < gap_final"``); the bounds in them come from the spread over seeds
    and thread counts that ``python -m perceptlab spread nb:<notebook>`` measures.  Prints one
    line per claim.  A claim that fails prints a warning, and raises :class:`ClaimError` when
    ``PERCEPTLAB_STRICT_CLAIMS`` is set (the book build sets it: the quick book must not state
    what its own run contradicts).  With ``PERCEPTLAB_CLAIMS`` naming a file, the values and
    results are appended to it as one JSON line and nothing is raised (the spread command).
    Returns {claim: holds}.
    """
    values = {k: float(v) for k, v in values.items()}
    results = {c: check_claim(c, values) for c in checks}
    for c, ok in results.items():
        print(f"{'holds' if ok else 'DOES NOT HOLD on this run'}: {c}")
    record_to = os.environ.get("PERCEPTLAB_CLAIMS")
    if record_to:
        clean = {k: (v if math.isfinite(v) else None) for k, v in values.items()}
        with open(record_to, "a") as f:
            f.write(json.dumps({"notebook": notebook, "values": clean, "checks": list(checks)}) + "\n")
        return results
    failed = [c for c, ok in results.items() if not ok]
    if failed:
        used = {k: round(v, 4) for k, v in values.items() if any(k in c for c in failed)}
        message = (f"{notebook}: this run does not support the prose's claim(s) {failed} (values {used}); "
                   "the text was written for the quick preset's spread over seeds")
        if os.environ.get("PERCEPTLAB_STRICT_CLAIMS"):
            raise ClaimError(message)
        warnings.warn(message, stacklevel=2)
    return results
