"""The packets the kernel sent (tests/data/kernel_captures.py, captured by interop/) against
our codec: we take each one apart as the receiving session would, accept it through the
tunnel demux in order, and build the identical bytes from the kernel's configuration."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from l2tpv3.config import Encap, L2SpecType, SeqMode, SessionConfig, TunnelConfig
from l2tpv3.proto.layout import HeaderLayout
from l2tpv3.proto.session import Session
from l2tpv3.proto.tunnel import Tunnel
from tests.data.kernel_captures import KERNEL_CAPTURES, KernelCapture
from tests.support.configs import UdpPorts
from tests.support.parse import parse_data

HOST4, GUEST4 = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("192.0.2.2")
HOST6, GUEST6 = ipaddress.ip_address("2001:db8:1::1"), ipaddress.ip_address("2001:db8:1::2")
OUR_TID, KERNEL_TID = 2000, 1000
NAMES = sorted(KERNEL_CAPTURES)


def kernel_seq(cap: KernelCapture) -> SeqMode:
    session_line = next(ln for ln in cap.lines if " add session " in ln).split()
    return (
        SeqMode(session_line[session_line.index("seq") + 1])
        if "seq" in session_line
        else (SeqMode.NONE)
    )


def configs(cap: KernelCapture) -> tuple[TunnelConfig, SessionConfig, TunnelConfig, SessionConfig]:
    """(our tunnel, our session, the kernel's tunnel, the kernel's session)."""
    host, guest = (HOST4, GUEST4) if cap.family == 4 else (HOST6, GUEST6)
    encap = Encap(cap.encap)
    our_ports: UdpPorts = {}
    kernel_ports: UdpPorts = {}
    if encap is Encap.UDP:
        our_ports = {"udp_sport": cap.udp_ports[0], "udp_dport": cap.udp_ports[1]}
        kernel_ports = {"udp_sport": cap.udp_ports[1], "udp_dport": cap.udp_ports[0]}
    l2spec = L2SpecType(cap.l2spec)
    ours_t = TunnelConfig(tunnel_id=OUR_TID, peer_tunnel_id=KERNEL_TID, local=host,
                          remote=guest, encap=encap, **our_ports)  # fmt: skip
    kern_t = TunnelConfig(tunnel_id=KERNEL_TID, peer_tunnel_id=OUR_TID, local=guest,
                          remote=host, encap=encap, **kernel_ports)  # fmt: skip
    ours_s = SessionConfig(
        tunnel_id=OUR_TID, session_id=cap.our_session_id,
        peer_session_id=cap.kernel_session_id, cookie=bytes.fromhex(cap.cookie),
        peer_cookie=bytes.fromhex(cap.peer_cookie), l2spec_type=l2spec,
        seq=SeqMode(cap.our_seq),
    )  # fmt: skip
    kern_s = SessionConfig(
        tunnel_id=KERNEL_TID, session_id=cap.kernel_session_id,
        peer_session_id=cap.our_session_id, cookie=bytes.fromhex(cap.peer_cookie),
        peer_cookie=bytes.fromhex(cap.cookie), l2spec_type=l2spec, seq=kernel_seq(cap),
    )  # fmt: skip
    return ours_t, ours_s, kern_t, kern_s


def l2tp_part(cap: KernelCapture, packet: bytes) -> bytes:
    """Check the outer headers as the kernel wrote them; return the UDP/IP payload."""
    host, guest = (HOST4, GUEST4) if cap.family == 4 else (HOST6, GUEST6)
    if cap.family == 4:
        assert packet[0] >> 4 == 4
        ihl = (packet[0] & 0xF) * 4
        proto, src, dst = packet[9], packet[12:16], packet[16:20]
        assert struct.unpack_from("!H", packet, 2)[0] == len(packet)
        off = ihl
    else:
        assert packet[0] >> 4 == 6
        proto, src, dst = packet[6], packet[8:24], packet[24:40]
        assert struct.unpack_from("!H", packet, 4)[0] == len(packet) - 40
        off = 40
    assert ipaddress.ip_address(src) == guest
    assert ipaddress.ip_address(dst) == host
    if cap.encap == "udp":
        assert proto == 17
        sport, dport, length = struct.unpack_from("!HHH", packet, off)
        assert (sport, dport) == (cap.udp_ports[1], cap.udp_ports[0])
        assert length == len(packet) - off
        off += 8
    else:
        assert proto == 115
    return packet[off:]


def test_captures_cover_the_matrix_axes() -> None:
    caps = KERNEL_CAPTURES.values()
    assert {c.encap for c in caps} == {"udp", "ip"}
    assert {c.family for c in caps} == {4, 6}
    assert {len(c.cookie) // 2 for c in caps} == {0, 4, 8}
    assert {c.l2spec for c in caps} == {"none", "default"}
    assert {kernel_seq(c) for c in caps} >= {SeqMode.NONE, SeqMode.SEND, SeqMode.BOTH}
    assert all(len(c.packets) >= 3 for c in caps)


@pytest.mark.parametrize("name", NAMES)
def test_parse_kernel_packets(name: str) -> None:
    cap = KERNEL_CAPTURES[name]
    _, ours_s, _, kern_s = configs(cap)
    default = ours_s.l2spec_type is L2SpecType.DEFAULT
    numbers = []
    for pkt in cap.packets:
        parsed = parse_data(l2tp_part(cap, pkt), Encap(cap.encap), len(ours_s.peer_cookie),
                            default)  # fmt: skip
        assert parsed.session_id == ours_s.session_id
        assert parsed.cookie == ours_s.peer_cookie
        if not default:
            assert parsed.l2spec is None
        elif kern_s.seq.send:
            assert parsed.l2spec is not None and parsed.l2spec >> 24 == 0x40
        else:
            assert parsed.l2spec == 0  # the sublayer is sent, all zero, when not sequencing
        numbers.append(parsed.ns)
        # An Ethernet frame, unpadded: at least a header and an EtherType we know.
        assert len(parsed.frame) >= 42
        assert parsed.frame[12:14] in (b"\x08\x00", b"\x08\x06", b"\x86\xdd")
    if kern_s.seq.send:
        # The kernel numbers from 0 on a fresh session, one by one.
        assert numbers == list(range(len(numbers)))
    else:
        assert numbers == [None] * len(numbers)


@pytest.mark.parametrize("name", NAMES)
def test_builder_reproduces_kernel_packets(name: str) -> None:
    cap = KERNEL_CAPTURES[name]
    _, ours_s, kern_t, kern_s = configs(cap)
    layout = HeaderLayout.for_session(kern_t, kern_s)
    sender = Session(kern_t, kern_s)
    for pkt in cap.packets:
        l2tp = l2tp_part(cap, pkt)
        frame = l2tp[layout.tx_header_len :]
        parsed = parse_data(l2tp, Encap(cap.encap), len(ours_s.peer_cookie),
                            ours_s.l2spec_type is L2SpecType.DEFAULT)  # fmt: skip
        assert layout.build(frame, parsed.ns) == l2tp
        # The stateful session numbers from 0 as the kernel did.
        assert sender.encapsulate(frame) == l2tp
    assert sender.counters.tx_packets == len(cap.packets)


@pytest.mark.parametrize("name", NAMES)
def test_tunnel_accepts_kernel_packets_in_order(name: str) -> None:
    cap = KERNEL_CAPTURES[name]
    ours_t, ours_s, kern_t, kern_s = configs(cap)
    tunnel = Tunnel(ours_t)
    session = Session(ours_t, ours_s)
    tunnel.add(session)
    layout = HeaderLayout.for_session(kern_t, kern_s)
    total = 0
    for i, pkt in enumerate(cap.packets):
        l2tp = l2tp_part(cap, pkt)
        got_session, frames = tunnel.receive(l2tp, float(i))
        assert got_session is session
        assert frames == [l2tp[layout.tx_header_len :]]
        total += len(l2tp)
    c = session.counters
    assert (c.rx_packets, c.rx_bytes) == (len(cap.packets), total)
    assert (c.rx_errors, c.rx_seq_discards, c.rx_oos_packets, c.rx_cookie_discards) == (0,) * 4


@pytest.mark.parametrize("name", NAMES)
def test_wrong_cookie_or_session_dropped(name: str) -> None:
    cap = KERNEL_CAPTURES[name]
    ours_t, ours_s, _, _ = configs(cap)
    tunnel = Tunnel(ours_t)
    session = Session(ours_t, ours_s)
    tunnel.add(session)
    l2tp = bytearray(l2tp_part(cap, cap.packets[0]))
    sid_at = 4 if cap.encap == "udp" else 0
    if ours_s.peer_cookie:
        l2tp[sid_at + 4] ^= 0x01
        assert tunnel.receive(bytes(l2tp), 0.0)[1] == []
        assert session.counters.rx_cookie_discards == 1
        l2tp[sid_at + 4] ^= 0x01
    l2tp[sid_at + 3] ^= 0x01
    assert tunnel.receive(bytes(l2tp), 0.0) == (None, [])
    assert session.counters.rx_packets == 0
