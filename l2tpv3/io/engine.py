"""Daemon adapters for the Cython fast path: the engine's C threads move the packets,
the asyncio loop only hears about TAP devices that vanished.

Same interface as daemon.SessionPort / daemon.TunnelPort, whose state() they reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Container
from typing import Any

from l2tpv3.errors import StateError
from l2tpv3.fast import _fastpath
from l2tpv3.io.ports import SessionPort, TunnelPort
from l2tpv3.io.sockets import peer_address
from l2tpv3.io.tap import Tap

log = logging.getLogger("l2tpv3d")


class CythonSessionPort(SessionPort):
    """A session's TAP, handed to its tunnel's engine."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: TunnelPort,
        session: Any,
        tap: Tap,
        on_gone: Callable[[], None],
    ) -> None:
        self.loop = loop
        self.on_gone = on_gone
        self.tunnel = tunnel
        self.session = session
        self.tap = tap
        self._timer = None
        self.reorders = False  # the engine's receive thread runs the reorder timers
        self._engine: _fastpath.Tunnel = tunnel.tunnel  # type: ignore[assignment]
        session.set_mtu(tap.mtu)
        self._engine.attach(session.session_id, tap.fd, tap.vnet_hdr)

    def close(self) -> None:
        # The engine must let go of the descriptor before it is closed (and reused).
        self._engine.detach(self.session.session_id)
        self.tap.close()


class CythonTunnelPort(TunnelPort):
    """A tunnel's socket, run by the engine's threads."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: _fastpath.Tunnel,
        sock: socket.socket,
        other_peers: Container[str] = (),
        batch: int = 64,
        offload: bool = True,
    ) -> None:

        self.loop = loop
        self.tunnel = tunnel  # type: ignore[assignment]
        self._engine = tunnel
        self.sock = sock
        self.ports: dict[int, SessionPort] = {}
        self.peer = peer_address(tunnel.config)
        self.other_peers = other_peers
        try:
            tunnel.start(sock, self.peer, batch, offload)
        except OSError as exc:
            raise StateError(f"cannot start the fast path: {exc}") from None
        self._notify = tunnel.notify_fd
        loop.add_reader(self._notify, self._on_gone)

    def _on_gone(self) -> None:
        for sid in self._engine.take_gone():
            port = self.ports.get(sid)
            if port is not None:
                self.loop.call_soon(port.on_gone)

    def close(self) -> None:
        st = self._engine.offload_stats
        log.info(
            "tunnel %d: fast path: udp_gso %s, udp_gro %s, %d super-frames sent as %d frames "
            "in %d GSO sends; %d GRO datagrams in, %d super-frames to the TAPs",
            self._engine.config.tunnel_id,
            "on" if st["udp_gso"] else "off",
            "on" if st["udp_gro"] else "off",
            st["superframes_in"],
            st["segments_out"],
            st["gso_sends"],
            st["gro_datagrams_in"],
            st["gro_superframes_out"],
        )
        for port in self.ports.values():
            port.close()
        self.ports.clear()
        with contextlib.suppress(OSError, ValueError):
            self.loop.remove_reader(self._notify)
        # Joins the threads; they wake at once (eventfd), so this does not block long.
        self._engine.stop()
        self.sock.close()
