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
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from interop.build import Artifacts
from interop.lab import (
    GUEST4,
    GUEST6,
    HOST4,
    HOST6,
    INNER_GUEST4,
    INNER_GUEST6,
    KernelPeer,
    Namespace,
    _sh,
)
from interop.peerlines import DaemonClient
from interop.vm import Vm

NETDEV_ID = "n0"


@dataclass
class QemuLab:
    daemon_ns: Namespace
    qemu_ns: Namespace


@contextlib.contextmanager
def qemu_lab() -> Iterator[QemuLab]:
    """The two namespaces joined by a veth pair; removed afterwards."""
    with contextlib.ExitStack() as stack:
        qd = Namespace.create("qd")
        stack.callback(qd.delete)
        qv = Namespace.create("qv")
        stack.callback(qv.delete)
        _sh("ip", "link", "add", f"{qd.name}x", "netns", qd.name, "type", "veth",
            "peer", "name", f"{qd.name}y", "netns", qv.name)  # fmt: skip
        for ns, dev, v4, v6 in (
            (qd, f"{qd.name}x", HOST4, HOST6),
            (qv, f"{qd.name}y", GUEST4, GUEST6),
        ):
            ns.ip("link", "set", dev, "name", "veth0")
            ns.ip("addr", "add", f"{v4}/24", "dev", "veth0")
            ns.ip("addr", "add", f"{v6}/64", "dev", "veth0", "nodad")
            ns.ip("link", "set", "veth0", "up")
        yield QemuLab(qd, qv)


def netdev_fallback(daemon: DaemonClient, tunnel_id: int, session_id: int, l2spec: str,
                    pincounter: bool = True) -> str:  # fmt: skip
    """The -netdev value mirroring our session (docs/peer-config.md's QEMU table)."""
    t = json.loads(daemon.cli("-j", "show", "tunnel", "tunnel_id", str(tunnel_id)).stdout)[0]
    s = json.loads(daemon.cli("-j", "show", "session", "tunnel_id", str(tunnel_id),
                              "session_id", str(session_id)).stdout)[0]  # fmt: skip
    opts = [f"l2tpv3,id={NETDEV_ID}", f"src={t['peer']}", f"dst={t['local']}"]
    if ":" in t["local"]:
        opts.append("ipv6=on")
    if t["encap"] == "UDP":
        opts += ["udp=on", f"srcport={t['peer_port']}", f"dstport={t['local_port']}"]
    opts += [f"txsession={s['session_id']}", f"rxsession={s['peer_session_id']}"]
    if "cookie" in s:
        if len(s["cookie"]) == 16:
            opts.append("cookie64=on")
        opts += [f"txcookie=0x{s['peer_cookie']}", f"rxcookie=0x{s['cookie']}"]
    if l2spec == "default":
        opts.append("counter=on")
        if pincounter:
            opts.append("pincounter=on")
    return ",".join(opts)


def qemu_netdev(daemon: DaemonClient, tunnel_id: int, session_id: int, l2spec: str,
                pincounter: bool = True) -> str:  # fmt: skip
    """From ``l2tpv3 peer-config --for qemu`` when this tree has it, else the fallback.

    ``pincounter=False`` drops QEMU's pincounter so it sends its raw counter (1, 2, ...
    without the S bit) in the sublayer, which a default-sublayer receiver must ignore.
    """
    proc = daemon.cli("peer-config", "--for", "qemu", "--id", NETDEV_ID, "tunnel_id",
                      str(tunnel_id), "session_id", str(session_id), check=False)  # fmt: skip
    if proc.returncode != 0:
        if "unknown" not in proc.stderr.lower():
            raise RuntimeError(f"l2tpv3 peer-config --for qemu failed: {proc.stderr.strip()}")
        return netdev_fallback(daemon, tunnel_id, session_id, l2spec, pincounter)
    words = proc.stdout.split()
    assert words[0] == "-netdev" and len(words) == 2, proc.stdout
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
