"""The fast path's threads on their own (tests/netns/test_fastpath_engine.py): datagrams
over loopback into a running engine, frames out of a real TAP named fpt0. Run as root in
a namespace of its own; prints one JSON line.

    engine_reorder.py plain|vnet
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from ipaddress import IPv4Address

from l2tpv3.config import SeqMode, SessionConfig, TunnelConfig
from l2tpv3.fast._fastpath import Session, Tunnel
from l2tpv3.io.tap import Tap

LOOPBACK = IPv4Address("127.0.0.1")


def stat(name: str) -> int:
    with open(f"/sys/class/net/fpt0/statistics/{name}") as f:
        return int(f.read())


def main(argv: list[str]) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    a.setblocking(False)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind(("127.0.0.1", 0))
    tcfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local=LOOPBACK, remote=LOOPBACK,
                        udp_sport=a.getsockname()[1], udp_dport=b.getsockname()[1])  # fmt: skip
    scfg = SessionConfig(tunnel_id=1, session_id=5, peer_session_id=5, seq=SeqMode.BOTH,
                         reorder_timeout=200)  # fmt: skip
    t = Tunnel(tcfg)
    s = Session(tcfg, scfg)
    t.add(s)
    tap = Tap("fpt0", 1500, vnet_hdr=argv[0] == "vnet")
    with open("/proc/sys/net/ipv6/conf/fpt0/disable_ipv6", "w") as f:
        f.write("1")  # no router solicitations: the TAP sends only what we put in
    subprocess.run(["ip", "link", "set", "fpt0", "up"], check=True)
    t.start(a, ("127.0.0.1", b.getsockname()[1]), batch=8)
    t.attach(5, tap.fd, tap.vnet_hdr)

    base = stat("rx_packets")
    frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + bytes(50)

    def send(ns: int) -> None:
        b.sendto(b"\x00\x03\x00\x00" + (5).to_bytes(4, "big")
                 + (0x40000000 | ns).to_bytes(4, "big") + frame, a.getsockname())  # fmt: skip

    for ns in (0, 2, 1, 4):
        send(ns)
        time.sleep(0.02)
    time.sleep(0.05)
    early = dict(s.counters.as_dict(), held=s.held, tap_rx=stat("rx_packets") - base)
    time.sleep(0.5)  # past the 200 ms reorder timeout, with no traffic at all
    late = dict(s.counters.as_dict(), held=s.held, tap_rx=stat("rx_packets") - base)
    # A frame sent into the TAP comes out of the socket with our header.
    b.settimeout(2)
    subprocess.run(["ip", "link", "set", "fpt0", "address", "02:00:00:00:00:02"], check=True)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as p:
        p.bind(("fpt0", 0))
        p.send(b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x02" + b"\x88\xb5" + b"x" * 60)
    data = b.recv(2048)
    while data[12 : 12 + 6] != b"\xff" * 6:  # skip IPv6 router solicitations and the like
        data = b.recv(2048)
    t.detach(5)
    tap.close()
    t.remove(5)
    t.stop()
    print(json.dumps({"early": early, "late": late, "tx": data.hex(), "ns_sent": s.ns}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
