"""QEMU's own L2TPv3 backend as a second, independent peer.

The guest's only NIC is ``-netdev l2tpv3,...``: QEMU itself (net/l2tpv3.c, userspace)
encapsulates the guest's frames, so the guest kernel needs no l2tp at all. Layout::

    namespace <prefix>-qd              veth            namespace <prefix>-qv
      l2tpv3d, l2tpeth0 10.99.0.1  192.0.2.1 <-> 192.0.2.2   qemu -netdev l2tpv3
                                                              guest eth0 10.99.0.2

QEMU's netdev is fixed when it starts, so each configuration boots its own guest
(about 4 s); the namespaces and the daemon live for the whole module.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from interop.build import Artifacts
from interop.lab import GUEST4, GUEST6, HOST4, HOST6, INNER_GUEST4, INNER_GUEST6, KernelPeer
from interop.netns import Netns, remove_stale_namespaces, sigterm_cleans_up, veth
from interop.peerlines import DaemonClient, peer_config
from interop.vm import Vm

NETDEV_ID = "n0"


@dataclass
class QemuLab:
    daemon_ns: Netns
    qemu_ns: Netns


@contextlib.contextmanager
def qemu_lab() -> Iterator[QemuLab]:
    """The two namespaces joined by a veth pair; removed afterwards."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_cleans_up())
        remove_stale_namespaces()
        qd = Netns("qd")
        stack.callback(qd.delete)
        qv = Netns("qv")
        stack.callback(qv.delete)
        veth(qd, "veth0", qv, "veth0")
        qd.add_addrs("veth0", f"{HOST4}/24", f"{HOST6}/64")
        qv.add_addrs("veth0", f"{GUEST4}/24", f"{GUEST6}/64")
        yield QemuLab(qd, qv)


def qemu_netdev(daemon: DaemonClient, tunnel_id: int, session_id: int,
                pincounter: bool = True) -> str:  # fmt: skip
    """The -netdev value ``l2tpv3 peer-config --for qemu`` prints for our session.

    ``pincounter=False`` drops QEMU's pincounter so it sends its raw counter (1, 2, ...
    without the S bit) in the sublayer, which a default-sublayer receiver must ignore.
    """
    words = peer_config(daemon, "qemu", tunnel_id, session_id, "--id", NETDEV_ID).split()
    if words[:1] != ["-netdev"] or len(words) != 2:
        raise RuntimeError(f"peer-config --for qemu printed {' '.join(words)!r}")
    value = words[1]
    if not pincounter:
        value = value.replace(",pincounter=on", "")
    return value


def boot_qemu_peer(lab: QemuLab, art: Artifacts, netdev: str, mtu: int,
                   workdir: Path) -> KernelPeer:  # fmt: skip
    """A guest whose eth0 is the l2tpv3 netdev, addressed on the inner subnet.

    ``mtu`` is our l2tpeth0's: QEMU has no MTU of its own, and we drop frames longer
    than our MTU + 18, so the guest must not send more.
    """
    vm = Vm(art, lab.qemu_ns.name, netdev, workdir)
    try:
        vm.sh(
            f"ip link set eth0 mtu {mtu} && ip addr add {INNER_GUEST4}/24 dev eth0"
            f" && ip addr add {INNER_GUEST6}/64 dev eth0 && ip link set eth0 up"
        )
    except BaseException:
        vm.stop()
        raise
    # The traffic helpers run their host side in the daemon's namespace.
    return KernelPeer(ns=lab.daemon_ns, vm=vm, artifacts=art)


def qemu_available() -> bool:
    proc = subprocess.run(["qemu-system-x86_64", "-netdev", "help"], capture_output=True,
                          text=True)  # fmt: skip
    return "l2tpv3" in proc.stdout
