"""An exported bundle as a policy in a celltwin env, for ``celltwin evaluate``.

Evaluation (:mod:`celltwin.training.evaluation`) takes the policy of a bundle folder from its
caller, since training comes before export; the CLI hands it :class:`BundlePolicy`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from celltwin.core.errors import Problem
from celltwin.policies.bundle import load_bundle
from celltwin.policies.deploy.runtime import OnnxPolicy
from celltwin.policies.errors import BundleError
from celltwin.policies.manifest import episode_steps


class BundlePolicy:
    """An exported bundle acting in the env: the verified ONNX, as the adapter runs it.

    The bundle's actions are in controller units (metres or radians per step, a gripper
    opening in metres); the env takes them normalized, so the controller scaling is undone
    here. Evaluating the bundle rather than the checkpoint judges exactly what is deployed.
    """

    def __init__(self, folder: Path):
        bundle = load_bundle(folder)
        self.manifest = bundle.manifest
        self.onnx = OnnxPolicy(bundle.onnx_bytes, bundle.manifest)
        self.keys = [entry["key"] for entry in self.manifest["policy"]["input"]["layout"]]
        control = self.manifest["control"]
        self.scale = control["scale"] or 1.0
        self.uses_gripper = control["uses_gripper"]
        self.arm_size = self.manifest["action"]["arm_size"]
        closed, opened = self.manifest["robot"]["gripper"]["width_range_m"]
        self.width_mid, self.width_half = (opened + closed) / 2, (opened - closed) / 2
        observation = self.manifest["observation"]
        # What evaluation checks an env against (celltwin.training.evaluation.trained_on).
        self.task = self.manifest["training"]["task"]
        self.control = control["mode"]
        self.success_threshold_m = observation["success_threshold_m"]
        self.goal_bounds = ((observation["goal_low_m"], observation["goal_high_m"])
                            if "goal_low_m" in observation else None)
        # What a layout run checks a robot against (celltwin.layout.policy_cycle).
        self.observation_terms = tuple(term["name"] for term in observation["terms"])
        self.achieved_goal_term = observation["achieved_goal_term"]
        self.robot_model = self.manifest["robot"]["model"]
        self.max_episode_steps = episode_steps(self.manifest)

    def check_env(self, env) -> None:
        """Refuse an env whose observations or actions are not the bundle's (another task,
        control mode or robot): its numbers would mean other things to the policy.

        Raises:
            BundleError: one problem per mismatch, with both sizes.
        """
        spaces = env.observation_space.spaces
        layout = self.manifest["policy"]["input"]["layout"]
        sizes = {entry["key"]: entry["size"] for entry in layout}
        problems = [Problem(f"the env's '{key}' has {int(np.prod(spaces[key].shape))} numbers, "
                            f"the bundle's {size}", path=f"policy.input.layout.{key}",
                            value=int(np.prod(spaces[key].shape)), expected=str(size))
                    for key, size in sizes.items()
                    if key not in spaces or int(np.prod(spaces[key].shape)) != size]
        arm = self.arm_size + (1 if self.uses_gripper else 0)
        acts = int(np.prod(env.action_space.shape))
        if acts != arm:
            problems.append(Problem(f"the env takes {acts} action numbers, the bundle gives "
                                    f"{arm} ({self.control})", path="action.arm_size",
                                    value=acts, expected=str(arm)))
        if problems:
            raise BundleError(problems)

    def reset(self) -> None:
        pass

    def __call__(self, observation):
        vector = np.concatenate([np.asarray(observation[key], np.float32).ravel()
                                 for key in self.keys])
        action = self.onnx(vector)
        arm = action[:self.arm_size] / self.scale
        if not self.uses_gripper:
            return arm.astype(np.float32)
        grip = (action[self.arm_size] - self.width_mid) / self.width_half
        return np.append(arm, grip).astype(np.float32)
