"""A private pybullet client per world, created without pybullet's chatter on stdout.

pybullet's C code prints its build time at import and ``argv[0]=`` whenever a client is
connected with an options string (as ``BulletClient`` always does). Those lines would mix into
the CLI's reports and JSON on stdout, so both happen with file descriptor 1 pointed at
/dev/null for the moment it takes.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_stdout():
    """Silence writes to file descriptor 1, including those from C extensions."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


with quiet_stdout():
    import pybullet
    from pybullet_utils.bullet_client import BulletClient


def direct_client() -> BulletClient:
    """Connect a new headless (DIRECT) pybullet client owned by the caller."""
    with quiet_stdout():
        return BulletClient(connection_mode=pybullet.DIRECT)
