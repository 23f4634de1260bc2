"""Fitting PhysicsParams to logged joint trajectories.

The residuals are the replayed joint positions (:mod:`celltwin.calibrate.replay`) minus the
logged ones, over every sample of every log. Continuous parameters are fitted with SciPy's
``least_squares`` (trust-region reflective, bounded, on the scales of
:mod:`celltwin.calibrate.parameters`). The latency is discrete: every candidate from 0 to
``max_latency`` gets a short fit of the continuous parameters on the first part of the logs, and
the best one is kept (a slower servo and a longer latency both delay the response, so the
latency cannot be chosen with the gains left at their nominal values). At that latency the fit
restarts from several starting points (the nominal values, then log-uniform draws from 1/3x to
3x); the estimate is the best restart's, its spread the standard deviation over the restarts
that converged to the same cost. Replays run in ``workers`` processes, each with its own
headless twin.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from typing import Callable

import numpy as np

from celltwin.calibrate.errors import CalibrationError
from celltwin.calibrate.logs import Log, check_log
from celltwin.calibrate.parameters import Scalar, scalars, to_physics
from celltwin.calibrate.replay import Replay
from celltwin.core.errors import Problem
from celltwin.physics import PhysicsParams

# Samples each fitted number needs at least, and the least motion a log must hold [-], [s].
SAMPLES_PER_SCALAR = 50
MIN_SAMPLES = 100
# The latency search fits on this much of each log's start [s] (all of a shorter log).
SEARCH_WINDOW_S = 12.0
# A restart counts towards the spread when its cost is within this factor of the best.
SAME_COST = 1.5
# Residuals are fitted in milliradians: in radians the gradient of a good fit is so small
# that SciPy's gradient test ends the fit where it starts.
RESIDUAL_UNIT_RAD = 1e-3


@dataclass(frozen=True)
class FitOptions:
    """Choices of one fit.

    Attributes:
        params: parameter names (:data:`celltwin.calibrate.parameters.PARAMETERS`).
        max_latency: largest latency searched [control steps].
        restarts: fits from different starting points at the chosen latency.
        workers: processes that replay in parallel.
        seed: seed of the restarts' starting points.
        search_nfev: model evaluations of each latency candidate's short fit.
    """

    params: tuple[str, ...]
    max_latency: int = 5
    restarts: int = 3
    workers: int = 2
    seed: int = 0
    search_nfev: int = 6


@dataclass
class FitResult:
    """What a fit found.

    Attributes:
        labels: the fitted numbers' names (``position_gain``, ``joint_damping[j1]``...).
        nominal: their values in the twin before the fit.
        estimate: their fitted values.
        spread: standard deviation of each over the restarts that converged (0 with one).
        latency_steps: the chosen latency (``None`` when not fitted).
        nominal_latency: the twin's latency before the fit.
        latency_costs: sum of squared residuals of each latency candidate [rad^2].
        rmse_before, rmse_after: joint trajectory RMSE per joint [rad], twin vs log.
        restarts: each restart's estimate and cost.
        physics: the fitted values as PhysicsParams (the overrides file).
        predicted_before, predicted_after: replayed trajectories per log [rad].
        elapsed_s: wall-clock time of the fit [s].
    """

    labels: list[str]
    nominal: list[float]
    estimate: list[float]
    spread: list[float]
    latency_steps: int | None
    nominal_latency: int
    latency_costs: dict[int, float]
    rmse_before: np.ndarray
    rmse_after: np.ndarray
    restarts: list[dict]
    physics: PhysicsParams
    predicted_before: list[np.ndarray] = field(repr=False)
    predicted_after: list[np.ndarray] = field(repr=False)
    elapsed_s: float = 0.0


# --- worker side: one twin per process ------------------------------------------------------

_WORKER: dict = {}


def _init_worker(cell, robot, physics_yaml, logs, names) -> None:
    physics = PhysicsParams.from_yaml_text(physics_yaml) if physics_yaml else None
    replay = Replay(cell, robot, physics)
    grids = [replay.grid(log) for log in logs]
    found = scalars(names, replay.nominal, replay.robot_name, replay.joint_names,
                    replay.payload_link)
    _WORKER.update(replay=replay, logs=logs, grids=grids, scalars=found)


def _residuals(x, latency, window) -> np.ndarray:
    replay, found = _WORKER["replay"], _WORKER["scalars"]
    physics = to_physics(found, [s.value(v) for s, v in zip(found, x)], replay.robot_name,
                         latency)
    parts = []
    for log, grid in zip(_WORKER["logs"], _WORKER["grids"]):
        if window is not None:
            keep = grid <= window
            log = _head(log, int(keep.sum()))
            grid = grid[keep]
        parts.append((replay.simulate(log, grid, physics) - log.positions).ravel())
    return np.concatenate(parts) / RESIDUAL_UNIT_RAD


def _solve(x0, latency, window, max_nfev) -> dict:
    from scipy.optimize import least_squares

    found = _WORKER["scalars"]
    if not found:  # latency alone: nothing continuous to fit
        residual = _residuals(np.zeros(0), latency, window) * RESIDUAL_UNIT_RAD
        return {"x": [], "cost": float(residual @ residual), "nfev": 1, "latency": latency}
    low, high = zip(*(s.bounds() for s in found))
    start = np.clip(np.asarray(x0, dtype=float), low, high)
    result = least_squares(_residuals, start, bounds=(low, high), args=(latency, window),
                           method="trf", diff_step=1e-3, x_scale=1.0, max_nfev=max_nfev,
                           xtol=1e-3, ftol=1e-6, gtol=1e-10)
    return {"x": result.x.tolist(), "cost": float(2 * result.cost) * RESIDUAL_UNIT_RAD ** 2,
            "nfev": int(result.nfev), "latency": latency}


def _predict(x, latency) -> list[np.ndarray]:
    replay, found = _WORKER["replay"], _WORKER["scalars"]
    physics = to_physics(found, [s.value(v) for s, v in zip(found, x)], replay.robot_name,
                         latency)
    return [replay.simulate(log, grid, physics) for log, grid in zip(_WORKER["logs"],
                                                                    _WORKER["grids"])]


def _head(log: Log, count: int) -> Log:
    return replace(log, times_s=log.times_s[:count], setpoints=log.setpoints[:count],
                   positions=log.positions[:count],
                   lines=log.lines[:count] if log.lines is not None else None)


# --- the fit --------------------------------------------------------------------------------


def fit(cell, logs: list[Log], options: FitOptions, *, robot: str | None = None,
        physics: PhysicsParams | None = None,
        progress: Callable[[str], None] | None = None) -> FitResult:
    """Fit ``options.params`` of ``robot`` in ``cell`` to ``logs`` (see the module docstring).

    Raises:
        CalibrationError: a log that is not this robot's, not sound, or too short to
            identify the parameters asked for.
    """
    started = time.monotonic()
    say = progress or (lambda _message: None)
    probe = Replay(cell, robot, physics)
    try:
        for log in logs:
            check_log(log, probe.robot.model.name, probe.joint_names)
            probe.grid(log)
        found = scalars(options.params, probe.nominal, probe.robot_name, probe.joint_names,
                        probe.payload_link)
        nominal_latency = int(probe.nominal.robots[probe.robot_name].latency_steps)
        robot_name = probe.robot_name
    finally:
        probe.close()
    _check_length(logs, options.params, found)
    fits_latency = "latency_steps" in options.params
    x0 = [s.coordinate(s.nominal) if s.log_scaled else s.coordinate(0.0) for s in found]
    window = round(SEARCH_WINDOW_S / _period(logs)) if _period(logs) else None
    workers = max(1, int(options.workers))
    physics_yaml = physics.to_yaml() if physics is not None else ""
    context = get_context("spawn")   # a forked child would share the parent's pybullet client
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(cell, robot, physics_yaml, logs,
                                       options.params)) as pool:
        latency_costs: dict[int, float] = {}
        latency = nominal_latency
        if fits_latency:
            say(f"latency search 0..{options.max_latency} on the first {SEARCH_WINDOW_S:g} s")
            runs = list(pool.map(_solve, *zip(*[(x0, lag, window, options.search_nfev)
                                                 for lag in range(options.max_latency + 1)])))
            latency_costs = {run["latency"]: run["cost"] for run in runs}
            best = min(runs, key=lambda run: run["cost"])
            latency = best["latency"]
            x0 = best["x"]
        starts = [x0] + _starts(found, options.restarts - 1, options.seed)
        say(f"{len(starts)} restarts at latency {latency}")
        restarts = list(pool.map(_solve, *zip(*[(start, latency, None, 100) for start in starts])))
        best = min(restarts, key=lambda run: run["cost"])
        x_nominal = [s.coordinate(s.nominal) for s in found]
        before, after = pool.map(_predict, [x_nominal, best["x"]],
                                 [nominal_latency, latency])
    converged = [run for run in restarts if run["cost"] <= SAME_COST * best["cost"] + 1e-15]
    values = np.array([[s.value(v) for s, v in zip(found, run["x"])] for run in converged])
    estimate = [s.value(v) for s, v in zip(found, best["x"])]
    spread = (values.std(axis=0) if len(values) > 1 else np.zeros(len(found))).tolist()
    physics_out = to_physics(found, estimate, robot_name, latency if fits_latency else None)
    return FitResult(
        labels=[s.label for s in found], nominal=[s.nominal for s in found], estimate=estimate,
        spread=spread, latency_steps=latency if fits_latency else None,
        nominal_latency=nominal_latency, latency_costs=latency_costs,
        rmse_before=_rmse(logs, before), rmse_after=_rmse(logs, after),
        restarts=[{"estimate": [s.value(v) for s, v in zip(found, run["x"])],
                   "cost": run["cost"], "evaluations": run["nfev"],
                   "counted": run in converged} for run in restarts],
        physics=physics_out, predicted_before=before, predicted_after=after,
        elapsed_s=time.monotonic() - started)


def _period(logs: list[Log]) -> float | None:
    intervals = [float(np.median(np.diff(log.times_s))) for log in logs if len(log.times_s) > 1]
    return min(intervals) if intervals else None


def _starts(found: list[Scalar], count: int, seed: int) -> list[list[float]]:
    """Starting points: each value a log-uniform factor of 1/3 to 3 of its nominal (or of its
    reference, for a nominal of zero)."""
    rng = np.random.default_rng(seed)
    starts = []
    for _ in range(max(0, count)):
        factors = np.exp(rng.uniform(math.log(1 / 3), math.log(3), len(found)))
        starts.append([s.coordinate(s.nominal * f) if s.log_scaled else float(f)
                       for s, f in zip(found, factors)])
    return starts


def _check_length(logs: list[Log], params: tuple[str, ...], found: list[Scalar]) -> None:
    """Refuse logs too short to identify the parameters: the fit would only fit the noise."""
    samples = sum(len(log.times_s) for log in logs)
    needed = max(MIN_SAMPLES, SAMPLES_PER_SCALAR * (len(found) + ("latency_steps" in params)))
    if samples < needed:
        raise CalibrationError(Problem(
            f"log too short to identify {', '.join(params)}: {samples} samples",
            file=logs[0].source if len(logs) == 1 else None, value=samples,
            expected=f"at least {needed} samples ({SAMPLES_PER_SCALAR} per fitted number, "
                     f"{len(found) + ('latency_steps' in params)} numbers)"))


def _rmse(logs: list[Log], predicted: list[np.ndarray]) -> np.ndarray:
    errors = np.concatenate([p - log.positions for log, p in zip(logs, predicted)])
    return np.sqrt(np.mean(errors ** 2, axis=0))
