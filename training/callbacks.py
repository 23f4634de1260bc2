"""What happens during ``model.learn``: evaluation, checkpoints, metrics, early stop.

One SB3 callback does all of it on env-step counts, so the order is fixed: evaluate, log the
row, decide on an early stop, then checkpoint (a checkpoint never misses the row before it).
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from celltwin.training.config import TrainConfig
from celltwin.training.evaluation import STARTUP_DRAWS
from celltwin.training.metrics import MetricsLog, plot_curve
from celltwin.training.rollouts import EnvSet, PolicySnapshot
from celltwin.training.run_dir import RunDir


class Evaluator:
    """Deterministic evaluation on the nominal twin and, if the run randomizes, the randomized one.

    The same seeds every time, so successive rows differ only by the policy. The randomized
    twin is ``STARTUP_DRAWS`` envs taken in turn, each with its own startup draw
    (:data:`celltwin.training.evaluation.STARTUP_DRAWS`). Episodes run in the run's rollout workers.
    """

    def __init__(self, config: TrainConfig, episodes: int, rollouts, seed: int = 10_000_000):
        self.config = config
        self.episodes = episodes
        self.seed = seed
        self.rollouts = rollouts
        self.nominal = EnvSet(None, 1, seed)
        randomized = config.randomization not in (None, "none")
        self.randomized = EnvSet(config.randomization, STARTUP_DRAWS, seed) if randomized else None

    def __call__(self, model, normalizer=None) -> dict:
        actor = PolicySnapshot(model, normalizer, flat=self.config.algo == "ppo")
        seeds = [self.seed + episode for episode in range(self.episodes)]
        row = {}
        for name, env_set in (("nominal", self.nominal), ("randomized", self.randomized)):
            if env_set is not None:
                episodes = self.rollouts.run(env_set, "evaluate", seeds, actor)
                row[f"success_{name}"] = float(np.mean([e.success for e in episodes]))
                row[f"return_{name}"] = float(np.mean([e.total_reward for e in episodes]))
        return row

    @staticmethod
    def headline(row: dict) -> float:
        """The success rate that counts: on the randomized twin when the run randomizes."""
        value = row.get("success_randomized")
        return row["success_nominal"] if value is None else value


class RunCallback(BaseCallback):
    """Evaluate, log, stop early and checkpoint on env-step counts.

    Args:
        run: the run directory.
        config: the run's config.
        evaluator: the evaluation envs.
        clock: ``() -> seconds`` of training wall time so far (survives resumes).
        save_checkpoint: ``(step) -> None`` writes a checkpoint.
        log: ``(text) -> None`` for one-line progress reports.
        evaluate_first: evaluate before the first RL step too (the policy demonstrations
            left), and stop there if it already meets the target.
        actor_frozen_until: env step before which RL leaves the actor as it is (demonstrations'
            critic warm-up); when it is past the run's last step, no RL step can change the
            policy, so the run stops after its first evaluation instead of spending the steps.
    """

    def __init__(self, run: RunDir, config: TrainConfig, evaluator: Evaluator, clock,
                 save_checkpoint, log=print, evaluate_first: bool = False,
                 actor_frozen_until: int = 0):
        super().__init__()
        self.actor_frozen_until = actor_frozen_until
        self.stop_reason: str | None = None
        self.evaluate_first = evaluate_first
        self._stop_at_first_step = False
        self.run = run
        self.config = config
        self.evaluator = evaluator
        self.clock = clock
        self.save_checkpoint = save_checkpoint
        self.log = log
        self.metrics = MetricsLog(run.metrics_path)
        self.recent_success: deque = deque(maxlen=100)
        self.train_episodes = 0
        self.stopped_early = False
        self.best: float | None = None
        self._next_eval = self._next_checkpoint = 0
        self._fps_mark = (0, time.perf_counter())

    def _on_training_start(self) -> None:
        step = self.model.num_timesteps
        self._next_eval = (step // self.config.eval.every_steps + 1) * self.config.eval.every_steps
        every = self.config.checkpoint_every_steps
        self._next_checkpoint = (step // every + 1) * every
        self._fps_mark = (step, time.perf_counter())
        if self.evaluate_first:
            self.evaluate_first = False
            self._stop_at_first_step = not self.evaluate(step)
            # A resume point after the demonstrations, DAgger rounds and this evaluation:
            # minutes of work that the first periodic checkpoint would come too late for.
            self.save_checkpoint(step)

    def _on_step(self) -> bool:
        if self._stop_at_first_step:   # SB3 asks first after one env step (not stored)
            return False
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if done:
                self.train_episodes += 1
                self.recent_success.append(bool(info.get("is_success", False)))
        step = self.model.num_timesteps
        keep_going = True
        budget = self.config.max_wall_s
        # The budget is checked every step: an evaluation interval can take far longer than
        # the budget when gradient steps are slow (large batches on a CPU).
        if step >= self._next_eval or (budget is not None and self.clock() >= budget):
            self._next_eval = (step // self.config.eval.every_steps + 1) * self.config.eval.every_steps
            keep_going = self.evaluate(step)
        if step >= self._next_checkpoint or not keep_going:
            self._next_checkpoint = (step // self.config.checkpoint_every_steps + 1) \
                * self.config.checkpoint_every_steps
            self.save_checkpoint(step)
        return keep_going

    def evaluate(self, step: int) -> bool:
        """Evaluate now, append the metrics row; False when the target success is reached."""
        mark_step, mark_time = self._fps_mark
        now = time.perf_counter()
        fps = (step - mark_step) / max(now - mark_time, 1e-9)
        row = self.evaluator(self.model, self.model.get_vec_normalize_env())
        row.update(step=step, wall_s=round(self.clock(), 2), train_episodes=self.train_episodes,
                   train_success=float(np.mean(self.recent_success)) if self.recent_success else None,
                   fps=round(fps, 1))
        self.metrics.append(row)
        for key, value in row.items():
            if value is not None and key != "step":
                self.logger.record(f"eval/{key}", value)
        if self.config.adr:   # ADR ranges over training, as seen by the first env
            state = self.model.get_env().env_method("adr_state", indices=[0])[0]
            for label, (low, high) in state["ranges"].items():
                self.logger.record(f"adr/{label}/low", low)
                self.logger.record(f"adr/{label}/high", high)
        plot_curve(self.metrics.rows(), self.run.curve_path, f"{self.config.task} ({self.config.algo})")
        headline = self.evaluator.headline(row)
        self.best = headline if self.best is None else max(self.best, headline)
        randomized = row.get("success_randomized")
        self.log(f"step {step:>8}  {row['wall_s']:>7.1f} s  success nominal "
                 f"{row['success_nominal']:.0%}"
                 + (f"  randomized {randomized:.0%}" if randomized is not None else "")
                 + f"  ({fps:.0f} steps/s){self._eta(step, fps, row['wall_s'])}")
        self._fps_mark = (step, time.perf_counter())
        target = self.config.eval.target_success
        if target is not None and headline >= target:
            return self._stop("target", f"target success {target:.0%} reached: stopping early")
        budget = self.config.max_wall_s
        if budget is not None and row["wall_s"] >= budget:
            return self._stop("budget", f"wall-time budget of {budget:.0f} s spent: stopping")
        if self.actor_frozen_until >= self.config.steps and step < self.config.steps:
            return self._stop("actor frozen", (
                f"the actor stays the demonstrations' clone until step {self.actor_frozen_until}"
                f" (demos.critic_warmup_steps), past this run's {self.config.steps} steps: "
                "no further step can change the policy, stopping"
                + (f" below the target of {target:.0%}" if target is not None else "")))
        return True

    def _stop(self, reason: str, message: str) -> bool:
        self.stop_reason = reason
        self.stopped_early = reason != "budget"
        self.log(message)
        return False

    def _eta(self, step: int, fps: float, wall_s: float) -> str:
        """Time to the run's end: its remaining steps at the rate since the last evaluation,
        or its wall-time budget, whichever comes first."""
        left = [self.config.max_wall_s - wall_s] if self.config.max_wall_s else []
        if fps > 0:
            left.append((self.config.steps - step) / fps)
        return f"  ETA {max(0.0, min(left)):.0f} s" if left else ""
