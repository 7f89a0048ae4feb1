"""The fast path's send socket when the peer was down (tests/netns/test_fastpath_engine.py):
UDP goes out through a second socket connected to the peer; ICMP errors from the time the
peer was down, the peer's and a stranger's datagrams. Run as root in a namespace of its
own; prints one JSON line.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from ipaddress import IPv4Address

from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.fast._fastpath import Session, Tunnel
from l2tpv3.io.tap import Tap

LOOPBACK = IPv4Address("127.0.0.1")


def hexport(p: int) -> str:
    return f"0100007F:{p:04X}"


def to_tap() -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as p:
        p.bind(("fpt0", 0))
        p.send(b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x02" + b"\x88\xb5" + b"x" * 60)


def main(argv: list[str]) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    a.setblocking(False)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # the peer is down: its port answers with ICMP port unreachable
    tcfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local=LOOPBACK, remote=LOOPBACK,
                        udp_sport=a.getsockname()[1], udp_dport=port)  # fmt: skip
    scfg = SessionConfig(tunnel_id=1, session_id=5, peer_session_id=5)
    t = Tunnel(tcfg)
    s = Session(tcfg, scfg)
    t.add(s)
    tap = Tap("fpt0", 1500)
    with open("/proc/sys/net/ipv6/conf/fpt0/disable_ipv6", "w") as f:
        f.write("1")
    subprocess.run(["ip", "link", "set", "fpt0", "up", "address", "02:00:00:00:00:02"],
                   check=True)  # fmt: skip
    t.start(a, ("127.0.0.1", port), batch=8)
    t.attach(5, tap.fd, False)

    # Sockets on the tunnel's address and port, and which of them are connected to the peer.
    with open("/proc/net/udp") as f:
        udp = f.read().splitlines()[1:]
    mine = [line.split() for line in udp if line.split()[1] == hexport(a.getsockname()[1])]
    connected = sum(1 for fields in mine if fields[2] == hexport(port))

    to_tap()
    time.sleep(0.2)  # the ICMP error is back by now
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind(("127.0.0.1", port))
    b.settimeout(2)
    to_tap()
    data = b.recv(2048)
    # The peer's datagram reaches the TAP; a stranger's (another port) is wrong_source.
    frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + bytes(50)
    msg = b"\x00\x03\x00\x00" + (5).to_bytes(4, "big") + b"\x00" * 4 + frame
    b.sendto(msg, a.getsockname())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.bind(("127.0.0.1", 0))
        c.sendto(msg, a.getsockname())
    time.sleep(0.2)
    t.detach(5)
    tap.close()
    t.remove(5)
    t.stop()
    print(json.dumps({"sockets": len(mine), "connected": connected, "got": data[:8].hex(),
                      "counters": s.counters.as_dict(), "drops": t.drops}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
