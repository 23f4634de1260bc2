"""Where celltwin's shipped assets live: example cells, robot descriptions, presets.

``assets/`` ships as the data package ``celltwin.assets``; this module finds it with
importlib.resources, so it works the same from a wheel, an editable install or a zip. Code asks
this module and never builds paths itself.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path

from celltwin.core.errors import CelltwinError, Problem


@cache
def assets_root() -> Path:
    """Return the folder that holds celltwin's assets."""
    try:
        root = Path(str(resources.files("celltwin.assets")))
    except ModuleNotFoundError:
        root = None
    if root is None or not root.is_dir():
        raise CelltwinError(Problem("celltwin's assets are missing from this installation",
                                    expected="the celltwin.assets data package"))
    return root


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
