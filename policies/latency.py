"""How long one control-loop exchange with a served twin takes over OPC UA on loopback.

One exchange is what the deployment adapter does every policy step: read the whole state (one
Read call) and write the next set-points (one Write call). :func:`opcua_round_trip` times that
against a real ``celltwin serve`` server in the same process, with its real-time clock ticking
the twin, so the figure includes whatever the physics takes from the server's loop. Server,
client loop and timing loop share one interpreter (and its GIL); a server in its own process,
as in production, can only do better. ``benchmarks/deploy_latency.py`` reports it.

It sits beside :mod:`celltwin.policies.deploy`, not in it: it starts a served twin (pybullet),
which the controller side never loads.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from celltwin.policies.deploy.opcua_client import OpcUaController
from celltwin.serve.opcua_security import CLIENT_APPLICATION_URI, ServerSecurity, ensure_certificate
from celltwin.serve.opcua_server import ServerThread
from celltwin.serve.virtual_controller import VirtualController

_USER, _PASSWORD = "bench", "bench-password"


def opcua_round_trip(n: int = 500, *, cell: str = "reach_table", secure: bool = False,
                     ticking: bool = True, warmup: int = 20) -> dict:
    """Time ``n`` read-state + write-set-point exchanges with a served twin.

    Args:
        n: exchanges to time.
        cell: the cell to serve.
        secure: Basic256Sha256 SignAndEncrypt with a user login instead of NoSecurity.
        ticking: run the server's real-time clock (physics in the server loop) meanwhile.
        warmup: exchanges run first and not timed.

    Returns:
        ``{"n", "p50_ms", "p99_ms", "max_ms", "mean_ms", "security", "ticking",
        "control_period_ms", "server": VirtualControllerServer.stats()}``.
    """
    with tempfile.TemporaryDirectory(prefix="celltwin-bench-") as folder, \
            VirtualController.from_cell(cell) as controller:
        security, client_options = _security(Path(folder), secure)
        with ServerThread(controller, port=0, security=security, tick=ticking) as served:
            with OpcUaController(served.endpoint, **client_options) as client:
                target = client.read_state().joint_positions
                for _ in range(warmup):
                    client.read_state()
                    client.send_joint_targets(target)
                durations = np.empty(n)
                for index in range(n):
                    started = time.perf_counter()
                    client.read_state()
                    client.send_joint_targets(target)  # hold still: a benchmark moves nothing
                    durations[index] = time.perf_counter() - started
            stats = served.server.stats()
    milliseconds = durations * 1e3
    return {"n": n, "p50_ms": float(np.percentile(milliseconds, 50)),
            "p99_ms": float(np.percentile(milliseconds, 99)), "max_ms": float(milliseconds.max()),
            "mean_ms": float(milliseconds.mean()),
            "security": "Basic256Sha256/SignAndEncrypt" if secure else "None",
            "ticking": ticking, "control_period_ms": controller.control_period_s * 1e3,
            "server": stats}


def _security(folder: Path, secure: bool) -> tuple[ServerSecurity, dict]:
    if not secure:
        return ServerSecurity(insecure=True), {}
    certificate, key = ensure_certificate(folder, "client", CLIENT_APPLICATION_URI)
    return (ServerSecurity(users={_USER: _PASSWORD}, certificate_dir=folder),
            {"username": _USER, "password": _PASSWORD, "certificate": certificate,
             "private_key": key})
