"""What ``celltwin calibrate fit`` writes into its output folder.

- ``physics.yaml``: the fitted values as a PhysicsParams overrides file (every ``--physics``
  option takes it, and ``dr: {center: ...}`` centres randomization on it);
- ``fit.json``: the estimates with their spread, the latency search, RMSE before and after;
- ``report.md`` and ``report.html`` with three figures: logged vs twin joint trajectories
  before and after the fit, the RMSE per joint, and the estimates with their spread.

Every file is written atomically; the figures are drawn without pyplot.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from celltwin.calibrate.fit import FitResult
from celltwin.calibrate.logs import Log
from celltwin.core.atomic import atomic_write_bytes, atomic_write_text
from celltwin.core.plots import new_figure
from celltwin.pipeline.frame import Section, Table
from celltwin.pipeline.report import markdown, page


def write_outputs(result: FitResult, logs: list[Log], out: str | Path, *, cell: str,
                  command: str = "") -> dict[str, Path]:
    """Write physics.yaml, fit.json, the figures and the report into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"physics": result.physics.save(out / "physics.yaml"),
             "fit": atomic_write_text(out / "fit.json", json.dumps(summary(result, logs, cell),
                                                                   indent=2) + "\n")}
    figures = {"trajectories.png": _trajectories(result, logs[0]),
               "rmse.png": _rmse_figure(result, logs[0].joint_names),
               "estimates.png": _estimates(result)}
    for name, data in figures.items():
        if data is not None:
            paths[name] = atomic_write_bytes(out / name, data)
    sections = _sections(result, logs, cell, command, [n for n, d in figures.items() if d])
    title = "Twin calibration"
    paths["report.md"] = atomic_write_text(out / "report.md", markdown(title, sections))
    paths["report.html"] = atomic_write_text(out / "report.html", page(title, sections))
    return paths


def summary(result: FitResult, logs: list[Log], cell: str) -> dict:
    """fit.json: everything the report shows, as numbers."""
    return {
        "cell": cell,
        "logs": [{"file": log.source, "samples": len(log.times_s),
                  "duration_s": log.duration_s} for log in logs],
        "joint_names": list(logs[0].joint_names),
        "estimates": {label: {"nominal": nominal, "estimate": value, "spread": spread}
                      for label, nominal, value, spread in zip(result.labels, result.nominal,
                                                               result.estimate, result.spread)},
        "latency_steps": result.latency_steps, "nominal_latency_steps": result.nominal_latency,
        "latency_costs_rad2": {str(k): v for k, v in result.latency_costs.items()},
        "rmse_before_rad": result.rmse_before.tolist(),
        "rmse_after_rad": result.rmse_after.tolist(),
        "rmse_before_mean_rad": float(result.rmse_before.mean()),
        "rmse_after_mean_rad": float(result.rmse_after.mean()),
        "restarts": result.restarts,
        "elapsed_s": result.elapsed_s,
    }


def _sections(result: FitResult, logs: list[Log], cell: str, command: str,
              figures: list[str]) -> list[Section]:
    before, after = float(result.rmse_before.mean()), float(result.rmse_after.mean())
    ratio = before / after if after > 0 else float("inf")
    text = [f"Cell `{cell}`, {len(logs)} log(s), "
            f"{sum(len(log.times_s) for log in logs)} samples; fit in {result.elapsed_s:.1f} s.",
            f"Mean joint RMSE, twin vs log: **{before:.5f} rad before, {after:.5f} rad after** "
            f"({ratio:.1f}x lower). `physics.yaml` holds the fitted values: pass it to "
            "`--physics`, or centre training's randomization on it (`--dr-center`)."]
    if command:
        text.append(f"Command: `{command}`")
    rows = [[label, f"{nominal:.6g}", f"{value:.6g}", f"{spread:.2g}",
             f"{100 * spread / abs(value):.1f} %" if value else "n/a"]
            for label, nominal, value, spread in zip(result.labels, result.nominal,
                                                     result.estimate, result.spread)]
    if result.latency_steps is not None:
        rows.append(["latency_steps", str(result.nominal_latency), str(result.latency_steps),
                     "searched", ""])
    tables = [Table(["parameter", "twin before", "fitted", "spread (std)", "relative"], rows)]
    if result.latency_costs:
        tables.append(Table(["latency [steps]", "sum of squared residuals [rad^2]"],
                            [[str(k), f"{v:.4g}"]
                             for k, v in sorted(result.latency_costs.items())]))
    tables.append(Table(["joint", "RMSE before [rad]", "RMSE after [rad]"],
                        [[name, f"{b:.5f}", f"{a:.5f}"] for name, b, a in
                         zip(logs[0].joint_names, result.rmse_before, result.rmse_after)]))
    captions = {"trajectories.png": "Logged joints vs the twin before and after the fit, and "
                                    "the twin's error (first log)",
                "rmse.png": "Joint trajectory RMSE before and after",
                "estimates.png": "Estimates relative to the twin's values, with their spread"}
    notes = ["A spread much larger than a few percent means the logs do not pin the "
             "parameter down: excite longer or harder (`celltwin calibrate excite`), or leave "
             "it out of `--params`."]
    return [Section("Result", text, tables, [(captions[n], n) for n in figures]),
            Section("Reading the spread", notes)]


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _trajectories(result: FitResult, log: Log) -> bytes:
    """Per joint: logged vs twin (left) and the twin's error, before and after (right): the
    error is what a fit changes, and it is far smaller than the motion."""
    dof = len(log.joint_names)
    figure = new_figure(figsize=(12, 1.8 * dof), layout="constrained")
    axes = np.atleast_2d(figure.subplots(dof, 2, sharex=True))
    t = log.times_s - log.times_s[0]
    before, after = result.predicted_before[0], result.predicted_after[0]
    for joint in range(dof):
        left, right = axes[joint]
        left.plot(t, log.positions[:, joint], color="black", lw=1.0, label="logged")
        left.plot(t, before[:, joint], color="tab:red", lw=0.8, ls="--", label="twin before")
        left.plot(t, after[:, joint], color="tab:blue", lw=0.8, label="twin after")
        left.set_ylabel(f"{log.joint_names[joint]}\n[rad]", fontsize=8)
        right.plot(t, 1e3 * (before[:, joint] - log.positions[:, joint]), color="tab:red",
                   lw=0.7, label="twin before - logged")
        right.plot(t, 1e3 * (after[:, joint] - log.positions[:, joint]), color="tab:blue",
                   lw=0.7, label="twin after - logged")
        right.set_ylabel("error [mrad]", fontsize=8)
    axes[0][0].legend(loc="upper right", fontsize=8, ncol=3)
    axes[0][1].legend(loc="upper right", fontsize=8, ncol=2)
    axes[-1][0].set_xlabel("time [s]")
    axes[-1][1].set_xlabel("time [s]")
    return _png(figure)


def _rmse_figure(result: FitResult, names) -> bytes:
    figure = new_figure(figsize=(8, 3.2), layout="constrained")
    ax = figure.subplots()
    x = np.arange(len(names))
    ax.bar(x - 0.2, result.rmse_before, 0.4, color="tab:red", label="before")
    ax.bar(x + 0.2, result.rmse_after, 0.4, color="tab:blue", label="after")
    ax.set_xticks(x, names, rotation=30, fontsize=8)
    ax.set_ylabel("RMSE [rad]")
    ax.legend()
    return _png(figure)


def _estimates(result: FitResult) -> bytes | None:
    rows = [(label, value / nominal, spread / nominal)
            for label, nominal, value, spread in zip(result.labels, result.nominal,
                                                     result.estimate, result.spread) if nominal]
    if not rows:
        return None
    figure = new_figure(figsize=(8, 0.5 + 0.4 * len(rows)), layout="constrained")
    ax = figure.subplots()
    y = np.arange(len(rows))
    ax.errorbar([r[1] for r in rows], y, xerr=[r[2] for r in rows], fmt="o", capsize=4)
    ax.axvline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel("fitted / twin's value before [-] (bars: spread over restarts)")
    return _png(figure)
