"""The kernel peer's surroundings: a namespace with a TAP that is the VM's NIC.

Layout (all inside one namespace created with interop.netns, so named with its per-run
prefix)::

    namespace <prefix>-kvm                         VM (QEMU, TCG)
      tap0  192.0.2.1/24  2001:db8:1::1/64  <-->  eth0  192.0.2.2/24  2001:db8:1::2/64
      l2tpeth0 (our daemon)  10.99.0.1/24          l2tpeth0 (kernel)  10.99.0.2/24
               fd99::1/64                                              fd99::2/64

The daemon under test runs in the namespace; the VM is its only neighbour.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from interop.build import Artifacts, build
from interop.netns import Netns, remove_stale_namespaces, sigterm_cleans_up
from interop.vm import GuestHang, Vm

HOST4, GUEST4 = "192.0.2.1", "192.0.2.2"
HOST6, GUEST6 = "2001:db8:1::1", "2001:db8:1::2"
INNER_HOST4, INNER_GUEST4 = "10.99.0.1", "10.99.0.2"
INNER_HOST6, INNER_GUEST6 = "fd99::1", "fd99::2"
TAP = "tap0"


@dataclass
class KernelPeer:
    """A booted kernel VM and the namespace holding its TAP."""

    ns: Netns
    vm: Vm
    artifacts: Artifacts

    def sh(self, script: str, timeout: float = 60) -> str:
        return self.vm.sh(script, timeout)

    def underlay_alive(self) -> bool:
        """Whether the guest's NIC still carries anything: a ping over the underlay
        itself (tap0 <-> eth0), which no daemon under test takes part in."""
        for addr in (GUEST4, GUEST6):
            ping = ("ping", "-c", "3", "-i", "0.3", "-W", "1", addr)
            if self.ns.run(*ping, check=False, timeout=15).returncode == 0:
                return True
        return False

    def lost(self, exc: BaseException) -> GuestHang | None:
        """A GuestHang for a test that failed because the guest's NIC stopped (no
        underlay ping either family; the VM is stopped so that revive boots a fresh
        one), or None when the underlay works and the failure is the test's own."""
        if not self.vm.alive or self.underlay_alive():
            return None
        rates = self.tap_rates()
        self.vm.stop()
        return GuestHang(
            f"the guest's NIC stopped (no ping to {GUEST4} or {GUEST6} over the underlay;"
            f" {rates}) after: {exc!r:.1500}\nconsole:\n{self.vm.console_text()[-3000:]}"
        )

    def tap_rates(self) -> str:
        """Packets per second each way on tap0 over one second: whether anything floods
        the underlay when the guest stops answering, and from which side."""

        def counts() -> tuple[int, int]:
            out = self.ns.run("ip", "-j", "-s", "link", "show", TAP, check=False).stdout
            try:
                st = json.loads(out)[0]["stats64"]
                return int(st["tx"]["packets"]), int(st["rx"]["packets"])
            except (ValueError, LookupError, TypeError):
                return -1, -1

        t0, r0 = counts()
        time.sleep(1)
        t1, r1 = counts()
        return f"tap0 to the guest {t1 - t0} pkt/s, from the guest {r1 - r0} pkt/s"

    def revive(self) -> None:
        """Boot a fresh guest on the same TAP if the last one was stopped after it
        stopped answering (GuestHang); its console log is kept beside the new one."""
        if self.vm.alive:
            return
        workdir = self.vm.workdir
        with contextlib.suppress(FileNotFoundError):
            self.vm.console.rename(workdir / f"console.{time.time_ns()}.log")
        with contextlib.suppress(FileNotFoundError):
            self.vm.sock_path.unlink()
        self.vm = _boot(self.artifacts, self.ns, workdir)

    def reset_l2tp(self) -> None:
        """Delete every tunnel (and so every session) the kernel has."""
        self.vm.sh(
            'for t in $(ip l2tp show tunnel | awk \'/^Tunnel/ {sub(",","",$2); print $2}\');'
            " do ip l2tp del tunnel tunnel_id $t; done; ip l2tp show tunnel"
        )

    def configure(self, lines: list[str], inner: bool = True) -> None:
        """Run ``ip l2tp`` lines in the guest, then address and raise its l2tpeth0."""
        script = "set -e\n" + "\n".join(line for line in lines if not line.startswith("#"))
        if inner:
            script += (
                f"\nip addr add {INNER_GUEST4}/24 dev l2tpeth0"
                f"\nip addr add {INNER_GUEST6}/64 dev l2tpeth0"
                "\nip link set l2tpeth0 up"
            )
        self.vm.sh(script + "\n")


def _setup_ns(ns: Netns) -> None:
    ns.ip("tuntap", "add", "dev", TAP, "mode", "tap")
    ns.add_addrs(TAP, f"{HOST4}/24", f"{HOST6}/64")
    ns.ip("link", "set", TAP, "up")


@contextlib.contextmanager
def kernel_peer(tag: str = "kvm", artifacts: Artifacts | None = None,
                workdir: Path | None = None) -> Iterator[KernelPeer]:  # fmt: skip
    """Boot the kernel VM on a TAP in a fresh namespace; remove everything afterwards."""
    art = artifacts or build()
    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_cleans_up())
        remove_stale_namespaces()
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="l2i-vm-")))
        ns = Netns(tag)
        stack.callback(ns.delete)
        stack.callback(ns.run, "ip", "link", "del", TAP, check=False)
        _setup_ns(ns)
        vm = _boot(art, ns, workdir)
        peer = KernelPeer(ns=ns, vm=vm, artifacts=art)
        # The peer's VM, whichever it is by then (revive replaces it).
        stack.callback(lambda: peer.vm.stop())
        yield peer


def _boot(art: Artifacts, ns: Netns, workdir: Path) -> Vm:
    netdev = f"tap,id=n0,ifname={TAP},script=no,downscript=no"
    vm = Vm(art, ns.name, netdev, workdir)
    try:
        vm.sh(
            f"ip addr add {GUEST4}/24 dev eth0 && ip addr add {GUEST6}/64 dev eth0"
            " && ip link set eth0 up"
        )
    except BaseException:
        vm.stop()
        raise
    return vm
