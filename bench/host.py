"""What the bench asks of the machine and of its processes: tools, the installed package
and which implementation it runs, CPU ticks and resident memory by PID.

Namespaces, devices and processes come from the shared toolkit, interop/netns.py.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from interop.netns import impl_env, sh

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROBE = [sys.executable, str(Path(__file__).resolve().parent / "probe.py")]


def need_tools(tools: Sequence[str]) -> None:
    """Exit with one line naming what is missing (and the apt package to install)."""
    packages = {"iperf3": "iperf3", "openvpn": "openvpn", "ethtool": "ethtool",
                "ip": "iproute2", "ping": "iputils-ping", "wg": "wireguard-tools",
                "wireguard-go": "wireguard-go"}  # fmt: skip
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pkgs = " ".join(sorted({packages.get(t, t) for t in missing}))
        sys.exit(f"bench: missing {', '.join(missing)}: apt-get install {pkgs}")
    if os.geteuid() != 0:
        sys.exit("bench: needs root (network namespaces, TAP devices)")
    if not os.path.exists("/dev/net/tun"):
        sys.exit("bench: /dev/net/tun is missing (TAP devices)")


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def mapped_extensions(pid: int) -> list[str]:
    """Compiled modules of the l2tpv3 package mapped into a running process."""
    with open(f"/proc/{pid}/maps") as f:
        paths = {line.split(None, 5)[-1].strip() for line in f if line.count(" ") >= 5}
    return sorted(p for p in paths if "/l2tpv3/" in p and ".so" in p.rsplit("/", 1)[-1])


def package_location() -> str:
    """Where the daemons will import l2tpv3 from (they run with cwd "/")."""
    out = sh(*PROBE, "location", check=False, cwd="/")
    if out.returncode != 0 or out.stdout.strip() == "noinstall":
        sys.exit(f"bench: l2tpv3 is not installed for {sys.executable}: pip install .")
    return out.stdout.strip()


def implementation(no_extensions: bool) -> tuple[bool, str]:
    """Whether the l2tpv3 daemon would run the compiled fast path, and why not.

    Imports ``l2tpv3.io.datapath`` (the chooser) the way the daemon does, in a child with
    the same environment (bench/probe.py), and looks for a compiled module of the
    package among those loaded.
    """
    env = impl_env("python" if no_extensions else "compiled")
    out = sh(*PROBE, "impl", env=env, check=False, cwd="/").stdout.strip()
    kind, _, detail = out.partition(" ")
    if kind == "ext":
        return True, f"compiled: {detail}"
    if kind == "pure":
        return False, "l2tpv3.io.datapath loaded no compiled extension (not built?)"
    if kind == "noinstall":
        sys.exit(f"bench: l2tpv3 is not installed for {sys.executable}: pip install .")
    if kind == "missing":
        return False, f"no l2tpv3.io.datapath module (fast path not merged): {detail}"
    return False, f"probe failed: {out or 'no output'}"
