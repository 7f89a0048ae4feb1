"""A trunk session with ``vlan 5`` against the Linux kernel in the QEMU guest (interop/),
set up as ip-l2tp(8)'s VLAN example: the kernel's l2tpeth.5 VLAN device (8021q) in
``brvlan5``, exactly the lines ``l2tpv3 peer-config --for linux`` prints.

    namespace: vh (vlan_probe.py, tagged ARP/ICMP) -- br0 [trk + trunk0]    l2tpv3d
    guest:     l2tp10 -> l2tp10.5 (8021q, VLAN 5) in brvlan5 10.5.0.2/24    kernel

Tagged VLAN 5 frames cross the pseudowire tagged (the kernel's VLAN device takes them,
its answers come back tagged 5 to the trunk); untagged frames and VLAN 7 read from the
trunk are our counted drops and never reach the kernel; what the kernel sends untagged
on its l2tp10 is our session's vlan_mismatch drop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.build import BuildError, build
from interop.cases import KERNEL_SID, OUR_SID, Case, kernel_lines, ours_args, reset
from interop.lab import KernelPeer, kernel_peer
from tests.interop.test_interop_kernel import require_interop
from tests.support.netns import Daemon, require_root, wait_until, workdir
from tests.support.progs import prog

pytestmark = [pytest.mark.root, pytest.mark.interop]

CASE = Case("udp", 4, 0, "default", "none")
KERNEL_VDEV = f"l2tp{KERNEL_SID}.5"


@pytest.fixture(scope="module")
def peer() -> Iterator[tuple[KernelPeer, Path]]:
    require_root()
    require_interop()
    try:
        art = build()
    except BuildError as exc:
        pytest.fail(f"interop build: {exc}")
    with workdir() as wd, kernel_peer(tag="kvlan", artifacts=art, workdir=wd) as kp:
        # No IPv6 (router / multicast listener chatter) on the trunk side: untagged
        # frames there are only the ones the test sends.
        kp.ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        kp.ns.ip("link", "add", "br0", "type", "bridge", "stp_state", "0")
        kp.ns.ip("link", "add", "trk", "type", "veth", "peer", "name", "vh")
        kp.ns.ip("link", "set", "trk", "master", "br0")
        for dev in ("br0", "trk", "vh"):
            kp.ns.ip("link", "set", dev, "up")
        yield kp, wd


def _kernel_rx(kp: KernelPeer, dev: str) -> int:
    return int(kp.sh(f"cat /sys/class/net/{dev}/statistics/rx_packets").strip())


def test_trunk_vlan5_against_the_man_pages_vlan_example(
    peer: tuple[KernelPeer, Path], impl: str
) -> None:
    kp, wd = peer
    daemon = Daemon(kp.ns, wd, impl=impl, tag=f"kv-{impl}")
    try:
        reset(kp, daemon)
        kp.sh("ip link del brvlan5 2>/dev/null; true")
        tunnel, session = ours_args(CASE, ("trunk", "trunk0", "vlan", "5"))
        daemon.cli(*tunnel)
        daemon.cli(*session)
        kp.ns.ip("link", "set", "trunk0", "master", "br0")
        kp.ns.ip("link", "set", "trunk0", "up")
        lines = kernel_lines(daemon, CASE)
        # peer-config prints the man page's recipe: the VLAN device in a bridge.
        assert f"ip link add link l2tp{KERNEL_SID} name {KERNEL_VDEV} type vlan id 5" in lines
        kp.configure(lines, inner=False)
        kp.sh("ip addr add 10.5.0.2/24 dev brvlan5")

        out = ""
        for _ in range(3):  # the guest's bridge may still be learning / in its delay
            out = kp.ns.run(*prog("vlan_probe"), "ping", "vh", "5", "02:00:00:00:05:01",
                            "10.5.0.1", "10.5.0.2", timeout=60).stdout  # fmt: skip
            if "pong vid 5" in out:
                break
        assert "pong vid 5" in out, out
        assert out.startswith("arp ") and " vid 5" in out.split("\n")[0], out
        assert _kernel_rx(kp, KERNEL_VDEV) >= 2

        # Untagged and VLAN 7 frames from the trunk: our drops, nothing for the kernel.
        before = dict(daemon.tunnels()[0]["drops"])
        rx_kernel = _kernel_rx(kp, f"l2tp{KERNEL_SID}")
        kp.ns.run(*prog("vlan_probe"), "send", "vh", "0", "3")
        kp.ns.run(*prog("vlan_probe"), "send", "vh", "7", "2")
        assert wait_until(
            lambda: daemon.tunnels()[0]["drops"]["vlan_unmapped"] - before["vlan_unmapped"] == 2
        )
        after = daemon.tunnels()[0]["drops"]
        assert after["vlan_untagged"] - before["vlan_untagged"] == 3
        assert _kernel_rx(kp, f"l2tp{KERNEL_SID}") == rx_kernel
        s = daemon.session(OUR_SID)
        assert (s["trunk"], s["vlan"], s["vlan_pop"]) == ("trunk0", 5, False)
        # What the kernel sends untagged on l2tp10 itself (IPv6 neighbour discovery and
        # MLD of the raised device) is not VLAN 5: our vlan_mismatch drops, never the trunk.
        mismatch = s["drops"]["vlan_mismatch"]
        print(f"\n[{impl}] kernel VLAN 5 peer: {s['stats']['tx_packets']} frames out, "
              f"{s['stats']['rx_packets']} in; trunk drops {dict(after)}, "
              f"vlan_mismatch {mismatch}")  # fmt: skip
    finally:
        text = daemon.stop()
        assert "Traceback" not in text, text
