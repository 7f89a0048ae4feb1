"""The kernel peer's surroundings: a namespace with a TAP that is the VM's NIC.

Layout (all inside one namespace created here, named with a per-run prefix)::

    namespace <prefix>-kvm                         VM (QEMU, TCG)
      tap0  192.0.2.1/24  2001:db8:1::1/64  <-->  eth0  192.0.2.2/24  2001:db8:1::2/64
      l2tpeth0 (our daemon)  10.99.0.1/24          l2tpeth0 (kernel)  10.99.0.2/24
               fd99::1/64                                              fd99::2/64

The daemon under test runs in the namespace; the VM is its only neighbour.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from interop.build import Artifacts, build
from interop.vm import Vm

PREFIX = f"l2i{os.getpid() % 100000}"
HOST4, GUEST4 = "192.0.2.1", "192.0.2.2"
HOST6, GUEST6 = "2001:db8:1::1", "2001:db8:1::2"
INNER_HOST4, INNER_GUEST4 = "10.99.0.1", "10.99.0.2"
INNER_HOST6, INNER_GUEST6 = "fd99::1", "fd99::2"
TAP = "tap0"


def _sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def remove_stale_namespaces() -> list[str]:
    """Delete namespaces an earlier harness run left behind when it was killed outright
    (SIGKILL: no cleanup ran; QEMU died with it, see vm._die_with_parent). A namespace is
    stale when the process whose PID is in its name no longer exists."""
    removed = []
    for line in _sh("ip", "netns", "list", check=False).stdout.splitlines():
        m = re.match(r"(l2i(\d+)-\S+)", line)
        if m and int(m.group(2)) != os.getpid() % 100000 and not _pid_alive(int(m.group(2))):
            _sh("ip", "netns", "del", m.group(1), check=False)
            removed.append(m.group(1))
    return removed


def _pid_alive(pid_mod: int) -> bool:
    # Names carry the PID modulo 100000; any live PID with that remainder counts.
    return any(int(p) % 100000 == pid_mod for p in os.listdir("/proc") if p.isdigit())


@dataclass
class Namespace:
    name: str

    @classmethod
    def create(cls, tag: str) -> Namespace:
        ns = cls(f"{PREFIX}-{tag}")
        _sh("ip", "netns", "add", ns.name)
        ns.ip("link", "set", "lo", "up")
        return ns

    def run(self, *args: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return _sh("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout)

    def ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("ip", *args)

    def delete(self) -> None:
        _sh("ip", "netns", "del", self.name, check=False)


@dataclass
class KernelPeer:
    """A booted kernel VM and the namespace holding its TAP."""

    ns: Namespace
    vm: Vm
    artifacts: Artifacts

    def sh(self, script: str, timeout: float = 60) -> str:
        return self.vm.sh(script, timeout)

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


def _setup_ns(ns: Namespace) -> None:
    ns.ip("tuntap", "add", "dev", TAP, "mode", "tap")
    ns.ip("addr", "add", f"{HOST4}/24", "dev", TAP)
    ns.ip("addr", "add", f"{HOST6}/64", "dev", TAP, "nodad")
    ns.ip("link", "set", TAP, "up")


@contextlib.contextmanager
def sigterm_cleans_up() -> Iterator[None]:
    """While active, SIGTERM (a CI timeout, `kill PID`) raises KeyboardInterrupt in the
    main thread, so context managers and pytest fixtures still remove the VM, the TAP and
    the namespaces instead of leaving them behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
        ns = Namespace.create(tag)
        stack.callback(ns.delete)
        stack.callback(ns.run, "ip", "link", "del", TAP, check=False)
        _setup_ns(ns)
        netdev = f"tap,id=n0,ifname={TAP},script=no,downscript=no"
        vm = Vm(art, ns.name, netdev, workdir)
        stack.callback(vm.stop)
        vm.sh(
            f"ip addr add {GUEST4}/24 dev eth0 && ip addr add {GUEST6}/64 dev eth0"
            " && ip link set eth0 up"
        )
        yield KernelPeer(ns=ns, vm=vm, artifacts=art)
