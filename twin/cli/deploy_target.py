"""What `celltwin deploy` connects to, for a bundle and a set-point program alike: the engine
check, and an OPC UA controller from the deploy options (waiting for it to listen)."""

from __future__ import annotations

from celltwin.core.errors import CelltwinError, Problem


def check_engine(args) -> None:
    """Refuse ``--engine`` other than pybullet with an OPC UA controller: it runs its own."""
    if args.engine != "pybullet" and args.controller != "twin":
        raise CelltwinError(Problem("--engine picks the engine of the twin run in this process; "
                                    "an OPC UA controller runs its own", path="--engine",
                                    value=args.engine, expected="--controller twin, or "
                                    "`celltwin serve CELL --engine mujoco` to serve that engine"))


def opcua_controller(args):
    """The OPC UA controller at ``args.controller`` (a context manager), after waiting up to
    ``--wait-s`` for its server to listen, with the deploy options' user and certificates."""
    from celltwin.policies.deploy.opcua_client import OpcUaController

    if args.wait_s:
        wait_for_endpoint(args.controller, args.wait_s)
    return OpcUaController(args.controller, username=args.username, password=args.password,
                           certificate=args.certificate, private_key=args.private_key,
                           server_certificate=args.server_certificate)


def wait_for_endpoint(endpoint: str, wait_s: float) -> bool:
    """Wait until something accepts TCP connections at ``endpoint``'s host and port, for at
    most ``wait_s`` seconds; True once it does. A server listens only once its address space
    is built (``VirtualControllerServer.start``), so a connection is a server ready to serve;
    one that never comes is left for the OPC UA client to report."""
    import socket
    import time
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    if not parts.hostname:
        return False
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with socket.create_connection((parts.hostname, parts.port or 4840), timeout=1.0):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)   # a bounded readiness poll, not a retry of the session
