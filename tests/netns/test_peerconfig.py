"""``l2tpv3 peer-config`` end to end: one daemon configured with the man page's site-A
lines, a second one (or QEMU's own l2tpv3 backend) with nothing but what peer-config
printed, then traffic between them. The mirroring itself is unit-tested in
tests/unit/test_peerconfig.py.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support.netns import Daemon, tcp_transfer, two_hosts
from tests.support.progs import prog

# -- the far end configured from our output carries traffic --------------------------------------

UNDERLAY = {4: ("10.7.1.1", "10.7.1.2"), 6: ("fd00:7::1", "fd00:7::2")}
INNER = ("10.77.1.1", "10.77.1.2")
# (encap, family, cookie, peer_cookie, extra session words) for daemon A.
ROOT_CASES = [
    ("udp", 4, "", "", []),
    ("ip", 4, "014d3636deadbeef", "a1a2a3a4", []),
    ("udp", 6, "01020304", "0a0b0c0d0e0f1011", ["seq", "both"]),
    ("ip", 6, "", "", ["l2spec_type", "none"]),
    ("udp", 4, "a1a2a3a4a5a6a7a8", "0102030405060708", ["seq", "recv"]),
]


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[Daemon, Daemon]]:
    a_addrs, b_addrs = ([f"{UNDERLAY[4][i]}/24", f"{UNDERLAY[6][i]}/64"] for i in (0, 1))
    with two_hosts("pc", a_addrs, b_addrs) as pair:
        yield pair


@pytest.mark.root
@pytest.mark.parametrize(("encap", "family", "cookie", "peer_cookie", "extra"), ROOT_CASES)
def test_far_end_from_peer_config_carries_traffic(
    hosts: tuple[Daemon, Daemon], encap: str, family: int, cookie: str, peer_cookie: str,
    extra: list[str],
) -> None:  # fmt: skip
    a, b = hosts
    case = ROOT_CASES.index((encap, family, cookie, peer_cookie, extra))
    loc, rem = UNDERLAY[family]
    # The man page's site-A lines, on our namespace addresses.
    tunnel = f"ip l2tp add tunnel tunnel_id {3000 + case} peer_tunnel_id 4000 encap {encap} "
    tunnel += f"local {loc} remote {rem}"
    if encap == "udp":
        tunnel += f" udp_sport {5000 + case} udp_dport {6000 + case}"
    session = f"ip l2tp add session tunnel_id {3000 + case} session_id {1000 + case} "
    session += "peer_session_id 2000"
    if cookie:
        session += f" cookie {cookie}"
    if peer_cookie:
        session += f" peer_cookie {peer_cookie}"
    session += " " + " ".join(extra)
    a.line(tunnel)
    a.line(session.strip())
    try:
        text = a.cli("peer-config", "--for", "linux").stdout
        lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
        assert len(lines) == 2 and all(ln.startswith("ip l2tp add ") for ln in lines), text
        for ln in lines:
            b.cli(*shlex.split(ln.replace("ip l2tp", "l2tpv3", 1))[1:])
        for d, idx in ((a, 0), (b, 1)):
            d.ns.sysctl("net.ipv6.conf.l2tpeth0.disable_ipv6", "1")
            d.ns.ip("addr", "add", f"{INNER[idx]}/24", "dev", "l2tpeth0")
            d.ns.ip("link", "set", "l2tpeth0", "up")
        # The far end speaks first: with `seq recv` we send sequence numbers only once
        # we have heard the far end's (see peerconfig's docstring).
        b.ns.ping(INNER[0])
        a.ns.ping(INNER[1])
        tcp_transfer(b.ns, a.ns, INNER[1], 4 * 1024 * 1024, seed=case)
        sa, sb = a.session(1000 + case), b.session(2000)
        for s in (sa, sb):
            for key in ("rx_cookie_discards", "rx_seq_discards", "rx_errors"):
                assert s["stats"][key] == 0, (key, s)
        # The mirrored MTUs are what the comment said they would be.
        assert f"far end {sb['mtu']}, ours {sa['mtu']}" in text
    finally:
        a.cli("del", "tunnel", "tunnel_id", str(3000 + case), check=False)
        b.cli("del", "tunnel", "tunnel_id", "4000", check=False)


# -- QEMU's own l2tpv3 backend, configured with nothing but our --for qemu output ------------
#
# No guest is needed: QEMU (-M none) joins its l2tpv3 netdev through a hub to a socket
# netdev, and a small responder behind that socket (tests/support/progs/
# arp_icmp_responder.py) answers ARP and ping for an inner address. Our daemon's pings
# then cross QEMU's independent L2TPv3 code both ways.

QEMU_CASES = [
    # encap, family, cookie, peer_cookie, l2spec
    ("udp", 4, "014d3636deadbeef", "a1a2a3a4a5a6a7a8", "default"),
    ("ip", 4, "deadbeef", "cafef00d", "none"),
    ("udp", 6, "", "", "default"),
    ("ip", 6, "0102030405060708", "1112131415161718", "default"),
]


@pytest.mark.root
@pytest.mark.parametrize(("encap", "family", "cookie", "peer_cookie", "l2spec"), QEMU_CASES)
def test_qemu_backend_from_peer_config_carries_pings(
    hosts: tuple[Daemon, Daemon], encap: str, family: int, cookie: str, peer_cookie: str,
    l2spec: str,
) -> None:  # fmt: skip
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        if os.environ.get("CI") == "true":
            pytest.fail("qemu-system-x86_64 is not installed")
        pytest.skip("qemu-system-x86_64 is not installed")
    a, b = hosts
    case = QEMU_CASES.index((encap, family, cookie, peer_cookie, l2spec))
    loc, rem = UNDERLAY[family]
    tid = 5000 + case
    tunnel = f"add tunnel tunnel_id {tid} peer_tunnel_id 1 encap {encap} local {loc} remote {rem}"
    if encap == "udp":
        tunnel += f" udp_sport {15000 + case} udp_dport {16000 + case}"
    session = f"add session tunnel_id {tid} session_id {7000 + case} peer_session_id {8000 + case}"
    session += f" l2spec_type {l2spec}"
    if cookie:
        session += f" cookie {cookie} peer_cookie {peer_cookie}"
    a.cli(*tunnel.split())
    a.cli(*session.split())
    procs: list[subprocess.Popen[str]] = []
    try:
        netdev = a.cli("peer-config", "--for", "qemu", "tunnel_id", str(tid)).stdout.split()
        assert netdev[0] == "-netdev" and len(netdev) == 2, netdev
        sock_q, sock_r = 47000 + 2 * case, 47001 + 2 * case
        responder = b.ns.popen(*prog("arp_icmp_responder"), str(sock_r), str(sock_q),
                               "10.77.9.2", "02:0e:00:00:00:02")  # fmt: skip
        procs.append(responder)
        assert responder.stdout is not None
        assert responder.stdout.readline().strip() == "ready"
        procs.append(b.ns.popen(
            qemu, "-M", "none", "-nodefaults", "-display", "none", "-monitor", "none",
            "-serial", "none", *netdev,
            "-netdev", f"socket,id=s0,udp=127.0.0.1:{sock_r},localaddr=127.0.0.1:{sock_q}",
            "-netdev", "hubport,id=p0,hubid=0,netdev=l2tpv3",
            "-netdev", "hubport,id=p1,hubid=0,netdev=s0",
        ))  # fmt: skip
        a.ns.sysctl("net.ipv6.conf.l2tpeth0.disable_ipv6", "1")
        a.ns.ip("addr", "add", "10.77.9.1/24", "dev", "l2tpeth0")
        a.ns.ip("link", "set", "l2tpeth0", "up")
        time.sleep(1)  # QEMU binds its sockets
        a.ns.ping("10.77.9.2", count=3)
        stats = a.session(7000 + case)["stats"]
        assert stats["rx_packets"] >= 4 and stats["rx_errors"] == 0, stats
        assert stats["rx_cookie_discards"] == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            out, err = proc.communicate(timeout=10)
            print(proc.args, out, err)  # shown when the test fails
        print(a.cli("-s", "show", "tunnel").stdout, a.cli("-s", "show", "session").stdout)
        a.cli("del", "tunnel", "tunnel_id", str(tid), check=False)
