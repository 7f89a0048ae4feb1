"""The control protocol without a socket: the daemon's real connection handler (JSON
lines in, answers out) and its real dispatcher, on an in-memory registry of tunnels and
sessions that keeps the daemon's rules (duplicates, unknown IDs, IP-encap session IDs
unique per host) but opens no socket and makes no TAP.

The connection handler is the closure :func:`serve` passes to
``asyncio.start_unix_server``; :class:`Control` catches it by standing in for that
function once, then feeds each input to it through a :class:`asyncio.StreamReader`.

Rules checked for every input (the stream a client sent, then EOF):

* the handler returns: nothing escapes it (asyncio would only log it, and the client
  would get no answer);
* every answer is one line holding a JSON object with a boolean ``ok``; an error
  answer has a one-line string ``error`` that is not an ``internal error`` (the
  dispatcher's catch-all for a bug of ours).

Open findings (:data:`OPEN_FINDINGS`) are tolerated by default so that the fuzzer keeps
looking for new ones; each has a strict-xfail test in tests/fuzz/test_findings.py that
runs without the tolerance and turns red once the fix lands: then its name goes from
:data:`OPEN_FINDINGS` and the mark from the test.

Two code layouts are supported while the control package is being refactored: the
old one (``l2tpv3.control.transport.serve`` + ``Daemon.handle``) and the new one
(``l2tpv3.control.server.serve`` + ``server.handler(ops)`` on the op table of
``l2tpv3.control.protocol``). Whichever the checkout has is used.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import socket
import tempfile
import types
from collections.abc import Awaitable, Callable
from typing import Any
from unittest import mock

from fuzz.python.rxcheck import Invariant, check
from l2tpv3.config import Encap, SessionConfig, TunnelConfig
from l2tpv3.errors import StateError

ClientCallback = Callable[[asyncio.StreamReader, Any], Awaitable[None]]

# Known, reported, not yet fixed (tests/fuzz/test_findings.py). Fixed: "deep-json"
# (deeply nested JSON raised RecursionError out of the connection handler) and
# "multiline-error" (an error answer quoted a client's newline verbatim), issue 11.
OPEN_FINDINGS: frozenset[str] = frozenset()


class FakeOps:
    """The daemon's operations on dictionaries only."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.tunnels: dict[int, TunnelConfig] = {}
        self.sessions: dict[tuple[int, int], SessionConfig] = {}
        self.ip_sessions: dict[int, int] = {}

    def add_tunnel(self, config: TunnelConfig) -> None:
        if not isinstance(config, TunnelConfig):
            raise Invariant(f"add_tunnel got {config!r}")
        if config.tunnel_id in self.tunnels:
            raise StateError(f"tunnel {config.tunnel_id} already exists")
        if len(self.tunnels) < 64:
            self.tunnels[config.tunnel_id] = config

    def del_tunnel(self, tunnel_id: int) -> None:
        self._tunnel(tunnel_id)
        for tid, sid in list(self.sessions):
            if tid == tunnel_id:
                self.del_session(tid, sid)
        del self.tunnels[tunnel_id]

    def add_session(self, config: SessionConfig) -> None:
        if not isinstance(config, SessionConfig):
            raise Invariant(f"add_session got {config!r}")
        t = self._tunnel(config.tunnel_id)
        key = (config.tunnel_id, config.session_id)
        if key in self.sessions:
            raise StateError(f"session {config.session_id} already exists")
        if t.encap is Encap.IP and config.session_id in self.ip_sessions:
            raise StateError(f"session {config.session_id} already exists in another tunnel")
        if len(self.sessions) < 256:
            self.sessions[key] = config
            if t.encap is Encap.IP:
                self.ip_sessions[config.session_id] = config.tunnel_id

    def del_session(self, tunnel_id: int, session_id: int) -> None:
        self._tunnel(tunnel_id)
        if self.sessions.pop((tunnel_id, session_id), None) is None:
            raise StateError(f"session {session_id} does not exist in tunnel {tunnel_id}")
        if self.ip_sessions.get(session_id) == tunnel_id:
            del self.ip_sessions[session_id]

    def show_tunnels(self, tunnel_id: int | None = None) -> list[Any]:
        check(tunnel_id is None or isinstance(tunnel_id, int), f"show_tunnels({tunnel_id!r})")
        return []

    def show_sessions(
        self, tunnel_id: int | None = None, session_id: int | None = None
    ) -> list[Any]:
        for v in (tunnel_id, session_id):
            check(v is None or isinstance(v, int), f"show_sessions got {v!r}")
        return []

    def ping(self) -> Any:
        pong = importlib.import_module("l2tpv3.control.protocol").Pong
        return pong(version="0", pid=os.getpid())

    def _tunnel(self, tunnel_id: int) -> TunnelConfig:
        check(isinstance(tunnel_id, int), f"tunnel_id {tunnel_id!r} passed on")
        t = self.tunnels.get(tunnel_id)
        if t is None:
            raise StateError(f"tunnel {tunnel_id} does not exist")
        return t


class FakeWriter:
    def __init__(self, peer: socket.socket) -> None:
        self.out = bytearray()
        self.closed = False
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        # A real socket whose peer is this process: the server's SO_PEERCRED check
        # passes as for a client of the daemon's own uid.
        return self.peer if name == "socket" else default

    def write(self, data: bytes) -> None:
        check(not self.closed, "write after close")
        self.out += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    async def wait_closed(self) -> None:
        return None


def _layout() -> tuple[Callable[..., Awaitable[Any]], Callable[[FakeOps], Any]]:
    """(serve, make_handler) of whichever control package layout this checkout has."""
    try:
        server: Any = importlib.import_module("l2tpv3.control.server")
    except ImportError:
        transport: Any = importlib.import_module("l2tpv3.control.transport")
        core: Any = importlib.import_module("l2tpv3.daemon.core")

        def old_handler(ops: FakeOps) -> Any:
            # Daemon.handle and Daemon._dispatch on the fake registry: the real
            # decoding of each request, the fake operations.
            ops_any: Any = ops
            ops_any._dispatch = types.MethodType(core.Daemon._dispatch, ops)
            return types.MethodType(core.Daemon.handle, ops)

        return transport.serve, old_handler
    return server.serve, server.handler


class Control:
    """One event loop and one registry for a whole fuzzing run."""

    def __init__(self, tolerate: frozenset[str] = OPEN_FINDINGS) -> None:
        self.tolerate = tolerate
        self.loop = asyncio.new_event_loop()
        self.ops = FakeOps()
        serve, make_handler = _layout()
        handler = make_handler(self.ops)
        caught: dict[str, Any] = {}

        async def fake_start(callback: ClientCallback, path: str | None, **kw: Any) -> object:
            caught["cb"], caught["limit"] = callback, kw.get("limit", 2**16)
            if kw.get("sock") is not None:
                kw["sock"].close()  # bound by serve, never listened on
            elif path is not None:
                with open(path, "wb"):
                    pass
            return object()

        with (
            tempfile.TemporaryDirectory() as tmp,
            mock.patch.object(asyncio, "start_unix_server", fake_start),
        ):
            self.loop.run_until_complete(serve(os.path.join(tmp, "ctl.sock"), handler))
        self.on_client: ClientCallback = caught["cb"]
        self.limit: int = caught["limit"]
        self.peer, self._peer_end = socket.socketpair()

    def close(self) -> None:
        self.loop.close()
        self.peer.close()
        self._peer_end.close()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Send ``data`` as one client would, then EOF; the answers, checked."""
        reader = asyncio.StreamReader(limit=self.limit, loop=self.loop)
        reader.feed_data(data)
        reader.feed_eof()
        writer = FakeWriter(self.peer)
        try:
            self.loop.run_until_complete(self.on_client(reader, writer))
        except Invariant:
            raise
        except RecursionError as exc:
            if "deep-json" in self.tolerate:
                return []
            raise Invariant(f"the connection handler raised {exc!r}") from exc
        except BaseException as exc:
            raise Invariant(f"the connection handler raised {exc!r}") from exc
        check(writer.closed, "the connection was not closed")
        answers = []
        lines = bytes(writer.out).split(b"\n")
        check(lines[-1] == b"", "an answer does not end with a newline")
        for line in lines[:-1]:
            try:
                answer = json.loads(line)
            except ValueError as exc:
                raise Invariant(f"an answer is not JSON: {line[:200]!r}") from exc
            check(
                isinstance(answer, dict) and isinstance(answer.get("ok"), bool),
                f"answer without a boolean ok: {line[:200]!r}",
            )
            if not answer["ok"]:
                err = answer.get("error")
                check(isinstance(err, str), f"bad error field: {line[:200]!r}")
                assert isinstance(err, str)
                if "multiline-error" not in self.tolerate:
                    check("\n" not in err, f"an error of several lines: {line[:200]!r}")
                check(not err.startswith("internal error"), f"a bug answered: {err[:300]}")
            answers.append(answer)
        if len(self.ops.tunnels) >= 64 or len(self.ops.sessions) >= 256:
            self.ops.reset()
        return answers
