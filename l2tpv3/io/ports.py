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
from l2tpv3.constants import CAPTURE_OUT, HEADROOM
from l2tpv3.errors import StateError
from l2tpv3.io.api import Buffers, Offloads, Options, SessionPortAPI
from l2tpv3.io.capture import CaptureRing, Foreign, Receive, capture_receivers
from l2tpv3.io.espport import EspPath
from l2tpv3.io.ivstate import IvStore
from l2tpv3.io.sockets import ipv4_payload_offset, peer_address
from l2tpv3.io.tap import Tap
from l2tpv3.proto.api import IpOwnershipAPI, Payload, SessionAPI, TrunkAPI, TunnelAPI
from l2tpv3.proto.counters import TAP_WRITE_FAILED
from l2tpv3.proto.session import Session

__all__ = ["SessionPort", "TrunkPort", "TunnelPort"]

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
        # A trunk session writes to the shared trunk TAP; its TrunkPort reads it.
        self.on_trunk = session.vlan != 0
        if not self.on_trunk:
            loop.add_reader(tap.fd, self._on_tap_readable)

    def _on_tap_readable(self) -> None:
        fd = self.tap.fd
        readv = os.readv
        send = self.tunnel.sendto
        # `l2tpv3 capture`: the one test per batch when none runs.
        cap = self.tunnel.capture
        if cap is not None:
            send = cap.sender(send, self.session.session_id)
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
        payload = self.session.encapsulate(frame)
        cap = self.tunnel.capture
        if cap is not None:
            cap.add(CAPTURE_OUT, self.session.session_id, 0, payload)
        try:
            # Through the tunnel's sender: sealed in ESP when the tunnel has an SA.
            self.tunnel.sendto(payload, self.tunnel.peer)
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
        if self._timer is not None:
            self._timer.cancel()
        if self.on_trunk:
            return  # the trunk's TAP is the daemon's to close, with its last session
        with contextlib.suppress(OSError, ValueError):
            self.loop.remove_reader(self.tap.fd)
        self.tap.close()


class TrunkPort:
    """A trunk TAP's reader: each frame to the session its outer VID maps to
    (proto/vlan.py), untagged in place with ``pop``; the rest are the trunk's drops."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: TunnelPort,
        trunk: TrunkAPI,
        tap: Tap,
        on_gone: Callable[[], None],
    ) -> None:
        self.loop = loop
        self.tunnel = tunnel
        self.trunk = trunk
        self.tap = tap
        self.on_gone = on_gone
        loop.add_reader(tap.fd, self._on_readable)

    def _on_readable(self) -> None:
        fd = self.tap.fd
        readv = os.readv
        tport = self.tunnel
        send = tport.sendto
        peer = tport.peer
        ports = tport.ports_by_id
        classify = self.trunk.classify
        buffers = tport.buffers
        buf = buffers.tx
        view = buffers.tx_view
        into = buffers.tx_frame
        for _ in range(tport.batch):
            try:
                n = readv(fd, into)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EBADFD:
                    # `ip link del` on the trunk: its sessions go with it.
                    self.loop.remove_reader(fd)
                    self.loop.call_soon(self.on_gone)
                else:
                    log.warning("%s: read failed: %s", self.tap.name, exc.strerror)
                return
            end = HEADROOM + n
            sid = classify(view[HEADROOM:end])
            port = None if sid is None else ports.get(sid)
            if port is None:
                continue
            session = port.session
            begin = HEADROOM + session.untag(view[HEADROOM:end])
            if session.config.mss_clamp != "off":
                session.clamp(view[begin:end])
            hdr = session.next_header(end - begin)
            start = begin - len(hdr)
            buf[start:begin] = hdr
            try:
                send(view[start:end], peer)
            except OSError:
                session.tx_failed(end - start)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.loop.remove_reader(self.tap.fd)


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
        self.ports_by_id = self._ports
        self._trunks: dict[str, TrunkPort] = {}
        cfg = tunnel.config
        self.peer = peer_address(cfg)
        # Unused: the tunnel consults the ownership it was made with (receive_foreign).
        self.ownership = ownership
        self._strip_ip = cfg.encap is Encap.IP and cfg.family == 4
        # Where a session's datagrams go: the socket, or sealed in ESP (set_esp).
        self.sendto: Callable[[bytes | memoryview, tuple[str, int]], object] = sock.sendto
        self.esp: EspPath | None = None
        self.on_control: Callable[[list[bytes]], None] | None = None
        self._control_failing: str | None = None
        # `l2tpv3 capture` (io/capture.py): None unless one runs.
        self.capture: CaptureRing | None = None
        loop.add_reader(sock.fileno(), self._on_sock_readable)

    def _on_sock_readable(self) -> None:
        recv = self.sock.recvfrom_into
        buf = self.buffers.rx
        receive: Receive = self.tunnel.receive
        foreign: Foreign = self.tunnel.receive_foreign
        # `l2tpv3 capture`: the one test per batch when none runs.
        if self.capture is not None:
            receive, foreign = capture_receivers(
                self.capture, self.tunnel, self.tunnel.config.encap is Encap.UDP
            )
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
                foreign(data, source[0])
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
        if self.capture is not None:
            self.capture.add(CAPTURE_OUT, 0, 0, payload)
        try:
            self.sendto(payload, self.peer)
        except OSError as exc:
            # Once per cause until a send succeeds: a peer sending HELLOs every few
            # seconds to a tunnel that cannot answer (an inbound SA and no outbound one
            # never falls back to clear text) must not fill the log.
            why = exc.strerror or str(exc)
            if why != self._control_failing:
                self._control_failing = why
                log.warning(
                    "tunnel %d: cannot send a control message: %s (not logged again "
                    "until one is sent)",
                    self.tunnel.config.tunnel_id,
                    why,
                )
        else:
            self._control_failing = None

    def _deliver(self, data: bytes) -> None:
        """One L2TPv3 datagram that arrived in ESP, now opened."""
        receive: Receive = self.tunnel.receive
        if self.capture is not None:
            # `l2tpv3 capture` records it in clear, as the clear-text path does.
            receive, _ = capture_receivers(
                self.capture, self.tunnel, self.tunnel.config.encap is Encap.UDP
            )
        session, frames = receive(data, self.loop.time())
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

    def open_trunk(self, trunk: TrunkAPI, tap: Tap, on_gone: Callable[[], None]) -> None:
        self._trunks[trunk.name] = TrunkPort(self.loop, self, trunk, tap, on_gone)

    def close_trunk(self, trunk: TrunkAPI) -> None:
        port = self._trunks.pop(trunk.name, None)
        if port is not None:
            port.close()

    def close(self) -> None:
        for sid in list(self._ports):
            self.close_session(sid)
        for trunk in list(self._trunks.values()):
            trunk.close()
        self._trunks.clear()
        if self.esp is not None:
            self.esp.close()
            self.esp = None
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def capture_start(self, session_id: int) -> None:
        """Begin copying this tunnel's datagrams (``session_id`` 0: every session's)."""
        if self.capture is not None:
            raise StateError(f"a capture already runs on tunnel {self.tunnel.config.tunnel_id}")
        self.capture = CaptureRing(session_id)

    def capture_take(self) -> tuple[bytes, int]:
        """The records since the last call, and how many were lost so far."""
        cap = self.capture
        if cap is None:
            return b"", 0
        return cap.take(), cap.lost

    def capture_stop(self) -> None:
        self.capture = None

    def offloads(self) -> Offloads:
        # One datagram per system call, one frame per TAP read: nothing offloaded.
        return Offloads(tap_vnet_hdr=False, udp_gso=False, udp_gro=False)
