"""`l2tpv3 capture` between two daemons in namespaces, on both data paths (``impl``):

- a capture taken while A pings B holds, byte for byte, the L2TP datagrams an AF_PACKET
  capture on the veth saw, in each direction; tshark decodes it with the options the
  command prints (the same ICMP ids and sequence numbers both ways), and
  `l2tpv3 explain -r FILE tunnel_id ID` reads the same session IDs and sequence numbers;
- ``--inner`` gives the Ethernet frames the hosts exchanged;
- a datagram A drops is marked inbound with the drop reason as its comment;
- a reader that never reads loses packets (counted, capture_lost) while a bulk TCP
  transfer and ping through the tunnel still work;
- bad input is one line and exit status 2; deleting the tunnel ends the capture.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgReader, rdpcap

from interop.netns import client_cmd
from tests.netns.test_tshark import Capture
from tests.support.netns import Daemon, tcp_transfer, two_hosts, wait_until
from tests.support.tshark import require_tshark

pytestmark = pytest.mark.root

UNDER = ("10.9.1.1", "10.9.1.2")
INNER = ("10.99.1.1", "10.99.1.2")
PORTS = (5000, 6000)


@pytest.fixture(scope="module")
def pw(impl: str) -> Iterator[tuple[Daemon, Daemon]]:
    with two_hosts("cap", [f"{UNDER[0]}/24"], [f"{UNDER[1]}/24"], impl=impl) as (a, b):
        for d, (tid, ptid), (sp, dp), (loc, rem), (sid, psid), (ck, pck) in (
            (a, (1, 2), PORTS, UNDER, (10, 20), ("01020304", "a1a2a3a4")),
            (b, (2, 1), PORTS[::-1], UNDER[::-1], (20, 10), ("a1a2a3a4", "01020304")),
        ):
            d.cli("add", "tunnel", "tunnel_id", str(tid), "peer_tunnel_id", str(ptid),
                  "encap", "udp", "local", loc, "remote", rem, "udp_sport", str(sp),
                  "udp_dport", str(dp))  # fmt: skip
            d.cli("add", "session", "tunnel_id", str(tid), "session_id", str(sid),
                  "peer_session_id", str(psid), "cookie", ck, "peer_cookie", pck,
                  "l2spec_type", "default", "seq", "both")  # fmt: skip
        for d, addr in ((a, INNER[0]), (b, INNER[1])):
            d.ns.sysctl("net.ipv6.conf.l2tpeth0.disable_ipv6", "1")
            d.ns.ip("addr", "add", f"{addr}/24", "dev", "l2tpeth0")
            d.ns.ip("link", "set", "l2tpeth0", "up")
        a.ns.ping(INNER[1], count=1)  # ARP resolved before any capture
        yield a, b


def start(d: Daemon, *args: str) -> subprocess.Popen[str]:
    """`l2tpv3 capture ...`, once it says it is capturing."""
    proc = subprocess.Popen([*client_cmd(), "-S", d.socket, "capture", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.startswith("capturing "), line + proc.stderr.read()
    return proc


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err


def l2tp_payloads(pkts: list[object]) -> dict[str, list[bytes]]:
    """The UDP payloads of the tunnel's datagrams, by direction as A sees them."""
    out: dict[str, list[bytes]] = {"out": [], "in": []}
    for p in pkts:
        if IP not in p or UDP not in p:  # type: ignore[operator]
            continue
        ip, udp = p[IP], p[UDP]  # type: ignore[index]
        if {udp.sport, udp.dport} != set(PORTS):
            continue
        out["out" if ip.src == UNDER[0] else "in"].append(bytes(udp.payload))
    return out


def test_capture_matches_the_wire(pw: tuple[Daemon, Daemon], tmp_path: Path) -> None:
    a, _ = pw
    exe = require_tshark()
    ours = tmp_path / "ours.pcapng"
    wire = tmp_path / "veth.pcap"
    veth = Capture(a.ns.name, wire)
    try:
        proc = start(a, "tunnel_id", "1", "-w", str(ours), "-c", "6")
        a.ns.run("ping", "-c", "3", "-i", "0.2", INNER[1])
        out, err = finish(proc)
    finally:
        veth.stop()
    assert "6 packets written" in err and "capture_lost 0" in err, err
    mine = rdpcap(str(ours))
    assert len(mine) == 6
    # Every datagram crossed the veth as recorded, in order, each way.
    assert l2tp_payloads(list(mine)) == l2tp_payloads(list(rdpcap(str(wire))))
    # Directions: A's requests outbound (2), B's replies inbound (1).
    with PcapNgReader(str(ours)) as r:
        dirs = [(p.direction, p[IP].src) for p in r]
    assert sorted(dirs) == [(1, UNDER[1])] * 3 + [(2, UNDER[0])] * 3
    # tshark decodes it with the options the command printed.
    cmd = shlex.split(next(ln for ln in out.splitlines() if ln.startswith("tshark ")))
    assert cmd[1:3] == ["-r", str(ours)]
    assert f"udp.port=={PORTS[0]},l2tp" in cmd and "l2tp.cookie_size:4 Byte Cookie" in cmd

    def fields(path: Path) -> list[list[str]]:
        proc = subprocess.run([exe, "-n", *cmd[1:], "-T", "fields", "-E", "separator=/t",
                               "-e", "l2tp.sid", "-e", "icmp.type", "-e", "icmp.ident",
                               "-e", "icmp.seq", "-e", "l2tp.l2_spec_sequence"],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        proc = subprocess.run(
            [exe, "-n", "-r", str(path), *cmd[3:], "-Y", "l2tp", "-T", "fields", "-E",
             "separator=/t", "-e", "l2tp.sid", "-e", "icmp.type", "-e", "icmp.ident", "-e",
             "icmp.seq", "-e", "l2tp.l2_spec_sequence"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return [ln.split("\t") for ln in proc.stdout.splitlines()]

    rows = fields(ours)
    requests = [(r[2], r[3]) for r in rows if r[1] == "8" and int(r[0], 0) == 20]
    replies = [(r[2], r[3]) for r in rows if r[1] == "0" and int(r[0], 0) == 10]
    assert len(requests) == 3 and requests == replies, rows
    assert [int(s) for _, s in requests] == [1, 2, 3]
    # What tshark reads in the veth capture: the same frames, ids, sequence numbers.
    assert rows == fields(wire)
    # explain reads the file with the session's configuration from the daemon.
    ex = a.cli("-j", "explain", "-r", str(ours), "tunnel_id", "1")
    got = json.loads(ex.stdout)
    packets = got if isinstance(got, list) else got.get("packets", [got])
    assert [p["session_id"] for p in packets] == [int(r[0], 0) for r in rows]
    assert [p["seq"] for p in packets] == [int(r[4]) for r in rows]


def test_inner_frames(pw: tuple[Daemon, Daemon], tmp_path: Path) -> None:
    a, b = pw
    ours = tmp_path / "inner.pcapng"
    proc = start(a, "tunnel_id", "1", "session_id", "10", "-w", str(ours), "-c", "4", "--inner")
    a.ns.run("ping", "-c", "2", "-i", "0.2", "-p", "c0ffee", INNER[1])
    out, _ = finish(proc)
    assert out.strip() == f"tshark -r {ours}"
    frames = rdpcap(str(ours))
    assert all(Ether in f for f in frames)
    mac_a = a.ns.run("cat", "/sys/class/net/l2tpeth0/address").stdout.strip()
    mac_b = b.ns.run("cat", "/sys/class/net/l2tpeth0/address").stdout.strip()
    got = [(f[Ether].src, f[IP].src, f[ICMP].type, f[ICMP].seq) for f in frames]
    assert sorted(got) == sorted(
        [(mac_a, INNER[0], 8, s) for s in (1, 2)] + [(mac_b, INNER[1], 0, s) for s in (1, 2)]
    )
    assert all(b"\xc0\xff\xee" * 3 in bytes(f[ICMP].payload) for f in frames)


def test_drop_reason_comment(pw: tuple[Daemon, Daemon], tmp_path: Path) -> None:
    a, b = pw
    ours = tmp_path / "drop.pcapng"
    proc = start(a, "tunnel_id", "1", "-w", str(ours), "-c", "1")
    # From B's address but another port: not the peer, so A drops it as wrong_source.
    code = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"s.bind(('{UNDER[1]}', 6001)); "
            "s.sendto(bytes.fromhex('000300000000000a01020304') + bytes(60), "
            f"('{UNDER[0]}', 5000))")  # fmt: skip
    b.ns.run(sys.executable, "-c", code)
    finish(proc)
    with PcapNgReader(str(ours)) as r:
        pkts = list(r)
    assert len(pkts) == 1
    assert pkts[0].direction == 1
    assert pkts[0].comments == [b"wrong_source"]


def test_slow_reader_loses_not_the_tunnel(pw: tuple[Daemon, Daemon]) -> None:
    a, b = pw
    pattern = re.compile(r"capture of tunnel 1: ended \(.*\), capture_lost (\d+)")
    ended = len(pattern.findall(a.log_text()))
    # A client that asks for a capture and then never reads.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(a.socket)
    try:
        sock.sendall(json.dumps({"op": "capture", "tunnel_id": 1}).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            answer += sock.recv(1)
        assert json.loads(answer) == {"ok": True, "result": None}
        # 40 MB through the tunnel, both ways' records far more than the buffers hold.
        tcp_transfer(a.ns, b.ns, INNER[0], 40 * 1024 * 1024)
        a.ns.ping(INNER[1], count=3)
    finally:
        sock.close()
    assert wait_until(lambda: len(pattern.findall(a.log_text())) > ended, timeout=10)
    lost = int(pattern.findall(a.log_text())[-1])
    assert lost > 0, a.log_text()


def test_bad_input(pw: tuple[Daemon, Daemon], tmp_path: Path) -> None:
    a, _ = pw
    cases = [
        (["tunnel_id", "99", "-w", str(tmp_path / "x")], "tunnel 99 does not exist"),
        (["tunnel_id", "1", "session_id", "77", "-w", str(tmp_path / "x")], "session 77"),
        (["tunnel_id", "1", "-w", "/nonexistent/dir/x.pcapng"], "cannot write"),
        (["tunnel_id", "1", "-w", str(tmp_path / "x"), "-c", "0"], "at least 1"),
        (["tunnel_id", "x", "-w", str(tmp_path / "x")], "tunnel_id"),
        (["-w", str(tmp_path / "x")], "tunnel_id"),
    ]
    for args, message in cases:
        proc = a.cli("capture", *args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()
    # One capture per tunnel at a time: the second is refused, the first goes on.
    first = start(a, "tunnel_id", "1", "-w", str(tmp_path / "first.pcapng"), "-c", "1")
    proc = a.cli("capture", "tunnel_id", "1", "-w", str(tmp_path / "second"), check=False)
    assert proc.returncode == 2 and "already runs" in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "second").exists()
    a.ns.ping(INNER[1], count=1)
    finish(first)


def test_tunnel_deleted_ends_it(pw: tuple[Daemon, Daemon], tmp_path: Path) -> None:
    a, _ = pw
    a.cli("add", "tunnel", "tunnel_id", "5", "peer_tunnel_id", "6", "encap", "udp", "local",
          UNDER[0], "remote", UNDER[1], "udp_sport", "5005", "udp_dport", "6005")  # fmt: skip
    proc = start(a, "tunnel_id", "5", "-w", str(tmp_path / "gone.pcapng"))
    a.cli("del", "tunnel", "tunnel_id", "5")
    _, err = finish(proc)
    assert "tunnel 5 was deleted" in err


def test_ctrl_c_ends_it(pw: tuple[Daemon, Daemon], tmp_path: Path) -> None:
    a, _ = pw
    path = tmp_path / "int.pcapng"
    proc = start(a, "tunnel_id", "1", "-w", str(path))
    a.ns.ping(INNER[1], count=2)
    time.sleep(0.3)  # the daemon hands records over every 20 ms
    proc.send_signal(signal.SIGINT)
    _, err = finish(proc)
    assert "(interrupted)" in err and "Traceback" not in err, err
    with PcapNgReader(str(path)) as r:
        assert len(list(r)) >= 4
