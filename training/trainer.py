"""Train a policy on the twin: a run directory in, a trained, evaluated model out.

``train(config, out)`` starts a run; ``resume(out)`` continues the newest checkpoint of a run
that was interrupted (Ctrl-C, a crash, ``kill -9``), losing at most one checkpoint interval.
"""

from __future__ import annotations

import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from celltwin import __version__
from celltwin.training.algorithms import (env_count, load_model, make_model, make_vec_env,
                                          probe_env, resolve_device, wrap_normalization)
from celltwin.training.callbacks import Evaluator, RunCallback
from celltwin.training.config import TrainConfig
from celltwin.training.demos import (AnchorCallback, BehaviourCloner, collect_into, demo_env_set,
                                     relabel)
from celltwin.training.errors import TrainingError
from celltwin.training.metrics import MetricsLog, plot_curve
from celltwin.training.rollouts import Rollouts
from celltwin.training.run_dir import RunDir
from celltwin.core.atomic import atomic_write_text
from celltwin.core.errors import Problem


def train(config: TrainConfig, out: str | Path, *, progress_bar: bool = False, log=print) -> dict:
    """Start a new run in ``out`` (which must not hold a run already)."""
    run = RunDir(out)
    if run.config_path.exists():
        raise TrainingError(Problem("the run directory already holds a run", file=str(run.path),
                                    expected="a new --out folder, or --resume to continue it"))
    resolve_device(config.device)   # a typed error for cuda without CUDA, before anything is written
    probe_env(config)                # bad cell, robot, physics or randomization: refused here
    config = config.model_copy(update={"n_envs": env_count(config)})  # resumes use the same count
    run.path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.config_path, config.to_yaml())
    atomic_write_text(run.meta_path, json.dumps(_meta(config), indent=2))
    return _run(run, config, checkpoint=None, progress_bar=progress_bar, log=log)


def resume(out: str | Path, *, steps: int | None = None, progress_bar: bool = False,
           log=print) -> dict:
    """Continue the run in ``out`` from its newest checkpoint.

    Args:
        steps: a new total of env steps (to extend a finished run); default: the config's.
    """
    run = RunDir(out)
    config = run.config()
    checkpoint = run.latest_checkpoint()
    if run.summary_path.is_file() and steps is None:
        raise TrainingError(Problem("the run has finished already", file=str(run.summary_path),
                                    expected="--steps N to extend it beyond "
                                             f"{checkpoint.step} steps"))
    if steps is not None and steps != config.steps:
        if steps <= checkpoint.step:
            raise TrainingError(Problem("the new total is not beyond the checkpoint",
                                        path="--steps", value=steps,
                                        expected=f"more than {checkpoint.step}"))
        config = config.model_copy(update={"steps": steps})
        atomic_write_text(run.config_path, config.to_yaml())
    log(f"resuming {run.path} from {checkpoint.path.name} ({checkpoint.step} steps done)")
    return _run(run, config, checkpoint=checkpoint, progress_bar=progress_bar, log=log)


def _run(run: RunDir, config: TrainConfig, checkpoint, progress_bar: bool, log) -> dict:
    if resolve_device(config.device) == "cpu":
        import torch

        # SB3's MLPs are small: intra-op threads gain little on them, and on a few cores their
        # spinning competes with the env processes and anything else running (measured on 2
        # cores beside another job: 32 gradient steps 14 s with 2 threads, 0.26 s with 1).
        torch.set_num_threads(1)
    n_envs = env_count(config)
    venv = make_vec_env(config, n_envs)
    rollouts = None
    try:
        rollouts = Rollouts(config)
        stats = checkpoint.file("vecnormalize.pkl") if checkpoint else None
        venv = wrap_normalization(config, venv, stats)
        if checkpoint is None:
            model = make_model(config, venv, run.tensorboard_dir)
            wall_before = 0.0
        else:
            model = load_model(config, checkpoint.path / "model.zip", env=venv,
                               device=resolve_device(config.device))
            model.tensorboard_log = str(run.tensorboard_dir)
            buffer = checkpoint.file("replay_buffer.pkl")
            if buffer is not None:
                model.load_replay_buffer(str(buffer))
            wall_before = float(checkpoint.state.get("wall_s", 0.0))
            MetricsLog(run.metrics_path).truncate_after(checkpoint.step)
        started = time.perf_counter()

        def clock() -> float:
            return wall_before + time.perf_counter() - started

        log(f"training {config.task} with {config.algo}{'+HER' if config.her and config.algo != 'ppo' else ''}"
            f" on {n_envs} env(s), device {model.device}, randomization {config.randomization}")
        demo_record, anchor = {}, None
        if config.demos.episodes:
            demo_record, anchor = _use_demonstrations(model, config, log, rollouts,
                                                      resumed=checkpoint is not None,
                                                      clock=clock)
        evaluator = Evaluator(config, config.eval.episodes, rollouts)

        if checkpoint is not None and checkpoint.file("adr.json") is not None:
            states = json.loads(checkpoint.file("adr.json").read_text())["envs"]
            for index, state in enumerate(states[:n_envs]):
                model.get_env().env_method("load_adr_state", state, indices=[index])

        def save_checkpoint(step: int) -> None:
            _write_checkpoint(run, model, step, clock(), config.adr)

        frozen_until = config.demos.critic_warmup_steps if anchor is not None else 0
        _log_plan(config, frozen_until, log)
        callback = run_callback = RunCallback(run, config, evaluator, clock, save_checkpoint, log,
                                              evaluate_first=bool(demo_record.get("samples"))
                                              and checkpoint is None,
                                              actor_frozen_until=frozen_until)
        if anchor is not None:
            from stable_baselines3.common.callbacks import CallbackList

            callback = CallbackList([anchor, callback])
        remaining = config.steps - (checkpoint.step if checkpoint else 0)
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=callback,
                        reset_num_timesteps=checkpoint is None, progress_bar=progress_bar,
                        tb_log_name="sb3")
        train_wall = clock()
        summary = _finish(run, config, model, evaluator, run_callback, train_wall, demo_record)
        log(f"final: success nominal {summary['success_nominal']:.0%}"
            + (f", randomized {summary['success_randomized']:.0%}"
               if summary.get("success_randomized") is not None else "")
            + f" after {summary['steps']} steps, {summary['train_wall_s']:.0f} s")
        return summary
    finally:
        for closer in ((rollouts.close if rollouts is not None else None), venv.close):
            try:
                if closer is not None:
                    closer()
            except Exception:  # workers gone after Ctrl-C: the error in flight matters more
                pass


# Share of a run's wall budget after which no further DAgger round starts: a round and the
# evaluations after it take about the rest (measured on 2 shared cores).
DAGGER_BUDGET_SHARE = 0.6


def _clear_of(target: float) -> float:
    """The clone success after which no DAgger round is needed: halfway from the target to
    100%. A round measures a few dozen episodes; a clone at the target itself then measured
    88% over the final 50 (ConveyorPick, target 90%)."""
    return target + 0.5 * (1.0 - target)


def _log_plan(config: TrainConfig, frozen_until: int, log) -> None:
    """Say at the start when the run will stop, and what happens if the target is missed."""
    target = config.eval.target_success
    twin = "randomized" if config.randomization not in (None, "none") else "nominal"
    parts = [f"{config.steps} env steps"]
    if config.max_wall_s:
        parts.append(f"at most {config.max_wall_s:.0f} s")
    if target is not None:
        parts.append(f"stopping at {target:.0%} success on the {twin} twin")
    plan = "plan: " + ", ".join(parts)
    if frozen_until >= config.steps:
        plan += ("; the actor stays the demonstrations' clone for the whole run "
                 f"(demos.critic_warmup_steps {frozen_until} >= steps), so the run ends at the "
                 "clone's evaluation, meeting the target or not")
    log(plan)


def _use_demonstrations(model, config: TrainConfig, log, rollouts, resumed: bool = False,
                        clock=None):
    """Collect, clone; return the record for summary.json and the RL-time anchor (or None).

    On resume the same demonstrations are collected again (same seed), but neither added to
    the restored replay buffer nor cloned again: they only rebuild the anchor and the actor
    freeze, so a resumed run goes on as the interrupted one would have.
    """
    from celltwin.training.features import standardize_from

    started = time.perf_counter()
    log(f"demonstrations: running {config.demos.episodes} expert episodes, then cloning them "
        f"({config.demos.bc_epochs} epochs)" + (f" and {config.demos.dagger_rounds} DAgger rounds"
                                                 if config.demos.dagger_rounds else ""))
    demos = collect_into(model, config, config.demos.episodes, 1_000_000 + config.seed,
                         rollouts, into_buffer=not resumed)
    if not len(demos.actions):
        return {"episodes": demos.episodes, "samples": 0}, None
    normalizer = model.get_vec_normalize_env()
    if not resumed:  # a resumed model has its statistics back from the checkpoint
        seen = demos.observations if normalizer is None else normalizer.normalize_obs(demos.observations)
        standardize_from(model.policy, seen)
    cloner = BehaviourCloner(model, demos, config.demos.bc_batch_size,
                             config.demos.bc_learning_rate, config.seed, normalizer=normalizer)
    loss = float("nan") if resumed else cloner.fit(config.demos.bc_epochs)
    seconds = time.perf_counter() - started
    log(f"demonstrations: {demos.episodes} expert episodes ({demos.success_rate:.0%} successful), "
        f"{len(demos.actions)} samples cloned, loss {loss:.4f}, {seconds:.1f} s")
    rounds = (_dagger(model, config, demos, log, rollouts, clock or (lambda: 0.0))
              if config.demos.dagger_rounds and not resumed else [])
    if rounds:
        seconds = time.perf_counter() - started
    anchor = None
    if config.algo != "ppo":
        anchor = AnchorCallback(cloner, config.demos.anchor_every_steps,
                                config.demos.critic_warmup_steps)
    return ({"episodes": demos.episodes, "expert_success": demos.success_rate,
             "samples": int(len(demos.actions)), "bc_loss": loss, "dagger": rounds,
             "seconds": round(seconds, 2)}, anchor)


def _dagger(model, config: TrainConfig, demos, log, rollouts, clock) -> list[dict]:
    """DAgger rounds after cloning; return one record per round.

    The rounds stop early, keeping the clone just measured, once it is clear of the run's
    target (``eval.target_success``; :func:`_clear_of`): further rounds cannot be needed and
    cost the wall budget (measured on PickPlace, 2 shared cores: a round 45-105 s, the plain
    clone already at 98%).
    They also stop when the run's clock (``clock()`` [s]) has used more than
    :data:`DAGGER_BUDGET_SHARE` of ``max_wall_s``, leaving the rest for the evaluations.

    Each round's episodes measure the clone the previous round left (the first: the plain
    clone), and one last set of episodes measures the final one; the actor ends as the best
    clone measured, since a round's retraining can also lose a few points (seen: 96% then
    92%). Each round runs on new seeds, so the kept clone's figure is the best of a few noisy
    estimates and reads a little high. The RL-time anchor clones the expert demonstrations
    only, in a fresh and in a resumed run alike; a resumed run restores the actor from its
    checkpoint and does not redo these rounds.
    """
    import copy

    env_set = demo_env_set(config, 2_000_000 + config.seed)  # the same startup draws every round
    normalizer = model.get_vec_normalize_env()
    actor = model.policy.actor if hasattr(model.policy, "actor") else model.policy
    rounds: list[dict] = []
    best = (-1.0, None, -1)
    episodes = config.demos.dagger_episodes
    for index in range(config.demos.dagger_rounds + 1):
        started = time.perf_counter()
        labelled = relabel(model, config, episodes, 2_000_000 + config.seed + index * episodes,
                           rollouts, env_set, normalizer=normalizer)
        if labelled.success_rate > best[0]:
            best = (labelled.success_rate, copy.deepcopy(actor.state_dict()), index)
        target = config.eval.target_success
        stop = None
        if index == config.demos.dagger_rounds:  # the final clone, measured only
            stop = f"the final clone succeeded in {labelled.success_rate:.0%}"
        elif target is not None and labelled.success_rate >= _clear_of(target):
            stop = (f"the clone succeeded in {labelled.success_rate:.0%} of {labelled.episodes} "
                    f"episodes, clear of the target of {target:.0%}: no further round")
        elif config.max_wall_s and clock() > DAGGER_BUDGET_SHARE * config.max_wall_s:
            stop = (f"the clone succeeded in {labelled.success_rate:.0%}; {clock():.0f} s of the "
                    f"run's {config.max_wall_s:.0f} s are used, no time for another round")
        if stop is not None:
            log(f"DAgger: {stop}; keeping the clone after round {best[2]} ({best[0]:.0%})")
            rounds.append({"clone_success": labelled.success_rate, "kept_round": best[2],
                           "seconds": round(time.perf_counter() - started, 2)})
            break
        demos = demos.plus(labelled)
        loss = BehaviourCloner(model, demos, config.demos.bc_batch_size,
                               config.demos.dagger_learning_rate, config.seed + 1 + index,
                               normalizer=normalizer).fit(config.demos.dagger_epochs)
        rounds.append({"clone_success": labelled.success_rate, "samples": int(len(demos.actions)),
                       "bc_loss": loss, "seconds": round(time.perf_counter() - started, 2)})
        log(f"DAgger round {index + 1}: the clone succeeded in {labelled.success_rate:.0%} of "
            f"{labelled.episodes} episodes; {len(demos.actions)} samples cloned, loss {loss:.4f}, "
            f"{rounds[-1]['seconds']:.1f} s")
    rollouts.forget(env_set)
    actor.load_state_dict(best[1])
    return rounds


def _write_checkpoint(run: RunDir, model, step: int, wall_s: float, adr: bool) -> None:
    adr_text = None
    if adr:
        # One ADR state per env; also kept at the top of the run, where it is easy to find.
        states = model.get_env().env_method("adr_state")
        adr_text = json.dumps({"step": step, "envs": states}, indent=1)
        atomic_write_text(run.path / "adr.json", adr_text)

    def write(folder: Path) -> None:
        if adr_text is not None:
            (folder / "adr.json").write_text(adr_text)
        model.save(str(folder / "model.zip"))
        if hasattr(model, "replay_buffer") and model.replay_buffer is not None:
            model.save_replay_buffer(str(folder / "replay_buffer.pkl"))
        normalizer = model.get_vec_normalize_env()
        if normalizer is not None:
            normalizer.save(str(folder / "vecnormalize.pkl"))

    run.write_checkpoint(step, write, {"num_timesteps": int(model.num_timesteps),
                                       "wall_s": round(wall_s, 3),
                                       "written_at": _now()})


def _finish(run: RunDir, config, model, evaluator, callback, train_wall: float,
            demo_record: dict) -> dict:
    normalizer = model.get_vec_normalize_env()

    def write(folder: Path) -> None:
        model.save(str(folder / "model.zip"))
        if normalizer is not None:
            normalizer.save(str(folder / "vecnormalize.pkl"))

    run.write_final(write, {"num_timesteps": int(model.num_timesteps),
                            "wall_s": round(train_wall, 3), "written_at": _now()})
    if not (run.checkpoints_dir / f"step_{int(model.num_timesteps):09d}").is_dir():
        _write_checkpoint(run, model, int(model.num_timesteps), train_wall, config.adr)
    evaluator.episodes = config.eval.final_episodes
    row = evaluator(model, normalizer)
    summary = {"task": config.task, "algo": config.algo, "seed": config.seed,
               "randomization": config.randomization, "steps": int(model.num_timesteps),
               "train_wall_s": round(train_wall, 2), "stopped_early": callback.stopped_early,
               "stop_reason": callback.stop_reason or "steps",
               "eval_episodes": config.eval.final_episodes, **row, "demonstrations": demo_record,
               "finished_at": _now()}
    atomic_write_text(run.summary_path, json.dumps(summary, indent=2))
    plot_curve(MetricsLog(run.metrics_path).rows(), run.curve_path, f"{config.task} ({config.algo})")
    return summary


def _meta(config: TrainConfig) -> dict:
    import stable_baselines3
    import torch

    device = resolve_device(config.device)
    return {"celltwin": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__,
            "device": device,
            "cuda_device": torch.cuda.get_device_name(0) if device == "cuda" else None,
            "cpu_count": __import__("os").cpu_count(), "host": platform.node(),
            "started_at": _now()}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
