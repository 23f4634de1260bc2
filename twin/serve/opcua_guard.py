"""The OPC UA transport of a served twin, guarded against hostile and broken clients.

asyncua's binary server trusts its peers: a frame it cannot parse is logged with a traceback
and the connection stays open; a connection that never says Hello holds a slot for 30 s; and
1,000 such connections (its only cap) lock every legitimate client out. This module puts a
guard between the socket and asyncua's protocol, one per server:

- Framing: the first frame must be a Hello, and every frame must carry a message type a client
  may send (HEL once, then OPN, MSG, CLO; MSG and CLO only after an OPN), a chunk type that
  type allows and a size within the server's receive buffer. Anything else is refused before
  asyncua reads it.
- Errors: a frame asyncua fails on (a random OPN body, a security policy the server does not
  offer, a secure channel it cannot decrypt) is refused too, instead of being logged and
  ignored.
- Time: a connection must complete its Hello within ``hello_timeout_s`` of connecting and
  activate a session within ``session_timeout_s`` of its Hello, or it is closed.
- Count: at most ``max_connections`` connections are open. When a new client arrives at the
  cap, the oldest connection that has not activated a session yet gives way to it (a client
  that completes its handshake is never pushed out by ones that idle); only when every
  connection holds an active session is the newcomer refused.

"Refused" means: one line in the ``celltwin.serve`` log naming the peer and why, an OPC UA
ERR message with a status code and the same reason (so the client can tell what happened),
and the connection closed. Never a traceback; the server carries on.

asyncua builds its transport inside ``Server.start`` with no hook for another class, so
:class:`GuardedServer` repeats that method's few lines with :class:`GuardedBinaryServer` in
its place; ``tests/test_opcua_hostile.py`` pins the asyncua source it repeats and fails loudly
when an upgrade changes it.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass

from asyncua import Server, ua
from asyncua.server.binary_server_asyncio import BinaryServer, OPCUAProtocol
from asyncua.ua.ua_binary import struct_from_binary, uatcp_to_binary

from celltwin.core.errors import Problem
from celltwin.serve.errors import ServeError

_LOG = logging.getLogger("celltwin.serve")

# Message and chunk types a client may send (OPC 10000-6, 7.1.2): ACK, ERR and RHE flow from
# server to client only.
_CHUNKS = {b"HEL": b"F", b"OPN": b"F", b"CLO": b"F", b"MSG": b"FCA"}
_HEADER = struct.Struct("<3scI")
# A Hello is five UInt32 and an endpoint URL of at most 4096 bytes (OPC 10000-6, 7.1.2.3).
_HELLO_MIN, _HELLO_MAX = _HEADER.size + 24, _HEADER.size + 24 + 4096
# Secure channel frames carry at least a channel id and a security token or policy header.
_SECURE_MIN = _HEADER.size + 8
_MIN_BUFFER = 8192
# How long a refused client may take to read why and close its end [s].
LINGER_S = 1.0


@dataclass(frozen=True)
class ConnectionLimits:
    """How many clients a served twin admits and how long a handshake may take.

    Attributes:
        max_connections: open TCP connections at most; at the cap, the oldest connection
            without an active session is closed to admit a new one.
        hello_timeout_s: time from connect to a complete Hello message [s].
        session_timeout_s: time from a complete Hello to an activated session [s].
    """

    max_connections: int = 32
    hello_timeout_s: float = 5.0
    session_timeout_s: float = 10.0

    def check(self) -> None:
        """Raises ServeError listing every limit out of range."""
        problems = []
        if isinstance(self.max_connections, bool) or not isinstance(self.max_connections, int) \
                or self.max_connections < 1:
            problems.append(Problem("max_connections must be a positive integer",
                                    path="limits.max_connections", value=self.max_connections,
                                    expected="an integer >= 1"))
        for name in ("hello_timeout_s", "session_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value < float("inf"):
                problems.append(Problem(f"{name} must be a positive number of seconds",
                                        path=f"limits.{name}", value=value,
                                        expected="a finite number > 0 [s]"))
        if problems:
            raise ServeError(problems)


class GuardedServer(Server):
    """asyncua's ``Server`` whose binary transport is :class:`GuardedBinaryServer`.

    Args:
        limits: the connection limits.
        **options: passed to ``asyncua.Server``.
    """

    def __init__(self, limits: ConnectionLimits, **options):
        super().__init__(**options)
        limits.check()
        self.connection_limits = limits

    async def start(self) -> None:
        """asyncua 2.1's ``Server.start`` with the guarded transport (see the module docstring).

        It leaves out asyncua's certificate warnings (celltwin checks its certificates in
        :class:`~celltwin.serve.opcua_security.ServerSecurity`) and its traceback on a port
        that cannot be bound (the caller reports that as one error line).
        """
        await self._setup_server_nodes()
        await self.iserver.start()
        host, port = self.socket_address or (self.endpoint.hostname, self.endpoint.port)
        try:
            self.bserver = GuardedBinaryServer(self.iserver, host, port, self.limits,
                                               self.connection_limits)
            self.bserver.set_policies(self._policies)
            await self.bserver.start()
        except Exception:
            await self.iserver.stop()
            raise


class GuardedBinaryServer(BinaryServer):
    """asyncua's binary server whose connections are :class:`GuardedProtocol`."""

    def __init__(self, internal_server, hostname, port, limits, connection_limits):
        super().__init__(internal_server, hostname, port, limits)
        self.guard = ConnectionGuard(connection_limits)
        self.policies: list = []
        # The guard decides who connects and how long a handshake may take: asyncua's own
        # cap (which counts connections still closing) and its activation watchdog (which
        # logs on its own) stand aside.
        internal_server.max_connections = 2 ** 31
        internal_server.max_pending_activation_seconds = 0

    def set_policies(self, policies) -> None:
        super().set_policies(policies)
        self.policies = policies

    def _make_protocol(self) -> "GuardedProtocol":
        # asyncua's protocol factory: called by asyncio once per accepted connection.
        return GuardedProtocol(self.guard, iserver=self.iserver, policies=self.policies,
                               clients=self.clients, closing_tasks=self.closing_tasks,
                               limits=self.limits)


class ConnectionGuard:
    """The open connections of one server, oldest first, and the admission rule."""

    def __init__(self, limits: ConnectionLimits):
        self.limits = limits
        self.open: list[GuardedProtocol] = []

    def admit(self, protocol: "GuardedProtocol") -> bool:
        """Whether ``protocol`` may stay open; at the cap, an idle handshake gives way to it."""
        cap = self.limits.max_connections
        if len(self.open) >= cap:
            waiting = next((other for other in self.open if not other.session_active), None)
            if waiting is None:
                return False
            waiting.refuse(f"closed to admit a newer client: {cap} connections open (the "
                           "limit) and this one had not activated a session",
                           ua.StatusCodes.BadTcpServerTooBusy)
        self.open.append(protocol)
        return True

    def forget(self, protocol: "GuardedProtocol") -> None:
        if protocol in self.open:
            self.open.remove(protocol)


class GuardedProtocol(OPCUAProtocol):
    """One client connection: asyncua's protocol behind the guard (see the module docstring)."""

    def __init__(self, guard: ConnectionGuard, **options):
        super().__init__(**options)
        self.guard = guard
        self.peer = "unknown peer"
        self.refused = False
        self.frames = FrameChecker(self.limits.max_recv_buffer)
        self.deadline: asyncio.TimerHandle | None = None
        self.awaiting_hello = True
        self.heard = False           # the client has sent something
        self.socket = None           # the transport, also when asyncua never got it
        self.answer: bytes | None = None  # an ERR message held back for the client's Hello

    # ----------------------------------------------------------------------------- asyncio
    def connection_made(self, transport) -> None:
        self.socket = transport
        self.peer = _peer_text(transport.get_extra_info("peername"))
        if not self.guard.admit(self):
            self.refuse(f"{self.guard.limits.max_connections} connections with active "
                        "sessions are open (the limit)", ua.StatusCodes.BadTcpServerTooBusy,
                        expect_more=True)
            return
        super().connection_made(transport)
        if self.processor is not None:
            self.processor = RefusingProcessor(self.processor, self)
        limit = self.guard.limits.hello_timeout_s
        self._arm(limit, f"sent no complete Hello within {limit:g} s")

    def data_received(self, data: bytes) -> None:
        self.heard = True
        if self.refused:
            if self.answer is not None and self.socket is not None:
                self._close_in_order(self.socket, self.answer)
                self.answer = None
            return  # a refused client's last bytes, read only so that closing is orderly
        problem = self.frames.feed(data)
        if problem is not None:
            self.refuse(*problem)
            return
        if self.awaiting_hello and self.frames.hello_received:
            self.awaiting_hello = False
            limit = self.guard.limits.session_timeout_s
            self._arm(limit, f"activated no session within {limit:g} s of its Hello")
        super().data_received(data)

    def connection_lost(self, exc) -> None:
        self.guard.forget(self)
        if self.deadline is not None:
            self.deadline.cancel()
        super().connection_lost(exc)

    # ----------------------------------------------------------------------------- refusing
    @property
    def session_active(self) -> bool:
        """Whether this client has activated a session (it then counts as established)."""
        session = getattr(self.processor, "session", None)
        return session is not None and session.is_activated()

    def refuse(self, reason: str, status: int = ua.StatusCodes.BadTcpMessageTypeInvalid, *,
               tell: bool = True, expect_more: bool = False) -> None:
        """Log one line, tell the client why in an ERR message and close. Idempotent.

        Args:
            reason: why, for the log and the client.
            status: the ERR message's status code.
            tell: send the ERR message (``False`` where asyncua has sent its own).
            expect_more: the client will send more (it just connected, its Hello is coming).
        """
        if self.refused:
            return
        self.refused = True
        self.guard.forget(self)
        if self.deadline is not None:
            self.deadline.cancel()
        _LOG.warning("refused client %s: %s", self.peer, reason)
        transport = self.socket
        if transport is None or transport.is_closing():
            return
        answer = _error_frame(status, reason) if tell else b""
        if expect_more and not self.heard:
            # An ERR message now would reach a client that has not sent its Hello yet and so
            # waits for no answer: it would then wait for one in vain. Its Hello gets the ERR
            # message instead; a client that sends nothing is closed after LINGER_S.
            self.answer = answer
            self.deadline = asyncio.get_running_loop().call_later(LINGER_S, transport.close)
        elif self.heard:
            self._close_in_order(transport, answer)
        else:
            transport.write(answer)
            transport.close()

    def _close_in_order(self, transport, answer: bytes) -> None:
        """Send ``answer`` and close, without resetting the connection under the client."""
        transport.write(answer)
        if not transport.can_write_eof():
            transport.close()
            return
        # Closing a socket with the client's data unread resets the connection, and a reset
        # can destroy the ERR message before the client reads it. So: send it and our end of
        # the stream, then read (and drop) what still comes until the client closes its end
        # too, for LINGER_S at most.
        transport.write_eof()
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = asyncio.get_running_loop().call_later(LINGER_S, transport.close)

    def _arm(self, timeout_s: float, reason: str) -> None:
        """(Re)start the handshake deadline: at ``timeout_s`` from now, refuse the client
        unless its session is active by then."""
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = asyncio.get_running_loop().call_later(timeout_s, self._expire, reason)

    def _expire(self, reason: str) -> None:
        if not self.session_active:
            self.refuse(reason, ua.StatusCodes.BadTimeout)


class RefusingProcessor:
    """asyncua's UaProcessor of one connection; a message it fails on refuses the client.

    asyncua would log such a failure with a traceback and keep reading from the same peer.
    Messages of a refused client that were queued already are dropped. Everything but
    :meth:`process` is the wrapped processor's.
    """

    def __init__(self, processor, protocol: GuardedProtocol):
        self.inner = processor
        self.protocol = protocol

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    async def process(self, header, body) -> bool:
        # True keeps asyncua from closing at once: refuse() closes in order (see there).
        if self.protocol.refused:
            return True
        try:
            if header.MessageType == ua.MessageType.Hello:
                problem = _hello_problem(struct_from_binary(ua.Hello, body.copy(header.body_size)))
                if problem is not None:
                    self.protocol.refuse(problem, ua.StatusCodes.BadTcpInternalError)
                    return True
            keep = await self.inner.process(header, body)
        except Exception as error:  # noqa: BLE001 - whatever a peer's bytes broke, refuse it
            self.protocol.refuse(*_failure(header.MessageType, error))
            return True
        if not keep and header.MessageType != ua.MessageType.SecureClose:
            # asyncua closes on an oversized request (after its own ERR message) or a refused
            # certificate, and says so only in its own log.
            self.protocol.refuse("the OPC UA stack refused a message (too large, or the "
                                 "channel's certificate)", tell=False)
        return keep


class FrameChecker:
    """Follows the frame boundaries of one client's byte stream and checks every header.

    Args:
        max_frame: largest frame the server receives [bytes] (its ReceiveBufferSize).

    Attributes:
        hello_received: the whole Hello frame has arrived.
    """

    def __init__(self, max_frame: int):
        self.max_frame = max_frame
        self.header = b""
        self.remaining = 0      # bytes of the current frame's body still to come
        self.frames = 0
        self.opened = False     # an OPN frame has arrived
        self.hello_received = False

    def feed(self, data: bytes) -> tuple[str, int] | None:
        """Account for ``data``; returns (reason, status) for the first bad header, if any."""
        view = memoryview(data)
        while view:
            if self.remaining:
                step = min(self.remaining, len(view))
                self.remaining -= step
                view = view[step:]
                self.hello_received = self.hello_received or (self.frames == 1
                                                              and not self.remaining)
                continue
            need = _HEADER.size - len(self.header)
            self.header += bytes(view[:need])
            view = view[need:]
            if len(self.header) < _HEADER.size:
                return None
            kind, chunk, size = _HEADER.unpack(self.header)
            self.header = b""
            problem = self._check(kind, chunk, size)
            if problem is not None:
                return problem
            self.remaining = size - _HEADER.size
        return None

    def _check(self, kind: bytes, chunk: bytes, size: int) -> tuple[str, int] | None:
        first = self.frames == 0
        self.frames += 1
        name = kind.decode("ascii", "backslashreplace")
        if kind not in _CHUNKS:
            return (f"sent a frame of unknown type {name!r}"
                    + (" instead of Hello" if first else ""),
                    ua.StatusCodes.BadTcpMessageTypeInvalid)
        if first and kind != b"HEL":
            return f"sent {name} before Hello", ua.StatusCodes.BadTcpMessageTypeInvalid
        if not first and kind == b"HEL":
            return "sent a second Hello", ua.StatusCodes.BadTcpMessageTypeInvalid
        if chunk not in _CHUNKS[kind]:
            return (f"sent {name} with chunk type {chunk!r}",
                    ua.StatusCodes.BadTcpMessageTypeInvalid)
        low, high = (_HELLO_MIN, _HELLO_MAX) if kind == b"HEL" else (_SECURE_MIN, self.max_frame)
        if not low <= size <= high:
            return (f"sent {name} of {size} bytes (expected {low}-{high})",
                    ua.StatusCodes.BadTcpMessageTooLarge if size > high
                    else ua.StatusCodes.BadDecodingError)
        if kind in (b"MSG", b"CLO") and not self.opened:
            return (f"sent {name} before OpenSecureChannel",
                    ua.StatusCodes.BadSecureChannelIdInvalid)
        self.opened = self.opened or kind == b"OPN"
        return None


def _hello_problem(hello: ua.Hello) -> str | None:
    # OPC 10000-6, 7.1.2.3: both buffers are at least 8192 bytes; smaller ones would make
    # asyncua cut its answers into chunks smaller than their own headers.
    if hello.ReceiveBufferSize < _MIN_BUFFER or hello.SendBufferSize < _MIN_BUFFER:
        return (f"sent a Hello with buffer sizes {hello.ReceiveBufferSize}/"
                f"{hello.SendBufferSize} bytes (at least {_MIN_BUFFER} each)")
    return None


def _failure(kind: bytes, error: Exception) -> tuple[str, int]:
    """What to tell a client whose frame asyncua failed on, and with which status."""
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) > 160:
        text = text[:157] + "..."
    if kind == b"OPN":
        if "policy" in text.lower():
            return (f"asked for a security policy this server does not offer ({text})",
                    ua.StatusCodes.BadSecurityPolicyRejected)
        return (f"could not open a secure channel ({text})",
                ua.StatusCodes.BadSecurityChecksFailed)
    name = kind.decode("ascii", "backslashreplace")
    return f"sent a {name} message the server cannot read ({text})", ua.StatusCodes.BadDecodingError


def _error_frame(status: int, reason: str) -> bytes:
    return uatcp_to_binary(ua.MessageType.Error,
                           ua.ErrorMessage(ua.StatusCode(status), reason[:4000]))


def _peer_text(peer) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
