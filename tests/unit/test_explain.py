"""``l2tpv3 explain``: every kernel vector and kernel capture read field by field and
checked against tshark's decode of the same bytes (session ID, cookie, S bit, sequence
number, inner MACs and EtherType); the malformed datagrams of
tests/netns/test_bad_input.py judged by the receive path with the counters the daemon
moves there; ``-j`` keys; ``--overhead`` on the seed's configuration (1446 / 1406) and
with ESP; bad input as one line and exit status 2.

tshark missing: those tests skip locally and fail under CI=true (tests/support/tshark.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import wrpcap, wrpcapng

from l2tpv3.cli import main as cli
from l2tpv3.cli.wireshark import tshark_options
from l2tpv3.config import Encap, L2SpecType, SeqMode, SessionConfig, TunnelConfig
from l2tpv3.control.protocol import SaState, SessionState, TunnelState
from l2tpv3.proto.counters import COUNTER_NAMES, DROP_REASONS
from l2tpv3.proto.layout import session_mtu
from l2tpv3.tools import overhead as oh
from l2tpv3.tools.explain import (
    DaemonView,
    ExplainError,
    Settings,
    explain,
    parse_hex,
)
from tests.data.kernel_captures import KERNEL_CAPTURES
from tests.support.tshark import cookies, decode, nums, require_tshark, s_bit
from tests.unit.test_cli import FakeDaemon
from tests.unit.test_layout import VECTORS

OUTER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(["-S", "/nonexistent/l2tpv3.sock", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def explain_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    status, out, err = run(capsys, "-j", "explain", *argv)
    assert status == 0, err
    result = json.loads(out)
    assert isinstance(result, list)
    return result


def assert_agrees_with_tshark(mine: dict[str, Any], row: dict[str, list[str]]) -> None:
    """The fields both tools report, compared one by one."""
    assert nums(row["l2tp.sid"]) == [mine["session_id"]]
    assert cookies(row) == ([mine["cookie"]] if mine["cookie"] else [])
    if mine["l2spec"] == "default":
        assert [s_bit(v) for v in row["l2tp.l2_spec_s"]] == [mine["s"]]
        seq = nums(row["l2tp.l2_spec_sequence"])
        assert seq == [mine["seq"] if mine["s"] else 0]  # tshark prints the ignored bits
    else:
        assert row["l2tp.l2_spec_s"] == [] and mine["s"] is None and mine["seq"] is None
    # The inner frame is tshark's second (last) Ethernet header.
    assert row["eth.src"][-1] == mine["src"]
    assert row["eth.dst"][-1] == mine["dst"]
    assert row["eth.type"][-1] == mine["ethertype"]


# -- kernel vectors and captures against tshark ---------------------------------------------


@pytest.mark.parametrize("vec", VECTORS, ids=[v.key.split(":")[0] + str(i)
                                               for i, v in enumerate(VECTORS)])  # fmt: skip
def test_kernel_vectors_agree_with_tshark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vec: Any
) -> None:
    require_tshark()
    sender, _ = vec.sessions()
    data = vec.packet()
    opts = ["--cookie-len", str(len(sender.cookie)), "--l2spec", vec.l2spec.value]
    [mine] = explain_json(capsys, *opts, data.hex())
    # What the vector's notes say the packet holds.
    assert mine["session_id"] == sender.peer_session_id
    assert mine["cookie"] == vec.cookie
    assert mine["seq"] == vec.ns
    assert mine["src"] == ("02:99:00:00:00:02" if vec.sender_is_vm else "02:99:00:00:00:01")
    assert mine["encap"] == vec.encap.value
    assert mine["verdict"]["action"] == "deliver"
    # And tshark reads the same.
    ip = IP(data) if vec.family == 4 else IPv6(data)
    pcap = tmp_path / "v.pcap"
    wrpcap(str(pcap), [OUTER / ip])
    [row] = decode(pcap, tshark_options(vec.encap, len(sender.cookie), vec.l2spec, (1701,)))
    assert_agrees_with_tshark(mine, row)
    # The same packet in an Ethernet frame (detected), and from the pcap with -r.
    [framed] = explain_json(capsys, *opts, bytes(OUTER / ip).hex())
    [from_file] = explain_json(capsys, *opts, "-r", str(pcap))
    for other in (framed, from_file):
        assert other["link"] == "ether"
        for key in ("session_id", "cookie", "s", "seq", "src", "dst", "ethertype", "verdict"):
            assert other[key] == mine[key], key
    assert from_file["fields"][0]["layer"] == "outer Ethernet"


@pytest.mark.parametrize("name", list(KERNEL_CAPTURES))
def test_kernel_captures_agree_with_tshark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Every packet of every capture, read from one pcapng file per capture."""
    require_tshark()
    cap = KERNEL_CAPTURES[name]
    cookie_len = len(cap.peer_cookie) // 2  # the kernel sends our peer_cookie
    pcap = tmp_path / "c.pcapng"
    frames = [OUTER / (IP(p) if cap.family == 4 else IPv6(p)) for p in cap.packets]
    wrpcapng(str(pcap), frames)
    mine = explain_json(capsys, "--cookie-len", str(cookie_len), "--l2spec", cap.l2spec,
                        "-r", str(pcap))  # fmt: skip
    rows = decode(pcap, tshark_options(Encap(cap.encap), cookie_len, L2SpecType(cap.l2spec),
                                       cap.udp_ports if cap.encap == "udp" else ()))  # fmt: skip
    assert len(mine) == len(rows) == len(cap.packets) > 0
    for ex, row in zip(mine, rows, strict=True):
        assert ex["session_id"] == cap.our_session_id
        assert ex["cookie"] == cap.peer_cookie
        assert ex["encap"] == cap.encap
        if cap.encap == "udp":
            assert (ex["udp_dport"], ex["udp_sport"]) == cap.udp_ports
        assert_agrees_with_tshark(ex, row)
        assert ex["verdict"]["action"] == "deliver", ex["verdict"]


# -- drops: the malformed datagrams of tests/netns/test_bad_input.py ------------------------

A, B, B_ALIAS = "10.1.1.1", "10.1.1.2", "10.1.1.3"
COOKIE_A, COOKIE_B = "deadbeef", "cafef00d"
FRAME = "ffffffffffff02990000000208060001080006040001"
GOOD_SEQ = f"{0x40000000:08x}"  # a fresh session expects 0
FAR = f"{0x40000000 | ((1 << 23) + 5):08x}"  # half the space ahead: outside the window

TUNNEL_UDP = TunnelConfig(1, 2, ip_address(A), ip_address(B), Encap.UDP, udp_sport=5000,
                          udp_dport=6000)  # fmt: skip
TUNNEL_IP = TunnelConfig(3, 4, ip_address(A), ip_address(B), Encap.IP)
SESSION = SessionConfig(1, 10, 20, cookie=bytes.fromhex(COOKIE_A),
                        peer_cookie=bytes.fromhex(COOKIE_B), seq=SeqMode.BOTH)  # fmt: skip


def _udp(session_id: int, rest: str) -> str:
    return "00030000" + f"{session_id:08x}" + rest


# (source, source port or "ip", L2TP payload hex, the counter the daemon moves)
BAD_PACKETS = [
    (B, "6000", "0003", "tunnel.drops.too_short"),
    (B, "6000", _udp(10, COOKIE_B + GOOD_SEQ + FRAME).replace("0003", "0002", 1),
     "tunnel.drops.bad_version"),
    (B, "6000", "c8030000" + "00000000", "tunnel.drops.control_message"),
    (B, "6000", _udp(999, COOKIE_B + GOOD_SEQ + FRAME), "tunnel.drops.unknown_session"),
    (B, "6000", _udp(10, "01020304" + GOOD_SEQ + FRAME), "session.rx_cookie_discards"),
    (B, "6000", _udp(10, "cafe"), "session.rx_errors"),
    (B, "6000", _udp(10, COOKIE_B + "00000000" + FRAME), "session.rx_seq_discards"),
    (B, "6000", _udp(10, COOKIE_B + FAR + FRAME), "session.rx_errors"),  # window: no own count
    (B_ALIAS, "6000", _udp(10, COOKIE_B + GOOD_SEQ + FRAME), "tunnel.drops.wrong_source"),
    (B, "6001", _udp(10, COOKIE_B + GOOD_SEQ + FRAME), "tunnel.drops.wrong_source"),
    (B, "ip", "00000000" + "c8030000", "tunnel.drops.control_message"),
    (B, "ip", "000003e7" + FRAME, "tunnel.drops.unknown_session"),
    (B, "ip", "0102", "tunnel.drops.too_short"),
]  # fmt: skip


def _packet(src: str, port: str, payload: str) -> bytes:
    if port == "ip":
        return bytes(IP(src=src, dst=A, proto=115) / Raw(bytes.fromhex(payload)))
    return bytes(IP(src=src, dst=A) / UDP(sport=int(port), dport=5000)
                 / Raw(bytes.fromhex(payload)))  # fmt: skip


@pytest.mark.parametrize(("src", "port", "payload", "counter"), BAD_PACKETS)
def test_bad_input_packets_get_the_daemons_drop_reason(
    src: str, port: str, payload: str, counter: str
) -> None:
    view = (DaemonView(TUNNEL_IP, ()) if port == "ip"
            else DaemonView(TUNNEL_UDP, (SESSION,), {10: 1446}))  # fmt: skip
    ex = explain(_packet(src, port, payload), daemon=view)
    v = ex.verdict
    assert v["action"] == "drop", v
    assert v["counter"] == counter
    assert v["reason"] == counter.rsplit(".", 1)[1]
    # The counters moved are the daemon's: a tunnel drop is rx_invalid plus its reason,
    # a session drop rx_errors plus at most one specific counter (docs/protocol.md §7).
    if counter.startswith("tunnel."):
        assert v["counters"] == {"tunnel.rx_invalid": 1, counter: 1}
    else:
        assert v["counters"]["session.rx_errors"] == 1
        assert set(v["counters"]) <= {"session.rx_errors", counter}
    assert ex.assumed is not None


def test_good_packet_from_the_peer_is_delivered_and_ours_is_sent() -> None:
    view = DaemonView(TUNNEL_UDP, (SESSION,), {10: 1446})
    ex = explain(_packet(B, "6000", _udp(10, COOKIE_B + GOOD_SEQ + FRAME)), daemon=view)
    assert ex.verdict["action"] == "deliver"
    assert ex.summary["cookie"] == COOKIE_B and ex.summary["seq"] == 0
    assert ex.assumed is not None and "tunnel 1 session 10" in ex.assumed["from"]
    # A packet this tunnel sent: read with the session's own cookie, not judged.
    sent = IP(src=A, dst=B) / UDP(sport=5000, dport=6000) / Raw(
        bytes.fromhex(_udp(20, COOKIE_A + "40000007" + FRAME)))  # fmt: skip
    ex = explain(bytes(sent), daemon=view)
    assert ex.verdict["action"] == "sent"
    assert (ex.summary["session_id"], ex.summary["cookie"], ex.summary["seq"]) == (
        20, COOKIE_A, 7)  # fmt: skip
    # Not this tunnel's: another local port, and IP protocol 115 at a UDP tunnel.
    other = IP(src=B, dst=A) / UDP(sport=6000, dport=5001) / Raw(bytes.fromhex(_udp(10, "")))
    assert explain(bytes(other), daemon=view).verdict["action"] == "not-for-tunnel"
    ip115 = _packet(B, "ip", "0000000a" + COOKIE_B + GOOD_SEQ + FRAME)
    ex = explain(ip115, daemon=view)
    assert ex.verdict["action"] == "not-for-tunnel" and ex.summary["session_id"] == 10


def _states() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tunnel = TunnelState(TUNNEL_UDP, dict.fromkeys(COUNTER_NAMES, 0),
                         dict.fromkeys(DROP_REASONS, 0))  # fmt: skip
    session = SessionState(SESSION, "l2tpeth0", 2, 1446, True, True,
                           dict.fromkeys(COUNTER_NAMES, 0), None)  # fmt: skip
    return [tunnel.to_json()], [session.to_json()]


def test_tunnel_id_asks_the_daemon(
    short_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`explain tunnel_id 1 HEX`: show_tunnels and show_sessions over the control socket,
    then the packet read and judged with that session's peer_cookie and sublayer."""
    fake = FakeDaemon(str(short_dir / "d.sock"))
    tunnels, sessions = _states()
    fake.answers = {"show_tunnels": {"ok": True, "result": tunnels},
                    "show_sessions": {"ok": True, "result": sessions}}  # fmt: skip
    fake.start()
    try:
        wrong = _packet(B, "6000", _udp(10, "01020304" + GOOD_SEQ + FRAME)).hex()
        status = cli.main(["-S", fake.path, "-j", "explain", wrong, "tunnel_id", "1"])
        out, err = capsys.readouterr()
        assert status == 0, err
        [ex] = json.loads(out)
        assert ex["verdict"]["reason"] == "rx_cookie_discards"
        assert ex["cookie"] == "01020304" and ex["assumed"]["cookie_len"] == 4
        status = cli.main(["-S", fake.path, "explain", wrong, "tunnel_id", "1"])
        out, _ = capsys.readouterr()
        assert "the receiver requires cafef00d (its peer_cookie)" in out
        assert "DROPS it, reason rx_cookie_discards" in out
        ops = [r["op"] for r in fake.requests]
        assert ops == ["show_tunnels", "show_sessions"] * 2
        assert fake.requests[0].get("tunnel_id") == 1
        # A tunnel the daemon does not have: one line, exit 2.
        fake.answers["show_tunnels"] = {"ok": True, "result": []}
        status = cli.main(["-S", fake.path, "explain", wrong, "tunnel_id", "7"])
        _, err = capsys.readouterr()
        assert status == 2 and err == "Error: l2tpv3d has no tunnel 7\n"
    finally:
        fake.stop()


@pytest.fixture
def short_dir() -> Any:
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="l2ex"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- -j keys, other layers --------------------------------------------------------------------


def test_json_keys_and_types(capsys: pytest.CaptureFixture[str]) -> None:
    vec = VECTORS[4]  # udp-seq-both: S=1, sequence 1
    [ex] = explain_json(capsys, vec.packet().hex())
    assert isinstance(ex["session_id"], int) and ex["session_id"] == 4000
    assert ex["cookie"] == ""
    assert ex["seq"] == 1 and ex["s"] is True
    assert ex["src"] == "02:99:00:00:00:02" and ex["dst"] == "02:99:00:00:00:01"
    assert ex["ethertype"] == "0x0800"
    assert ex["assumed"] == {"cookie_len": 0, "l2spec": "default",
                             "from": "the defaults of ip l2tp"}  # fmt: skip
    for f in ex["fields"]:
        assert set(f) == {"offset", "length", "bytes", "layer", "field", "meaning", "ref"}
        assert bytes.fromhex(f["bytes"]) == vec.packet()[f["offset"] : f["offset"] + f["length"]]
    # S clear: seq is null.
    [ex] = explain_json(capsys, VECTORS[0].packet().hex())
    assert ex["s"] is False and ex["seq"] is None


def test_fields_cover_every_byte_in_order() -> None:
    for vec in VECTORS:
        sender, _ = vec.sessions()
        ex = explain(vec.packet(), Settings(len(sender.cookie), vec.l2spec))
        pos = 0
        for f in ex.fields:
            assert f.offset == pos, (vec.key, f)
            pos += f.length
        assert pos == len(vec.packet())


def test_text_names_offsets_and_rfc_sections(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "explain", "--cookie-len", "8", VECTORS[2].packet().hex())
    assert status == 0
    lines = out.splitlines()
    assert "cookie 8 bytes, Default L2-Specific Sublayer (from options --cookie-len" in lines[1]
    cookie = next(ln for ln in lines if "L2TPv3 cookie" in ln)
    assert cookie.split()[0] == "36" and "1122334455667788" in cookie
    assert "[RFC 3931 §4.1]" in cookie
    sub = next(ln for ln in lines if "Sublayer" in ln and ln.split()[0] == "44")
    assert "RFC 4719 §3" in sub
    assert lines[-1].startswith("receiver: accepts it: a 42-byte frame")


def test_vlan_tags_and_tcp_mss_inside() -> None:
    from scapy.layers.inet import TCP

    inner = (
        Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")
        / Dot1Q(vlan=5)
        / IP(src="10.0.0.1", dst="10.0.0.2")
        / TCP(flags="S", options=[("MSS", 1460)])
    )
    data = bytes(
        IP(src=B, dst=A)
        / UDP(sport=6000, dport=5000)
        / Raw(bytes.fromhex("0003000000000014") + bytes(4) + bytes(inner))
    )
    ex = explain(data)  # fmt: skip
    assert ex.summary["vlans"] == [5] and ex.summary["ethertype"] == "0x0800"
    assert "MSS option 1460" in ex.summary["inner"]
    assert any(f.name == "VLAN TCI" and "VLAN ID 5" in f.meaning for f in ex.fields)


def test_esp_shows_spi_and_sequence() -> None:
    esp = bytes.fromhex("0000abcd00000007") + bytes(40)
    ex = explain(bytes(IP(src=B, dst=A, proto=50) / Raw(esp)))
    assert ex.summary["esp"] == {"spi": 0xABCD, "seq": 7, "nat_t": False}
    assert ex.verdict["action"] == "encrypted"
    assert any(f.ref == "RFC 4303 §2.1" for f in ex.fields)
    natt = bytes(IPv6(src="fd00::2", dst="fd00::1") / UDP(sport=4500, dport=4500) / Raw(esp))
    assert explain(natt).summary["esp"] == {"spi": 0xABCD, "seq": 7, "nat_t": True}


def test_hex_forms() -> None:
    assert parse_hex("45 00:00 0x52") == bytes.fromhex("45000052")
    dump = "0000  45 00 00 52\n0010  0a 63 00 01\n"
    assert parse_hex(dump) == bytes.fromhex("450000520a630001")
    tcpdump = "\t0x0000:  4500 0052 8e67 0000\n\t0x0010:  0a63 0001\n"
    assert parse_hex(tcpdump) == bytes.fromhex("450000528e6700000a630001")
    # Plain hex broken into lines keeps every digit.
    assert parse_hex("45000052\n0a630001\n") == bytes.fromhex("450000520a630001")


# -- overhead ---------------------------------------------------------------------------------


def test_overhead_of_the_seed(capsys: pytest.CaptureFixture[str]) -> None:
    """shared/seeds/linux-l2tp-ethernet-pseudowires.md: 1500B = 20 IP + 8 UDP + 12 L2TP
    + 14 ETH + 20 IP + 20 TCP + PAYLOAD => PAYLOAD = 1406; l2tpeth MTU 1446."""
    status, out, _ = run(capsys, "explain", "--overhead")
    assert status == 0
    assert out.splitlines()[0] == (
        "1500 = 20 IP + 8 UDP + 12 L2TP + 14 Ethernet + 20 IP + 20 TCP + 1406 payload"
    )
    [r] = json.loads(run(capsys, "-j", "explain", "--overhead", "encap", "udp", "ipv4")[1])
    assert (r["mtu"], r["mss"], r["overhead"]) == (1446, 1406, 54)
    assert r["overhead_percent"] == 3.6
    assert [s["bytes"] for s in r["stack"]] == [20, 8, 12, 14, 20, 20, 1406]


@pytest.mark.parametrize(
    ("words", "mtu"),
    [  # docs/protocol.md §8, checked there against the kernel
        (["encap", "udp", "cookie_len", "8"], 1438),
        (["l2spec_type", "none"], 1450),
        (["encap", "ip"], 1458),
        (["encap", "ip", "cookie", "deadbeef", "l2spec_type", "none"], 1458),
        (["ipv6"], 1426),
        (["encap", "ip", "local", "fd00::1", "remote", "fd00::2", "cookie_len", "8",
          "l2spec_type", "none"], 1434),
        (["mtu", "9000"], 8946),
    ],
)  # fmt: skip
def test_overhead_mtu_is_the_projects(
    capsys: pytest.CaptureFixture[str], words: list[str], mtu: int
) -> None:
    [r] = json.loads(run(capsys, "-j", "explain", "--overhead", *words)[1])
    assert r["mtu"] == mtu and r["mss"] == mtu - 40 and r["mss_ipv6"] == mtu - 60
    assert r["overhead"] + r["mtu"] == r["path_mtu"]


@pytest.mark.parametrize("alg", ["rfc4106(gcm(aes))", "rfc7539esp(chacha20,poly1305)",
                                 "cbc(aes)+hmac(sha256)", "cbc(aes)+hmac(sha1)"])  # fmt: skip
@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("path_mtu", [1280, 1500, 1501, 1502, 1503, 9000])
@pytest.mark.parametrize("espinudp", [False, True])
def test_overhead_with_esp_is_the_largest_that_fits(
    alg: str, family: int, path_mtu: int, espinudp: bool
) -> None:
    """Worked out here independently: the ESP packet of the MTU-sized frame fits the path,
    one byte more does not (RFC 4303 §2.4 padding to the block)."""
    esp = oh.ESP_ALGS[alg]
    iv, block, icv = {"rfc4106(gcm(aes))": (8, 4, 16),
                      "rfc7539esp(chacha20,poly1305)": (8, 4, 16),
                      "cbc(aes)+hmac(sha256)": (16, 16, 16),
                      "cbc(aes)+hmac(sha1)": (16, 16, 12)}[alg]  # fmt: skip
    tunnel, session = oh.session_for(family, Encap.UDP, 0, True)
    r = oh.compute(tunnel, session, path_mtu, esp, espinudp)
    ip = 20 if family == 4 else 40

    def wire(mtu: int) -> int:
        plain = 8 + 12 + 14 + mtu  # UDP, L2TP, Ethernet, frame payload
        padded = -(-(plain + 2) // block) * block
        return ip + (8 if espinudp else 0) + 8 + iv + padded + icv

    assert wire(r.mtu) <= path_mtu < wire(r.mtu + 1)
    assert r.wire == wire(r.mtu)
    assert r.overhead == r.wire - r.mtu


def test_overhead_of_a_daemons_session(short_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeDaemon(str(short_dir / "d.sock"))
    tunnels, sessions = _states()
    fake.answers = {"show_tunnels": {"ok": True, "result": tunnels},
                    "show_sessions": {"ok": True, "result": sessions},
                    "show_sas": {"ok": False, "error": "unknown op"}}  # fmt: skip
    fake.start()
    try:
        status = cli.main(["-S", fake.path, "-j", "explain", "--overhead", "tunnel_id", "1"])
        out, err = capsys.readouterr()
        assert status == 0, err
        [r] = json.loads(out)
        assert r["name"] == "tunnel 1 session 10"
        assert r["mtu"] == session_mtu(TUNNEL_UDP, SESSION, 1500) == 1442
        assert r["esp"] is None
    finally:
        fake.stop()


@pytest.mark.parametrize(
    ("sa", "esp", "mtu"),
    [
        ({"aead": "rfc4106(gcm(aes))"}, "rfc4106(gcm(aes))", 1408),
        ({"aead": "rfc4106(gcm(aes))", "encap_sport": 4500, "encap_dport": 4500},
         "rfc4106(gcm(aes))", 1400),
        ({"enc": "cbc(aes)", "auth": "hmac(sha1)"}, "cbc(aes)+hmac(sha1)", 1400),
    ],
)  # fmt: skip
def test_overhead_of_a_daemons_session_counts_its_outbound_sa(
    short_dir: Path, capsys: pytest.CaptureFixture[str], sa: dict[str, Any], esp: str, mtu: int
) -> None:
    """With tunnel_id, ESP is the tunnel's outbound SA as the daemon has it (the session
    here has a 4-byte cookie: 1442 in clear, 34 less with GCM, 42 with CBC/SHA-1)."""
    fake = FakeDaemon(str(short_dir / "d.sock"))
    tunnels, sessions = _states()
    base = {"tunnel_id": 1, "spi": 0x1000, "replay_window": 0, "esn": False}
    sas = [
        SaState({**base, "dir": "in", "aead": "rfc7539esp(chacha20,poly1305)"}, {}, {}).to_json(),
        SaState({**base, "dir": "out", **sa}, {}, {}).to_json(),
    ]
    fake.answers = {"show_tunnels": {"ok": True, "result": tunnels},
                    "show_sessions": {"ok": True, "result": sessions},
                    "show_sas": {"ok": True, "result": sas}}  # fmt: skip
    fake.start()
    try:
        status = cli.main(["-S", fake.path, "-j", "explain", "--overhead", "tunnel_id", "1"])
        out, err = capsys.readouterr()
        assert status == 0, err
        [r] = json.loads(out)
        assert (r["esp"], r["mtu"]) == (esp, mtu)
    finally:
        fake.stop()


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["450"], "odd number of hex digits"),
        (["45zz"], "not hex"),
        (["45000052"], "packet truncated"),
        ([VECTORS[0].packet()[:60].hex()], "packet truncated: IPv4 total length 82"),
        (["-r", "/nonexistent/x.pcap"], "cannot read /nonexistent/x.pcap"),
        (["--cookie-len", "5", "4500"], "must be 0, 4 or 8"),
        (["--l2spec", "cisco", "4500"], "l2spec"),
        (["--bogus", "4500"], 'unknown option "--bogus"'),
        (["--overhead", "esp", "des"], "unknown algorithm"),
        (["--overhead", "mtu", "60"], "68..65535"),
        (["--overhead", "mtu", "100"], "cannot carry"),
        (["--overhead", "ipv6", "local", "10.0.0.1"], "not an IPv6 address"),
        (["--overhead", "l2spec_type", "none", "seq", "both"], "sequencing needs"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, "explain", *argv)
    assert status == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("Error: ") and message in err, err


def test_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    status, _, err = run(capsys, "explain", "-r", str(junk))
    assert status == 2 and err.startswith(f"Error: cannot read {junk}") and err.count("\n") == 1
    cut = tmp_path / "cut.pcap"
    wrpcap(str(cut), [OUTER / IP(VECTORS[0].packet())])
    cut.write_bytes(cut.read_bytes()[:-10])
    status, _, err = run(capsys, "explain", "-r", str(cut))
    assert status == 2 and err.startswith("Error: ") and err.count("\n") == 1, err


def test_no_traceback_from_the_console(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "l2tpv3.cli", "explain", "-"], input="4",
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == "Error: odd number of hex digits (1): a byte is cut in half\n"


def test_explain_error_is_an_l2tp_error() -> None:
    with pytest.raises(ExplainError, match="neither an IPv4/IPv6 packet"):
        explain(b"\x00\x01")


def test_link_option_and_raw_ip_captures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = VECTORS[8].packet()  # udp6-default
    pcap = tmp_path / "raw.pcap"
    wrpcap(str(pcap), [IPv6(data), IPv6(data)])  # a raw-IP link type, no Ethernet header
    both = explain_json(capsys, "-r", str(pcap))
    assert [ex["link"] for ex in both] == ["ipv6", "ipv6"]
    assert [ex["packet"] for ex in both] == [1, 2]
    assert both[0]["session_id"] == 4000 and both[0]["outer_src"] == "fd00:99::2"
    [forced] = explain_json(capsys, "--link", "ip", data.hex())
    assert forced["link"] == "ipv6"
    status, _, err = run(capsys, "explain", "--link", "ip", bytes(OUTER / IPv6(data)).hex())
    assert status == 2 and "not an IP packet" in err


def test_esp_and_vlan_agree_with_tshark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ESP's SPI and sequence number, an inner VLAN tag and the outer ports, as tshark
    reads them."""
    exe = require_tshark()
    inner = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / Dot1Q(vlan=42) / IP()
    l2tp = bytes.fromhex("0003000000000014") + bytes(4) + bytes(inner)
    packets = [
        OUTER / IP(src=B, dst=A, proto=50) / Raw(bytes.fromhex("c0ffee0100000309") + bytes(32)),
        OUTER / IP(src=B, dst=A) / UDP(sport=6000, dport=5000) / Raw(l2tp),
    ]
    pcap = tmp_path / "esp.pcap"
    wrpcap(str(pcap), packets)
    mine = explain_json(capsys, "-r", str(pcap))
    fields = ["esp.spi", "esp.sequence", "vlan.id", "udp.srcport", "udp.dstport"]
    cmd = [exe, "-n", "-r", str(pcap), *tshark_options(Encap.UDP, 0, L2SpecType.DEFAULT, (5000,))]
    cmd += ["-T", "fields", "-E", "separator=/t"]
    for f in fields:
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [dict(zip(fields, line.split("\t"), strict=True)) for line in proc.stdout.splitlines()]
    assert int(rows[0]["esp.spi"], 0) == mine[0]["esp"]["spi"] == 0xC0FFEE01
    assert int(rows[0]["esp.sequence"], 0) == mine[0]["esp"]["seq"] == 777
    assert [int(v) for v in rows[1]["vlan.id"].split(",")] == mine[1]["vlans"] == [42]
    assert (int(rows[1]["udp.srcport"]), int(rows[1]["udp.dstport"])) == (
        mine[1]["udp_sport"],
        mine[1]["udp_dport"],
    )


def test_usage_and_missing_scapy(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = run(capsys, "explain", "help")
    assert status == 0 and out == "" and err.startswith("Usage: l2tpv3 [ -j ] explain")
    status, _, err = run(capsys, "explain")  # nothing to explain
    assert status == 2 and err.startswith("Usage:")
    # Without scapy (a hand-made environment): one line, not a traceback.
    import l2tpv3.tools

    monkeypatch.delattr(l2tpv3.tools, "explain")
    monkeypatch.setitem(sys.modules, "l2tpv3.tools.explain", None)
    status, _, err = run(capsys, "explain", "4500")
    assert status == 2 and err.startswith("Error: explain needs scapy") and err.count("\n") == 1
