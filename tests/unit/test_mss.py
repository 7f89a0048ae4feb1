"""TCP MSS clamping (proto/mss.py, fast/fp_mss.c), sans I/O, both implementations.

Frames are built and checked by scapy, an independent parser: after clamping, scapy
recomputes the TCP checksum from scratch and it must equal the incremental one (RFC 1624).
"""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Packet

from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.errors import ConfigError, L2TPError
from l2tpv3.io.datapath import Implementation
from l2tpv3.proto import mss
from l2tpv3.proto.api import SessionAPI

MTU = 1446  # the bridging seed's pseudowire: MSS 1406 over IPv4, 1386 over IPv6

_TA = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                   remote=ip_address("10.0.0.2"), udp_sport=1, udp_dport=2)  # fmt: skip
_TB = TunnelConfig(tunnel_id=2, peer_tunnel_id=1, local=ip_address("10.0.0.2"),
                   remote=ip_address("10.0.0.1"), udp_sport=2, udp_dport=1)  # fmt: skip


def _session(sansio: Implementation, clamp: str = "auto", mtu: int = MTU) -> SessionAPI:
    s = sansio.session(_TA, SessionConfig(tunnel_id=1, session_id=10, peer_session_id=20,
                                          mss_clamp=clamp))  # fmt: skip
    s.set_mtu(mtu)
    return s


def _peer(sansio: Implementation) -> SessionAPI:
    """The far end, not clamping: it turns frames into datagrams for _session to receive."""
    return sansio.session(_TB, SessionConfig(tunnel_id=2, session_id=20, peer_session_id=10))


def _tx(s: SessionAPI, frame: bytes) -> bytes:
    """TAP -> wire: the frame as it leaves in the datagram."""
    return s.encapsulate(frame)[s.layout.tx_header_len :]


def _rx(sansio: Implementation, s: SessionAPI, frame: bytes) -> bytes:
    """wire -> TAP: the frame as it reaches the TAP."""
    (out,) = s.receive(_peer(sansio).encapsulate(frame), 0.0)
    return bytes(out)


TAGS = {
    "untagged": lambda: Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02"),
    "802.1Q": lambda: Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1Q(vlan=5),
    "QinQ": lambda: (
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1AD(vlan=100) / Dot1Q(vlan=5)
    ),
}
OPTIONS: dict[str, list[tuple[str, object]]] = {
    "mss-only": [("MSS", 1460)],
    # One NOP first puts the value on an odd offset: the checksum words straddle it.
    "nop-odd": [("NOP", None), ("MSS", 1460), ("WScale", 7)],
    "linux": [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)],
    "late": [("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("MSS", 1460)],
}


def _frame(family: int, tags: str, options: list[tuple[str, object]], flags: str = "S",
           payload: bytes = b"", ext: bool = False) -> bytes:  # fmt: skip
    l3: Packet
    if family == 4:
        l3 = IP(src="192.168.0.1", dst="192.168.0.4")
    else:
        l3 = IPv6(src="fd00::1", dst="fd00::4")
        if ext:
            l3 = l3 / IPv6ExtHdrHopByHop()
    pkt = TAGS[tags]() / l3 / TCP(sport=40000, dport=22, flags=flags, options=options)
    return bytes(pkt / payload) if payload else bytes(pkt)


def _tcp(frame: bytes) -> TCP:
    tcp = Ether(frame)[TCP]
    assert isinstance(tcp, TCP)
    return tcp


def _mss_of(frame: bytes) -> int | None:
    for kind, value in _tcp(frame).options:
        if kind == "MSS":
            assert isinstance(value, int)
            return value
    return None


def _checksum_ok(frame: bytes) -> bool:
    """scapy's own checksum of the segment, computed from scratch, equals the frame's."""
    pkt = Ether(frame)
    tcp = pkt[TCP]
    got = tcp.chksum
    del tcp.chksum
    return bool(Ether(bytes(pkt))[TCP].chksum == got)


def _diff_only_mss_and_csum(before: bytes, after: bytes) -> None:
    assert len(before) == len(after)
    changed = [i for i in range(len(before)) if before[i] != after[i]]
    assert 1 <= len(changed) <= 4


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("tags", list(TAGS))
@pytest.mark.parametrize("opts", list(OPTIONS))
@pytest.mark.parametrize("flags", ["S", "SA"])
def test_syn_clamped_both_directions(sansio: Implementation, family: int, tags: str,
                                     opts: str, flags: str) -> None:  # fmt: skip
    frame = _frame(family, tags, OPTIONS[opts], flags)
    assert _checksum_ok(frame)
    want = MTU - (40 if family == 4 else 60)
    for direction in ("tx", "rx"):
        s = _session(sansio)
        out = _tx(s, frame) if direction == "tx" else _rx(sansio, s, frame)
        assert _mss_of(out) == want, direction
        assert _checksum_ok(out), direction
        _diff_only_mss_and_csum(frame, out)
        assert s.features == {"mss_clamped": 1}
        assert s.counters.tx_packets + s.counters.rx_packets == 1


@pytest.mark.parametrize("family", [4, 6])
def test_syn_with_payload_and_ipv6_extension(sansio: Implementation, family: int) -> None:
    frame = _frame(family, "QinQ", OPTIONS["linux"], payload=b"x" * 333, ext=family == 6)
    s = _session(sansio)
    out = _tx(s, frame)
    assert _mss_of(out) == MTU - (40 if family == 4 else 60)
    assert _checksum_ok(out)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize(
    ("flags", "value"),
    [("S", 1300), ("S", MTU - 60), ("A", 1460), ("PA", 1460), ("SR", 1460), ("F", 1460)],
)
def test_left_alone(sansio: Implementation, family: int, flags: str, value: int) -> None:
    # Already smaller or equal (1386 is the IPv6 limit), or not a SYN / a SYN with RST.
    if flags == "S" and family == 4 and value == MTU - 60:
        value = MTU - 40
    frame = _frame(family, "802.1Q", [("MSS", value)], flags)
    s = _session(sansio)
    assert _tx(s, frame) == frame
    assert _rx(sansio, s, frame) == frame
    assert s.features == {"mss_clamped": 0}


def test_no_mss_option_is_not_added(sansio: Implementation) -> None:
    frame = _frame(4, "untagged", [("NOP", None), ("WScale", 7)])
    s = _session(sansio)
    assert _tx(s, frame) == frame
    assert s.features["mss_clamped"] == 0


def test_off_by_default(sansio: Implementation) -> None:
    frame = _frame(4, "untagged", OPTIONS["linux"])
    s = sansio.session(_TA, SessionConfig(tunnel_id=1, session_id=10, peer_session_id=20))
    s.set_mtu(MTU)
    assert s.config.mss_clamp == "off"
    assert _tx(s, frame) == frame
    assert _rx(sansio, s, frame) == frame
    assert s.features == {"mss_clamped": 0}


def test_fixed_value_and_auto_follows_mtu(sansio: Implementation) -> None:
    s = _session(sansio, "1200")
    assert _mss_of(_tx(s, _frame(4, "untagged", OPTIONS["linux"]))) == 1200
    assert _mss_of(_tx(s, _frame(6, "untagged", OPTIONS["linux"]))) == 1200
    s = _session(sansio, "auto")
    s.set_mtu(1400)
    assert _mss_of(_tx(s, _frame(4, "untagged", OPTIONS["linux"]))) == 1360
    assert _mss_of(_tx(s, _frame(6, "untagged", OPTIONS["linux"]))) == 1340
    s.set_mtu(9000)  # a larger MTU: 1460 is below 8960, nothing to lower
    frame = _frame(4, "untagged", OPTIONS["linux"])
    assert _tx(s, frame) == frame


def _malformed() -> list[tuple[str, bytes]]:
    good = _frame(4, "untagged", [("NOP", None), ("MSS", 1460)])
    l4 = 14 + 20
    out = []
    # Every truncation of the frame (the IP total length then runs past the end).
    out += [(f"cut{n}", good[:n]) for n in range(len(good))]
    b = bytearray(good)
    b[14] = 0x44  # IHL 4
    out.append(("ihl4", bytes(b)))
    b = bytearray(good)
    b[14] = 0x4F  # IHL 15: the options run past the total length
    out.append(("ihl15", bytes(b)))
    b = bytearray(good)
    b[l4 + 22] = 9  # MSS option length 9 runs off the TCP header
    out.append(("optlen-off-end", bytes(b)))
    b = bytearray(good)
    b[l4 + 22] = 3  # MSS option with a wrong length
    out.append(("optlen3", bytes(b)))
    b = bytearray(good)
    b[l4 + 22] = 1  # option length below 2
    out.append(("optlen1", bytes(b)))
    b = bytearray(good)
    b[l4 + 12] = 0x40  # data offset 4
    out.append(("doff4", bytes(b)))
    b = bytearray(good)
    b[l4 + 12] = 0xF0  # data offset 60 > the segment
    out.append(("doff15", bytes(b)))
    b = bytearray(good)
    b[14 + 6] = 0x20  # MF: a first fragment
    out.append(("fragment", bytes(b)))
    b = bytearray(good)
    b[14 + 9] = 17  # not TCP
    out.append(("udp", bytes(b)))
    v6 = _frame(6, "QinQ", [("MSS", 1460)])
    out += [(f"v6cut{n}", v6[:n]) for n in range(len(v6))]
    b = bytearray(v6)
    b[22 + 4 : 22 + 6] = b"\x00\x00"  # payload length 0 (jumbogram)
    out.append(("v6plen0", bytes(b)))
    return out


@pytest.mark.parametrize(("name", "frame"), _malformed(), ids=[n for n, _ in _malformed()])
def test_malformed_untouched(sansio: Implementation, name: str, frame: bytes) -> None:
    s = _session(sansio)
    buf = bytearray(frame)
    assert not s.clamp(buf)
    assert bytes(buf) == frame
    assert mss.find(frame, 1406, 1386) is None
    assert s.features["mss_clamped"] == 0


def _ones_sum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    s = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _pseudo_sum(frame: bytes, l3: int, family: int) -> int:
    if family == 4:
        seg = len(frame) - l3 - 20
        ph = frame[l3 + 12 : l3 + 20] + bytes([0, 6]) + seg.to_bytes(2, "big")
    else:
        seg = len(frame) - l3 - 40
        ph = frame[l3 + 8 : l3 + 40] + seg.to_bytes(4, "big") + bytes([0, 0, 0, 6])
    return _ones_sum(ph)


@pytest.mark.parametrize("family", [4, 6])
def test_partial_checksum_left_for_completion(sansio: Implementation, family: int) -> None:
    """A TAP frame with NEEDS_CSUM: the field holds the pseudo-header sum and must keep
    it; the checksum completed afterwards (as l2o_complete_csum does) is then valid."""
    frame = _frame(family, "802.1Q", OPTIONS["nop-odd"])
    l3 = 18
    l4 = l3 + (20 if family == 4 else 40)
    partial = bytearray(frame)
    partial[l4 + 16 : l4 + 18] = _pseudo_sum(frame, l3, family).to_bytes(2, "big")
    before = bytes(partial)
    s = _session(sansio)
    assert not s.clamp(bytearray(before), partial=(l4 + 2, 16))  # not at the TCP header
    assert not s.clamp(bytearray(before), partial=(l4, 6))
    assert s.clamp(partial, partial=(l4, 16))
    assert partial[l4 + 16 : l4 + 18] == before[l4 + 16 : l4 + 18]
    # Completion: the sum from csum_start, complemented, into the field.
    check = ~_ones_sum(bytes(partial[l4:])) & 0xFFFF
    partial[l4 + 16 : l4 + 18] = check.to_bytes(2, "big")
    assert _mss_of(bytes(partial)) == MTU - (40 if family == 4 else 60)
    assert _checksum_ok(bytes(partial))


def test_full_checksum_in_place(sansio: Implementation) -> None:
    frame = _frame(6, "untagged", OPTIONS["late"])
    s = _session(sansio)
    buf = bytearray(frame)
    assert s.clamp(buf)
    assert _mss_of(bytes(buf)) == MTU - 60
    assert _checksum_ok(bytes(buf))


def test_rfc1624_corner() -> None:
    # RFC 1624 section 3's example: eqn. 3 gives 0x0000 where eqn. 2 gave -0 (0xFFFF).
    assert mss.csum_replace(0xDD2F, 0x5555, 0x3285) == 0x0000


@pytest.mark.parametrize(
    ("value", "want"),
    [("off", "off"), ("AUTO", "auto"), ("1406", "1406"), (1406, "1406"), ("0x500", "1280")],
)
def test_config_values(value: object, want: str) -> None:
    cfg = SessionConfig(tunnel_id=1, session_id=1, peer_session_id=1, mss_clamp=value)  # type: ignore[arg-type]
    assert cfg.mss_clamp == want
    assert SessionConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("value", ["on", "87", "65536", "", True, 1.5, "-1"])
def test_config_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="mss_clamp"):
        SessionConfig(tunnel_id=1, session_id=1, peer_session_id=1, mss_clamp=value)  # type: ignore[arg-type]


def test_limits() -> None:
    assert mss.limits("off", 1446) == (0, 0)
    assert mss.limits("auto", 1446) == (1406, 1386)
    assert mss.limits("auto", 100) == (88, 88)
    assert mss.limits("1300", 9000) == (1300, 1300)


# -- the option through the command line, show, the control protocol, peer-config --------


def test_grammar_and_round_trip() -> None:
    from l2tpv3.cli import grammar

    words = "add session tunnel_id 1 session_id 3000 peer_session_id 4000 mss_clamp auto"
    cmd = grammar.parse(words.split())
    assert cmd.session is not None
    assert cmd.session.mss_clamp == "auto"
    assert grammar.argv_for(cmd.session)[-2:] == ["mss_clamp", "auto"]
    plain = grammar.parse(words.split()[:-2])
    assert plain.session is not None
    assert plain.session.mss_clamp == "off"
    assert "mss_clamp" not in grammar.argv_for(plain.session)
    with pytest.raises(ConfigError, match='invalid mss_clamp "1"'):
        grammar.parse([*words.split()[:-1], "1"])


def test_show_text_json_and_protocol() -> None:
    import json

    from l2tpv3.cli import show
    from l2tpv3.control.protocol import SessionState, session_states

    cfg = SessionConfig(tunnel_id=1, session_id=3000, peer_session_id=4000, mss_clamp="auto")
    from l2tpv3.proto.counters import COUNTER_NAMES

    zero = dict.fromkeys(COUNTER_NAMES, 0)
    state = SessionState(cfg, "l2tpeth0", 2, 1446, False, False, zero, {}, {"mss_clamped": 7})
    (back,) = session_states([json.loads(json.dumps(state.to_json()))])
    assert back == state
    text = show.format_sessions([back], stats=True)
    assert "  mss clamp: auto (1406 IPv4, 1386 IPv6)\n" in text
    assert "    mss_clamped 7\n" in text
    (obj,) = json.loads(show.json_sessions([back], stats=True))
    assert obj["mss_clamp"] == "auto"
    assert (obj["mss_ipv4"], obj["mss_ipv6"]) == (1406, 1386)
    assert obj["features"] == {"mss_clamped": 7}
    # Off (the default): nothing added, ip l2tp's output unchanged.
    off = SessionState(replace_cfg(cfg, "off"), "l2tpeth0", 2, 1446, False, False, {}, None)
    assert "mss" not in show.format_sessions([off], stats=False)
    assert "mss_clamp" not in show.json_sessions([off], stats=False)


def replace_cfg(cfg: SessionConfig, clamp: str) -> SessionConfig:
    from dataclasses import replace

    return replace(cfg, mss_clamp=clamp)


def test_peer_config_prints_tcpmss_rule_for_kernel_peer() -> None:
    from l2tpv3.cli import peerconfig

    t = TunnelConfig(tunnel_id=1000, peer_tunnel_id=2000, local=ip_address("1.1.1.2"),
                     remote=ip_address("2.2.2.2"), udp_sport=6000, udp_dport=5000)  # fmt: skip
    s = SessionConfig(tunnel_id=1000, session_id=3000, peer_session_id=4000, mss_clamp="auto")
    text = peerconfig.linux([t], [s])
    # The seed's rule, with the far end's numbers: MTU 1446 with a 1500-byte path.
    assert (
        "iptables -A FORWARD -p tcp --tcp-flags SYN,RST SYN -m tcpmss --mss 1407:65535 "
        "-j TCPMSS --set-mss 1406\n" in text
    )
    assert "ip6tables -A FORWARD" in text and "--set-mss 1386" in text
    # The far end's ip l2tp line has no mss_clamp (the kernel has no such word).
    assert "ip l2tp add session tunnel_id 2000 session_id 4000 peer_session_id 3000\n" in text
    assert "TCPMSS" not in peerconfig.linux([t], [replace_cfg(s, "off")])


@pytest.mark.parametrize(("toml", "want"), [('"auto"', "auto"), ("1406", "1406"), ('"off"', "off")])
def test_toml_config(toml: str, want: str) -> None:
    import tomllib

    from l2tpv3.config.file import parse_config

    text = f"""
[[tunnel]]
tunnel_id = 1
peer_tunnel_id = 2
local = "10.0.0.1"
remote = "10.0.0.2"
udp_sport = 1
udp_dport = 2
  [[tunnel.session]]
  session_id = 3
  peer_session_id = 4
  mss_clamp = {toml}
"""
    _, (s,) = parse_config(tomllib.loads(text))
    assert s.mss_clamp == want
    with pytest.raises(L2TPError, match='session #1: invalid mss_clamp "on"'):
        parse_config(tomllib.loads(text.replace(f"mss_clamp = {toml}", 'mss_clamp = "on"')))
