"""Line planning on cell twins: check a layout, run it with parts, compare layouts, sweep them.

- :func:`check_layout`: reach of every target with a joint margin, collisions along the joint
  paths there, clearances at home (``celltwin layout check``).
- :func:`run_layout`: the cell in physics, fed with parts and worked by the scripted expert;
  :func:`kpis` turns the result into cycle times, throughput, utilization, collisions
  (``celltwin layout run``).
- :func:`run_compare`: several layouts run alike, ranked, with the deciding bottleneck
  (``celltwin layout compare``).
- :func:`run_sweep`: layout runs over a grid of cell parameters on Ray (``celltwin sweep``).

The conventions (which targets a robot picks from and places at, how parts arrive, what a
collision is) are in ``docs/layout.md``.
"""

from celltwin.layout.check import LayoutReport, check_layout
from celltwin.layout.compare import run_compare
from celltwin.layout.jobs import Job, LayoutError, find_jobs
from celltwin.layout.kpis import kpis
from celltwin.layout.params import SweepParam, parse_param, with_values
from celltwin.layout.records import RunOptions, RunResult
from celltwin.layout.runner import run_layout
from celltwin.layout.sweep import run_sweep

__all__ = ["Job", "LayoutError", "LayoutReport", "RunOptions", "RunResult", "SweepParam",
           "check_layout", "find_jobs", "kpis", "parse_param", "run_compare", "run_layout",
           "run_sweep", "with_values"]
