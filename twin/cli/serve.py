"""`celltwin serve`: run a cell's twin as a virtual robot controller over OPC UA."""

from __future__ import annotations

import argparse
import os

from celltwin.cli.arguments import input_file, integer, non_negative_float, port, seed
from celltwin.cli.common import add_engine, add_world_arguments, build_world, virtual_controller
from celltwin.core.actuation_limits import LATENCY_STEPS_RANGE
from celltwin.cli.logs import configure_logging
from celltwin.core.errors import Problem
from celltwin.serve.errors import ServeError

PASSWORD_ENV = "CELLTWIN_OPCUA_PASSWORD"


def register(subparsers) -> None:
    serve = subparsers.add_parser(
        "serve", help="serve a cell's twin as a virtual robot controller over OPC UA",
        description="Builds the twin of CELL and serves one of its robots over OPC UA with the "
                    "OPC 40010 robotics model plus celltwin's command interface (docs/serve.md), "
                    "stepping physics in real time at the cell's control period until Ctrl-C. "
                    "Secure by default: Basic256Sha256 SignAndEncrypt with a user login "
                    "(self-signed server certificate generated on first use).")
    add_world_arguments(serve)
    add_engine(serve, "the served twin")
    serve.add_argument("--robot-name", metavar="NAME", default=None,
                       help="which robot of the cell to serve (default: the only one)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=port, default=4840,
                       help="TCP port (default: 4840; 0 picks a free one)")
    serve.add_argument("--latency-steps", type=integer(*LATENCY_STEPS_RANGE), default=None, metavar="K",
                       help="actuation latency [control periods] (default: the cell's physics)")
    serve.add_argument("--noise-rad", type=non_negative_float, default=None, metavar="S",
                       help="std. dev. of noise on reported joint positions [rad] "
                            "(default: the cell's physics)")
    serve.add_argument("--seed", type=seed, default=None,
                       help="seed of the state noise (default: fresh)")
    serve.add_argument("--track", metavar="BODY", action="append", default=[],
                       help="report this body's position in the robot base frame (repeatable)")
    serve.add_argument("--verbose", action="store_true",
                       help="show the OPC UA library's own log, tracebacks included (default: "
                            "one line per refused client or command; also $CELLTWIN_VERBOSE=1)")
    security = serve.add_argument_group("security")
    security.add_argument("--insecure", action="store_true",
                          help="NoSecurity and anonymous access, for local commissioning only")
    security.add_argument("--cert", type=input_file, default=None, metavar="FILE",
                          help="server certificate, DER or PEM (default: self-signed, generated)")
    security.add_argument("--key", type=input_file, default=None, metavar="FILE",
                          help="private key of --cert")
    security.add_argument("--user", default=None, help="user name clients log in with")
    security.add_argument("--password", default=None,
                          help=f"password of --user (default: ${PASSWORD_ENV}; prefer it, "
                               "command lines are visible to other users)")
    security.add_argument("--trust", type=input_file, action="append", default=[], metavar="CERT",
                          help="admit only clients with this certificate (repeatable; "
                               "default: any client certificate, login still required)")
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import asyncio

    from celltwin.serve.opcua_server import VirtualControllerServer

    if args.verbose:
        configure_logging(verbose=True)
    security = _security(args)
    if not security.insecure:
        security.server_credentials()  # bad files or users fail now, not after building the twin
    world = build_world(args)
    try:
        controller = virtual_controller(world, args.engine, args.robot_name,
                                        latency_steps=args.latency_steps,
                                        noise_rad=args.noise_rad, seed=args.seed,
                                        tracked_objects=args.track)
        try:
            server = VirtualControllerServer(
                controller, host=args.host, port=args.port, security=security,
                serial_number=f"{world.spec.name}/{controller.robot_name}")
            try:
                asyncio.run(_serve(server, security, args.engine))
            except KeyboardInterrupt:   # a second Ctrl-C while stopping
                pass
        finally:
            controller.close()   # closes a MuJoCo twin it built; never the pybullet world
        print("stopped")
        return 0
    finally:
        world.close()


async def _serve(server, security, engine: str) -> None:
    import asyncio
    import signal

    await server.start()
    try:
        controller = server.controller
        mode = ("NoSecurity, anonymous (--insecure)" if security.insecure
                else "Basic256Sha256 SignAndEncrypt, user login")
        print(f"serving robot '{controller.robot_name}' ({controller.robot_model}) at "
              f"{server.endpoint}")
        print(f"engine: {engine}")
        print(f"security: {mode}; control period {controller.control_period_s * 1e3:g} ms, "
              f"latency {controller.latency_steps} steps, noise {controller.noise_rad:g} rad")
        print("Ctrl-C to stop", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Handled here rather than left to Python's KeyboardInterrupt: a server started in the
        # background of a script inherits SIGINT ignored, and a service manager stops with
        # SIGTERM. Either signal stops the server cleanly, whatever the parent's dispositions.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await server.stop()


def _security(args: argparse.Namespace):
    from celltwin.serve.opcua_security import ServerSecurity

    if args.insecure:
        given = [flag for flag, value in (("--cert", args.cert), ("--key", args.key),
                                          ("--user", args.user), ("--password", args.password),
                                          ("--trust", args.trust)) if value]
        if given:
            raise ServeError([Problem(f"{flag} has no effect with --insecure", path=flag,
                                      expected="either --insecure or the security options")
                              for flag in given])
        return ServerSecurity(insecure=True)
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    if args.user is None or not password:
        raise ServeError(Problem("a secure server needs a user and a password", path="--user",
                                 expected=f"--user NAME with --password or ${PASSWORD_ENV}, "
                                          "or --insecure for local commissioning"))
    return ServerSecurity(certificate=args.cert, private_key=args.key,
                          users={args.user: password},
                          trusted_client_certificates=tuple(args.trust))
