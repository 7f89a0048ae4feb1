"""The compared links, each set up between namespaces A and B over the same veth pair.

Every case gets its own inner subnet, so all can stay up together and the run can
interleave them. Each tunnel case has inner MTU 1446.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.host import implementation, mapped_extensions
from bench.keys import Pki, esp_key, make_pki, wg_keypair
from interop.netns import Daemon, Lab, Netns, impl_env, wait_for

INNER_MTU = 1446
# The ESP cases' SAs: AES-128-GCM, 16-byte key plus the 4-byte salt (RFC 4106 §8.1).
ESP_AEAD = "rfc4106(gcm(aes))"
ESP_KEY_BYTES = 20
# The line l2tpv3d logs when an SA moves a compiled tunnel to the Python data path.
ESP_MOVED = "ESP runs on the Python path"
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
    # Which l2tpv3 data path carried the traffic, where that can differ from the one
    # asked for ("python" or "compiled"); empty for the other cases.
    datapath: str = ""

    def setup(self, lab: Lab, a: Netns, b: Netns) -> None:
        raise NotImplementedError

    def evidence(self, lab: Lab) -> dict[str, Any]:
        """After the run: counters showing the traffic took the path the label claims
        (the encrypted cases); kept with the results."""
        return {}


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
    # TLS mode with AES-256-GCM on the data channel (the certificates are made by the
    # bench, bench/keys.py); otherwise static "no crypto" (`--cipher none`).
    gcm: bool = False
    _pki: Pki | None = field(default=None, repr=False)

    def evidence(self, lab: Lab) -> dict[str, Any]:
        """The data channel cipher each end logged."""
        if not self.gcm:
            return {}
        out: dict[str, Any] = {}
        for host in (1, 2):
            lines = lab.log_text(f"openvpn-{self.key}-{host}").splitlines()
            mark = "Data Channel: cipher"
            said = [line[line.index(mark) :] for line in lines if mark in line]
            out[f"end{host}"] = said[-1] if said else "no data channel cipher logged"
        return out

    def _crypto(self, lab: Lab, host: int) -> list[str]:
        if not self.gcm:
            return ["--cipher", "none", "--auth", "none"]
        pki = self._pki
        assert pki is not None
        common = ["--data-ciphers", "AES-256-GCM", "--data-ciphers-fallback", "AES-256-GCM",
                  "--ca", str(pki.ca)]  # fmt: skip
        if host == 2:
            return [*common, "--tls-server", "--dh", "none",
                    "--cert", str(pki.server_cert), "--key", str(pki.server_key)]  # fmt: skip
        return [*common, "--tls-client", "--remote-cert-tls", "server",
                "--cert", str(pki.client_cert), "--key", str(pki.client_key)]  # fmt: skip

    def setup(self, lab: Lab, a: Netns, b: Netns) -> None:
        dev = f"ovtap{self.net}"
        port = str(1194 + self.net)
        if self.gcm:
            self._pki = make_pki(lab.workdir / f"pki-{self.key}")
        # B (the TLS server) first, so A's first handshake packet finds it listening.
        for ns, local, remote, host in ((b, UNDERLAY_B, UNDERLAY_A, 2),
                                        (a, UNDERLAY_A, UNDERLAY_B, 1)):  # fmt: skip
            tag = f"openvpn-{self.key}-{host}"
            proc = lab.spawn(
                ns, tag, "openvpn", "--dev", dev, "--dev-type", "tap", "--proto", "udp",
                "--local", local, "--remote", remote, "--lport", port, "--rport", port,
                *self._crypto(lab, host), "--disable-dco",
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
        if self.gcm:
            # Timed only once the TLS handshake is done and the data channel really is
            # AES-256-GCM at both ends (OpenVPN logs the cipher it settled on).
            tags = [f"openvpn-{self.key}-{h}" for h in (1, 2)]

            def ready() -> bool:
                return all("Initialization Sequence Completed" in lab.log_text(t) for t in tags)

            wait_for(ready, 30, "the OpenVPN TLS handshake")
            for t in tags:
                if "'AES-256-GCM'" not in lab.log_text(t):
                    raise RuntimeError(f"{t}: data channel is not AES-256-GCM")
        self.server = f"10.100.{self.net}.2"


@dataclass
class VxlanWireguard(Case):
    """Kernel VXLAN over a userspace WireGuard link (Debian's wireguard-go), the common
    encrypted L2 recipe where the kernel has no WireGuard or the user prefers userspace."""

    net: int = 11
    _ends: list[tuple[Netns, str]] = field(default_factory=list, repr=False)

    def evidence(self, lab: Lab) -> dict[str, Any]:
        """Each end's WireGuard peer byte counters (`wg show NAME transfer`)."""
        out: dict[str, Any] = {}
        for host, (ns, wg) in enumerate(self._ends, 1):
            line = lab.run(ns, "wg", "show", wg, "transfer", check=False).stdout.split()
            if len(line) == 3:
                out[f"end{host}"] = {"rx_bytes": int(line[1]), "tx_bytes": int(line[2])}
        return out

    def setup(self, lab: Lab, a: Netns, b: Netns) -> None:
        keydir = lab.workdir / f"wg-{self.key}"
        # wireguard-go's control sockets live in /var/run/wireguard/<name>.sock, shared
        # by every namespace: each end gets its own interface name.
        names = {1: f"l2bwg{self.net}a", 2: f"l2bwg{self.net}b"}
        keys = {h: wg_keypair(keydir, names[h]) for h in (1, 2)}
        port = 51800 + self.net
        for ns, remote, host in ((a, UNDERLAY_B, 1), (b, UNDERLAY_A, 2)):
            wg, other = names[host], 3 - host
            # -f: stays in the foreground, so the PID is wireguard-go's own (CPU measured).
            proc = lab.spawn(ns, f"wireguard-go-{self.key}-{host}", "wireguard-go", "-f", wg,
                             env={**os.environ, "WG_PROCESS_FOREGROUND": "1"})  # fmt: skip
            self.pids.append(proc.pid)

            def up(ns: Netns = ns, wg: str = wg, proc: subprocess.Popen[bytes] = proc,
                   tag: str = f"wireguard-go-{self.key}-{host}") -> bool:  # fmt: skip
                if proc.poll() is not None:
                    log = lab.log_text(tag)
                    raise RuntimeError(f"wireguard-go exited: {log[-500:]}")
                return lab.run(ns, "wg", "show", wg, check=False).returncode == 0

            wait_for(up, 15, "wireguard-go's interface")
            self._ends.append((ns, wg))
            lab.run(ns, "wg", "set", wg, "private-key", str(keys[host][0]),
                    "listen-port", str(port), "peer", keys[other][1],
                    "endpoint", f"{remote}:{port}",
                    "allowed-ips", f"10.98.{self.net}.{other}/32")  # fmt: skip
            # VXLAN adds 50 bytes: the WireGuard MTU is what an inner MTU of 1446 needs.
            # Its encrypted datagrams (+60) then exceed the 1500-byte underlay and are
            # fragmented there, as every encrypted case's are at this inner MTU.
            lab.run(ns, "ip", "link", "set", wg, "mtu", str(INNER_MTU + 50), "up")
            lab.run(ns, "ip", "addr", "add", f"10.98.{self.net}.{host}/24", "dev", wg)
        for ns, host in ((a, 1), (b, 2)):
            dev, other = f"vx{self.net}", 3 - host
            lab.run(ns, "ip", "link", "add", dev, "type", "vxlan", "id", str(self.net),
                    "local", f"10.98.{self.net}.{host}", "remote", f"10.98.{self.net}.{other}",
                    "dstport", str(4789 + self.net), "dev", names[host])  # fmt: skip
            lab.run(ns, "ip", "link", "set", dev, "mtu", str(INNER_MTU))
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
    # An rfc4106(gcm(aes)) AES-128 SA pair on the tunnel (`l2tpv3 add sa`, keys from
    # 0600 files made at run time).
    esp: bool = False
    _daemons: list[Daemon] = field(default_factory=list, repr=False)

    def evidence(self, lab: Lab) -> dict[str, Any]:
        """Each end's SA packet counters and drops (`l2tpv3 -s -j show sa`)."""
        if not self.esp:
            return {}
        out: dict[str, Any] = {}
        for host, d in enumerate(self._daemons, 1):
            sas = json.loads(d.cli("-s", "-j", "show", "sa").stdout)
            out[f"end{host}"] = [
                {"dir": sa["dir"], "spi": sa["spi"], **sa["stats"],
                 "drops": {k: v for k, v in sa["drops"].items() if v}}
                for sa in sas
            ]  # fmt: skip
        return out

    def _sa_keys(self, lab: Lab) -> tuple[Path, Path]:
        """Keys of the A→B and B→A SAs."""
        d = lab.workdir / f"sa-{self.key}"
        return esp_key(d, "a-to-b", ESP_KEY_BYTES), esp_key(d, "b-to-a", ESP_KEY_BYTES)

    def setup(self, lab: Lab, a: Netns, b: Netns) -> None:
        if self.tree is not None:
            # The check below of what the daemons mapped covers a baseline tree.
            self.available, why = True, f"baseline {self.tree}"
        else:
            self.available, why = implementation(no_extensions=not self.compiled)
        self.datapath = "compiled" if self.compiled else "python"
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
        sa_keys = self._sa_keys(lab) if self.esp else None
        daemons = self._daemons
        under_a, under_b = UNDERLAY_A, UNDERLAY_B
        if self.esp:
            # ESP arrives on a raw IPPROTO_ESP socket, and the kernel hands every ESP
            # packet to every raw socket bound to its destination address: with the two
            # ESP cases on one address pair, the idle case's daemons would wake for (and
            # drop, unknown_spi) every packet of the one being measured. Own addresses.
            under_a, under_b = f"10.99.{self.net}.1", f"10.99.{self.net}.2"
            a.add_addrs("veth0", f"{under_a}/24")
            b.add_addrs("veth0", f"{under_b}/24")
        for ns, local, remote, host in ((a, under_a, under_b, 1),
                                        (b, under_b, under_a, 2)):  # fmt: skip
            d = lab.daemon(ns, f"l2tpv3d-{self.key}-{host}", env)
            daemons.append(d)
            self.pids.append(d.proc.pid)
            d.cli("add", "tunnel", "tunnel_id", str(tid), "peer_tunnel_id", str(tid),
                  "encap", "udp", "local", local, "remote", remote,
                  "udp_sport", str(port), "udp_dport", str(port),
                  *(["udp_csum", "on"] if self.udp_csum else []), env=env)  # fmt: skip
            d.cli("add", "session", "name", dev, "tunnel_id", str(tid),
                  "session_id", str(tid), "peer_session_id", str(tid), env=env)  # fmt: skip
            if sa_keys is not None:
                # SPIs 0x1000+net A→B, 0x2000+net B→A; each end's out is the other's in.
                spis = (f"{0x1000 + self.net:#x}", f"{0x2000 + self.net:#x}")
                out_i = 0 if host == 1 else 1
                # Inbound first: the ESP socket opens with the first SA, and A's ESP
                # must not reach B before B knows its SPI (else one unknown_spi drop).
                for direction, i in (("in", 1 - out_i), ("out", out_i)):
                    d.cli("add", "sa", "tunnel_id", str(tid), "dir", direction,
                          "spi", spis[i], "aead", ESP_AEAD, "key", f"@{sa_keys[i]}",
                          env=env)  # fmt: skip
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
        if self.esp and self.compiled:
            self.label, self.reason, self.datapath = esp_datapath(
                self.label, [d.log_text() for d in daemons]
            )


def esp_datapath(label: str, logs: list[str]) -> tuple[str, str, str]:
    """The compiled ESP case's label, reason and data path, saying which path really
    ran: an extension built without libcrypto has no ESP, so `add sa` moves the tunnel
    to the Python path and the daemon logs so (ESP_MOVED)."""
    moved = sum(ESP_MOVED in log for log in logs)
    if moved == len(logs):
        return (f"{label} (ESP ran on the Python path)",
                "add sa moved the tunnel to the Python path", "python")  # fmt: skip
    if moved:
        return (f"{label} (ESP: mixed data paths)",
                f"{moved}/{len(logs)} daemons moved the tunnel to Python", "mixed")  # fmt: skip
    return f"{label} (ESP in the C engine)", "ESP in the compiled data path", "compiled"


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


def esp_cases() -> list[Case]:
    """The encrypted links (issue 9), added to the run by `run.py --esp`."""
    return [
        OpenVPN("openvpn_gcm", "OpenVPN 2.6 tap, TLS, AES-256-GCM", net=10, gcm=True),
        VxlanWireguard("vxlan_wg", "kernel VXLAN over wireguard-go", net=11),
        L2tpv3(
            "l2tpv3_py_esp",
            "l2tpv3 pure Python + ESP AES-128-GCM",
            net=12,
            compiled=False,
            esp=True,
        ),
        L2tpv3("l2tpv3_cy_esp", "l2tpv3 Cython + ESP AES-128-GCM", net=13, compiled=True, esp=True),
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
