"""The one place the ``mujoco`` package is imported: missing or too old is a typed error.

MuJoCo is an extra (``pip install "celltwin[mujoco]"``), so every module of
:mod:`celltwin.mujoco` that needs it asks :func:`load_mujoco` at import, and a user without it
gets one line saying what to install instead of an ImportError.
"""

from __future__ import annotations

from celltwin.core.errors import Problem
from celltwin.mujoco.errors import MujocoError

# Geom surface velocity (``geom/@surfacevel``), which carries parts on a conveyor belt,
# arrived in MuJoCo 3.11; pyproject's ``mujoco`` extra asks for the same.
MIN_VERSION = (3, 11)
INSTALL = 'pip install "celltwin[mujoco]"'


def load_mujoco():
    """Return the ``mujoco`` module.

    Raises:
        MujocoError: it is not installed, or older than :data:`MIN_VERSION`.
    """
    try:
        import mujoco
    except ImportError:
        raise MujocoError(Problem("MuJoCo is not installed", value="mujoco",
                                  expected=f"the mujoco extra: {INSTALL}")) from None
    if _version(mujoco.__version__) < MIN_VERSION:
        wanted = ".".join(map(str, MIN_VERSION))
        raise MujocoError(Problem(f"MuJoCo {mujoco.__version__} is too old",
                                  value=mujoco.__version__,
                                  expected=f"mujoco >= {wanted}: {INSTALL}"))
    return mujoco


def _version(text: str) -> tuple[int, ...]:
    numbers = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        numbers.append(int(digits or 0))
    return tuple(numbers)
