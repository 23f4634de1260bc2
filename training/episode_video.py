"""Videos of a policy's episodes on a twin (``celltwin evaluate --video N``, the demo's GIF).

The episodes are seeded as an evaluation's are (episode ``i`` starts from ``seed + i``), on one
env of the twin asked for (randomized when a randomization is given), and filmed with
:class:`celltwin.video.EpisodeRecorder`; each ends on a held frame naming its outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import gymnasium as gym

from celltwin.training.evaluation import load_policy, trained_on
from celltwin.video import EpisodeRecorder, video_format, write_video

MAX_VIDEO_EPISODES = 100   # a bound on typing mistakes: each episode is tens of frames


def record_episodes(env, policy, episodes: int, seed: int,
                    recorder: EpisodeRecorder) -> list[dict]:
    """Run and film ``episodes`` episodes; one record (seed, success, steps) per episode."""
    world = env.unwrapped.world
    outcomes = []
    for index in range(episodes):
        observation, _ = env.reset(seed=seed + index)
        policy.reset()
        label = f"episode {index + 1}/{episodes}"
        recorder.start(label)
        recorder.draw(world)
        done, info, steps = False, {}, 0
        while not done:
            observation, _, terminated, truncated, info = env.step(policy(observation))
            recorder.step(world)
            steps += 1
            done = terminated or truncated
        success = bool(info.get("is_success"))
        recorder.hold(f"{label}: {'success' if success else 'failure'} after {steps} steps")
        outcomes.append({"seed": seed + index, "success": success, "steps": steps})
    return outcomes


def record_video(policy_spec: str, env_id: str, env_kwargs: dict, path: str | Path, *,
                 episodes: int, seed: int = 0, randomization: str | None = None,
                 recorder: EpisodeRecorder | None = None,
                 bundle_policy: Callable[[Path], object] | None = None) -> dict:
    """Film ``episodes`` episodes of ``policy_spec`` (as :func:`evaluate` takes it) into
    ``path`` (``.gif`` or ``.mp4``) and return what was filmed.

    Raises:
        CelltwinError: a format the suffix does not name, a policy that cannot be loaded.
    """
    video_format(path)   # before any episode runs
    recorder = recorder or EpisodeRecorder()
    bundle = None
    if policy_spec != "expert" and bundle_policy is not None and \
            (Path(policy_spec) / "manifest.json").is_file():
        bundle = bundle_policy(Path(policy_spec))
    origin = trained_on(policy_spec, bundle)
    if origin is not None:
        env_kwargs = origin.env_kwargs(env_kwargs)
    env = gym.make(env_id, **env_kwargs)
    try:
        if randomization and randomization != "none":
            env.unwrapped.set_randomization(randomization)
        policy = bundle if bundle is not None else load_policy(policy_spec, env, bundle_policy)
        if hasattr(policy, "check_env"):
            policy.check_env(env)   # a bundle of another task or robot: refused, not filmed
        outcomes = record_episodes(env, policy, episodes, seed, recorder)
        fps = recorder.fps(env.unwrapped.world.control_period_s)
    finally:
        env.close()
    written = write_video(recorder.frames, path, fps=fps)
    return {"path": str(written), "policy": policy_spec, "env": env_id,
            "randomization": randomization or "none", "frames": len(recorder.frames),
            "fps": round(fps, 3), "episodes": outcomes}
