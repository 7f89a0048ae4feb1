"""What the daemon sees of a running data path, whichever implementation runs it.

Both kinds of ports (the pure-Python asyncio loops of :mod:`l2tpv3.io.ports` and the
adapters around the C engine of :mod:`l2tpv3.io.engine`) satisfy
:class:`TunnelPortAPI` and :class:`SessionPortAPI` (the daemon builds the state
records of both with the same two functions). Settings come in as
parameters: :class:`Options` (``l2tpv3d --rcvbuf/--sndbuf/--batch/--no-offload``) and
the daemon's :class:`Buffers`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from l2tpv3.constants import HEADROOM, MAX_DATAGRAM
from l2tpv3.io.sockets import DEFAULT_SOCKET_BUFFER
from l2tpv3.io.tap import Tap
from l2tpv3.proto.api import IpOwnershipAPI, SessionAPI, TrunkAPI, TunnelAPI

# Datagrams or frames handled per readiness callback (or per system call, in the
# engine) before yielding, so one busy direction cannot starve the other or the
# control socket.
DEFAULT_BATCH: Final = 64


@dataclass(frozen=True, slots=True)
class Options:
    """Data-path tuning: ``l2tpv3d --rcvbuf/--sndbuf/--batch/--no-offload``."""

    rcvbuf: int = DEFAULT_SOCKET_BUFFER
    sndbuf: int = DEFAULT_SOCKET_BUFFER
    batch: int = DEFAULT_BATCH
    offload: bool = True  # TAP TSO/checksum offloads, UDP GSO/GRO where supported


@dataclass(frozen=True, slots=True)
class Offloads:
    """What an implementation can offload (used only when :attr:`Options.offload`)."""

    tap_vnet_hdr: bool  # TAPs opened with IFF_VNET_HDR: TSO super-frames, partial csums
    udp_gso: bool  # one send of many segments (when the kernel has UDP_SEGMENT)
    udp_gro: bool  # one receive of many datagrams (when the kernel has UDP_GRO)


class Buffers:
    """One buffer per direction for the whole daemon, owned by it and lent to its ports.

    The pure-Python loop is single-threaded and a packet leaves a buffer (sendto or
    write) before the next one is read into it. Preallocated, so no per-packet
    allocation; shared, so a session costs no buffer.
    """

    __slots__ = ("rx", "tx", "tx_frame", "tx_view")

    def __init__(self) -> None:
        self.tx = bytearray(HEADROOM + MAX_DATAGRAM)
        self.tx_view = memoryview(self.tx)
        # readv() target: the frame goes after the headroom.
        self.tx_frame = [self.tx_view[HEADROOM:]]
        self.rx = memoryview(bytearray(MAX_DATAGRAM))


class SessionPortAPI(Protocol):
    """A session's TAP, moved to and from the tunnel's socket."""

    @property
    def session(self) -> SessionAPI: ...
    @property
    def tap(self) -> Tap: ...
    def set_mtu(self, mtu: int) -> None:
        """The TAP's MTU is now ``mtu`` (a netlink event): record it, and drop received
        frames longer than ``mtu`` + 18 from the next one on."""

    def inject(self, frame: bytes) -> None:
        """Send ``frame`` to the peer as if read from the TAP (liveness probes)."""

    def close(self) -> None: ...


class TunnelPortAPI(Protocol):
    """A tunnel's socket and its sessions' ports."""

    @property
    def tunnel(self) -> TunnelAPI: ...
    @property
    def ports(self) -> Mapping[int, SessionPortAPI]: ...
    def open_session(
        self, session: SessionAPI, tap: Tap, on_gone: Callable[[], None]
    ) -> SessionPortAPI:
        """Add ``session`` to the tunnel and start moving its TAP's frames."""

    def close_session(self, session_id: int) -> bool:
        """Stop the session's port, close its TAP, remove it from the tunnel; False if
        the tunnel has no such session. A trunk session's TAP (the trunk's) stays open."""

    def open_trunk(self, trunk: TrunkAPI, tap: Tap, on_gone: Callable[[], None]) -> None:
        """Start reading a trunk TAP (opened without a virtio-net header): each frame
        goes to the session ``trunk`` maps its VID to (proto/vlan.py). Its sessions are
        opened with ``tap`` and write to it; ``on_gone``: the device was deleted."""

    def close_trunk(self, trunk: TrunkAPI) -> None:
        """Stop reading the trunk (before the daemon closes its TAP)."""

    def close(self) -> None:
        """Close every session's port and the socket."""

    def offloads(self) -> Offloads:
        """What this tunnel's data path offloads now (an engine may have fallen back
        since it started: a kernel without UDP GSO)."""

    # Control messages from the peer (T bit): handed to this callback, set by the
    # daemon, in batches; never per data packet.
    on_control: Callable[[list[bytes]], None] | None

    def send_control(self, payload: bytes) -> None:
        """Send one control message (HELLO, ZLB ACK) to the peer; failures are logged."""

    # `l2tpv3 capture` (io/capture.py says the record format and the rules).
    def capture_start(self, session_id: int) -> None:
        """Begin copying the tunnel's datagrams (``session_id`` 0: every session's);
        StateError if a capture runs already."""

    def capture_take(self) -> tuple[bytes, int]:
        """The records since the last call, and how many were lost so far."""

    def capture_stop(self) -> None: ...


class TunnelPortFactory(Protocol):
    """Opens a tunnel's port: the tunnel (of the same implementation), its bound
    socket, the daemon's IP-encap ownership, options and buffers."""

    def __call__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: TunnelAPI,
        sock: socket.socket,
        ownership: IpOwnershipAPI,
        options: Options,
        buffers: Buffers,
    ) -> TunnelPortAPI: ...
