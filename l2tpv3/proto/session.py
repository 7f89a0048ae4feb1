"""One pseudowire's protocol state, sans I/O: frames in, datagram payloads out, and back.

The adapters (daemon.py) read Ethernet frames from the session's TAP and hand them to
:meth:`Session.encapsulate`; they hand each received data message to the tunnel, which
finds the session and calls :meth:`Session.receive`. Neither touches a socket or a
clock: time comes in as ``now`` (seconds, monotonic).
"""

from __future__ import annotations

from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.constants import (
    ARPOP_REPLY,
    ETH_HLEN,
    ETH_P_ARP,
    L2SPEC_S_BIT,
    MAX_MTU,
    RX_FRAME_SLACK,
    SEQ_MASK,
)
from l2tpv3.proto import mss as _mss_rule
from l2tpv3.proto import vlan as _vlan_rule
from l2tpv3.proto.api import Payload as Payload  # defined there, for both implementations
from l2tpv3.proto.counters import FRAME_TOO_LONG as FRAME_TOO_LONG
from l2tpv3.proto.counters import FRAME_TOO_SHORT as FRAME_TOO_SHORT
from l2tpv3.proto.counters import (
    MSS_CLAMPED,
    SESSION_DROP_REASONS,
    SESSION_FEATURE_COUNTERS,
    Counters,
)
from l2tpv3.proto.counters import TAP_WRITE_FAILED as TAP_WRITE_FAILED
from l2tpv3.proto.counters import VLAN_MISMATCH as VLAN_MISMATCH
from l2tpv3.proto.layout import HeaderLayout
from l2tpv3.proto.sequence import RxSequencer

_S_BIT = L2SPEC_S_BIT
_ARP = ETH_P_ARP.to_bytes(2, "big")
_ARP_REPLY = ARPOP_REPLY.to_bytes(2, "big")
_SEQ_MASK = SEQ_MASK


class Session:
    """Kernel-compatible L2TPv3 session: header, cookie check, sequencing, counters."""

    __slots__ = (
        "_arp_mac",
        "_cookie",
        "_cookie_end",
        "_cookie_off",
        "_l2spec_off",
        "_mss4",
        "_mss6",
        "_prefix",
        "_rx_header_len",
        "_tx_l2spec",
        "_tx_unsequenced",
        "_vlan",
        "_vlan_pop",
        "config",
        "counters",
        "drops",
        "features",
        "last_arp",
        "last_rx",
        "layout",
        "lns_mode",
        "max_frame",
        "ns",
        "recv_seq",
        "send_seq",
        "sequencer",
    )

    def __init__(self, tunnel: TunnelConfig, config: SessionConfig) -> None:
        self.config = config
        self.layout = HeaderLayout.for_session(tunnel, config)
        self.counters = Counters()
        self.drops = dict.fromkeys(SESSION_DROP_REASONS, 0)
        # Largest frame the l2tpethN device takes; the adapter keeps it in step with
        # the device's MTU (set_mtu), which a user may change at any time.
        self.max_frame = MAX_MTU + RX_FRAME_SLACK
        self.send_seq = config.seq.send
        self.recv_seq = config.seq.recv
        # Sessions made by `ip l2tp` are in LAC mode: the peer's use of sequence
        # numbers switches ours on and off (kernel l2tp_recv_common).
        self.lns_mode = False
        self.ns = 0
        self.sequencer: RxSequencer[bytes] = RxSequencer(
            self.counters,
            reorder_timeout=config.reorder_timeout / 1000.0,
            policy=config.seq_policy,
        )
        # The layout's fields as attributes of the session itself, one lookup less per
        # packet: copies, nothing derived here.
        lay = self.layout
        self._prefix = lay.tx_prefix
        self._tx_l2spec = lay.tx_l2spec
        # The whole header of every packet sent without a sequence number, built once.
        self._tx_unsequenced = lay.header(None)
        self._cookie = lay.rx_cookie
        self._cookie_off = lay.rx_cookie_offset
        self._cookie_end = lay.rx_cookie_end
        self._l2spec_off = lay.rx_l2spec_offset
        self._rx_header_len = lay.rx_header_len
        # MSS clamping (proto/mss.py): the limits follow the MTU (set_mtu); 0 is off.
        self.features = dict.fromkeys(SESSION_FEATURE_COUNTERS, 0)
        self._mss4, self._mss6 = _mss_rule.limits(config.mss_clamp, MAX_MTU)
        # Liveness (proto/liveness.py), read by the daemon's timer, never a callback:
        # when the last packet passed the cookie check, and when the last ARP reply to
        # the MAC of watch_arp() arrived (0.0: never).
        self.last_rx = 0.0
        self.last_arp = 0.0
        self._arp_mac = b""
        # Per-VLAN sessions (proto/vlan.py): the VID on the trunk (0: no trunk).
        self._vlan = config.vlan if config.trunk is not None and config.vlan else 0
        self._vlan_pop = bool(self._vlan and config.vlan_pop)

    @property
    def session_id(self) -> int:
        return self.config.session_id

    @property
    def nr(self) -> int:
        """The next sequence number the receive side expects."""
        return self.sequencer.nr

    @property
    def held(self) -> int:
        """Packets the reorder queue holds."""
        return len(self.sequencer)

    def encapsulate(self, frame: bytes) -> bytes:
        """The L2TP payload carrying ``frame``; counts it as sent.

        If the send then fails the adapter calls :meth:`tx_failed`, so the counters end
        up as the kernel's l2tp_xmit_skb leaves them.
        """
        if self._mss4:
            hit = _mss_rule.find(frame, self._mss4, self._mss6)
            if hit is not None:
                buf = bytearray(frame)
                _mss_rule.apply(buf, hit)
                self.features[MSS_CLAMPED] += 1
                frame = bytes(buf)
        if self._vlan_pop and _vlan_rule.outer_vid(frame) == self._vlan:
            frame = _vlan_rule.pop(frame)
        return self.next_header(len(frame)) + frame

    @property
    def vlan(self) -> int:
        """The session's VID on its trunk, 0 without one."""
        return self._vlan

    @property
    def vlan_pop(self) -> bool:
        return self._vlan_pop

    def untag(self, frame: bytearray | memoryview) -> int:
        """A frame read from the trunk, in place, before :meth:`next_header`: with
        ``pop`` and the session's VID as its outer tag, the MAC addresses move 4 bytes
        on and the frame starts 4 bytes in (returned: 4); else 0, nothing changed."""
        if not self._vlan_pop or _vlan_rule.outer_vid(frame) != self._vlan:
            return 0
        frame[4:16] = bytes(frame[0:12])
        return 4

    def clamp(self, frame: bytearray | memoryview, partial: tuple[int, int] | None = None) -> bool:
        """Clamp the MSS of a frame read from the TAP, in place (writable ``frame``), before
        :meth:`next_header`; ``partial`` is the (csum_start, csum_offset) of a frame whose
        checksum is still to be completed (virtio-net NEEDS_CSUM). True if it was lowered."""
        if self._mss4 and _mss_rule.clamp(frame, self._mss4, self._mss6, partial):
            self.features[MSS_CLAMPED] += 1
            return True
        return False

    def next_header(self, frame_len: int) -> bytes:
        """The L2TP header for the next frame of ``frame_len`` bytes; counts it as sent.

        The adapter writes it in front of the frame in its own buffer, so a frame is
        never copied to be encapsulated.
        """
        c = self.counters
        if self.send_seq and self._tx_l2spec:
            ns = self.ns
            self.ns = (ns + 1) & _SEQ_MASK
            hdr = self._prefix + (_S_BIT | ns).to_bytes(4, "big")
        else:
            hdr = self._tx_unsequenced
        c.tx_packets += 1
        # Kernel: tx_bytes counts the L2TP header plus the frame.
        c.tx_bytes += len(hdr) + frame_len
        return hdr

    def tx_failed(self, length: int) -> None:
        c = self.counters
        c.tx_packets -= 1
        c.tx_bytes -= length
        c.tx_errors += 1

    def receive(self, payload: Payload, now: float) -> list[Payload]:
        """Check a data message already matched to this session by its session ID.

        Returns the Ethernet frames now deliverable, in order (sequencing may hold a
        packet back or release several). Drops are counted, never raised.

        ``payload`` may be a memoryview of the adapter's receive buffer: a frame
        delivered at once is then a view into it (written to the TAP before the buffer
        is reused), and one the reorder queue keeps is copied first.
        """
        c = self.counters
        if len(payload) < self._rx_header_len:
            c.rx_errors += 1
            return []
        # RFC 3931 §4.1: a cookie that does not match is discarded.
        if self._cookie and payload[self._cookie_off : self._cookie_end] != self._cookie:
            c.rx_cookie_discards += 1
            c.rx_errors += 1
            return []
        self.last_rx = now
        ns: int | None = None
        off = self._l2spec_off
        if off >= 0:
            word = int.from_bytes(payload[off : off + 4], "big")
            if word & _S_BIT:
                ns = word & _SEQ_MASK
        if ns is not None:
            if not self.lns_mode and not self.send_seq:
                self.send_seq = True
        else:
            if self.recv_seq:
                c.rx_seq_discards += 1
                c.rx_errors += 1
                return []
            if not self.lns_mode and self.send_seq:
                self.send_seq = False
            elif self.send_seq:
                c.rx_seq_discards += 1
                c.rx_errors += 1
                return []
        frame = payload[self._rx_header_len :]
        mac = self._arp_mac
        if mac and frame[0:6] == mac and frame[12:14] == _ARP and frame[20:22] == _ARP_REPLY:
            # liveness arp: the reply to our probe, addressed to our own MAC.
            self.last_arp = now
        if ns is None and not self.sequencer:
            # Fast path: nothing queued, so ordering cannot matter.
            c.rx_packets += 1
            c.rx_bytes += len(payload)
            if not self._frame_ok(frame):
                return []
            if self._mss4:
                frame = self._clamp_rx(frame)
            if self._vlan:
                return self._to_trunk(frame)
            return [frame]
        return self._deliver(self.sequencer.push(bytes(frame), ns, now))

    def poll(self, now: float) -> list[Payload]:
        """Release or expire what the reorder queue holds, as time has passed."""
        return self._deliver(self.sequencer.poll(now))

    def next_deadline(self) -> float | None:
        return self.sequencer.next_deadline()

    def _deliver(self, frames: list[bytes]) -> list[Payload]:
        c = self.counters
        hdr = self._rx_header_len
        out: list[Payload] = []
        for held in frames:
            c.rx_packets += 1
            c.rx_bytes += len(held) + hdr
            if self._frame_ok(held):
                frame: Payload = self._clamp_rx(held) if self._mss4 else held
                if self._vlan:
                    out.extend(self._to_trunk(frame))
                else:
                    out.append(frame)
        return out

    def _to_trunk(self, frame: Payload) -> list[Payload]:
        # proto/vlan.py: with pop the tag is pushed; without, the frame must carry ours.
        if self._vlan_pop:
            return [_vlan_rule.push(frame, self._vlan)]
        if _vlan_rule.outer_vid(frame) != self._vlan:
            self.drops[VLAN_MISMATCH] += 1
            return []
        return [frame]

    def _clamp_rx(self, frame: Payload) -> Payload:
        # Received frames may be views of a shared buffer, or bytes: a copy is changed.
        hit = _mss_rule.find(frame, self._mss4, self._mss6)
        if hit is None:
            return frame
        buf = bytearray(frame)
        _mss_rule.apply(buf, hit)
        self.features[MSS_CLAMPED] += 1
        return bytes(buf)

    def set_mtu(self, mtu: int) -> None:
        self.max_frame = mtu + RX_FRAME_SLACK
        self._mss4, self._mss6 = _mss_rule.limits(self.config.mss_clamp, mtu)

    def watch_arp(self, mac: bytes) -> None:
        """Note in ``last_arp`` each ARP reply to ``mac`` received (b"": stop)."""
        if mac and len(mac) != 6:
            raise ValueError("a MAC address is 6 bytes")
        self._arp_mac = bytes(mac)

    def _frame_ok(self, frame: Payload) -> bool:
        # Kernel l2tp_eth_dev_recv: the session has already counted the packet as
        # received; a frame without a whole Ethernet header, or longer than the
        # device's MTU + 14 + a VLAN tag (is_skb_forwardable), is dropped on the device.
        n = len(frame)
        if n < ETH_HLEN:
            self.drops[FRAME_TOO_SHORT] += 1
            return False
        if n > self.max_frame:
            self.drops[FRAME_TOO_LONG] += 1
            return False
        return True
