"""tshark decodes our packets with the preferences l2tpv3.wireshark gives it.

- without root: pcaps written (scapy wrpcap) from our codec's bytes, and from the
  kernel's own packets, decoded by tshark: session ID, cookie, S bit and sequence
  number, and the inner Ethernet frame and its IP addresses, as we built them;
- as root: two daemons in namespaces, a capture (AF_PACKET, then tshark -r) on the veth
  between them while one
  pings the other, and the same assertions on what crossed the wire, for UDP and IP
  encap, IPv4 and IPv6, 4 and 8-byte cookies, the default sublayer with sequencing; the
  scapy layers (l2tpv3.tools.scapy_layers) read the same capture and must agree with tshark.

tshark missing: skipped locally, a failure under CI=true.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from l2tpv3.cli import peerconfig
from l2tpv3.cli.wireshark import tshark_options
from l2tpv3.config import Encap, L2SpecType, SeqMode, SessionConfig, TunnelConfig
from l2tpv3.proto.layout import HeaderLayout
from l2tpv3.tools.scapy_layers import L2SpecDefault, L2TPv3, bind_l2tpv3, reset_l2tpv3
from tests.support.netns import Daemon, two_hosts
from tests.support.progs import prog
from tests.unit.test_layout import DEF, VECTORS

FIELDS = [
    "ip.src", "ip.dst", "ipv6.src", "l2tp.sid", "l2tp.cookie", "l2tp.l2_spec_s",
    "l2tp.l2_spec_sequence", "eth.src", "eth.dst", "eth.type", "icmp.type",
]  # fmt: skip


def require_tshark() -> str:
    exe = shutil.which("tshark")
    if exe is None:
        msg = "tshark is not installed (apt-get install tshark)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def decode(pcap: Path, options: list[str]) -> list[dict[str, list[str]]]:
    """One dict per packet: field -> every occurrence (outer first, then inner)."""
    cmd = [require_tshark(), "-n", "-r", str(pcap), *options, "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=|", "-E", "separator=/t"]  # fmt: skip
    for f in FIELDS:
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = []
    for line in proc.stdout.splitlines():
        values = line.split("\t")
        assert len(values) == len(FIELDS), line
        rows.append({f: (v.split("|") if v else []) for f, v in zip(FIELDS, values, strict=True)})
    return rows


def nums(values: list[str]) -> list[int]:
    # tshark prints some integers in hex (l2tp.sid as 0x...), others in decimal.
    return [int(v, 0) for v in values]


def cookies(row: dict[str, list[str]]) -> list[str]:
    # Bytes fields: plain hex in tshark 4.0, colon-separated in some other versions.
    return [v.replace(":", "").lower() for v in row["l2tp.cookie"]]


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


def s_bit(value: str) -> bool:
    # tshark prints booleans as 1/0 (4.x) or True/False (older).
    return value in ("1", "True")


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


# -- a live capture between two daemons ---------------------------------------------------------

UNDERLAY = {4: ("10.8.1.1", "10.8.1.2"), 6: ("fd00:8::1", "fd00:8::2")}
LIVE_INNER = ("10.88.1.1", "10.88.1.2")
LIVE_CASES = [
    # encap, family, cookie A sends, cookie B sends (same length: one tshark setting), seq
    ("udp", 4, "01020304", "a1a2a3a4", "both"),
    ("ip", 4, "014d3636deadbeef", "a1a2a3a4a5a6a7a8", "both"),
    ("udp", 6, "0a0b0c0d0e0f1011", "1112131415161718", "both"),
    ("ip", 6, "cafef00d", "deadbeef", "none"),
]


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[Daemon, Daemon]]:
    a_addrs, b_addrs = ([f"{UNDERLAY[4][i]}/24", f"{UNDERLAY[6][i]}/64"] for i in (0, 1))
    with two_hosts("ts", a_addrs, b_addrs) as pair:
        yield pair


# An AF_PACKET capture inside the namespace (tests/support/progs/pcap_capture.py), bound
# before it says "ready" so nothing is missed; tshark then reads the pcap it writes.
class Capture:
    """Everything crossing veth0 in a namespace, into a pcap file."""

    def __init__(self, ns: str, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *prog("pcap_capture"), str(path), "veth0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> int:
        """Close the capture; the number of packets written."""
        if self.proc.poll() is not None:
            return -1
        out, _ = self.proc.communicate(timeout=30)
        return int(out.strip() or -1)


def _mac(d: Daemon) -> str:
    out = d.ns.run("cat", "/sys/class/net/l2tpeth0/address").stdout
    return out.strip()


@pytest.mark.root
@pytest.mark.parametrize(("encap", "family", "cookie_a", "cookie_b", "seq"), LIVE_CASES)
def test_live_capture_decodes(
    live: tuple[Daemon, Daemon], tmp_path: Path, encap: str, family: int, cookie_a: str,
    cookie_b: str, seq: str,
) -> None:  # fmt: skip
    require_tshark()
    a, b = live
    case = LIVE_CASES.index((encap, family, cookie_a, cookie_b, seq))
    loc, rem = UNDERLAY[family]
    ports = (7000 + case, 8000 + case) if encap == "udp" else ()
    tun_a = TunnelConfig(300 + case, 400 + case, ip_address(loc), ip_address(rem), Encap(encap),
                         udp_sport=ports[0] if ports else None,
                         udp_dport=ports[1] if ports else None)  # fmt: skip
    sess_a = SessionConfig(tun_a.tunnel_id, 3000 + case, 4000 + case,
                           cookie=bytes.fromhex(cookie_a), peer_cookie=bytes.fromhex(cookie_b),
                           seq=SeqMode(seq))  # fmt: skip
    # B is configured with what peer-config prints for A.
    text = peerconfig.linux([tun_a], [sess_a])
    for d, lines in ((a, peerconfig.linux([peerconfig.mirror_tunnel(tun_a)],
                                         [peerconfig.mirror_session(tun_a, sess_a)])),
                     (b, text)):  # fmt: skip
        for ln in lines.splitlines():
            if ln.startswith("ip l2tp "):
                d.line(ln)
    pcap = tmp_path / "live.pcap"
    cap: Capture | None = None
    try:
        for d, idx in ((a, 0), (b, 1)):
            d.ns.sysctl("net.ipv6.conf.l2tpeth0.disable_ipv6", "1")
            d.ns.ip("addr", "add", f"{LIVE_INNER[idx]}/24", "dev", "l2tpeth0")
            d.ns.ip("link", "set", "l2tpeth0", "up")
        a.ns.ping(LIVE_INNER[1], count=1)  # ARP resolved before the capture
        sent_before = a.session(sess_a.session_id)["stats"]["tx_packets"]
        cap = Capture(a.ns.name, pcap)
        a.ns.ping(LIVE_INNER[1], count=3)
        assert cap.stop() >= 6
        stats_a = a.session(sess_a.session_id)["stats"]
        opts = tshark_options(Encap(encap), len(sess_a.cookie), L2SpecType.DEFAULT,
                              ports)  # fmt: skip
        rows = decode(pcap, opts)
        src_field = "ip.src" if family == 4 else "ipv6.src"
        sent = [r for r in rows if r[src_field][:1] == [loc] and r["icmp.type"] == ["8"]]
        back = [r for r in rows if r[src_field][:1] == [rem] and r["icmp.type"] == ["0"]]
        assert len(sent) == 3 and len(back) == 3, rows
        for rows_dir, sid, cookie, smac, dmac, isrc, idst in (
            (sent, sess_a.peer_session_id, sess_a.cookie, _mac(a), _mac(b), LIVE_INNER[0],
             LIVE_INNER[1]),
            (back, sess_a.session_id, sess_a.peer_cookie, _mac(b), _mac(a), LIVE_INNER[1],
             LIVE_INNER[0]),
        ):  # fmt: skip
            for r in rows_dir:
                assert nums(r["l2tp.sid"]) == [sid]
                assert cookies(r) == [cookie.hex()]
                assert r["eth.src"][1:] == [smac] and r["eth.dst"][1:] == [dmac]
                assert r["eth.type"][1:] == ["0x0800"]
                assert r["ip.src"][-1] == isrc
                assert r["ip.dst"][-1] == idst
            s_bits = [s_bit(r["l2tp.l2_spec_s"][0]) for r in rows_dir]
            assert s_bits == [seq == "both"] * 3
        if seq == "both":
            # A's sequence numbers count from 0, one per packet it sent: the requests
            # carry numbers between what it had sent before and after the capture.
            ns = [nums(r["l2tp.l2_spec_sequence"])[0] for r in sent]
            assert ns == [ns[0], ns[0] + 1, ns[0] + 2]
            assert sent_before <= ns[0] and ns[-1] <= stats_a["tx_packets"] - 1
        else:
            assert all(nums(r["l2tp.l2_spec_sequence"]) == [0] for r in sent + back)
        # The scapy layers read the same capture the same way.
        bind_l2tpv3(udp_port=tun_a.udp_sport, cookie_len=len(sess_a.cookie), l2spec=True)
        seen = [
            (p[L2TPv3].session_id, p[L2TPv3].cookie.hex(), bool(p[L2SpecDefault].S),
             p[L2SpecDefault].seq, p[L2SpecDefault].payload.src, p[ICMP].type)
            for p in rdpcap(str(pcap)) if L2TPv3 in p and ICMP in p
        ]  # fmt: skip
        assert seen == [
            (nums(r["l2tp.sid"])[0], cookies(r)[0], s_bit(r["l2tp.l2_spec_s"][0]),
             nums(r["l2tp.l2_spec_sequence"])[0], r["eth.src"][1], int(r["icmp.type"][0]))
            for r in rows if r["icmp.type"]
        ]  # fmt: skip
        assert len(seen) == 6
    finally:
        reset_l2tpv3()
        if cap is not None and cap.proc.poll() is None:
            cap.proc.kill()
            cap.proc.wait()
        a.cli("del", "tunnel", "tunnel_id", str(tun_a.tunnel_id), check=False)
        b.cli("del", "tunnel", "tunnel_id", str(tun_a.peer_tunnel_id), check=False)
