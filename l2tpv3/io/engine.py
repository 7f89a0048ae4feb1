"""Ports for the Cython fast path: the engine's C threads move the packets, the asyncio
loop only hears about TAP devices that vanished.

They satisfy :class:`~l2tpv3.io.api.TunnelPortAPI` / :class:`~l2tpv3.io.api.SessionPortAPI`
as the pure-Python ports do, by composition: each holds the engine (the Cython
``Tunnel``) and hands it descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping

from l2tpv3.errors import StateError
from l2tpv3.fast import native
from l2tpv3.io.api import Buffers, Offloads, Options, SessionPortAPI
from l2tpv3.io.sockets import peer_address
from l2tpv3.io.tap import Tap
from l2tpv3.proto.api import IpOwnershipAPI, SessionAPI, TunnelAPI

__all__ = ["CythonSessionPort", "CythonTunnelPort"]

log = logging.getLogger("l2tpv3d")


class CythonSessionPort:
    """A session's TAP, handed to its tunnel's engine."""

    def __init__(
        self,
        engine: native.Tunnel,
        session: SessionAPI,
        tap: Tap,
        on_gone: Callable[[], None],
        sock: socket.socket,
        peer: tuple[str, int],
    ) -> None:
        self.on_gone = on_gone
        self._sock = sock
        self._peer = peer
        self.session = session
        self.tap = tap
        self._engine = engine
        session.set_mtu(tap.mtu)
        # The engine's receive thread runs the reorder timers, and follows the TAP's MTU
        # by ifindex (RTM_NEWLINK) ahead of the next datagram.
        engine.attach(session.session_id, tap.fd, tap.vnet_hdr, tap.ifindex)

    def set_mtu(self, mtu: int) -> None:
        self.tap.mtu = mtu
        # The receive thread already set it, ahead of the next datagram; setting it here
        # too, later, could put back an older MTU after a quick second change.
        if not self._engine.follows_links:
            self.session.set_mtu(mtu)

    def inject(self, frame: bytes) -> None:
        # The header is written under the engine's send lock (sequence numbers).
        payload = self._engine.inject(self.session.session_id, frame)
        try:
            self._sock.sendto(payload, self._peer)
        except OSError:
            self.session.tx_failed(len(payload))

    def close(self) -> None:
        # The engine must let go of the descriptor before it is closed (and reused).
        self._engine.detach(self.session.session_id)
        self.tap.close()


class CythonTunnelPort:
    """A tunnel's socket, run by the engine's threads.

    The engine checks each datagram's source itself (against the peer, then the
    ownership the Cython ``Tunnel`` was made with) and has buffers of its own, so
    ``ownership`` and ``buffers`` (parameters of every port factory) are not used here.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: TunnelAPI,
        sock: socket.socket,
        ownership: IpOwnershipAPI,
        options: Options,
        buffers: Buffers,
    ) -> None:
        if not isinstance(tunnel, native.Tunnel):
            raise TypeError("the Cython ports run the Cython Tunnel only")
        self.loop: asyncio.AbstractEventLoop = loop
        self.tunnel = tunnel
        self._engine: native.Tunnel = tunnel
        self.sock: socket.socket = sock
        self._ports: dict[int, CythonSessionPort] = {}
        self._tap_offload = options.offload
        self._peer = peer_address(tunnel.config)
        self.on_control: Callable[[list[bytes]], None] | None = None
        try:
            tunnel.start(sock, peer_address(tunnel.config), options.batch, options.offload)
        except OSError as exc:
            raise StateError(f"cannot start the fast path: {exc}") from None
        self._notify: int = tunnel.notify_fd
        loop.add_reader(self._notify, self._on_gone)

    @property
    def ports(self) -> Mapping[int, SessionPortAPI]:
        return self._ports

    def open_session(
        self, session: SessionAPI, tap: Tap, on_gone: Callable[[], None]
    ) -> CythonSessionPort:
        # The engine attaches a TAP to a session it already knows.
        self._engine.add(session)
        try:
            port = CythonSessionPort(self._engine, session, tap, on_gone, self.sock, self._peer)
        except BaseException:
            self._engine.remove(session.session_id)
            raise
        self._ports[session.session_id] = port
        return port

    def close_session(self, session_id: int) -> bool:
        port = self._ports.pop(session_id, None)
        if port is None:
            return False
        port.close()
        self._engine.remove(session_id)
        return True

    def _on_gone(self) -> None:
        # The notify fd also says that control messages are queued (take_control).
        for sid in self._engine.take_gone():
            port = self._ports.get(sid)
            if port is not None:
                self.loop.call_soon(port.on_gone)
        msgs = self._engine.take_control()
        if msgs and self.on_control is not None:
            self.on_control(msgs)

    def send_control(self, payload: bytes) -> None:
        try:
            self.sock.sendto(payload, self._peer)
        except OSError as exc:
            log.warning(
                "tunnel %d: cannot send a control message: %s",
                self._engine.config.tunnel_id,
                exc.strerror,
            )

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
        for sid in list(self._ports):
            self.close_session(sid)
        with contextlib.suppress(OSError, ValueError):
            self.loop.remove_reader(self._notify)
        # Joins the threads; they wake at once (eventfd), so this does not block long.
        self._engine.stop()
        self.sock.close()

    def offloads(self) -> Offloads:
        # The engine's own record: UDP GSO falls back for good if the kernel refuses it.
        # The daemon opens the sessions' TAPs with IFF_VNET_HDR when offloads are on.
        st = self._engine.offload_stats
        return Offloads(
            tap_vnet_hdr=self._tap_offload, udp_gso=bool(st["udp_gso"]), udp_gro=bool(st["udp_gro"])
        )
