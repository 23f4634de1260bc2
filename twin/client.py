"""A private pybullet client per world, created without pybullet's chatter.

pybullet's C code prints its build time (to stderr) at import and ``argv[0]=`` (to stdout)
whenever a client is connected with an options string, as ``BulletClient`` always does. Those
lines would mix into the CLI's reports and its one-line-per-problem errors, so both happen with
file descriptors 1 and 2 pointed at /dev/null for the moment they take.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

_LIBC = ctypes.CDLL(None)


@contextlib.contextmanager
def quiet_c_output():
    """Silence writes to file descriptors 1 and 2, including those from C extensions."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        _LIBC.fflush(None)  # C's stdout is block-buffered off a terminal: drain it while muted
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


with quiet_c_output():
    import pybullet
    from pybullet_utils.bullet_client import BulletClient


def direct_client() -> BulletClient:
    """Connect a new headless (DIRECT) pybullet client owned by the caller."""
    with quiet_c_output():
        return BulletClient(connection_mode=pybullet.DIRECT)


def gui_client() -> BulletClient:
    """Connect a pybullet client with its OpenGL window (needs a display)."""
    return BulletClient(connection_mode=pybullet.GUI)
