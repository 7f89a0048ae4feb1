"""QEMU's own l2tpv3 backend (``-netdev l2tpv3``, net/l2tpv3.c) as the far end of our
session, configured with nothing but what ``l2tpv3 peer-config --for qemu`` prints.

No guest is needed: QEMU (-M none) joins its l2tpv3 netdev through a hub to a socket
netdev, and a small responder behind that socket (tests/support/progs/
arp_icmp_responder.py) answers ARP and ping for an inner address. Our daemon's pings
then cross QEMU's independent L2TPv3 code both ways. (tests/interop/test_interop_qemu.py
boots a guest behind the same backend.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support.netns import Daemon, two_hosts
from tests.support.progs import prog

pytestmark = [pytest.mark.root, pytest.mark.interop]

UNDERLAY = {4: ("10.7.2.1", "10.7.2.2"), 6: ("fd00:7:2::1", "fd00:7:2::2")}


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[Daemon, Daemon]]:
    a_addrs, b_addrs = ([f"{UNDERLAY[4][i]}/24", f"{UNDERLAY[6][i]}/64"] for i in (0, 1))
    with two_hosts("qn", a_addrs, b_addrs) as pair:
        yield pair


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
