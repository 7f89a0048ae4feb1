"""Per-VLAN sessions (proto/vlan.py, fast/fp_vlan.c), sans I/O, both implementations:
which TPIDs are tags, the trunk's demux and drops, the session's tag push / pop / check
both ways. Frames are built and read back by scapy, an independent parser."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet

from l2tpv3.cli import grammar
from l2tpv3.config import SeqMode, SessionConfig, TunnelConfig
from l2tpv3.errors import ConfigError, L2TPError
from l2tpv3.io.datapath import Implementation
from l2tpv3.proto import vlan
from l2tpv3.proto.api import SessionAPI

_TA = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                   remote=ip_address("10.0.0.2"), udp_sport=1, udp_dport=2)  # fmt: skip
_TB = TunnelConfig(tunnel_id=2, peer_tunnel_id=1, local=ip_address("10.0.0.2"),
                   remote=ip_address("10.0.0.1"), udp_sport=2, udp_dport=1)  # fmt: skip

_ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
_IP = IP(src="192.0.2.1", dst="192.0.2.2") / ICMP()


def _session(sansio: Implementation, vid: int | None = 5, pop: bool = False) -> SessionAPI:
    return sansio.session(_TA, SessionConfig(
        tunnel_id=1, session_id=10, peer_session_id=20,
        trunk="trunk0" if vid else None, vlan=vid, vlan_pop=pop))  # fmt: skip


def _peer(sansio: Implementation) -> SessionAPI:
    return sansio.session(_TB, SessionConfig(tunnel_id=2, session_id=20, peer_session_id=10))


def _tx(s: SessionAPI, frame: bytes) -> bytes:
    """Trunk -> wire: the frame as it leaves in the datagram (sans-I/O entry point)."""
    out = s.encapsulate(frame)
    return out[s.layout.tx_header_len :]


def _tx_inplace(s: SessionAPI, frame: bytes) -> bytes:
    """Trunk -> wire as the adapters do it: untag in place in the read buffer."""
    buf = bytearray(frame)
    cut = s.untag(memoryview(buf))
    return bytes(buf[cut:])


def _rx(sansio: Implementation, s: SessionAPI, frame: bytes) -> list[bytes]:
    """Wire -> trunk: what reaches the trunk TAP."""
    return [bytes(f) for f in s.receive(_peer(sansio).encapsulate(frame), 0.0)]


def _b(p: Packet) -> bytes:
    return bytes(p)


# -- which TPIDs are tags ------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "vid"),
    [
        (_b(_ETH / Dot1Q(vlan=5) / _IP), 5),
        (_b(_ETH / Dot1AD(vlan=100) / Dot1Q(vlan=5) / _IP), 100),  # outer S-tag counts
        (_b(_ETH / Dot1Q(vlan=4094, prio=7, dei=1) / _IP), 4094),  # PCP / DEI ignored
        (_b(_ETH / _IP), -1),
        (_b(_ETH / ARP()), -1),
        (_b(Ether(dst="ff:ff:ff:ff:ff:ff", type=0x9100) / Dot1Q(vlan=5) / _IP), -1),  # old QinQ
        (_b(_ETH / Dot1Q(vlan=5))[:17], -1),  # too short to hold a tag
    ],
)
def test_outer_vid(frame: bytes, vid: int) -> None:
    assert vlan.outer_vid(frame) == vid


def test_push_pop_roundtrip() -> None:
    plain = _b(_ETH / _IP)
    tagged = vlan.push(plain, 7)
    p = Ether(tagged)
    assert p.type == 0x8100 and p[Dot1Q].vlan == 7 and p[Dot1Q].prio == 0
    assert bytes(p[Dot1Q].payload) == bytes(Ether(plain).payload)
    assert vlan.pop(tagged) == plain


# -- the trunk's demux ---------------------------------------------------------------


def test_trunk_classify_both_ways(sansio: Implementation) -> None:
    t = sansio.trunk("trunk0")
    t.add(5, 10)
    t.add(7, 11)
    assert t.classify(_b(_ETH / Dot1Q(vlan=5) / _IP)) == 10
    assert t.classify(_b(_ETH / Dot1AD(vlan=7) / Dot1Q(vlan=9) / _IP)) == 11
    assert t.classify(_b(_ETH / _IP)) is None
    assert t.classify(_b(_ETH / Dot1Q(vlan=6) / _IP)) is None
    assert t.classify(b"") is None
    assert dict(t.drops) == {"vlan_untagged": 2, "vlan_unmapped": 1}
    with pytest.raises(ValueError, match="taken by session 10"):
        t.add(5, 12)
    t.remove(5)
    assert t.classify(_b(_ETH / Dot1Q(vlan=5) / _IP)) is None
    assert dict(t.vids) == {7: 11}


# -- the session: trunk to wire ------------------------------------------------------


def test_tagged_leaves_as_it_came(sansio: Implementation) -> None:
    s = _session(sansio)
    f = _b(_ETH / Dot1Q(vlan=5, prio=3) / _IP)
    assert _tx(s, f) == f
    assert _tx_inplace(s, f) == f


def test_pop_removes_the_outer_tag(sansio: Implementation) -> None:
    s = _session(sansio, pop=True)
    f = _b(_ETH / Dot1Q(vlan=5) / _IP)
    assert _tx(s, f) == _b(_ETH / _IP)
    assert _tx_inplace(s, f) == _b(_ETH / _IP)
    # 802.1ad outer: the S-tag goes, the inner C-tag stays.
    qinq = _b(_ETH / Dot1AD(vlan=5) / Dot1Q(vlan=9) / _IP)
    assert _tx(s, qinq) == _b(_ETH / Dot1Q(vlan=9) / _IP)
    # tx_bytes counts what left, not the tag (untag alone counts nothing).
    hlen = s.layout.tx_header_len
    assert s.counters.tx_bytes == (hlen + len(f) - 4) + (hlen + len(qinq) - 4)


def test_pop_leaves_untagged_frames_alone(sansio: Implementation) -> None:
    # inject() (a liveness probe) hands in an untagged frame: it leaves as it is.
    s = _session(sansio, pop=True)
    f = _b(_ETH / ARP())
    assert _tx(s, f) == f


# -- the session: wire to trunk ------------------------------------------------------


def test_rx_pop_pushes_the_tag(sansio: Implementation) -> None:
    s = _session(sansio, pop=True)
    (out,) = _rx(sansio, s, _b(_ETH / _IP))
    p = Ether(out)
    assert p[Dot1Q].vlan == 5 and p[Dot1Q].prio == 0 and p.type == 0x8100
    assert out == vlan.push(_b(_ETH / _IP), 5)
    assert s.counters.rx_packets == 1


def test_rx_without_pop_needs_our_vid(sansio: Implementation) -> None:
    s = _session(sansio)
    good = _b(_ETH / Dot1Q(vlan=5) / _IP)
    assert _rx(sansio, s, good) == [good]
    assert _rx(sansio, s, _b(_ETH / Dot1Q(vlan=7) / _IP)) == []
    assert _rx(sansio, s, _b(_ETH / _IP)) == []
    assert s.drops["vlan_mismatch"] == 2
    # Counted as received by the session, as frame_too_long drops are (the kernel
    # counts the device's drops apart).
    assert s.counters.rx_packets == 3


def test_rx_sequenced_pop(sansio: Implementation) -> None:
    cfg = SessionConfig(tunnel_id=1, session_id=10, peer_session_id=20, trunk="trunk0",
                        vlan=9, vlan_pop=True, seq=SeqMode.BOTH, reorder_timeout=100)  # fmt: skip
    s = sansio.session(_TA, cfg)
    peer = sansio.session(
        _TB, SessionConfig(tunnel_id=2, session_id=20, peer_session_id=10, seq=SeqMode.BOTH)
    )
    f = _b(_ETH / _IP)
    out = [bytes(x) for x in s.receive(peer.encapsulate(f), 0.0)]
    assert out == [vlan.push(f, 9)]


def test_no_trunk_is_untouched(sansio: Implementation) -> None:
    s = _session(sansio, vid=None)
    f = _b(_ETH / Dot1Q(vlan=5) / _IP)
    assert _tx(s, f) == f
    assert _rx(sansio, s, _b(_ETH / _IP)) == [_b(_ETH / _IP)]
    assert s.vlan == 0 and not s.vlan_pop


# -- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"trunk": "t0"}, "needs vlan VID"),
        ({"vlan": 5}, "needs trunk IFNAME"),
        ({"vlan_pop": True}, "needs trunk IFNAME"),
        ({"trunk": "t0", "vlan": 0}, "1..4094"),
        ({"trunk": "t0", "vlan": 4095}, "1..4094"),
        ({"trunk": "t0", "vlan": True}, "1..4094"),
        ({"trunk": "t0", "vlan": 5, "name": "l2tpeth0"}, "no interface of its own"),
        ({"trunk": "bad/name", "vlan": 5}, "ifname"),
    ],
)
def test_config_refuses(kw: dict[str, object], msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        SessionConfig(tunnel_id=1, session_id=1, peer_session_id=1, **kw)  # type: ignore[arg-type]


# -- the command line ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "vid", "pop"),
    [
        (["trunk", "trunk0", "vlan", "5"], 5, False),
        (["vlan", "4094", "pop", "trunk", "trunk0"], 4094, True),
        (["trunk", "trunk0", "vlan", "7", "pop", "mss_clamp", "auto"], 7, True),
    ],
)
def test_grammar_round_trip(words: list[str], vid: int, pop: bool) -> None:
    argv = ["add", "session", "tunnel_id", "1", "session_id", "2", "peer_session_id", "3"]
    cmd = grammar.parse([*argv, *words])
    assert cmd.session is not None
    assert (cmd.session.trunk, cmd.session.vlan, cmd.session.vlan_pop) == ("trunk0", vid, pop)
    assert grammar.parse(grammar.argv_for(cmd.session)).session == cmd.session


@pytest.mark.parametrize(
    ("words", "msg"),
    [
        (["trunk", "trunk0", "vlan", "0"], "1..4094"),
        (["trunk", "trunk0", "vlan", "five"], "1..4094"),
        (["trunk", "trunk0", "vlan"], 'option "vlan" needs a value'),
        (["trunk", "trunk0"], "needs vlan VID"),
        (["trunk", "a/b", "vlan", "5"], "ifname"),
        (["name", "x0", "trunk", "trunk0", "vlan", "5"], "no interface of its own"),
    ],
)
def test_grammar_refuses(words: list[str], msg: str) -> None:
    argv = ["add", "session", "tunnel_id", "1", "session_id", "2", "peer_session_id", "3"]
    with pytest.raises(L2TPError, match=msg) as exc:
        grammar.parse([*argv, *words])
    assert "\n" not in str(exc.value)
