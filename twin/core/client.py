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


class CachedBulletClient(BulletClient):
    """A BulletClient that binds each pybullet function to its client once.

    ``BulletClient`` builds a new ``functools.partial`` on every attribute lookup; a step or a
    reset makes dozens of calls, so the bound function is kept on the instance instead.
    ``disconnect`` is left uncached: BulletClient marks the client closed when it is looked up.
    """

    def __getattr__(self, name):
        attribute = super().__getattr__(name)
        if name != "disconnect" and callable(attribute):
            self.__dict__[name] = attribute
        return attribute

    @property
    def closed(self) -> bool:
        """Whether this client was disconnected."""
        return self._client < 0

    def disconnect(self) -> None:
        """Disconnect and forget every bound function: pybullet reuses client ids, and a
        function still bound to this id would reach whichever client gets it next."""
        if self._client >= 0:
            pybullet.disconnect(physicsClientId=self._client)
        self._client = -1
        for name in [n for n, v in self.__dict__.items() if callable(v)]:
            del self.__dict__[name]


def direct_client() -> BulletClient:
    """Connect a new headless (DIRECT) pybullet client owned by the caller."""
    with quiet_c_output():
        return CachedBulletClient(connection_mode=pybullet.DIRECT)


def gui_client() -> BulletClient:
    """Connect a pybullet client with its OpenGL window (needs a display)."""
    return CachedBulletClient(connection_mode=pybullet.GUI)
