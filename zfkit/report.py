"""Small presentation helpers the chapters share: HTML tables and wrapped sentences.

Layer tables (:class:`zfkit.shapes.LayerTable`) and every other table in the book are drawn by
:func:`html_table`, so they look alike and stay readable in a narrow column.
"""
from __future__ import annotations

import html
import textwrap
from typing import Iterable, Sequence

__all__ = ["HtmlTable", "html_table", "show_table", "say"]

_CELL = 'style="padding: 2px 8px; border-bottom: 1px solid #ddd; white-space: nowrap"'


class HtmlTable:
    """An HTML fragment that notebooks display (``_repr_html_``) and myst-nb can ``glue``."""

    def __init__(self, markup: str) -> None:
        self.markup = markup

    def _repr_html_(self) -> str:
        return self.markup

    def __str__(self) -> str:
        return self.markup


def html_table(header: Sequence[object], rows: Iterable[Sequence[object]], caption: str = "", *,
               escape: bool = True) -> HtmlTable:
    """``rows`` (sequences of cells) under ``header`` as a padded, horizontally scrollable table.

    Args:
        header: column titles.
        rows: the cells, converted with ``str``.
        caption: a caption above the table (plain text).
        escape: escape the cells; ``False`` lets a chapter mark a cell up, e.g. ``<b>25</b>``.
    Returns:
        An :class:`HtmlTable`.
    """
    esc = html.escape if escape else str
    head = "".join(f"<th {_CELL}>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td {_CELL}>{esc(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return HtmlTable(f'<div style="overflow-x: auto"><table style="border-collapse: collapse">'
                     f"{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def show_table(header: Sequence[object], rows: Iterable[Sequence[object]], caption: str = "", *,
               escape: bool = True) -> None:
    """Display :func:`html_table` of the same arguments in a notebook."""
    from IPython.display import display

    display(html_table(header, rows, caption, escape=escape))


def say(text: str, width: int = 76) -> None:
    """Print a long sentence wrapped to the width of a book page's output column."""
    print(textwrap.fill(text, width=width, break_on_hyphens=False))
