"""Two pseudowires to two sites in one STP bridge (issue 10 item 2): when the site
carrying the traffic dies, its pseudowire loses carrier (liveness arp), the bridge
disables that port and traffic fails over through the other site.

    H (10.1.0.2, bridge brh) --veth-- X (bridge: l2tpeth0, lan) ==pw 1== N br0 (STP)
                             --veth-- Y (bridge: l2tpeth0, lan) ==pw 2== N (10.1.0.1)

Only N runs STP: the other bridges forward its BPDUs, so N sees the loop and blocks
one of its two pseudowire ports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import Daemon, Netns, require_root, veth, wait_until, workdir

pytestmark = pytest.mark.root

NEAR_LAN, FAR_HOST = "10.1.0.1", "10.1.0.2"
INTERVAL, DEAD = 0.5, 3


def _tunnel(tid: int, local: str, remote: str, sid: int, name: str, live: bool) -> str:
    text = f"""
[[tunnel]]
tunnel_id = {tid}
peer_tunnel_id = {tid}
local = "{local}"
remote = "{remote}"
udp_sport = 1701
udp_dport = 1701

  [[tunnel.session]]
  session_id = {sid}
  peer_session_id = {sid}
  name = "{name}"
"""
    if live:
        text += f"""  liveness = "arp {FAR_HOST}"
  liveness_interval = {INTERVAL}
  liveness_dead = {DEAD}
"""
    return text


@pytest.fixture
def sites() -> Iterator[tuple[dict[str, Netns], Path]]:
    require_root()
    with workdir() as wd:
        ns = {k: Netns(f"stp-{k}") for k in ("n", "x", "y", "h")}
        try:
            veth(ns["n"], "ux", ns["x"], "u0")
            veth(ns["n"], "uy", ns["y"], "u0")
            ns["n"].add_addrs("ux", "172.31.1.1/24")
            ns["n"].add_addrs("uy", "172.31.2.1/24")
            ns["x"].add_addrs("u0", "172.31.1.2/24")
            ns["y"].add_addrs("u0", "172.31.2.2/24")
            veth(ns["x"], "lan", ns["h"], "hx")
            veth(ns["y"], "lan", ns["h"], "hy")
            h = ns["h"]
            h.ip("link", "add", "brh", "type", "bridge")
            for dev in ("hx", "hy"):
                h.ip("link", "set", dev, "master", "brh")
            h.ip("link", "set", "brh", "up")
            h.add_addrs("brh", f"{FAR_HOST}/24")
            yield ns, wd
        finally:
            for n in ns.values():
                n.delete()


def _bridge(n: Netns, name: str, ports: list[str], stp: bool) -> None:
    extra = ["stp_state", "1", "forward_delay", "200", "hello_time", "100", "max_age", "600"]
    n.ip("link", "add", name, "type", "bridge", *(extra if stp else []))
    for port in ports:
        n.ip("link", "set", port, "master", name)
        n.ip("link", "set", port, "up")
    n.ip("link", "set", name, "up")


def _state(n: Netns, port: str) -> str:
    out = n.run("bridge", "link", "show", "dev", port).stdout
    return out.split(" state ")[1].split()[0] if " state " in out else ""


def _pings(n: Netns) -> bool:
    return n.run("ping", "-c", "1", "-W", "1", FAR_HOST, check=False).returncode == 0


def test_failover_through_the_other_site(sites: tuple[dict[str, Netns], Path], impl: str) -> None:
    ns, wd = sites
    n = ns["n"]
    daemons: dict[str, Daemon] = {}
    logs: list[str] = []
    try:
        daemons["x"] = Daemon(ns["x"], wd, _tunnel(1, "172.31.1.2", "172.31.1.1", 10,
                              "l2tpeth0", False), impl=impl, tag="x")  # fmt: skip
        daemons["y"] = Daemon(ns["y"], wd, _tunnel(2, "172.31.2.2", "172.31.2.1", 20,
                              "l2tpeth0", False), impl=impl, tag="y")  # fmt: skip
        for k in ("x", "y"):
            _bridge(ns[k], "br0", ["l2tpeth0", "lan"], stp=False)
        near = _tunnel(1, "172.31.1.1", "172.31.1.2", 10, "pw-x", True)
        near += _tunnel(2, "172.31.2.1", "172.31.2.2", 20, "pw-y", True)
        daemons["n"] = Daemon(n, wd, near, impl=impl, tag="n")
        _bridge(n, "br0", ["pw-x", "pw-y"], stp=True)
        n.add_addrs("br0", f"{NEAR_LAN}/24")

        # STP settles: one port forwarding, the other blocking (N's own BPDUs came back).
        def settled() -> bool:
            return sorted([_state(n, "pw-x"), _state(n, "pw-y")]) == ["blocking", "forwarding"]

        assert wait_until(settled, timeout=30, interval=0.5), (
            _state(n, "pw-x"), _state(n, "pw-y"))  # fmt: skip
        assert wait_until(lambda: _pings(n), timeout=20, interval=0.5)
        active = "x" if _state(n, "pw-x") == "forwarding" else "y"
        other = "y" if active == "x" else "x"

        t0 = time.monotonic()
        daemons[active].proc.kill()  # SIGKILL by PID
        daemons[active].proc.wait()
        logs.append(daemons.pop(active).stop())
        assert wait_until(
            lambda: n.run("cat", f"/sys/class/net/pw-{active}/carrier", check=False).stdout
            .strip() == "0", timeout=INTERVAL * DEAD + 3, interval=0.1)  # fmt: skip
        lost = time.monotonic() - t0
        assert wait_until(lambda: _pings(n), timeout=40, interval=0.2)
        back = time.monotonic() - t0
        assert _state(n, f"pw-{other}") == "forwarding"
        assert _state(n, f"pw-{active}") == "disabled"
        print(f"\n[{impl}] site {active} killed: carrier lost after {lost:.2f} s, traffic "
              f"through site {other} after {back:.2f} s (STP forward_delay 2 s)")  # fmt: skip
    finally:
        for d in daemons.values():
            logs.append(d.stop())
        for text in logs:
            assert "Traceback" not in text, text
