"""l2tpv3d against QEMU's own userspace L2TPv3 (-netdev l2tpv3), an independent peer.

The guest's NIC is QEMU's l2tpv3 backend configured with the value `qemu_netdev`
returns (l2tpv3 peer-config --for qemu); ping and a TCP transfer with SHA-256 checked
at both ends, each way, for UDP and IP encap, IPv4 and IPv6, with and without cookies
and the sublayer (QEMU's `counter`), including QEMU's raw counter (no pincounter).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from interop.build import Artifacts, BuildError, build
from interop.cases import COOKIES
from interop.lab import (
    GUEST4,
    GUEST6,
    HOST4,
    HOST6,
    INNER_GUEST4,
    INNER_GUEST6,
    INNER_HOST4,
    INNER_HOST6,
)
from interop.peerlines import uses_cli
from interop.qemupeer import QemuLab, boot_qemu_peer, qemu_available, qemu_lab, qemu_netdev
from interop.traffic import guest_to_host, host_to_guest
from tests.support.netns import Daemon, require_root, wait_until, workdir

pytestmark = [pytest.mark.root, pytest.mark.interop]

TRANSFER = int(float(os.environ.get("L2TPV3_INTEROP_MB", "10")) * 1024 * 1024)
TID, SID, PEER_SID = 3000, 30, 40


@dataclass(frozen=True)
class QCase:
    encap: str
    family: int
    cookie: int
    l2spec: str
    pincounter: bool = True

    @property
    def id(self) -> str:
        pin = "" if self.pincounter or self.l2spec == "none" else "-rawcounter"
        return f"{self.encap}{self.family}-c{self.cookie}-{self.l2spec}{pin}"


QCASES = [
    QCase("udp", 4, 0, "none"),
    QCase("udp", 6, 8, "default"),
    QCase("ip", 4, 4, "default", pincounter=False),
    QCase("ip", 6, 0, "default"),
    QCase("udp", 4, 4, "default", pincounter=False),
]


@dataclass
class Env:
    lab: QemuLab
    daemon: Daemon
    art: Artifacts
    workdir: Path


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    require_root()
    missing = [t for t in ("qemu-system-x86_64", "apt-get", "dpkg") if shutil.which(t) is None]
    if not missing and not qemu_available():
        missing.append("QEMU with -netdev l2tpv3")
    if missing:
        msg = "QEMU interop tests need " + ", ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        art = build()
    except BuildError as exc:
        pytest.fail(f"interop build: {exc}")
    with workdir() as wd, qemu_lab() as lab:
        daemon = Daemon(lab.daemon_ns, wd)
        try:
            # QEMU is configured from what users run: l2tpv3 peer-config --for qemu.
            assert uses_cli(daemon), "l2tpv3 peer-config is missing"
            yield Env(lab, daemon, art, wd)
        finally:
            log = daemon.stop()
            assert "Traceback" not in log, log


def configure_ours(env: Env, case: QCase) -> int:
    for t in env.daemon.tunnels():
        env.daemon.cli("del", "tunnel", "tunnel_id", str(t["tunnel_id"]))
    local, remote = (HOST4, GUEST4) if case.family == 4 else (HOST6, GUEST6)
    tunnel = ["add", "tunnel", "tunnel_id", str(TID), "peer_tunnel_id", str(TID),
              "encap", case.encap, "local", local, "remote", remote]  # fmt: skip
    if case.encap == "udp":
        tunnel += ["udp_sport", "7000", "udp_dport", "7001"]
    env.daemon.cli(*tunnel)
    session = ["add", "session", "tunnel_id", str(TID), "session_id", str(SID),
               "peer_session_id", str(PEER_SID), "l2spec_type", case.l2spec]  # fmt: skip
    cookie, peer_cookie = COOKIES[case.cookie]
    if cookie:
        session += ["cookie", cookie, "peer_cookie", peer_cookie]
    env.daemon.cli(*session)
    ns = env.lab.daemon_ns
    ns.ip("addr", "add", f"{INNER_HOST4}/24", "dev", "l2tpeth0")
    ns.ip("addr", "add", f"{INNER_HOST6}/64", "dev", "l2tpeth0", "nodad")
    ns.ip("link", "set", "l2tpeth0", "up")
    return int(ns.run("cat", "/sys/class/net/l2tpeth0/mtu").stdout)


@pytest.mark.parametrize("case", QCASES, ids=[c.id for c in QCASES])
def test_qemu_peer(env: Env, case: QCase) -> None:
    mtu = configure_ours(env, case)
    netdev = qemu_netdev(env.daemon, TID, SID, case.pincounter)
    assert f"txsession={SID}" in netdev and f"rxsession={PEER_SID}" in netdev
    assert ("counter=on" in netdev) == (case.l2spec == "default")
    assert ("pincounter=on" in netdev) == (case.l2spec == "default" and case.pincounter)
    vmdir = env.workdir / case.id
    vmdir.mkdir()
    t0 = time.monotonic()
    peer = boot_qemu_peer(env.lab, env.art, netdev, mtu, vmdir)
    try:
        ns = env.lab.daemon_ns
        ping = ("ping", "-c", "2", "-i", "0.2", "-W", "2")
        assert wait_until(lambda: ns.run(*ping, INNER_GUEST4, check=False).returncode == 0, 15)
        assert ns.run(*ping, INNER_GUEST6, check=False).returncode == 0
        # A frame of exactly our MTU, DF set, both ways.
        assert ns.run(*ping, "-M", "do", "-s", str(mtu - 28), INNER_GUEST4, check=False
                      ).returncode == 0  # fmt: skip
        peer.sh(f"ping -A -c 2 -W 2 {INNER_HOST4} && ping -A -c 2 -W 2 {INNER_HOST6}"
                f" && ping -A -c 2 -W 2 -s {mtu - 28} {INNER_HOST4}")  # fmt: skip
        before = env.daemon.session(SID)["stats"]
        inner, back = (
            (INNER_GUEST4, INNER_HOST4) if case.family == 4 else (INNER_GUEST6, INNER_HOST6)
        )
        down = host_to_guest(peer, inner, TRANSFER)
        assert down.ok, down
        up = guest_to_host(peer, back, TRANSFER)
        assert up.ok, up
        after = env.daemon.session(SID)["stats"]
        assert after["rx_packets"] - before["rx_packets"] > TRANSFER // 1500
        for name in ("rx_errors", "rx_cookie_discards", "rx_seq_discards", "rx_invalid"):
            assert after[name] == before[name], (name, after)
        print(f"\n{case.id}: boot {peer.vm.boot_seconds:.1f}s, {TRANSFER >> 20} MB to guest"
              f" {down.mbit_s:.0f} Mbit/s, to us {up.mbit_s:.0f} Mbit/s,"
              f" case {time.monotonic() - t0:.1f}s")  # fmt: skip
    finally:
        peer.vm.stop()
