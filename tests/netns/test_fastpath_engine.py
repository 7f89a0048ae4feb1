"""The fast path's threads on their own, inside a namespace of ours: datagrams over
loopback into a running engine, frames out of a real TAP. Covers what the sans-I/O
comparison cannot: the receive thread's reorder timer and the TAP writes."""

from __future__ import annotations

import json
import sys

import pytest

from tests.support.netns import Netns, require_root

pytestmark = pytest.mark.root

SCRIPT = r"""
import json, socket, subprocess, sys, time
from l2tpv3.fast._fastpath import Session, Tunnel
from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.io.tap import Tap

subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0)); a.setblocking(False)
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("127.0.0.1", 0))
tcfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local="127.0.0.1", remote="127.0.0.1",
                    udp_sport=a.getsockname()[1], udp_dport=b.getsockname()[1])
scfg = SessionConfig(tunnel_id=1, session_id=5, peer_session_id=5, seq="both",
                     reorder_timeout=200)
t = Tunnel(tcfg)
s = Session(tcfg, scfg)
t.add(s)
tap = Tap("fpt0", 1500, vnet_hdr=sys.argv[1] == "vnet")
with open("/proc/sys/net/ipv6/conf/fpt0/disable_ipv6", "w") as f:
    f.write("1")  # no router solicitations: the TAP sends only what we put in
subprocess.run(["ip", "link", "set", "fpt0", "up"], check=True)
t.start(a, ("127.0.0.1", b.getsockname()[1]), batch=8)
t.attach(5, tap.fd, tap.vnet_hdr)

def stat(name):
    return int(open(f"/sys/class/net/fpt0/statistics/{name}").read())

base = stat("rx_packets")
frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + bytes(50)
def send(ns):
    b.sendto(b"\x00\x03\x00\x00" + (5).to_bytes(4, "big") +
             (0x40000000 | ns).to_bytes(4, "big") + frame, a.getsockname())
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
while data[12:12 + 6] != b"\xff" * 6:  # skip IPv6 router solicitations and the like
    data = b.recv(2048)
t.detach(5)
tap.close()
t.remove(5)
t.stop()
print(json.dumps({"early": early, "late": late, "tx": data.hex(), "ns_sent": s.ns}))
"""


@pytest.mark.parametrize("vnet", ["plain", "vnet"])
def test_engine_reorders_times_out_and_sends(vnet: str) -> None:
    require_root()
    pytest.importorskip("l2tpv3.fast._fastpath")
    ns = Netns("fpe")
    try:
        out = ns.run(sys.executable, "-c", SCRIPT, vnet, timeout=30).stdout
    finally:
        ns.delete()
    got = json.loads(out.strip().splitlines()[-1])
    early, late = got["early"], got["late"]
    # 0 delivered, 2 held, 1 sorted in front of it (oos) and both released, 4 held.
    assert (early["rx_packets"], early["rx_oos_packets"], early["held"]) == (3, 1, 1)
    assert early["tap_rx"] == 3
    # The receive thread's timer expired 4 without any further packet: dropped, as the
    # kernel drops a held packet past its reorder timeout.
    assert (late["held"], late["rx_seq_discards"], late["rx_errors"]) == (0, 1, 1)
    assert late["tap_rx"] == 3
    tx = bytes.fromhex(got["tx"])
    # UDP word, peer session 5, sublayer with the S bit (we send sequence numbers).
    assert tx[:8] == b"\x00\x03\x00\x00" + (5).to_bytes(4, "big")
    assert int.from_bytes(tx[8:12], "big") & 0xFF000000 == 0x40000000
    assert tx[12:26] == b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x02" + b"\x88\xb5"


PEER_SCRIPT = r"""
import json, socket, subprocess, time
from l2tpv3.fast._fastpath import Session, Tunnel
from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.io.tap import Tap

subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0)); a.setblocking(False)
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()  # the peer is down: its port answers with ICMP port unreachable
tcfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local="127.0.0.1", remote="127.0.0.1",
                    udp_sport=a.getsockname()[1], udp_dport=port)
scfg = SessionConfig(tunnel_id=1, session_id=5, peer_session_id=5)
t = Tunnel(tcfg)
s = Session(tcfg, scfg)
t.add(s)
tap = Tap("fpt0", 1500)
with open("/proc/sys/net/ipv6/conf/fpt0/disable_ipv6", "w") as f:
    f.write("1")
subprocess.run(["ip", "link", "set", "fpt0", "up", "address", "02:00:00:00:00:02"], check=True)
t.start(a, ("127.0.0.1", port), batch=8)
t.attach(5, tap.fd, False)

def hexport(p):
    return f"0100007F:{p:04X}"

# Sockets on the tunnel's address and port, and which of them are connected to the peer.
mine = [line.split() for line in open("/proc/net/udp").read().splitlines()[1:]
        if line.split()[1] == hexport(a.getsockname()[1])]
connected = sum(1 for f in mine if f[2] == hexport(port))

def to_tap():
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as p:
        p.bind(("fpt0", 0))
        p.send(b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x02" + b"\x88\xb5" + b"x" * 60)

to_tap()
time.sleep(0.2)  # the ICMP error is back by now
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("127.0.0.1", port))
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
                  "counters": s.counters.as_dict(), "drops": t.drops}))
"""


def test_engine_send_socket_after_peer_down() -> None:
    """UDP goes out through a second socket connected to the peer (route cached); an ICMP
    port unreachable from the time the peer was down costs no tx_error, the peer's
    datagrams (now delivered to the connected socket) still reach the TAP and a stranger's
    still count as wrong_source."""
    require_root()
    pytest.importorskip("l2tpv3.fast._fastpath")
    ns = Netns("fpc")
    try:
        out = ns.run(sys.executable, "-c", PEER_SCRIPT, timeout=30).stdout
    finally:
        ns.delete()
    got = json.loads(out.strip().splitlines()[-1])
    assert (got["sockets"], got["connected"]) == (2, 1)
    assert got["got"] == "00030000" + (5).to_bytes(4, "big").hex()
    c = got["counters"]
    # Both frames left: the first to a closed port (no error for an unconnected socket,
    # the kernel's model), the second to the peer once it was up.
    assert (c["tx_packets"], c["tx_errors"]) == (2, 0)
    assert c["rx_packets"] == 1
    assert got["drops"]["wrong_source"] == 1
