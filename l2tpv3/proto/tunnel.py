"""One tunnel's receive demultiplexer and counters, sans I/O.

A tunnel owns its sessions by session ID. :meth:`Tunnel.receive` takes one datagram
payload as the socket delivered it (UDP payload, or for IP encapsulation the L2TP part
after the IP header) and returns the session it belongs to with the frames to write
to that session's TAP. Anything that cannot be matched is counted under ``rx_invalid``
with a reason in ``drops``; a datagram whose source is not the peer goes to
:meth:`Tunnel.receive_foreign`. Over IP, where every tunnel on one local address gets a
copy of each datagram, the ownership decides which of them counts it
(:class:`l2tpv3.proto.api.IpOwnershipAPI`); the common case (the peer, one of our
sessions) never asks it.
"""

from __future__ import annotations

from l2tpv3.config import Encap, TunnelConfig
from l2tpv3.constants import (
    CONTROL_MAX_LEN,
    CONTROL_QUEUE_SLOTS,
    L2TP_VERSION_3,
    UDP_FLAG_T,
    UDP_VERSION_MASK,
)
from l2tpv3.proto.api import IpOwnershipAPI, SessionAPI
from l2tpv3.proto.counters import (
    DROP_BAD_VERSION,
    DROP_CONTROL,
    DROP_REASONS,
    DROP_TOO_SHORT,
    DROP_UNKNOWN_SESSION,
    DROP_WRONG_SOURCE,
    SHARED_COUNTERS,
    Counters,
)
from l2tpv3.proto.session import Payload

_NO_FRAMES: list[Payload] = []


class Tunnel:
    __slots__ = (
        "_control",
        "_retired",
        "_udp",
        "config",
        "counters",
        "drops",
        "ownership",
        "sessions",
    )

    def __init__(self, config: TunnelConfig, ownership: IpOwnershipAPI | None = None) -> None:
        self.config = config
        self.sessions: dict[int, SessionAPI] = {}
        # Over IP every raw socket sees every protocol-115 packet to its address: the
        # ownership says which tunnel on the listener counts what none of them delivers.
        self.ownership = ownership
        self.counters = Counters()
        self._retired = Counters()
        self.drops = dict.fromkeys(DROP_REASONS, 0)
        self._udp = config.encap is Encap.UDP
        # Control messages from the peer for the daemon (take_control): never data.
        self._control: list[bytes] = []

    def add(self, session: SessionAPI) -> None:
        self.sessions[session.session_id] = session

    def remove(self, session_id: int) -> SessionAPI:
        """Forget a session; its counts stay in the tunnel's totals, as in the kernel."""
        session = self.sessions.pop(session_id)
        for name, value in session.counters.as_dict().items():
            setattr(self._retired, name, getattr(self._retired, name) + value)
        return session

    def receive(self, payload: Payload, now: float) -> tuple[SessionAPI | None, list[Payload]]:
        if self._udp:
            # RFC 3931 §4.1.2.1: flags/version word, reserved, then the session ID.
            if len(payload) < 8:
                return self._drop(DROP_TOO_SHORT)
            # The kernel checks the version before the T bit (l2tp_udp_recv_core).
            flags = payload[0] << 8 | payload[1]
            if flags & UDP_VERSION_MASK != L2TP_VERSION_3:
                return self._drop(DROP_BAD_VERSION)
            if flags & UDP_FLAG_T:
                # T=1: a control message. Unmanaged tunnels have no control
                # connection, so like the kernel we never treat it as data; the
                # daemon answers HELLOs (proto/liveness.py ControlChannel).
                self._queue_control(payload)
                return self._drop(DROP_CONTROL)
            session_id = int.from_bytes(payload[4:8], "big")
        else:
            if len(payload) < 4:
                return self._ip_drop(DROP_TOO_SHORT, 0)
            session_id = int.from_bytes(payload[0:4], "big")
            if session_id == 0:
                # RFC 3931 §4.1.1.2: session ID 0 over IP introduces a control message.
                own = self.ownership
                tid = self.config.tunnel_id
                if own is None or own.counter(tid, 0) == tid:
                    self._queue_control(payload)
                return self._ip_drop(DROP_CONTROL, 0)
        session = self.sessions.get(session_id)
        if session is None:
            if self._udp:
                return self._drop(DROP_UNKNOWN_SESSION)
            return self._ip_drop(DROP_UNKNOWN_SESSION, session_id)
        return session, session.receive(payload, now)

    def receive_foreign(self, payload: Payload, host: str) -> None:
        own = self.ownership
        if self._udp or own is None:
            self.count_drop(DROP_WRONG_SOURCE)
            return
        session_id = int.from_bytes(payload[0:4], "big") if len(payload) >= 4 else 0
        tid = self.config.tunnel_id
        if own.counter(tid, session_id, host) == tid:
            self.count_drop(DROP_WRONG_SOURCE)

    def _queue_control(self, payload: Payload) -> None:
        if len(payload) <= CONTROL_MAX_LEN and len(self._control) < CONTROL_QUEUE_SLOTS:
            self._control.append(bytes(payload))

    def take_control(self) -> list[bytes]:
        """The control messages received since the last call (at most
        CONTROL_QUEUE_SLOTS, each at most CONTROL_MAX_LEN bytes; they are also counted
        as ``control_message`` drops of the data path)."""
        out, self._control = self._control, []
        return out

    def _drop(self, reason: str) -> tuple[None, list[Payload]]:
        self.count_drop(reason)
        return None, _NO_FRAMES

    def _ip_drop(self, reason: str, session_id: int) -> tuple[None, list[Payload]]:
        # From our peer, but maybe another tunnel's on this listener to count.
        own = self.ownership
        tid = self.config.tunnel_id
        if own is None or own.counter(tid, session_id) == tid:
            self.count_drop(reason)
        return None, _NO_FRAMES

    def count_drop(self, reason: str) -> None:
        """Count a datagram dropped before any session saw it (also by the adapter)."""
        self.drops[reason] += 1
        self.counters.rx_invalid += 1

    def totals(self) -> Counters:
        """Tunnel statistics as the kernel keeps them.

        Packets, bytes and tx_errors are counted on the tunnel and the session alike
        (l2tp_xmit_skb, l2tp_recv_dequeue_skb), for sessions past and present; the
        receive error counters belong to the session alone, rx_invalid to the tunnel.
        """
        total = Counters(rx_invalid=self.counters.rx_invalid)
        parts = [self._retired, *(s.counters for s in self.sessions.values())]
        for name in SHARED_COUNTERS:
            setattr(total, name, sum(getattr(p, name) for p in parts))
        return total
