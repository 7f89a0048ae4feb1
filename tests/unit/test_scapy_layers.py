"""The scapy layers agree with our codec byte for byte, and read the kernel's packets.

- every kernel vector: scapy dissects it into the fields the vector is documented to
  carry, re-builds exactly the same bytes, and a packet built in scapy from those
  fields equals what our encoder (HeaderLayout and the stateful Session) sends;
- hypothesis: for any session ID, cookie, sublayer, sequence number and frame, the
  scapy build equals ours and the scapy dissection of ours gives the fields back;
- control messages, other versions and session ID 0 are not taken for data.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot3, Ether
from scapy.packet import Packet, Raw

from l2tpv3.config import Encap, L2SpecType, SeqMode, SessionConfig, TunnelConfig
from l2tpv3.proto.layout import HeaderLayout
from l2tpv3.proto.session import Session
from l2tpv3.tools.scapy_layers import (
    L2SpecDefault,
    L2TPv3,
    L2TPv3UDP,
    SessionFormat,
    bind_l2tpv3,
    reset_l2tpv3,
)
from tests.support.parse import parse_data
from tests.support.progs import prog
from tests.unit.test_layout import DEF, VECTORS, Vector


@pytest.fixture(autouse=True)
def _clean_bindings() -> Iterator[None]:
    reset_l2tpv3()
    yield
    reset_l2tpv3()


def scapy_l2tp(encap: Encap, session_id: int, cookie: bytes, l2spec: bool, ns: int | None,
               frame: bytes) -> Packet:  # fmt: skip
    pkt = L2TPv3(session_id=session_id, cookie=cookie)
    if l2spec:
        pkt = pkt / (L2SpecDefault() if ns is None else L2SpecDefault(S=1, seq=ns))
    pkt = pkt / Raw(frame)
    return L2TPv3UDP() / pkt if encap is Encap.UDP else pkt


def outer(vec: Vector, data: bytes) -> Packet:
    return IP(data) if vec.family == 4 else IPv6(data)


@pytest.mark.parametrize(
    "vec", VECTORS, ids=[v.key.split(":")[0] + str(i) for i, v in enumerate(VECTORS)]
)
def test_kernel_vectors(vec: Vector) -> None:
    data = vec.packet()
    ssess, rsess = vec.sessions()
    # What the receiver is configured with tells scapy the format.
    bind_l2tpv3(udp_port=1701, cookie_len=len(rsess.peer_cookie), l2spec=vec.l2spec is DEF)
    pkt = outer(vec, data)
    assert bytes(pkt) == data
    if vec.encap is Encap.UDP:
        hdr = pkt[L2TPv3UDP]
        assert (hdr.T, hdr.version, hdr.reserved1, hdr.reserved2) == (0, 3, 0, 0)
        assert isinstance(pkt[UDP].payload, L2TPv3UDP)
    else:
        assert isinstance(pkt.payload, L2TPv3)
    l2 = pkt[L2TPv3]
    assert l2.session_id == ssess.peer_session_id == rsess.session_id
    assert l2.cookie == ssess.cookie
    if vec.l2spec is DEF:
        sub = l2[L2SpecDefault]
        assert (sub.S, sub.seq) == ((1, vec.ns) if vec.ns is not None else (0, 0))
    else:
        assert L2SpecDefault not in pkt
    eth = pkt[Ether]
    parsed = parse_data(data[vec.l2tp_offset :], vec.encap, len(ssess.cookie), vec.l2spec is DEF)
    assert bytes(eth) == parsed.frame
    assert eth.src == ("02:99:00:00:00:02" if vec.sender_is_vm else "02:99:00:00:00:01")
    assert eth.type in (0x0806, 0x0800)
    # Built in scapy from those fields: our encoder's bytes.
    stun, _ = vec.tunnels()
    built = scapy_l2tp(vec.encap, l2.session_id, l2.cookie, vec.l2spec is DEF, vec.ns,
                       parsed.frame)  # fmt: skip
    assert bytes(built) == data[vec.l2tp_offset :]
    assert HeaderLayout.for_session(stun, ssess).build(parsed.frame, vec.ns) == bytes(built)


def test_per_session_format_beats_the_default() -> None:
    bind_l2tpv3(cookie_len=4, l2spec=False)
    bind_l2tpv3(session_id=7, cookie_len=8)
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x0800))
    a = IP(bytes(IP(src="10.0.0.1", dst="10.0.0.2") / L2TPv3(session_id=7, cookie=b"12345678")
                 / Raw(frame)))  # fmt: skip
    assert a[L2TPv3].cookie == b"12345678" and a[Ether].src == "02:00:00:00:00:01"
    b = IP(bytes(IP(src="10.0.0.1", dst="10.0.0.2") / L2TPv3(session_id=8, cookie=b"1234")
                 / Raw(frame)))  # fmt: skip
    assert b[L2TPv3].cookie == b"1234" and b[Ether].type == 0x0800
    with pytest.raises(ValueError, match="cookie_len"):
        SessionFormat(cookie_len=5)


def test_not_data_is_left_raw() -> None:
    bind_l2tpv3(udp_port=5000)
    ctrl = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000, dport=5000)
    # T=1: a control message.
    pkt = IP(bytes(ctrl / L2TPv3UDP(T=1) / Raw(b"\x00" * 12)))
    assert isinstance(pkt[L2TPv3UDP].payload, Raw) and L2TPv3 not in pkt
    # Version 2 (L2TPv2 on the same port) is not ours either.
    pkt = IP(bytes(ctrl / L2TPv3UDP(version=2) / Raw(b"\x00" * 12)))
    assert L2TPv3 not in pkt
    # IP encap, session ID 0: a control message follows.
    pkt = IP(bytes(IP(src="10.0.0.1", dst="10.0.0.2", proto=115) / Raw(b"\x00" * 4 + b"x" * 20)))
    assert pkt[L2TPv3].session_id == 0 and isinstance(pkt[L2TPv3].payload, Raw)
    # A port that was never bound is not dissected as L2TPv3.
    other = IP(bytes(IP() / UDP(sport=6000, dport=6000) / Raw(b"\x00\x03\x00\x00" * 3)))
    assert L2TPv3UDP not in other


def test_port_binding_wins_over_scapys_l2tpv2_and_can_be_undone() -> None:
    import scapy.layers.l2tp  # noqa: F401 - scapy's L2TPv2 binds 1701 too

    data = VECTORS[0].packet()
    bind_l2tpv3(udp_port=1701)
    assert L2TPv3 in IP(data)
    reset_l2tpv3()
    assert L2TPv3UDP not in IP(data)


def test_the_daemon_does_not_import_scapy() -> None:
    out = subprocess.run([*prog("imported_modules"), "l2tpv3.daemon", "l2tpv3.cli"],
                         capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip
    assert out.strip() == "False"


# -- hypothesis: our encoder and the scapy layers, both ways -----------------------------------

frames = st.binary(min_size=14, max_size=200)


@settings(max_examples=300, deadline=None)
@given(
    encap=st.sampled_from(list(Encap)),
    session_id=st.integers(1, 0xFFFFFFFF),
    cookie=st.sampled_from([0, 4, 8]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    l2spec=st.booleans(),
    seq=st.booleans(),
    count=st.integers(1, 3),
    frame=frames,
)
def test_session_and_scapy_agree(
    encap: Encap, session_id: int, cookie: bytes, l2spec: bool, seq: bool, count: int,
    frame: bytes,
) -> None:  # fmt: skip
    seq = seq and l2spec
    udp = encap is Encap.UDP
    tun = TunnelConfig(1, 2, ip_address("10.0.0.1"), ip_address("10.0.0.2"), encap,
                       udp_sport=1 if udp else None, udp_dport=2 if udp else None)  # fmt: skip
    cfg = SessionConfig(1, 99, session_id, cookie=cookie,
                        l2spec_type=L2SpecType.DEFAULT if l2spec else L2SpecType.NONE,
                        seq=SeqMode.SEND if seq else SeqMode.NONE)  # fmt: skip
    session = Session(tun, cfg)
    bind_l2tpv3(session_id=session_id, cookie_len=len(cookie), l2spec=l2spec)
    for ns in range(count):
        ours = session.encapsulate(frame)
        theirs = scapy_l2tp(encap, session_id, cookie, l2spec, ns if seq else None, frame)
        assert bytes(theirs) == ours
        back = (L2TPv3UDP if encap is Encap.UDP else L2TPv3)(ours)
        assert back[L2TPv3].session_id == session_id
        assert back[L2TPv3].cookie == cookie
        if l2spec:
            assert (back[L2SpecDefault].S, back[L2SpecDefault].seq) == (int(seq), ns if seq else 0)
        # scapy reads an ethertype under 0x600 as an 802.3 length (Dot3): either way
        # the frame is what follows the header.
        inner = back[L2SpecDefault if l2spec else L2TPv3].payload
        assert isinstance(inner, Ether | Dot3) and bytes(inner) == frame
        assert bytes(back) == ours


@settings(max_examples=200, deadline=None)
@given(
    session_id=st.integers(1, 0xFFFFFFFF),
    cookie=st.sampled_from([0, 4, 8]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    ns=st.integers(0, 0xFFFFFF),
    frame=frames,
    family=st.sampled_from([4, 6]),
)
def test_full_datagrams_round_trip(
    session_id: int, cookie: bytes, ns: int, frame: bytes, family: int
) -> None:
    """IP/UDP/L2TPv3 datagrams built in scapy dissect back to the same fields and bytes."""
    bind_l2tpv3(udp_port=4242, cookie_len=len(cookie), l2spec=True)
    ip: Packet = IP(src="10.0.0.1", dst="10.0.0.2") if family == 4 else IPv6(
        src="fd00::1", dst="fd00::2")  # fmt: skip
    pkt = ip / UDP(sport=4242, dport=4242) / scapy_l2tp(Encap.UDP, session_id, cookie, True, ns,
                                                         frame)  # fmt: skip
    data = bytes(pkt)
    back = IP(data) if family == 4 else IPv6(data)
    assert bytes(back) == data
    assert back[L2TPv3].session_id == session_id and back[L2TPv3].cookie == cookie
    assert (back[L2SpecDefault].S, back[L2SpecDefault].seq) == (1, ns)
    assert bytes(back[L2SpecDefault].payload) == frame
    parsed = parse_data(bytes(back[UDP].payload), Encap.UDP, len(cookie), True)
    assert (parsed.session_id, parsed.cookie, parsed.ns, parsed.frame) == (
        session_id, cookie, ns, frame)  # fmt: skip
