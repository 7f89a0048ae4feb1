"""Liveness of a pseudowire's peer, sans I/O: when to probe, when the peer is up or down.

A :class:`Liveness` per session is driven by ``now`` (seconds, monotonic) and by the
time of the last sign of life the data path saw (:meth:`Liveness.seen`): a data packet
of the session (``idle``), an ARP reply to the session's own MAC (``arp``), a HELLO or
ZLB ACK from the peer's tunnel (``hello``). :meth:`Liveness.poll` returns a
:class:`Step`: the carrier to set (on a transition), the ARP request to inject into the
pseudowire, whether to send a HELLO. The daemon's adapter
(``l2tpv3/daemon/liveness.py``) does the I/O: timers, TUNSETCARRIER, sockets, hooks.

The data path never calls into Python per packet: both implementations keep a
timestamp per session (``last_rx``, ``last_arp``) that the adapter reads when its
timer fires; control messages (T bit) are queued per tunnel and read by the daemon
(``take_control``). :class:`ControlChannel` answers them (RFC 3931 §6.5 HELLO, §4.2
ZLB ACK) as an unmanaged tunnel can: control connection ID 0, no SCCRQ.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Final

from l2tpv3.config import LivenessMode
from l2tpv3.constants import ARPOP_REPLY, ETH_P_ARP, L2TP_VERSION_3, UDP_FLAG_T

__all__ = [
    "ControlChannel",
    "Liveness",
    "Step",
    "arp_request",
    "hello_message",
    "liveness_mac",
    "zlb_ack",
]

# RFC 3931 §3.2.1: T=1 (control), L=1 (length present), S=1 (sequence numbers), Ver=3.
_FLAG_L: Final = 0x4000
_FLAG_S: Final = 0x0800
_CONTROL_FLAGS: Final = UDP_FLAG_T | _FLAG_L | _FLAG_S | L2TP_VERSION_3
_CONTROL_HLEN: Final = 12
# RFC 3931 §5.4.1: the Message Type AVP (attribute 0, IETF vendor 0, M bit set) comes
# first; §6.5: HELLO is message type 6.
_AVP_M: Final = 0x8000
_MSG_HELLO: Final = 6
_ARP_FRAME_LEN: Final = 60  # the shortest Ethernet frame (without FCS), as a NIC pads


def liveness_mac(tunnel_id: int, session_id: int) -> bytes:
    """The session's own MAC for ``liveness arp``: locally administered, unicast.

    02 followed by the first 5 bytes of SHA-256 over the tunnel ID and the session ID
    (each 32-bit big-endian): the same on every start, distinct per session.
    """
    digest = hashlib.sha256(tunnel_id.to_bytes(4, "big") + session_id.to_bytes(4, "big"))
    return b"\x02" + digest.digest()[:5]


def arp_request(mac: bytes, target: str) -> bytes:
    """A broadcast ARP request for ``target`` from ``mac``, with sender address 0.0.0.0.

    An ARP probe (RFC 5227 §2.1.1): the target answers it (Linux arp_process replies
    to a request with sender 0.0.0.0, unicast to the sender's MAC) and no host puts
    our MAC into its ARP cache for any address.
    """
    tpa = ipaddress.IPv4Address(target).packed
    frame = (
        b"\xff" * 6
        + mac
        + ETH_P_ARP.to_bytes(2, "big")
        # RFC 826: Ethernet (1), IPv4 (0x0800), hlen 6, plen 4, request (1).
        + b"\x00\x01\x08\x00\x06\x04\x00\x01"
        + mac
        + bytes(4)
        + bytes(6)
        + tpa
    )
    return frame.ljust(_ARP_FRAME_LEN, b"\0")


def is_arp_reply_to(frame: bytes | memoryview, mac: bytes) -> bool:
    """Whether ``frame`` is an ARP reply addressed to ``mac`` (the rule the data paths
    apply per received frame, here for tests and documentation)."""
    return (
        len(frame) >= 22
        and frame[0:6] == mac
        and int.from_bytes(frame[12:14], "big") == ETH_P_ARP
        and int.from_bytes(frame[20:22], "big") == ARPOP_REPLY
    )


def _control(ns: int, nr: int, body: bytes, udp: bool) -> bytes:
    length = _CONTROL_HLEN + len(body)
    # Control connection ID 0: unmanaged tunnels have none (the peer's is unknown).
    hdr = (
        _CONTROL_FLAGS.to_bytes(2, "big")
        + length.to_bytes(2, "big")
        + bytes(4)
        + (ns & 0xFFFF).to_bytes(2, "big")
        + (nr & 0xFFFF).to_bytes(2, "big")
    )
    # RFC 3931 §4.1.1.2: over IP a control message follows a session ID of 0.
    return (hdr if udp else bytes(4) + hdr) + body


def hello_message(ns: int, nr: int, udp: bool = True) -> bytes:
    """RFC 3931 §6.5 HELLO: the header and a Message Type AVP (§5.4.1) of value 6."""
    avp = (_AVP_M | 8).to_bytes(2, "big") + bytes(4) + _MSG_HELLO.to_bytes(2, "big")
    return _control(ns, nr, avp, udp)


def zlb_ack(ns: int, nr: int, udp: bool = True) -> bytes:
    """RFC 3931 §4.2: a Zero-Length Body message, the explicit acknowledgement."""
    return _control(ns, nr, b"", udp)


@dataclass(frozen=True, slots=True)
class _Parsed:
    ns: int
    hello: bool  # else a ZLB
    other: bool = False  # a message type we do not handle


def _parse(payload: bytes, udp: bool) -> _Parsed | None:
    p = payload if udp else payload[4:]
    if len(p) < _CONTROL_HLEN:
        return None
    flags = int.from_bytes(p[0:2], "big")
    if flags & (UDP_FLAG_T | _FLAG_L) != UDP_FLAG_T | _FLAG_L or flags & 0xF != L2TP_VERSION_3:
        return None
    length = int.from_bytes(p[2:4], "big")
    if length < _CONTROL_HLEN or length > len(p):
        return None
    ns = int.from_bytes(p[8:10], "big")
    if length == _CONTROL_HLEN:
        return _Parsed(ns, hello=False)
    avp = p[_CONTROL_HLEN:length]
    if len(avp) < 8:
        return None
    avp_len = int.from_bytes(avp[0:2], "big") & 0x3FF
    vendor = int.from_bytes(avp[2:4], "big")
    attr = int.from_bytes(avp[4:6], "big")
    if avp_len < 8 or vendor != 0 or attr != 0:
        return None
    mtype = int.from_bytes(avp[6:8], "big")
    return _Parsed(ns, hello=mtype == _MSG_HELLO, other=mtype != _MSG_HELLO)


class ControlChannel:
    """One tunnel's side of HELLO keepalives, without a control connection.

    Every HELLO is answered with a ZLB ACK, whatever the session's liveness mode, and
    counted. A HELLO or ZLB from the peer is a sign of life (``last_heard``) for the
    sessions whose liveness is ``hello``. Anything else (another message type, a
    malformed header) is counted as ignored: there is no control connection to run it.
    """

    __slots__ = (
        "acks_received",
        "acks_sent",
        "hellos_received",
        "hellos_sent",
        "ignored",
        "last_heard",
        "nr",
        "ns",
        "udp",
    )

    def __init__(self, udp: bool = True) -> None:
        self.udp = udp
        self.ns = 0
        self.nr = 0
        self.last_heard = 0.0
        self.hellos_received = 0
        self.hellos_sent = 0
        self.acks_received = 0
        self.acks_sent = 0
        self.ignored = 0

    def receive(self, payload: bytes, now: float) -> list[bytes]:
        """A control message from the peer; returns the messages to send back."""
        msg = _parse(payload, self.udp)
        if msg is None or msg.other:
            self.ignored += 1
            return []
        self.last_heard = now
        if not msg.hello:
            self.acks_received += 1
            return []
        self.hellos_received += 1
        self.nr = (msg.ns + 1) & 0xFFFF
        self.acks_sent += 1
        return [zlb_ack(self.ns, self.nr, self.udp)]

    def hello(self) -> bytes:
        msg = hello_message(self.ns, self.nr, self.udp)
        self.ns = (self.ns + 1) & 0xFFFF
        self.hellos_sent += 1
        return msg

    def stats(self) -> dict[str, int]:
        return {
            "hellos_sent": self.hellos_sent,
            "hellos_received": self.hellos_received,
            "acks_sent": self.acks_sent,
            "acks_received": self.acks_received,
            "control_ignored": self.ignored,
        }


@dataclass(frozen=True, slots=True)
class Step:
    """What :meth:`Liveness.poll` asks the adapter to do now."""

    carrier: bool | None = None  # set the TAP's carrier (a transition), None: leave it
    frames: tuple[bytes, ...] = ()  # Ethernet frames to send into the pseudowire
    hello: bool = False  # send a HELLO on the tunnel


_NOTHING: Final = Step()


class Liveness:
    """One session's peer liveness: up or down, from signs of life and a clock.

    Starts up (the TAP is created with its carrier on, as an l2tpethN): the peer goes
    down when ``dead`` intervals pass without a sign of life, counted from the last one
    (or from the start); it is up again at the first sign of life after that. Probing
    modes (``arp``, ``hello``) send one probe per interval, up or down.
    """

    __slots__ = (
        "_dead_after",
        "_frame",
        "_fresh",
        "_next_probe",
        "_ref",
        "changed_at",
        "dead",
        "interval",
        "last_seen",
        "mac",
        "mode",
        "transitions",
        "up",
    )

    def __init__(
        self,
        mode: LivenessMode,
        now: float,
        interval: float,
        dead: int,
        mac: bytes = b"",
        target: str | None = None,
    ) -> None:
        if mode is LivenessMode.OFF:
            raise ValueError("liveness off has no state machine")
        self.mode = mode
        self.interval = interval
        self.dead = dead
        self._dead_after = interval * dead
        self.mac = mac
        self._frame = arp_request(mac, target) if mode is LivenessMode.ARP and target else b""
        self.up = True
        self.transitions = 0
        self.changed_at = now
        # The last sign of life seen (None: none yet); the clock of `dead` runs from it,
        # or from the start.
        self.last_seen: float | None = None
        self._ref = now
        self._fresh = False  # a sign of life since the peer went down
        self._next_probe = now  # the first probe at once

    @property
    def probes(self) -> bool:
        return self.mode is LivenessMode.ARP or self.mode is LivenessMode.HELLO

    def seen(self, when: float) -> None:
        """The data path saw a sign of life at ``when`` (0 or older: nothing new)."""
        if when > self._ref:
            self._ref = when
            self.last_seen = when
            self._fresh = True

    def poll(self, now: float) -> Step:
        carrier: bool | None = None
        if self.up:
            if now - self._ref >= self._dead_after:
                self.up = False
                self._fresh = False
                carrier = False
        elif self._fresh:
            # The first sign of life since the peer went down.
            self.up = True
            carrier = True
        if carrier is not None:
            self.transitions += 1
            self.changed_at = now
        frames: tuple[bytes, ...] = ()
        hello = False
        if self.probes and now >= self._next_probe:
            self._next_probe += self.interval
            if self._next_probe <= now:  # late (a stalled loop): no burst to catch up
                self._next_probe = now + self.interval
            if self._frame:
                frames = (self._frame,)
            hello = self.mode is LivenessMode.HELLO
        if carrier is None and not frames and not hello:
            return _NOTHING
        return Step(carrier, frames, hello)

    def next_deadline(self, now: float) -> float:
        """When to poll next: the next probe, the moment the peer would be dead, and
        while down a quarter interval (so the first sign of life is seen soon)."""
        when = self._ref + self._dead_after if self.up else now + self.interval / 4
        if self.probes:
            when = min(when, self._next_probe)
        return max(when, now)
