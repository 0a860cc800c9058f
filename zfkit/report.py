"""Small presentation helpers the chapters share: HTML tables and wrapped sentences.

Layer tables (:class:`zfkit.shapes.LayerTable`) and every other table in the book are drawn by
:func:`html_table`, so they look alike and stay readable in a narrow column.
"""
from __future__ import annotations

import html
import re
import textwrap
from typing import Iterable, Sequence

__all__ = ["HtmlTable", "html_table", "show_table", "say"]

# Cells are padded and ruled; numbers keep to one line and align right, and text longer than a
# few words wraps, so that a table fits the text column instead of being cut off on the right.
_PAD = "padding: 2px 6px; border-bottom: 1px solid #ddd; vertical-align: top"
_NUMBER = re.compile(r"[-+]?[\d.,]+(e[-+]?\d+)?(\s?[%MGkx]|x\d+)*(\s?/\s?[\d.,]+)?(\s?\([^()]*\))?|[-\u2013]")
_TAGS = re.compile(r"<[^>]+>")
_LONG = 24   # characters; text cells longer than this may wrap


def _is_number(cell: str) -> bool:
    return bool(_NUMBER.fullmatch(_TAGS.sub("", cell).strip()))


def _style(number: bool, text: str = "") -> str:
    if number:
        return f'style="{_PAD}; text-align: right; white-space: nowrap"'
    if len(text) > _LONG and " " in text:
        return f'style="{_PAD}; text-align: left; white-space: normal; min-width: 9em"'
    return f'style="{_PAD}; text-align: left; white-space: nowrap"'


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
    """``rows`` (sequences of cells) under ``header`` as a table that fits a narrow text column.

    Columns whose cells are all numbers (``1,024``, ``0.53``, ``55x55x96``, ``12 %``, ``13 / 6``)
    align right and never break; headers and long text cells wrap at spaces; what still does not
    fit scrolls sideways inside the table's own box rather than being cut off.

    Args:
        header: column titles.
        rows: the cells, converted with ``str``.
        caption: a caption above the table (plain text).
        escape: escape the cells; ``False`` lets a chapter mark a cell up, e.g. ``<b>25</b>``.
    Returns:
        An :class:`HtmlTable`.
    """
    esc = html.escape if escape else str
    body = [[str(c) for c in row] for row in rows]
    numeric = [all(_is_number(row[j]) for row in body if j < len(row)) and bool(body)
               for j in range(len(header))]
    head = "".join(f'<th style="{_PAD}; text-align: {"right" if numeric[j] else "left"}; '
                   f'white-space: normal">{html.escape(str(h))}</th>'
                   for j, h in enumerate(header))
    cells = "".join("<tr>" + "".join(
        f"<td {_style(j < len(numeric) and numeric[j], _TAGS.sub('', c))}>{esc(c)}</td>"
        for j, c in enumerate(row)) + "</tr>" for row in body)
    cap = (f'<caption style="caption-side: top; text-align: left">{html.escape(caption)}'
           "</caption>" if caption else "")
    return HtmlTable('<div style="overflow-x: auto; max-width: 100%">'
                     '<table style="border-collapse: collapse; font-size: 0.9em">'
                     f"{cap}<thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table></div>")


def show_table(header: Sequence[object], rows: Iterable[Sequence[object]], caption: str = "", *,
               escape: bool = True) -> None:
    """Display :func:`html_table` of the same arguments in a notebook."""
    from IPython.display import display

    display(html_table(header, rows, caption, escape=escape))


def say(text: str, width: int = 76) -> None:
    """Print a long sentence wrapped to the width of a book page's output column."""
    print(textwrap.fill(text, width=width, break_on_hyphens=False))
