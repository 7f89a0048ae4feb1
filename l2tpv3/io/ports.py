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
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from l2tpv3.config import Encap
from l2tpv3.constants import DROP_WRONG_SOURCE
from l2tpv3.io.sockets import (
    DEFAULT_SOCKET_BUFFER,
    ipv4_payload_offset,
    peer_address,
)
from l2tpv3.io.tap import Tap
from l2tpv3.proto.session import TAP_WRITE_FAILED, Payload, Session
from l2tpv3.proto.tunnel import Tunnel

log = logging.getLogger("l2tpv3d")

# Datagrams or frames handled per readiness callback before yielding to the loop, so
# one busy direction cannot starve the other or the control socket.
DEFAULT_BATCH = 64
MAX_DATAGRAM = 65535
# Room in front of a frame read from a TAP for the longest L2TP header (flags word,
# session ID, 8-byte cookie, sublayer), so the header is written in place.
HEADROOM = 64
# One buffer per direction for the whole daemon: the loop is single-threaded and a
# packet leaves the buffer (sendto or write) before the next one is read into it.
# Preallocated, so no per-packet allocation; shared, so a session costs no buffer.
_TX_BUF = bytearray(HEADROOM + MAX_DATAGRAM)
_TX_VIEW = memoryview(_TX_BUF)
_TX_FRAME = [_TX_VIEW[HEADROOM:]]
_RX_VIEW = memoryview(bytearray(MAX_DATAGRAM))


class SessionPort:
    """A session's TAP device and its TAP-to-socket loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: TunnelPort,
        session: Session,
        tap: Tap,
        on_gone: Callable[[], None],
        batch: int = DEFAULT_BATCH,
    ) -> None:
        self.loop = loop
        self.batch = batch
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
        send = self.tunnel.sock.sendto
        peer = self.tunnel.peer
        next_header = self.session.next_header
        buf = _TX_BUF
        view = _TX_VIEW
        into = _TX_FRAME
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
            hdr = next_header(n)
            start = HEADROOM - len(hdr)
            buf[start:HEADROOM] = hdr
            try:
                send(view[start : HEADROOM + n], peer)
            except OSError:
                # A full socket buffer or no route: the kernel counts tx_errors.
                self.session.tx_failed(HEADROOM + n - start)

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

    def state(self) -> dict[str, Any]:
        s = self.session
        out = s.config.to_dict()
        out.update(
            interface=self.tap.name,
            peer_tunnel_id=self.tunnel.tunnel.config.peer_tunnel_id,
            mtu=self.tap.mtu,
            send_seq=s.send_seq,
            recv_seq=s.recv_seq,
            stats=s.counters.as_dict(),
            drops=dict(s.drops),
        )
        return out


class TunnelPort:
    """A tunnel's underlay socket and its socket-to-TAP loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: Tunnel,
        sock: socket.socket,
        other_peers: Container[str] = (),
        batch: int = DEFAULT_BATCH,
    ) -> None:
        self.loop = loop
        self.batch = batch
        self.tunnel = tunnel
        self.sock = sock
        self.ports: dict[int, SessionPort] = {}
        cfg = tunnel.config
        self.peer = peer_address(cfg)
        # Every raw socket sees every protocol-115 packet to its address: one from the
        # peer of another IP-encap tunnel is that tunnel's, not a wrong source.
        self.other_peers = other_peers
        self._strip_ip = cfg.encap is Encap.IP and cfg.family == 4
        loop.add_reader(sock.fileno(), self._on_sock_readable)

    def _on_sock_readable(self) -> None:
        recv = self.sock.recvfrom_into
        buf = _RX_VIEW
        receive = self.tunnel.receive
        ports = self.ports
        strip_ip = self._strip_ip
        peer_host, peer_port = self.peer
        now = self.loop.time()
        touched: set[SessionPort] = set()
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
            if source[0] != peer_host or source[1] != peer_port:
                if source[0] not in self.other_peers:
                    self.tunnel.count_drop(DROP_WRONG_SOURCE)
                continue
            # A view, not a copy: the frames in it are written out before the next read.
            data = buf[:n]
            if strip_ip:
                if n < 20:
                    continue
                data = data[ipv4_payload_offset(data) :]
            session, frames = receive(data, now)
            if session is None:
                continue
            port = ports[session.session_id]
            if frames:
                port.write(frames)
            if port.reorders:
                touched.add(port)
        for port in touched:
            port.rearm()

    def close(self) -> None:
        for port in self.ports.values():
            port.close()
        self.ports.clear()
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def state(self) -> dict[str, Any]:
        out = self.tunnel.config.to_dict()
        out["stats"] = self.tunnel.totals().as_dict()
        out["drops"] = dict(self.tunnel.drops)
        return out


@dataclass(frozen=True, slots=True)
class Options:
    """Data-path tuning: ``l2tpv3d --rcvbuf/--sndbuf/--batch``."""

    rcvbuf: int = DEFAULT_SOCKET_BUFFER
    sndbuf: int = DEFAULT_SOCKET_BUFFER
    batch: int = DEFAULT_BATCH
    offload: bool = True  # TAP TSO/checksum offloads, UDP GSO/GRO (Cython path only)
