"""Header layout, build and parse, checked against packets a Linux kernel sent.

Every positive vector in shared/kernel-vectors.md (copied into kernel_vectors.py) is
rebuilt by our encoder from the sender's configuration and taken apart by our decoder
with the receiver's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2tpv3.config import Encap, L2SpecType, SeqMode, SessionConfig, TunnelConfig
from l2tpv3.io.datapath import Implementation
from l2tpv3.proto.layout import HeaderLayout, session_mtu
from tests.data.kernel_vectors import KERNEL_PACKETS
from tests.support.configs import UdpPorts
from tests.support.parse import ParseError, parse_data

# The kernel vectors go through both implementations' Session (``sansio``).

VM_V4, PROBE_V4 = ip_address("10.99.0.2"), ip_address("10.99.0.1")
VM_V6, PROBE_V6 = ip_address("fd00:99::2"), ip_address("fd00:99::1")


@dataclass(frozen=True)
class Vector:
    key: str  # heading prefix in kernel-vectors.md
    encap: Encap
    family: int
    sender_is_vm: bool
    cookie: str  # the cookie the sender puts in packets (hex)
    other_cookie: str  # the cookie the sender expects back (hex)
    l2spec: L2SpecType
    seq: SeqMode
    ns: int | None  # sequence number carried, if any

    @property
    def l2tp_offset(self) -> int:
        ip = 20 if self.family == 4 else 40
        return ip + (8 if self.encap is Encap.UDP else 0)

    def packet(self) -> bytes:
        matches = [v for k, v in KERNEL_PACKETS.items() if k.startswith(self.key)]
        assert len(matches) == 1, self.key
        return matches[0]

    def tunnels(self) -> tuple[TunnelConfig, TunnelConfig]:
        vm, probe = (VM_V4, PROBE_V4) if self.family == 4 else (VM_V6, PROBE_V6)
        udp: UdpPorts = {"udp_sport": 1701, "udp_dport": 1701} if self.encap is Encap.UDP else {}
        sender = TunnelConfig(
            tunnel_id=1, peer_tunnel_id=2, local=vm, remote=probe, encap=self.encap, **udp
        )
        receiver = TunnelConfig(
            tunnel_id=2, peer_tunnel_id=1, local=probe, remote=vm, encap=self.encap, **udp
        )
        return sender, receiver

    def sessions(self) -> tuple[SessionConfig, SessionConfig]:
        # The VM is session_id 3000 / peer_session_id 4000; the probe the reverse.
        sid, psid = (3000, 4000) if self.sender_is_vm else (4000, 3000)
        cookie, other = bytes.fromhex(self.cookie), bytes.fromhex(self.other_cookie)
        sender = SessionConfig(
            tunnel_id=1, session_id=sid, peer_session_id=psid, cookie=cookie,
            peer_cookie=other, l2spec_type=self.l2spec, seq=self.seq,
        )  # fmt: skip
        receiver = SessionConfig(
            tunnel_id=2, session_id=psid, peer_session_id=sid, cookie=other,
            peer_cookie=cookie, l2spec_type=self.l2spec, seq=self.seq,
        )  # fmt: skip
        return sender, receiver


C8, C8P = "1122334455667788", "a1a2a3a4a5a6a7a8"
DEF, NONE = L2SpecType.DEFAULT, L2SpecType.NONE
UDP, IP = Encap.UDP, Encap.IP
VECTORS = [
    Vector("udp-default: encap udp", UDP, 4, True, "", "", DEF, SeqMode.NONE, None),
    Vector("udp-default: same session", UDP, 4, True, "", "", DEF, SeqMode.NONE, None),
    Vector("udp-cookie8: encap udp", UDP, 4, True, C8, C8P, DEF, SeqMode.NONE, None),
    Vector("ip-none-cookie4: encap ip", IP, 4, True, "deadbeef", "cafef00d", NONE,
           SeqMode.NONE, None),
    Vector("udp-seq-both: encap udp", UDP, 4, True, "", "", DEF, SeqMode.BOTH, 1),
    Vector("ip-seq-both-cookie8", IP, 4, True, C8, C8, DEF, SeqMode.BOTH, 0),
    Vector("udp-l2spec-none", UDP, 4, True, "", "", NONE, SeqMode.NONE, None),
    Vector("udp-csum-on", UDP, 4, True, "", "", DEF, SeqMode.NONE, None),
    Vector("udp6-default", UDP, 6, True, "", "", DEF, SeqMode.NONE, None),
    Vector("ip6-none-cookie8", IP, 6, True, C8, C8, NONE, SeqMode.NONE, None),
    # Packets the kernel accepted: sent by the probe with the VM's peer_cookie.
    Vector("udp-cookie8: packet the kernel ACCEPTED", UDP, 4, False, C8P, C8, DEF,
           SeqMode.NONE, None),
    Vector("ip-none-cookie4: packet the kernel ACCEPTED", IP, 4, False, "cafef00d",
           "deadbeef", NONE, SeqMode.NONE, None),
    Vector("udp-seq-both: packet the kernel ACCEPTED", UDP, 4, False, "", "", DEF,
           SeqMode.BOTH, 1),
]  # fmt: skip


def test_every_vector_is_covered() -> None:
    used = {k for v in VECTORS for k in KERNEL_PACKETS if k.startswith(v.key)}
    assert used == set(KERNEL_PACKETS)


@pytest.mark.parametrize(
    "vec", VECTORS, ids=[v.key.split(":")[0] + str(i) for i, v in enumerate(VECTORS)]
)
def test_builder_reproduces_kernel_bytes(sansio: Implementation, vec: Vector) -> None:
    pkt = vec.packet()
    l2tp = pkt[vec.l2tp_offset :]
    stun, _ = vec.tunnels()
    ssess, _ = vec.sessions()
    layout = HeaderLayout.for_session(stun, ssess)
    frame = l2tp[layout.tx_header_len :]
    assert layout.build(frame, vec.ns) == l2tp
    # Through the stateful session too: sequence numbers start at 0.
    session = sansio.session(stun, ssess)
    sent = [session.encapsulate(frame) for _ in range((vec.ns or 0) + 1)]
    assert sent[-1] == l2tp
    assert session.counters.tx_bytes == len(l2tp) * len(sent)


@pytest.mark.parametrize(
    "vec", VECTORS, ids=[v.key.split(":")[0] + str(i) for i, v in enumerate(VECTORS)]
)
def test_receiver_accepts_kernel_bytes(sansio: Implementation, vec: Vector) -> None:
    pkt = vec.packet()
    l2tp = pkt[vec.l2tp_offset :]
    _, rtun = vec.tunnels()
    _, rsess = vec.sessions()
    parsed = parse_data(l2tp, vec.encap, len(rsess.peer_cookie), vec.l2spec is DEF)
    assert parsed.session_id == rsess.session_id
    assert parsed.cookie == rsess.peer_cookie
    assert parsed.ns == vec.ns
    # The inner frame is the last part of the packet and starts with 02:99 or ff:ff.
    assert parsed.frame[:2] in (b"\x02\x99", b"\xff\xff")
    session = sansio.session(rtun, rsess)
    if vec.ns:
        # Kernel semantics: only ns == nr is accepted with reorder_timeout 0, so feed
        # the earlier sequence numbers first.
        hdr = HeaderLayout.for_session(*vec.tunnels()[:1], vec.sessions()[0])
        for ns in range(vec.ns):
            assert session.receive(hdr.build(parsed.frame, ns), 0.0) == [parsed.frame]
    assert session.receive(l2tp, 0.0) == [parsed.frame]
    assert session.counters.rx_errors == 0
    assert session.counters.rx_bytes == len(l2tp) * ((vec.ns or 0) + 1)


def test_wrong_cookie_is_counted_not_raised(sansio: Implementation) -> None:
    vec = VECTORS[2]
    l2tp = vec.packet()[vec.l2tp_offset :]
    _, rtun = vec.tunnels()
    _, rsess = vec.sessions()
    bad = bytearray(l2tp)
    bad[8] ^= 0xFF  # first cookie byte
    session = sansio.session(rtun, rsess)
    assert session.receive(bytes(bad), 0.0) == []
    assert session.counters.rx_cookie_discards == 1
    assert session.counters.rx_errors == 1
    assert session.counters.rx_packets == 0


# From protocol-notes.md: l2tpethN MTUs a Debian 6.1 kernel chose over a 1500 underlay.
MTU_TABLE = [
    (UDP, 4, "", DEF, 1446),
    (UDP, 4, C8, DEF, 1438),
    (UDP, 4, "", NONE, 1450),
    (IP, 4, "", DEF, 1458),
    (IP, 4, "deadbeef", NONE, 1458),
    (UDP, 6, "", DEF, 1426),
    (IP, 6, C8, NONE, 1434),
]


@pytest.mark.parametrize(("encap", "family", "cookie", "l2spec", "expected"), MTU_TABLE)
def test_mtu_matches_kernel(
    encap: Encap, family: int, cookie: str, l2spec: L2SpecType, expected: int
) -> None:
    local, remote = ("10.0.0.1", "10.0.0.2") if family == 4 else ("fd00::1", "fd00::2")
    udp: UdpPorts = {"udp_sport": 1701, "udp_dport": 1701} if encap is UDP else {}
    tun = TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local=ip_address(local),
                       remote=ip_address(remote), encap=encap, **udp)  # fmt: skip
    # Only the cookie we send counts: give the peer cookie a different length.
    peer_cookie = "" if cookie else C8
    sess = SessionConfig(tunnel_id=1, session_id=1, peer_session_id=1,
                         cookie=bytes.fromhex(cookie), peer_cookie=bytes.fromhex(peer_cookie),
                         l2spec_type=l2spec)  # fmt: skip
    assert session_mtu(tun, sess, 1500) == expected
    assert session_mtu(tun, sess, None) == expected
    assert session_mtu(tun, sess, 9000) == expected + 7500


@pytest.mark.parametrize(
    ("payload", "encap", "why"),
    [
        (b"\x00\x03\x00", UDP, "shorter"),
        (b"\xc8\x03\x00\x00\x00\x00\x00\x01", UDP, "control"),
        (b"\x00\x02\x00\x00\x00\x00\x00\x01", UDP, "version 2"),
        (b"\x00\x00\x00\x00\x01\x02", IP, "control"),
        (b"\x00\x03\x00\x00\x00\x00\x0f\xa0\x11", UDP, "session header"),
    ],
)
def test_parse_rejects(payload: bytes, encap: Encap, why: str) -> None:
    with pytest.raises(ParseError, match=why):
        parse_data(payload, encap, 4, True)


cookies = st.sampled_from([b"", b"\x01\x02\x03\x04", bytes(range(8))])


@given(
    encap=st.sampled_from(list(Encap)),
    family=st.sampled_from([4, 6]),
    sid=st.integers(1, 2**32 - 1),
    psid=st.integers(1, 2**32 - 1),
    cookie=cookies,
    peer_cookie=cookies,
    l2spec=st.sampled_from(list(L2SpecType)),
    ns=st.one_of(st.none(), st.integers(0, 2**24 - 1)),
    frame=st.binary(min_size=14, max_size=300),
)
def test_build_parse_round_trip(
    encap: Encap, family: int, sid: int, psid: int, cookie: bytes, peer_cookie: bytes,
    l2spec: L2SpecType, ns: int | None, frame: bytes,
) -> None:  # fmt: skip
    local, remote = ("10.0.0.1", "10.0.0.2") if family == 4 else ("fd00::1", "fd00::2")
    udp: UdpPorts = {"udp_sport": 1701, "udp_dport": 1702} if encap is UDP else {}
    tun = TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local=ip_address(local),
                       remote=ip_address(remote), encap=encap, **udp)  # fmt: skip
    sess = SessionConfig(tunnel_id=1, session_id=sid, peer_session_id=psid, cookie=cookie,
                         peer_cookie=peer_cookie, l2spec_type=l2spec)  # fmt: skip
    layout = HeaderLayout.for_session(tun, sess)
    sent_ns = ns if l2spec is DEF else None
    wire = layout.build(frame, sent_ns)
    parsed = parse_data(wire, encap, len(cookie), l2spec is DEF)
    assert parsed.session_id == psid
    assert parsed.cookie == cookie
    assert parsed.ns == sent_ns
    assert parsed.frame == frame
    assert len(wire) == layout.tx_header_len + len(frame)
