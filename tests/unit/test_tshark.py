"""tshark decodes our packets with the preferences l2tpv3.cli.wireshark gives it, without
root: pcaps written (scapy wrpcap) from our codec's bytes, and from the kernel's own
packets, decoded by tshark: session ID, cookie, S bit and sequence number, and the inner
Ethernet frame and its IP addresses, as we built them; and the lines
``l2tpv3 peer-config --for tshark`` prints. tests/netns/test_tshark.py does the same
on a live capture between two daemons.

tshark missing: skipped locally, a failure under CI=true.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from ipaddress import ip_address
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from l2tpv3.cli import peerconfig
from l2tpv3.cli.wireshark import tshark_options
from l2tpv3.config import Encap, L2SpecType, SeqMode, SessionConfig, TunnelConfig
from l2tpv3.proto.layout import HeaderLayout
from tests.support.tshark import cookies, decode, nums, require_tshark, s_bit
from tests.unit.test_layout import DEF, VECTORS


def write_config(tmp_path: Path, tun: TunnelConfig, sess: SessionConfig) -> Path:
    """The two configs as a TOML file for `--config`."""

    def toml(d: dict[str, object]) -> str:
        return "".join(
            f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}\n"
            for k, v in d.items() if v is not None
        )  # fmt: skip

    path = tmp_path / "ours.toml"
    path.write_text(f"[[tunnel]]\n{toml(tun.to_dict())}[[session]]\n{toml(sess.to_dict())}")
    return path


def cli_run(*argv: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "l2tpv3.cli", *argv], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


# -- pcaps from our codec, no root --------------------------------------------------------------

MAC_A, MAC_B = "02:aa:00:00:00:01", "02:bb:00:00:00:02"
INNER_A, INNER_B = "10.55.0.1", "10.55.0.2"
C4, C8 = bytes.fromhex("deadbeef"), bytes.fromhex("014d3636a1a2a3a4")
OUTER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")

CODEC_CASES = [
    # encap, family, cookie, l2spec, ns
    (Encap.UDP, 4, b"", L2SpecType.DEFAULT, None),
    (Encap.UDP, 4, C4, L2SpecType.DEFAULT, 7),
    (Encap.UDP, 6, C8, L2SpecType.DEFAULT, 0xFFFFFF),
    (Encap.IP, 4, C8, L2SpecType.DEFAULT, 1),
    (Encap.IP, 6, C4, L2SpecType.NONE, None),
    (Encap.UDP, 4, C8, L2SpecType.NONE, None),
]


@pytest.mark.parametrize(("encap", "family", "cookie", "l2spec", "ns"), CODEC_CASES)
def test_codec_bytes_decode_in_tshark(
    tmp_path: Path, encap: Encap, family: int, cookie: bytes, l2spec: L2SpecType, ns: int | None
) -> None:
    require_tshark()
    local, remote = ("192.0.2.1", "192.0.2.2") if family == 4 else ("fd00:5::1", "fd00:5::2")
    udp = encap is Encap.UDP
    tun = TunnelConfig(1, 2, ip_address(local), ip_address(remote), encap,
                       udp_sport=40001 if udp else None,
                       udp_dport=40002 if udp else None)  # fmt: skip
    sess = SessionConfig(1, 10, 0x12345678, cookie=cookie, l2spec_type=l2spec,
                         seq=SeqMode.NONE if ns is None else SeqMode.SEND)  # fmt: skip
    frame = bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src=INNER_A, dst=INNER_B) / ICMP()
                  / Raw(b"l2tpv3" * 8))  # fmt: skip
    payload = HeaderLayout.for_session(tun, sess).build(frame, ns)
    ip = IP(src=local, dst=remote) if family == 4 else IPv6(src=local, dst=remote)
    if encap is Encap.UDP:
        pkt = ip / UDP(sport=40001, dport=40002) / Raw(payload)
    else:
        pkt = ip / Raw(payload)
        if family == 4:
            pkt[IP].proto = 115
        else:
            pkt[IPv6].nh = 115
    pcap = tmp_path / "codec.pcap"
    wrpcap(str(pcap), [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / pkt])
    [row] = decode(pcap, tshark_options(encap, len(cookie), l2spec, (40001, 40002)))
    assert row["ip.src" if family == 4 else "ipv6.src"][0] == local
    assert nums(row["l2tp.sid"]) == [0x12345678]
    assert cookies(row) == ([cookie.hex()] if cookie else [])
    if l2spec is L2SpecType.DEFAULT:
        assert [s_bit(v) for v in row["l2tp.l2_spec_s"]] == [ns is not None]
        assert nums(row["l2tp.l2_spec_sequence"]) == [ns or 0]
    else:
        assert row["l2tp.l2_spec_s"] == [] and row["l2tp.l2_spec_sequence"] == []
    # The inner frame: the second Ethernet header, the inner IPv4 addresses.
    assert row["eth.src"][1:] == [MAC_A] and row["eth.dst"][1:] == [MAC_B]
    assert row["eth.type"][1:] == ["0x0800"]
    assert row["ip.src"][-1] == INNER_A and row["ip.dst"][-1] == INNER_B
    assert row["icmp.type"] == ["8"]


def test_kernel_packets_decode_in_tshark(tmp_path: Path) -> None:
    """The kernel's packets (tests/data/kernel_vectors.py), one pcap per receiver setting."""
    require_tshark()
    for i, vec in enumerate(VECTORS):
        ssess, _ = vec.sessions()
        data = vec.packet()
        ip = IP(data) if vec.family == 4 else IPv6(data)
        pcap = tmp_path / f"kernel{i}.pcap"
        wrpcap(str(pcap), [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip])
        [row] = decode(pcap, tshark_options(vec.encap, len(ssess.cookie), vec.l2spec, (1701,)))
        assert nums(row["l2tp.sid"]) == [ssess.peer_session_id], vec.key
        assert cookies(row) == ([vec.cookie] if vec.cookie else []), vec.key
        if vec.l2spec is DEF:
            assert [s_bit(v) for v in row["l2tp.l2_spec_s"]] == [vec.ns is not None], vec.key
            assert nums(row["l2tp.l2_spec_sequence"]) == [vec.ns or 0], vec.key
        inner_src = "02:99:00:00:00:02" if vec.sender_is_vm else "02:99:00:00:00:01"
        assert row["eth.src"][1:] == [inner_src], vec.key


def test_options() -> None:
    assert tshark_options(Encap.IP, 8, L2SpecType.DEFAULT, (5000,)) == [
        "-o", "l2tp.cookie_size:8 Byte Cookie", "-o", "l2tp.l2_specific:Default L2-Specific",
        "-d", "l2tp.pw_type==0,eth",
    ]  # fmt: skip
    assert tshark_options(Encap.UDP, 0, L2SpecType.NONE, (6000, 5000, 5000))[:6] == [
        "-d", "udp.port==5000,l2tp", "-d", "udp.port==6000,l2tp",
        "-o", "l2tp.cookie_size:None",
    ][:6]  # fmt: skip
    with pytest.raises(ValueError, match="0, 4 or 8"):
        tshark_options(Encap.IP, 5, L2SpecType.NONE)


def test_peer_config_tshark_lines_decode_each_direction(tmp_path: Path) -> None:
    """`peer-config --for tshark`: run each printed line on a capture of both directions
    with cookies of different lengths; each decodes its own direction, cookie and all."""
    exe = require_tshark()
    tun = TunnelConfig(1, 2, ip_address("192.0.2.1"), ip_address("192.0.2.2"), Encap.UDP,
                       udp_sport=41000, udp_dport=42000)  # fmt: skip
    ours = SessionConfig(1, 100, 200, cookie=C8, peer_cookie=C4, seq=SeqMode.BOTH)
    theirs = peerconfig.mirror_session(tun, ours)
    frame = bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src=INNER_A, dst=INNER_B) / ICMP())
    sent = HeaderLayout.for_session(tun, ours).build(frame, 5)
    received = HeaderLayout.for_session(peerconfig.mirror_tunnel(tun), theirs).build(frame, 9)
    pcap = tmp_path / "both.pcap"
    wrpcap(str(pcap), [
        OUTER / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=41000, dport=42000) / Raw(sent),
        OUTER / IP(src="192.0.2.2", dst="192.0.2.1") / UDP(sport=42000, dport=41000)
        / Raw(received),
    ])  # fmt: skip
    status, out, _ = cli_run("peer-config", "--for", "tshark", "--config", str(
        write_config(tmp_path, tun, ours)))  # fmt: skip
    assert status == 0
    lines = [ln for ln in out.splitlines() if not ln.startswith("#")]
    assert len(lines) == 2
    got = []
    for line in lines:
        words = shlex.split(line)
        assert words[0] == "tshark"
        proc = subprocess.run(
            [exe, "-n", "-r", str(pcap), *words[1:], "-T", "fields", "-e", "l2tp.sid",
             "-e", "l2tp.cookie", "-e", "l2tp.l2_spec_sequence", "-e", "eth.src"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        sid, cookie, seq, macs = proc.stdout.split()
        got.append((int(sid, 0), cookie.replace(":", ""), int(seq), macs.split(",")))
    outer_mac = OUTER.src
    assert got == [
        (200, C8.hex(), 5, [outer_mac, MAC_A]),
        (100, C4.hex(), 9, [outer_mac, MAC_A]),
    ]


def test_peer_config_tshark_line_decodes_both_directions(tmp_path: Path) -> None:
    """Cookies of one length: one line with a display filter for both session IDs,
    which this tshark accepts (it refused the space-separated set once printed)."""
    exe = require_tshark()
    tun = TunnelConfig(1, 2, ip_address("192.0.2.1"), ip_address("192.0.2.2"), Encap.UDP,
                       udp_sport=41000, udp_dport=42000)  # fmt: skip
    ours = SessionConfig(1, 100, 200, cookie=C4, peer_cookie=C4[::-1])
    frame = bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src=INNER_A, dst=INNER_B) / ICMP())
    theirs = peerconfig.mirror_session(tun, ours)
    sent = HeaderLayout.for_session(tun, ours).build(frame)
    received = HeaderLayout.for_session(peerconfig.mirror_tunnel(tun), theirs).build(frame)
    pcap = tmp_path / "both.pcap"
    wrpcap(str(pcap), [
        OUTER / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=41000, dport=42000) / Raw(sent),
        OUTER / IP(src="192.0.2.2", dst="192.0.2.1") / UDP(sport=42000, dport=41000)
        / Raw(received),
    ])  # fmt: skip
    status, out, _ = cli_run("peer-config", "--for", "tshark", "--config", str(
        write_config(tmp_path, tun, ours)))  # fmt: skip
    assert status == 0
    lines = [ln for ln in out.splitlines() if not ln.startswith("#")]
    assert len(lines) == 1
    proc = subprocess.run(
        [exe, "-n", "-r", str(pcap), *shlex.split(lines[0])[1:], "-T", "fields", "-e",
         "l2tp.sid", "-e", "l2tp.cookie"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = [tuple(ln.split("\t")) for ln in proc.stdout.splitlines()]
    assert [(int(sid, 0), ck.replace(":", "")) for sid, ck in got] == [
        (200, C4.hex()),
        (100, C4[::-1].hex()),
    ]


def test_preference_names_exist_in_this_tshark() -> None:
    """The names above are the installed tshark's, not remembered ones."""
    exe = require_tshark()
    prefs = subprocess.run([exe, "-G", "defaultprefs"], capture_output=True, text=True,
                           timeout=120).stdout  # fmt: skip
    assert "#l2tp.cookie_size:" in prefs and "#l2tp.l2_specific:" in prefs
    assert "8 Byte Cookie" in prefs and "Default L2-Specific" in prefs
    decodes = subprocess.run([exe, "-G", "decodes"], capture_output=True, text=True,
                             timeout=120).stdout  # fmt: skip
    assert "l2tp.pw_type\t5\teth" in decodes
