"""The pure-Python data path's asyncio adapters: a TAP per session, a socket per tunnel.

The per-packet loops read in batches until the descriptor is drained and never raise:
failures become counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable, Mapping

from l2tpv3.config import Encap
from l2tpv3.constants import HEADROOM
from l2tpv3.io.api import Buffers, Offloads, Options, SessionPortAPI
from l2tpv3.io.espport import EspPath
from l2tpv3.io.ivstate import IvStore
from l2tpv3.io.sockets import ipv4_payload_offset, peer_address
from l2tpv3.io.tap import Tap
from l2tpv3.proto.api import IpOwnershipAPI, Payload, SessionAPI, TunnelAPI
from l2tpv3.proto.counters import TAP_WRITE_FAILED
from l2tpv3.proto.session import Session

__all__ = ["SessionPort", "TunnelPort"]

log = logging.getLogger("l2tpv3d")


class SessionPort:
    """A session's TAP device and its TAP-to-socket loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: TunnelPort,
        session: Session,
        tap: Tap,
        on_gone: Callable[[], None],
        buffers: Buffers,
        batch: int,
    ) -> None:
        self.loop = loop
        self.batch = batch
        self.buffers = buffers
        self.on_gone = on_gone
        self.tunnel = tunnel
        self.session = session
        self.tap = tap
        self._timer: asyncio.TimerHandle | None = None
        self.reorders = session.config.reorder_timeout > 0
        session.set_mtu(tap.mtu)
        loop.add_reader(tap.fd, self._on_tap_readable)

    def _on_tap_readable(self) -> None:
        fd = self.tap.fd
        readv = os.readv
        send = self.tunnel.sendto
        peer = self.tunnel.peer
        next_header = self.session.next_header
        buffers = self.buffers
        buf = buffers.tx
        view = buffers.tx_view
        into = buffers.tx_frame
        # MSS clamping in place, before the header (no offloads here: full checksums).
        clamp = self.session.clamp if self.session.config.mss_clamp != "off" else None
        for _ in range(self.batch):
            try:
                n = readv(fd, into)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EBADFD:
                    # Someone ran `ip link del` on the device. The kernel deletes the
                    # session along with its l2tpethN; so do we.
                    self.loop.remove_reader(fd)
                    self.loop.call_soon(self.on_gone)
                else:
                    log.warning("%s: read failed: %s", self.tap.name, exc.strerror)
                return
            if clamp is not None:
                clamp(view[HEADROOM : HEADROOM + n])
            hdr = next_header(n)
            start = HEADROOM - len(hdr)
            buf[start:HEADROOM] = hdr
            try:
                send(view[start : HEADROOM + n], peer)
            except OSError:
                # A full socket buffer or no route: the kernel counts tx_errors.
                self.session.tx_failed(HEADROOM + n - start)

    def set_mtu(self, mtu: int) -> None:
        # Runs before any datagram that arrived after the event: the loop hands out
        # ready descriptors in the order they became ready.
        self.tap.mtu = mtu
        self.session.set_mtu(mtu)

    def inject(self, frame: bytes) -> None:
        try:
            # Through the tunnel's sender: sealed in ESP when the tunnel has an SA.
            self.tunnel.sendto(self.session.encapsulate(frame), self.tunnel.peer)
        except OSError:
            self.session.tx_failed(self.session.layout.tx_header_len + len(frame))

    def write(self, frames: list[Payload]) -> None:
        fd = self.tap.fd
        write = os.write
        for frame in frames:
            try:
                write(fd, frame)
            except OSError:
                # The TAP is down or its queue is full: the kernel drops on the device.
                self.session.drops[TAP_WRITE_FAILED] += 1

    def rearm(self) -> None:
        deadline = self.session.next_deadline()
        if deadline is None:
            return
        timer = self._timer
        if timer is not None and not timer.cancelled() and timer.when() <= deadline:
            return
        if timer is not None:
            timer.cancel()
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.write(self.session.poll(self.loop.time()))
        self.rearm()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.loop.remove_reader(self.tap.fd)
        if self._timer is not None:
            self._timer.cancel()
        self.tap.close()


class TunnelPort:
    """A tunnel's underlay socket and its socket-to-TAP loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: TunnelAPI,
        sock: socket.socket,
        ownership: IpOwnershipAPI,
        options: Options,
        buffers: Buffers,
    ) -> None:
        self.loop = loop
        self.batch = options.batch
        self.buffers = buffers
        self.tunnel = tunnel
        self.sock = sock
        self._ports: dict[int, SessionPort] = {}
        cfg = tunnel.config
        self.peer = peer_address(cfg)
        # Unused: the tunnel consults the ownership it was made with (receive_foreign).
        self.ownership = ownership
        self._strip_ip = cfg.encap is Encap.IP and cfg.family == 4
        # Where a session's datagrams go: the socket, or sealed in ESP (set_esp).
        self.sendto: Callable[[bytes | memoryview, tuple[str, int]], object] = sock.sendto
        self.esp: EspPath | None = None
        self.on_control: Callable[[list[bytes]], None] | None = None
        loop.add_reader(sock.fileno(), self._on_sock_readable)

    def _on_sock_readable(self) -> None:
        recv = self.sock.recvfrom_into
        buf = self.buffers.rx
        receive = self.tunnel.receive
        ports = self._ports
        strip_ip = self._strip_ip
        peer_host, peer_port = self.peer
        esp = self.esp
        now = self.loop.time()
        touched: set[SessionPort] = set()
        dropped = False
        for _ in range(self.batch):
            try:
                n, source = recv(buf)
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning(
                    "tunnel %d: receive failed: %s", self.tunnel.config.tunnel_id, exc.strerror
                )
                break
            # A view, not a copy: the frames in it are written out before the next read.
            data = buf[:n]
            if strip_ip:
                if n < 20:
                    continue
                data = data[ipv4_payload_offset(data) :]
            if source[0] != peer_host or source[1] != peer_port:
                # wrong_source, or over IP maybe another tunnel's to count.
                self.tunnel.receive_foreign(data, source[0])
                continue
            if esp is not None and esp.requires_esp:
                # An inbound SA: the peer's L2TPv3 must come in ESP (docs/security.md).
                esp.inbound.plaintext()
                continue
            session, frames = receive(data, now)
            if session is None:
                dropped = True
                continue
            port = ports[session.session_id]
            if frames:
                port.write(frames)
            if port.reorders:
                touched.add(port)
        for port in touched:
            port.rearm()
        if dropped and self.on_control is not None:
            msgs = self.tunnel.take_control()
            if msgs:
                self.on_control(msgs)

    def send_control(self, payload: bytes) -> None:
        try:
            self.sendto(payload, self.peer)
        except OSError as exc:
            log.warning(
                "tunnel %d: cannot send a control message: %s",
                self.tunnel.config.tunnel_id,
                exc.strerror,
            )

    def _deliver(self, data: bytes) -> None:
        """One L2TPv3 datagram that arrived in ESP, now opened."""
        session, frames = self.tunnel.receive(data, self.loop.time())
        if session is None:
            # A control message (HELLO, ZLB ACK) that came in ESP: the tunnel queued it
            # as the clear-text path's receive does; hand it over the same way.
            if self.on_control is not None:
                msgs = self.tunnel.take_control()
                if msgs:
                    self.on_control(msgs)
            return
        port = self._ports[session.session_id]
        if frames:
            port.write(frames)
        if port.reorders:
            port.rearm()

    def esp_path(self, ivs: IvStore) -> EspPath:
        """This tunnel's ESP state, made on first use (add sa)."""
        if self.esp is None:
            self.esp = EspPath(self.loop, self.tunnel.config, self._deliver, ivs)
        return self.esp

    def esp_changed(self) -> None:
        """After an SA was added or deleted. While the tunnel has any SA, only ESP
        leaves it: with no outbound SA (only inbound ones, or between a `del sa dir out`
        and the next `add sa`) its frames are dropped as tx_errors, never sent in
        clear. With no SA left it is a plain L2TPv3 tunnel again."""
        esp = self.esp
        if esp is not None and not esp.active:
            esp.close()
            self.esp = esp = None
        # Any SA at all: only ESP leaves (without an outbound SA, nothing: tx_errors).
        self.sendto = esp.sendto if esp is not None else self.sock.sendto

    @property
    def ports(self) -> Mapping[int, SessionPortAPI]:
        return self._ports

    def open_session(
        self, session: SessionAPI, tap: Tap, on_gone: Callable[[], None]
    ) -> SessionPort:
        if not isinstance(session, Session):
            raise TypeError("the pure-Python ports run the pure-Python Session")
        self.tunnel.add(session)
        try:
            port = SessionPort(self.loop, self, session, tap, on_gone, self.buffers, self.batch)
        except BaseException:
            self.tunnel.remove(session.session_id)
            raise
        self._ports[session.session_id] = port
        return port

    def close_session(self, session_id: int) -> bool:
        port = self._ports.pop(session_id, None)
        if port is None:
            return False
        port.close()
        self.tunnel.remove(session_id)
        return True

    def close(self) -> None:
        for sid in list(self._ports):
            self.close_session(sid)
        if self.esp is not None:
            self.esp.close()
            self.esp = None
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def offloads(self) -> Offloads:
        # One datagram per system call, one frame per TAP read: nothing offloaded.
        return Offloads(tap_vnet_hdr=False, udp_gso=False, udp_gro=False)
