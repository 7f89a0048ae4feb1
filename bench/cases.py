"""The compared links, each set up between namespaces A and B over the same veth pair.

Every case gets its own inner subnet, so all can stay up together and the run can
interleave them. Each tunnel case has inner MTU 1446.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from bench.host import implementation, mapped_extensions
from interop.netns import Lab, Netns, impl_env, wait_for

INNER_MTU = 1446
UNDERLAY_A = "10.99.0.1"
UNDERLAY_B = "10.99.0.2"


@dataclass
class Case:
    key: str
    label: str
    server: str = ""  # address of B to measure against
    pids: list[int] = field(default_factory=list)  # processes whose CPU is measured
    available: bool = True
    reason: str = ""

    def setup(self, lab: Lab, a: Netns, b: Netns) -> None:
        raise NotImplementedError


class RawVeth(Case):
    def setup(self, lab: Lab, a: Netns, b: Netns) -> None:
        self.server = UNDERLAY_B


@dataclass
class Vxlan(Case):
    net: int = 0
    offloads: bool = True

    def setup(self, lab: Lab, a: Netns, b: Netns) -> None:
        dev = f"vx{self.net}"
        for ns, local, remote, host in ((a, UNDERLAY_A, UNDERLAY_B, 1),
                                        (b, UNDERLAY_B, UNDERLAY_A, 2)):  # fmt: skip
            lab.run(ns, "ip", "link", "add", dev, "type", "vxlan", "id", str(self.net),
                    "local", local, "remote", remote, "dstport", str(4789 + self.net),
                    "dev", "veth0")  # fmt: skip
            lab.run(ns, "ip", "link", "set", dev, "mtu", str(INNER_MTU))
            if not self.offloads:
                # The feature set of the kernel's l2tp_eth device.
                lab.run(ns, "ethtool", "-K", dev, "tx", "off", "sg", "off", "gro", "off")
            lab.run(ns, "ip", "addr", "add", f"10.100.{self.net}.{host}/24", "dev", dev)
            lab.run(ns, "ip", "link", "set", dev, "up")
        self.server = f"10.100.{self.net}.2"


@dataclass
class OpenVPN(Case):
    net: int = 3

    def setup(self, lab: Lab, a: Netns, b: Netns) -> None:
        dev = "ovtap0"
        for ns, local, remote, host in ((a, UNDERLAY_A, UNDERLAY_B, 1),
                                        (b, UNDERLAY_B, UNDERLAY_A, 2)):  # fmt: skip
            tag = f"openvpn-{host}"
            proc = lab.spawn(
                ns, tag, "openvpn", "--dev", dev, "--dev-type", "tap", "--proto", "udp",
                "--local", local, "--remote", remote, "--lport", "1194", "--rport", "1194",
                "--cipher", "none", "--auth", "none", "--disable-dco",
                "--tun-mtu", str(INNER_MTU), "--mssfix", "0", "--verb", "3",
                "--ifconfig-noexec", "--route-noexec",
            )  # fmt: skip
            self.pids.append(proc.pid)

            def up(ns: Netns = ns, tag: str = tag, proc: subprocess.Popen[bytes] = proc) -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"openvpn exited: {lab.log_text(tag)[-500:]}")
                return lab.run(ns, "ip", "link", "show", dev, check=False).returncode == 0

            wait_for(up, 15, "openvpn's tap device")
            lab.run(ns, "ip", "addr", "add", f"10.100.{self.net}.{host}/24", "dev", dev)
            lab.run(ns, "ip", "link", "set", dev, "up")
        self.server = f"10.100.{self.net}.2"


@dataclass
class L2tpv3(Case):
    net: int = 4
    compiled: bool = False
    # `udp_csum on` lets the fast path use UDP GSO: Linux refuses GSO on a socket that
    # sends zero checksums, which is the kernel's (and our) IPv4 default.
    udp_csum: bool = False
    # Another checkout to measure instead of the installed package (`run.py --baseline`):
    # its daemons run with PYTHONPATH set to it, in the same interleaved run.
    tree: str | None = None

    def setup(self, lab: Lab, a: Netns, b: Netns) -> None:
        if self.tree is not None:
            # The check below of what the daemons mapped covers a baseline tree.
            self.available, why = True, f"baseline {self.tree}"
        else:
            self.available, why = implementation(no_extensions=not self.compiled)
        if not self.compiled and self.tree is None:
            # The reference path must really be the pure-Python one.
            if self.available:
                raise RuntimeError(f"L2TPV3_NO_EXTENSIONS=1 still loaded {why}")
            self.available, why = True, "pure Python (L2TPV3_NO_EXTENSIONS=1)"
        self.reason = why
        if not self.available:
            return
        env = impl_env("compiled" if self.compiled else "python")
        if self.tree is not None:
            env["PYTHONPATH"] = self.tree
        tid = self.net
        port = 1700 + self.net
        dev = f"l2tpeth{self.net}"
        for ns, local, remote, host in ((a, UNDERLAY_A, UNDERLAY_B, 1),
                                        (b, UNDERLAY_B, UNDERLAY_A, 2)):  # fmt: skip
            d = lab.daemon(ns, f"l2tpv3d-{self.key}-{host}", env)
            self.pids.append(d.proc.pid)
            d.cli("add", "tunnel", "tunnel_id", str(tid), "peer_tunnel_id", str(tid),
                  "encap", "udp", "local", local, "remote", remote,
                  "udp_sport", str(port), "udp_dport", str(port),
                  *(["udp_csum", "on"] if self.udp_csum else []), env=env)  # fmt: skip
            d.cli("add", "session", "name", dev, "tunnel_id", str(tid),
                  "session_id", str(tid), "peer_session_id", str(tid), env=env)  # fmt: skip
            lab.run(ns, "ip", "link", "set", dev, "mtu", str(INNER_MTU))
            lab.run(ns, "ip", "addr", "add", f"10.100.{self.net}.{host}/24", "dev", dev)
            lab.run(ns, "ip", "link", "set", dev, "up")
        self.server = f"10.100.{self.net}.2"
        # What the running daemons really loaded, whatever the chooser said.
        lab.run(a, "ping", "-c", "2", "-i", "0.2", "-W", "2", self.server, check=False)
        loaded = [mapped_extensions(pid) for pid in self.pids]
        if self.compiled and not all(loaded):
            self.available, self.reason = False, "the daemon did not load the extension"
        elif not self.compiled and any(loaded):
            raise RuntimeError(f"L2TPV3_NO_EXTENSIONS=1 daemon mapped {loaded}")


def baseline_cases(tree: str) -> list[Case]:
    """The l2tpv3 cases again, run from another checkout (before/after comparisons)."""
    return [
        L2tpv3("l2tpv3_py_base", "baseline pure Python", net=7, compiled=False, tree=tree),
        L2tpv3("l2tpv3_cy_base", "baseline Cython", net=8, compiled=True, tree=tree),
        L2tpv3(
            "l2tpv3_cy_csum_base",
            "baseline Cython, udp_csum on",
            net=9,
            compiled=True,
            udp_csum=True,
            tree=tree,
        ),
    ]


def all_cases() -> list[Case]:
    return [
        RawVeth("veth", "raw veth"),
        Vxlan("vxlan", "kernel VXLAN", net=1, offloads=True),
        Vxlan("vxlan_nooff", "kernel VXLAN, offloads off", net=2, offloads=False),
        OpenVPN("openvpn", "OpenVPN 2.6 tap, no crypto", net=3),
        L2tpv3("l2tpv3_py", "l2tpv3 pure Python", net=4, compiled=False),
        L2tpv3("l2tpv3_cy", "l2tpv3 Cython", net=5, compiled=True),
        L2tpv3("l2tpv3_cy_csum", "l2tpv3 Cython, udp_csum on", net=6, compiled=True, udp_csum=True),
    ]
