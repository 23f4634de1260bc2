"""How much work each stage of the demo does: the full run and ``--quick``.

The full budget is the job a newcomer is shown, in about 5 minutes on 2 cores: PickPlace from
its preset (expert demonstrations, behaviour cloning and DAgger under the ``standard``
randomization), with fewer DAgger rounds and evaluation episodes than the preset so that the
whole demo fits. ``--quick`` runs every stage the same way with tiny budgets, in under a
minute: a policy cloned from a dozen demonstrations, which rarely succeeds; it shows the
pipeline, not a policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Budget:
    """The work of each stage.

    Attributes:
        name: ``full`` or ``quick``.
        about: the expected wall time on 2 cores, in words.
        train: overrides of the PickPlace preset (dotted keys, as ``celltwin train`` flags).
        eval_episodes: episodes on the nominal and on the randomized twin [-].
        sweeps: the robustness grid (``TARGET.PARAMETER=LOW:HIGH:COUNT``, two of them).
        grid_episodes: episodes per grid point [-].
        video_episodes: episodes filmed [-].
        video_size: frame width and height [px].
        video_every: a frame every this many control steps [-].
        export_samples: recorded observations of the export's parity check [-].
        deploy_episodes: episodes deployed over OPC UA [-].
        deploy_episode_lengths: control steps per deployed episode, in training episode
            lengths: one, as evaluation gives (the twin trains under the joint limits the
            adapter enforces, so a deployed episode needs no more steps than a trained one) [-].
        layout_parts: parts fed to the cell in each layout run [-].
    """

    name: str
    about: str
    train: dict = field(default_factory=dict)
    eval_episodes: int = 30
    sweeps: tuple[str, ...] = ("part.mass_kg=0.1:0.7:3", "part.lateral_friction=0.3:1.2:3")
    grid_episodes: int = 4
    video_episodes: int = 3
    video_size: tuple[int, int] = (320, 240)
    video_every: int = 2
    export_samples: int = 1000
    deploy_episodes: int = 10
    deploy_episode_lengths: int = 1
    layout_parts: int = 6


FULL = Budget(
    name="full", about="about 5 minutes on 2 cores",
    train={"demos.episodes": 200, "demos.dagger_rounds": 2, "demos.dagger_episodes": 100,
           "eval.episodes": 30, "eval.final_episodes": 30})

QUICK = Budget(
    name="quick", about="under a minute on 2 cores",
    train={"demos.episodes": 12, "demos.bc_epochs": 10, "demos.dagger_rounds": 0,
           "eval.episodes": 2, "eval.final_episodes": 2, "rollout_workers": 1},
    eval_episodes=2, sweeps=("part.mass_kg=0.1:0.7:2", "part.lateral_friction=0.3:1.2:2"),
    grid_episodes=1, video_episodes=1, video_size=(160, 120), video_every=4,
    export_samples=64, deploy_episodes=1, deploy_episode_lengths=1, layout_parts=1)

BUDGETS = {budget.name: budget for budget in (FULL, QUICK)}
