"""The PickPlace sim-to-sim figure: a bundle trained in pybullet, judged in pybullet and MuJoCo.

Trains PickPlace with its preset (the ``standard`` randomization preset, demonstrations and
DAgger, ``training/presets/pickplace.yaml``), exports the bundle, and runs ``celltwin gap`` on it
twice, 100 seeded episodes each (seeds 1000-1099): on the nominal twin (the bundle's own env) and
with the ``standard`` draws. Every step is a ``celltwin`` command, printed before it runs, so the
figure can be made again by hand; ``--bundle`` skips training and measures a bundle you have
(after training changes land, say).

Run::

    python benchmarks/sim2sim.py --out runs/sim2sim            # ~5 min training + ~2 min gap
    python benchmarks/sim2sim.py --bundle BUNDLE --out runs/sim2sim

Writes ``OUT/gap_none`` and ``OUT/gap_standard`` (gap.json, gap.md, gap.png each) and prints the
two tables.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

CELLTWIN = [sys.executable, "-m", "celltwin.cli.main"]


def run(*args) -> None:
    print("$ celltwin " + " ".join(shlex.quote(str(arg)) for arg in args), flush=True)
    subprocess.run([*CELLTWIN, *map(str, args)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/sim2sim"))
    parser.add_argument("--bundle", type=Path, default=None,
                        help="measure this bundle instead of training one")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    bundle = args.bundle
    if bundle is None:
        run("train", "--task", "PickPlace", "--seed", args.seed, "--out", args.out / "run",
            "--no-progress")
        bundle = args.out / "bundle"
        run("export", args.out / "run", "-o", bundle)
    for dr in ("none", "standard"):
        run("gap", bundle, "--episodes", args.episodes, "--seed", 1000, "--dr", dr,
            "--out", args.out / f"gap_{dr}")
    for dr in ("none", "standard"):
        print((args.out / f"gap_{dr}" / "gap.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
