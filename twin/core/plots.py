"""Figures for files, drawn without pyplot.

pyplot is a process-wide state machine: selecting its backend (``matplotlib.use("Agg")``)
switches a notebook's inline plots off for the rest of the session, and figures it tracks
must be closed. A :class:`matplotlib.figure.Figure` with its own Agg canvas needs neither:
it draws, saves (``figure.savefig``) and renders to pixels (``figure.canvas.buffer_rgba()``)
on its own, whatever the user's backend, and is freed with its last reference.
"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(**kwargs) -> Figure:
    """A figure on its own Agg canvas (``kwargs``: those of :class:`Figure`, e.g.
    ``figsize``, ``dpi``); lay axes out with ``figure.subplots(...)``."""
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure
