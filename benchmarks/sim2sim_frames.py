"""Pictures of one sim-to-sim episode: the same drawn episode, pybullet above, MuJoCo below.

Runs ``celltwin gap``'s episodes (``celltwin.policies.gap.measure_gap``) from ``--first`` up to
``--seed`` (the env's startup draws come from its first episode, so an episode is only the same
episode after the same ones before it) and films episode ``--seed`` in both engines at the
chosen control steps: the pybullet twin with its own renderer, the MuJoCo twin with MuJoCo's
(``mujoco.Renderer``; it needs an OpenGL context: ``MUJOCO_GL=egl``, the default here, or
``osmesa``). The camera looks at where the part starts, from the same eye in both engines.

Run::

    python benchmarks/sim2sim_frames.py BUNDLE --seed 1081 --dr standard --steps 7 9 10 11 \\
        --out docs/img/sim2sim_1081.png
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from celltwin.policies.gap import measure_gap  # noqa: E402

WIDTH, HEIGHT = 320, 240
DISTANCE_M, AZIMUTH_DEG, ELEVATION_DEG = 0.45, -60.0, 25.0


def eye_of(target: np.ndarray) -> np.ndarray:
    a, e = math.radians(AZIMUTH_DEG), math.radians(ELEVATION_DEG)
    return target + DISTANCE_M * np.array([math.cos(e) * math.cos(a),
                                           math.cos(e) * math.sin(a), math.sin(e)])


def render_pybullet(world, target: np.ndarray) -> np.ndarray:
    from celltwin.render import render_view

    client = world.client
    view = client.computeViewMatrix(eye_of(target).tolist(), target.tolist(), [0, 0, 1])
    projection = client.computeProjectionMatrixFOV(45.0, WIDTH / HEIGHT, 0.02, 10.0)
    return render_view(world, width=WIDTH, height=HEIGHT, matrices=(view, projection))


class MujocoCamera:
    """MuJoCo's renderer on the twin's model, its free camera at the same eye."""

    def __init__(self):
        self._renderer, self._model = None, None

    def render(self, twin, target: np.ndarray) -> np.ndarray:
        import mujoco

        if self._model is not twin.model:
            self._renderer = mujoco.Renderer(twin.model, HEIGHT, WIDTH)
            self._model = twin.model
        camera = mujoco.MjvCamera()
        camera.lookat[:] = target
        camera.distance = DISTANCE_M
        # MuJoCo's free camera looks along (azimuth, elevation) from behind the look-at point.
        camera.azimuth = AZIMUTH_DEG + 180.0
        camera.elevation = -ELEVATION_DEG
        twin.model.vis.global_.fovy = 45.0
        # The cell's model has no lights of its own: a brighter headlight than MuJoCo's.
        twin.model.vis.headlight.ambient[:] = 0.45
        twin.model.vis.headlight.diffuse[:] = 0.6
        self._renderer.update_scene(twin.data, camera)
        return self._renderer.render()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--seed", type=int, required=True, help="the episode to film")
    parser.add_argument("--first", type=int, default=1000, help="the run's first seed")
    parser.add_argument("--dr", default="none")
    parser.add_argument("--steps", type=int, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    wanted = set(args.steps)
    frames: dict[str, dict[int, np.ndarray]] = {"pybullet": {}, "mujoco": {}}
    target: dict[str, np.ndarray] = {}
    camera = MujocoCamera()

    def film(engine, seed, twin, step):
        if seed != args.seed:
            return
        if engine not in target:
            target[engine] = np.asarray(twin.pose("part")[0], dtype=float)
        if step in wanted:
            look = target[engine]
            frames[engine][step] = (render_pybullet(twin, look) if engine == "pybullet"
                                    else camera.render(twin, look))

    report = measure_gap(args.bundle, episodes=args.seed - args.first + 1, seed=args.first,
                         randomization=args.dr, frames=film)
    rows = []
    for engine in ("pybullet", "mujoco"):
        episode = report["episodes"][engine][-1]
        outcome = "success" if episode["success"] else f"failed in {episode['phase']}"
        tiles = []
        for step in args.steps:
            image = Image.fromarray(frames[engine].get(step, np.zeros((HEIGHT, WIDTH, 3),
                                                                      np.uint8)))
            ImageDraw.Draw(image).text((6, 6), f"{engine}, step {step} ({outcome})",
                                       fill=(0, 0, 0))
            tiles.append(np.asarray(image))
        rows.append(np.concatenate(tiles, axis=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
