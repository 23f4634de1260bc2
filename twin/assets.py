"""Where celltwin's shipped assets live: example cells, robot descriptions, presets.

Installed, ``assets/`` is the data package ``celltwin_assets``; in a source checkout it is the
``assets/`` folder beside this package. Code asks this module and never builds paths itself.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from pathlib import Path

from twin.errors import CelltwinError, Problem


@cache
def assets_root() -> Path:
    """Return the folder that holds celltwin's assets."""
    # Code run from a source checkout uses that checkout's assets, even when an older
    # celltwin is installed beside it.
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "assets").is_dir():
        return checkout / "assets"
    spec = importlib.util.find_spec("celltwin_assets")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    raise CelltwinError(Problem("celltwin's assets are missing from this installation",
                                expected="a celltwin_assets package or an assets/ folder"))


def asset_path(relative: str) -> Path:
    """Return the path of a shipped asset, e.g. ``asset_path("cells/pick_station.yaml")``."""
    path = assets_root() / relative
    if not path.exists():
        raise CelltwinError(Problem(f"no shipped asset '{relative}'", path=str(path)))
    return path


def cache_dir(kind: str) -> Path:
    """Return (and create) the on-disk cache folder for ``kind`` (e.g. ``"meshes"``).

    ``CELLTWIN_CACHE`` overrides the default ``~/.cache/celltwin``.
    """
    root = Path(os.environ.get("CELLTWIN_CACHE", Path.home() / ".cache" / "celltwin"))
    path = root / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
