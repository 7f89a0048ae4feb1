"""The interface both implementations satisfy: the pure-Python reference
(:mod:`l2tpv3.proto.session`, :mod:`l2tpv3.proto.tunnel`, :mod:`l2tpv3.proto.ownership`)
and the Cython fast path (:mod:`l2tpv3.fast.native`). The adapters and the tests are
written against these protocols only, so neither implementation can grow a method the
other lacks without mypy noticing (tests/unit/test_api.py checks both at run time too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.proto.counters import Counters
from l2tpv3.proto.layout import HeaderLayout

# Received datagrams and the frames in them: bytes, or views of a receive buffer.
Payload = bytes | memoryview


class SessionAPI(Protocol):
    """One pseudowire: header, cookie check, sequencing, counters (sans I/O)."""

    @property
    def config(self) -> SessionConfig: ...
    @property
    def layout(self) -> HeaderLayout: ...
    @property
    def session_id(self) -> int: ...
    @property
    def counters(self) -> Counters: ...
    @property
    def drops(self) -> Mapping[str, int]: ...
    @property
    def max_frame(self) -> int: ...
    @property
    def nr(self) -> int: ...
    @property
    def held(self) -> int: ...

    send_seq: bool
    recv_seq: bool
    lns_mode: bool
    ns: int

    def set_mtu(self, mtu: int) -> None: ...
    def next_header(self, frame_len: int) -> bytes: ...
    def encapsulate(self, frame: bytes) -> bytes: ...
    def tx_failed(self, length: int) -> None: ...
    def receive(self, payload: Payload, now: float) -> list[Payload]: ...
    def poll(self, now: float) -> list[Payload]: ...
    def next_deadline(self) -> float | None: ...

    # MSS clamping (proto/mss.py): counts of what it did, and the TAP-side entry point.
    @property
    def features(self) -> Mapping[str, int]: ...
    def clamp(
        self, frame: bytearray | memoryview, partial: tuple[int, int] | None = None
    ) -> bool: ...
    # Liveness (proto/liveness.py): read by the daemon's timer, never a callback.
    @property
    def last_rx(self) -> float:
        """``now`` of the last packet that passed the cookie check (0.0: none)."""

    @property
    def last_arp(self) -> float:
        """``now`` of the last ARP reply to the MAC given to watch_arp (0.0: none)."""

    def watch_arp(self, mac: bytes) -> None: ...
    # Per-VLAN sessions (proto/vlan.py): the VID on the trunk (0: none), and the
    # trunk-side entry point that removes the tag in place (pop): bytes cut from the front.
    @property
    def vlan(self) -> int: ...
    @property
    def vlan_pop(self) -> bool: ...
    def untag(self, frame: bytearray | memoryview) -> int: ...


class TrunkAPI(Protocol):
    """A trunk's VID-to-session map and its drops (proto/vlan.py, fast/fp_vlan.c)."""

    @property
    def name(self) -> str: ...
    @property
    def vids(self) -> Mapping[int, int]: ...
    @property
    def drops(self) -> Mapping[str, int]: ...
    def add(self, vid: int, session_id: int) -> None: ...
    def remove(self, vid: int) -> None: ...
    def classify(self, frame: Payload) -> int | None: ...


class IpOwnershipAPI(Protocol):
    """Which IP-encap tunnel owns which session ID and peer, and so which tunnel counts a
    datagram: the one place that knows.

    Over IP every raw socket bound to one local address sees every protocol-115 packet
    to it, so each datagram reaches every tunnel on that *listener* (family and local
    address) and all but one must ignore their copy. Session IDs are unique per host
    over IP, as in the kernel (l2tp_v3_session_get without a tunnel).

    The rule (:meth:`counter`): a datagram arriving on listener L from host H with
    session ID S (0 when it is too short to carry one, or a control message) is counted
    by exactly one tunnel on L:

    1. the owner of S, if S is owned by a tunnel on L: delivered to the session if H is
       that tunnel's peer, else ``wrong_source`` there;
    2. otherwise the tunnel on L whose peer is H (the lowest tunnel ID if several
       share that peer): ``unknown_session`` (or ``too_short``, ``control_message``);
    3. otherwise (a stranger, and nobody's session ID here) the tunnel with the lowest
       ID on L: ``wrong_source``.

    A tunnel that was never added is alone on its listener and counts everything.
    UDP tunnels have a socket each and never consult this.
    """

    def add_tunnel(self, tunnel_id: int, family: int, local: str, peer: str) -> None: ...
    def remove_tunnel(self, tunnel_id: int) -> None: ...
    def claim(self, tunnel_id: int, session_id: int) -> None:
        """Raise StateError if another IP-encap tunnel already has ``session_id``."""

    def release(self, session_id: int) -> None: ...
    def owner(self, session_id: int) -> int | None: ...
    def counter(self, tunnel_id: int, session_id: int, host: str | None = None) -> int:
        """The tunnel that counts a datagram with ``session_id`` from ``host`` (None:
        ``tunnel_id``'s own peer) arriving on ``tunnel_id``'s listener."""


class TunnelAPI(Protocol):
    """One tunnel's receive demultiplexer and counters (sans I/O)."""

    @property
    def config(self) -> TunnelConfig: ...
    @property
    def sessions(self) -> Mapping[int, SessionAPI]: ...
    @property
    def counters(self) -> Counters: ...
    @property
    def drops(self) -> Mapping[str, int]: ...

    def add(self, session: SessionAPI) -> None: ...
    def remove(self, session_id: int) -> SessionAPI: ...
    def receive(self, payload: Payload, now: float) -> tuple[SessionAPI | None, list[Payload]]:
        """A datagram from the peer; None and no frames if it was dropped (counted) or
        is another IP-encap tunnel's to count (IpOwnershipAPI)."""

    def receive_foreign(self, payload: Payload, host: str) -> None:
        """A datagram from ``host``, which is not the peer (address and, for UDP, port):
        counted as ``wrong_source``, or over IP left to the tunnel that counts it."""

    def count_drop(self, reason: str) -> None: ...
    def totals(self) -> Counters: ...
    def take_control(self) -> list[bytes]:
        """Control messages from the peer queued since the last call, for the daemon."""
