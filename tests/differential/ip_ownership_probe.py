"""Two IP-encap engines on one local address, sharing one _fastpath.IpOwnership: which
datagrams each receive thread counts. Run inside a fresh network namespace (it binds raw
protocol-115 sockets on loopback) by test_ip_ownership_engine.py; prints JSON.

    python3 -m tests.differential.ip_ownership_probe
"""

from __future__ import annotations

import json
import socket
import time
from ipaddress import ip_address

from l2tpv3.config import Encap, SessionConfig, TunnelConfig
from l2tpv3.constants import IPPROTO_L2TP
from l2tpv3.fast.native import IpOwnership, Session, Tunnel

LOCAL = "127.0.0.1"
PEERS = {1: "127.0.0.2", 2: "127.0.0.3"}  # tunnel ID -> its peer
SESSIONS = {1: 7, 2: 8}  # tunnel ID -> its session
STRANGER = "127.0.0.4"


def _raw(bind: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_L2TP)
    sock.bind((bind, 0))
    return sock


def main() -> None:
    own = IpOwnership()
    tunnels, socks = {}, []
    for tid, peer in PEERS.items():
        cfg = TunnelConfig(tunnel_id=tid, peer_tunnel_id=tid, local=ip_address(LOCAL),
                           remote=ip_address(peer), encap=Encap.IP)  # fmt: skip
        own.add_tunnel(tid, 4, LOCAL, peer)
        own.claim(tid, SESSIONS[tid])
        tunnel = Tunnel(cfg, own)
        sid = SESSIONS[tid]
        tunnel.add(Session(cfg, SessionConfig(tunnel_id=tid, session_id=sid, peer_session_id=sid)))
        sock = _raw(LOCAL)
        socks.append(sock)
        tunnel.start(sock, (peer, 0))
        tunnels[tid] = tunnel
    senders = {host: _raw(host) for host in (*PEERS.values(), STRANGER)}
    frame = bytes(4) + b"\xff" * 6 + b"\x02" + bytes(5) + b"\x88\xb5" + bytes(46)

    def send(host: str, sid: int) -> None:
        senders[host].sendto(sid.to_bytes(4, "big") + frame, (LOCAL, 0))

    # The rule of proto/api.py IpOwnershipAPI: each datagram counted by one tunnel.
    send(PEERS[2], 8)  # tunnel 2's own traffic: its session counts it
    send(PEERS[1], 8)  # tunnel 2's session from tunnel 1's peer: 2, wrong_source
    send(PEERS[1], 9)  # nobody's session from tunnel 1's peer: 1, unknown_session
    send(STRANGER, 7)  # tunnel 1's session from a stranger: 1, wrong_source
    send(STRANGER, 8)  # tunnel 2's session from a stranger: 2, wrong_source
    send(STRANGER, 9)  # nobody's, from a stranger: the lowest tunnel ID, 1, wrong_source
    time.sleep(0.3)
    out = {
        tid: {**t.drops, "sessions": sum(s.counters.rx_packets for s in t.sessions.values())}
        for tid, t in tunnels.items()
    }
    for t in tunnels.values():
        t.stop()
    for sock in (*socks, *senders.values()):
        sock.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
