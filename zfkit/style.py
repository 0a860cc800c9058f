"""One figure style for the whole book: the same colour for each net everywhere, titled axes,
and an opaque white background so figures stay readable when the page is in dark mode."""
from __future__ import annotations

import matplotlib as mpl

__all__ = ["NET_COLORS", "color_for", "use_book_style"]

# Colour-blind-safe (Okabe-Ito) colours, keyed by model name.
NET_COLORS: dict[str, str] = {
    "alexnet": "#D55E00",        # vermillion
    "zfnet": "#0072B2",          # blue
    "alexnet-paper": "#E69F00",  # orange
    "zfnet-paper": "#56B4E9",    # sky blue
}
_OTHERS = ("#009E73", "#CC79A7", "#000000", "#7F7F7F")  # no yellow: unreadable on white


def color_for(name: str) -> str:
    """The colour of model ``name`` (ablation variants get the remaining Okabe-Ito colours)."""
    if name in NET_COLORS:
        return NET_COLORS[name]
    return _OTHERS[sum(map(ord, name)) % len(_OTHERS)]


def use_book_style() -> None:
    """Set matplotlib defaults used by every chapter."""
    mpl.rcParams.update({
        "figure.facecolor": "white", "axes.facecolor": "white", "savefig.facecolor": "white",
        "figure.dpi": 100, "savefig.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "axes.titleweight": "bold",
        "font.size": 10, "legend.frameon": False,
    })
