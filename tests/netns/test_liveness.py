"""Liveness through real devices (issue 10 item 2), shaped like the OpenWrt data-centre
seed (tests/data/seeds.py OPENWRT_MONIT): instead of monit pinging the far side and
running ``ifup lan``, the near l2tpethN loses its carrier when the far side dies and an
``on_down`` hook runs; both come back with the far side.

The far daemon is killed with SIGKILL (no goodbye of any kind) and restarted.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.data.seeds import OPENWRT_MONIT
from tests.support.netns import Daemon, Netns, require_root, veth, wait_until, workdir

pytestmark = pytest.mark.root

L01, L02 = OPENWRT_MONIT["l-01"], OPENWRT_MONIT["l-02"]
A, B = str(L01["localaddr"]), str(L02["localaddr"])
# What monit pinged from l-01: l-02's lan address (its l2tpeth0 here).
FAR_HOST = str(L02["ipaddr"])
assert L01["monitrc"][0] == f"check host secondary with address {FAR_HOST}"  # type: ignore[index]
# monit: 5 pings with a 30 s timeout; here a probe every 0.5 s, down after 3 missed.
INTERVAL, DEAD = 0.5, 3

# A hook: one line per run, with what the environment says.
HOOK = (
    "import os, sys; e = os.environ; open(sys.argv[1], 'a').write("
    "' '.join([e['L2TPV3_STATE'], e['IFNAME'], e['TUNNEL_ID'], e['SESSION_ID']]) + '\\n')"
)


def config(
    local: str, remote: str, liveness: str, hooks: Path | None = None, encap: str = "udp"
) -> str:
    site = L01 if local == A else L02
    ports = f"udp_sport = {site['sport']}\nudp_dport = {site['dport']}"
    text = f"""
[[tunnel]]
tunnel_id = 1
peer_tunnel_id = 1
local = "{local}"
remote = "{remote}"
encap = "{encap}"
{ports if encap == "udp" else ""}

  [[tunnel.session]]
  session_id = 10
  peer_session_id = 10
  name = "l2tpeth0"
"""
    if liveness != "off":
        text += f"""  liveness = "{liveness}"
  liveness_interval = {INTERVAL}
  liveness_dead = {DEAD}
"""
    if hooks is not None:
        text += f"""  on_down = {json.dumps([sys.executable, "-c", HOOK, str(hooks)])}
  on_up = {json.dumps([sys.executable, "-c", HOOK, str(hooks)])}
"""
    return text


@pytest.fixture
def hosts() -> Iterator[tuple[Netns, Netns, Path]]:
    require_root()
    with workdir() as wd:
        near, far = Netns("lv-a"), Netns("lv-b")
        try:
            veth(near, "eth0", far, "eth0")
            near.add_addrs("eth0", f"{A}/24")
            far.add_addrs("eth0", f"{B}/24")
            yield near, far, wd
        finally:
            near.delete()
            far.delete()


def carrier(ns: Netns, dev: str = "l2tpeth0") -> str:
    # /sys/.../carrier reads "1" or "0" (EINVAL while the device is down).
    return ns.run("cat", f"/sys/class/net/{dev}/carrier", check=False).stdout.strip()


def hook_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def liveness_of(d: Daemon) -> dict[str, object]:
    live = d.session(10).get("liveness")
    assert isinstance(live, dict), d.session(10)
    return live


def _seen(d: Daemon) -> bool:
    return liveness_of(d)["last_seen_ago"] is not None


def _kill(d: Daemon) -> None:
    # SIGKILL by PID (`ip netns exec` execs the daemon): no goodbye of any kind.
    os.kill(d.proc.pid, 9)
    d.proc.wait()


def _far_segment(far: Netns) -> None:
    far.ip("link", "set", "l2tpeth0", "up")
    far.ip("addr", "add", f"{FAR_HOST}/24", "dev", "l2tpeth0")


def _run_kill_restart(
    near: Netns, far: Netns, wd: Path, impl: str, near_live: str, far_live: str,
    far_setup: bool,
) -> tuple[Daemon, float]:  # fmt: skip
    hooks = wd / "hooks.log"
    # The far side first: the near side is up from its start and stays up.
    fd = Daemon(far, wd, config(B, A, far_live), impl=impl, tag="far1")
    try:
        if far_setup:
            _far_segment(far)
        nd = Daemon(near, wd, config(A, B, near_live, hooks), impl=impl, tag="near")
    except BaseException:
        fd.stop()
        raise
    logs: list[str] = []
    try:
        near.ip("link", "set", "l2tpeth0", "up")
        assert wait_until(lambda: liveness_of(nd)["last_seen_ago"] is not None, timeout=10), (
            liveness_of(nd),
            nd.log_text(),
        )
        assert liveness_of(nd)["state"] == "up"
        assert carrier(near) == "1"
        if far_setup:
            # The replies are data packets too: the engine threads' last_rx moved.
            assert liveness_of(nd)["last_rx_ago"] is not None
        assert hook_lines(hooks) == []

        t0 = time.monotonic()
        _kill(fd)
        logs.append(fd.stop())
        assert wait_until(lambda: carrier(near) == "0", timeout=INTERVAL * DEAD + 3, interval=0.05)
        took = time.monotonic() - t0
        assert "NO-CARRIER" in near.ip("link", "show", "l2tpeth0").stdout
        assert took <= INTERVAL * DEAD + 1.0, f"NO-CARRIER after {took:.2f} s"
        assert wait_until(lambda: len(hook_lines(hooks)) == 1, timeout=5)
        time.sleep(2 * INTERVAL)
        assert hook_lines(hooks) == ["down l2tpeth0 1 10"]
        live = liveness_of(nd)
        assert live["state"] == "down" and live["transitions"] == 1

        fd = Daemon(far, wd, config(B, A, far_live), impl=impl, tag="far2")
        if far_setup:
            _far_segment(far)
        assert wait_until(lambda: carrier(near) == "1", timeout=10), nd.log_text()
        assert wait_until(lambda: len(hook_lines(hooks)) == 2, timeout=5)
        time.sleep(2 * INTERVAL)
        assert hook_lines(hooks) == ["down l2tpeth0 1 10", "up l2tpeth0 1 10"]
        live = liveness_of(nd)
        assert live["state"] == "up" and live["transitions"] == 2
        assert "on_down: " in nd.log_text() and "exited with status 0" in nd.log_text()
        return fd, took
    except BaseException:
        logs.append(fd.stop())
        raise
    finally:
        logs.append(nd.stop())
        for text in logs:
            assert "Traceback" not in text, text


def test_hello_far_daemon_killed_and_back(hosts: tuple[Netns, Netns, Path], impl: str) -> None:
    """liveness hello at our end only: the far l2tpv3d (liveness off) answers anyway."""
    near, far, wd = hosts
    fd, took = _run_kill_restart(near, far, wd, impl, "hello", "off", far_setup=False)
    try:
        # The far end answered our HELLOs though its own liveness is off, and says so.
        tunnel = json.loads(fd.cli("-j", "show", "tunnel").stdout)[0]
        assert tunnel["control"]["hellos_received"] > 0
        assert tunnel["control"]["acks_sent"] == tunnel["control"]["hellos_received"]
        assert "liveness" not in fd.session(10)
    finally:
        text = fd.stop()
        assert "Traceback" not in text, text
    print(f"\n[{impl}] hello: NO-CARRIER {took:.2f} s after SIGKILL (budget "
          f"{INTERVAL * DEAD + 1:.1f} s)")  # fmt: skip


def test_arp_far_daemon_killed_and_back(hosts: tuple[Netns, Netns, Path], impl: str) -> None:
    """liveness arp against a far segment with a host that answers ARP (the far
    side's own l2tpeth0 with an address), nothing configured for it there."""
    near, far, wd = hosts
    fd, took = _run_kill_restart(near, far, wd, impl, f"arp {FAR_HOST}", "off", far_setup=True)
    try:
        # Our probes came from our own MAC, with sender address 0.0.0.0: the far host
        # learnt no address for it.
        neigh = far.ip("neigh", "show", "dev", "l2tpeth0").stdout
        assert "0.0.0.0" not in neigh
    finally:
        text = fd.stop()
        assert "Traceback" not in text, text
    print(f"\n[{impl}] arp: NO-CARRIER {took:.2f} s after SIGKILL (budget "
          f"{INTERVAL * DEAD + 1:.1f} s)")  # fmt: skip


@pytest.mark.parametrize("encap", ["udp", "ip"])
def test_hello_both_ends(hosts: tuple[Netns, Netns, Path], impl: str, encap: str) -> None:
    """Two l2tpv3d with liveness hello: each sees the other up, both send and answer
    (over IP the control messages follow a session ID of 0, RFC 3931 §4.1.1.2)."""
    near, far, wd = hosts
    nd = Daemon(near, wd, config(A, B, "hello", encap=encap), impl=impl, tag="near")
    fd = Daemon(far, wd, config(B, A, "hello", encap=encap), impl=impl, tag="far")
    try:
        for d in (nd, fd):
            assert wait_until(partial(_seen, d)), d.log_text()
        for d in (nd, fd):
            control = json.loads(d.cli("-j", "show", "tunnel").stdout)[0]["control"]
            assert control["hellos_sent"] > 0 and control["acks_received"] > 0
            assert control["hellos_received"] > 0 and control["acks_sent"] > 0
            assert liveness_of(d)["state"] == "up"
            text = d.cli("show", "session").stdout
            assert "liveness hello interval 0.5 dead 3: peer up" in text
        # HELLOs are never data: counted as control messages, no frame reached the TAPs.
        tunnel = json.loads(nd.cli("-j", "-s", "show", "tunnel").stdout)[0]
        assert tunnel["drops"]["control_message"] > 0
        assert nd.session(10)["stats"]["rx_packets"] == 0
    finally:
        for d in (nd, fd):
            text = d.stop()
            assert "Traceback" not in text, text


def test_control_socket_refuses_hooks(hosts: tuple[Netns, Netns, Path]) -> None:
    """Nothing the control socket says may run a command: an add_session carrying a
    hook is refused in one line and nothing is created or run."""
    near, _, wd = hosts
    marker = wd / "ran"
    d = Daemon(near, wd, config(A, B, "off"), tag="near")
    try:
        cfg = {"tunnel_id": 1, "session_id": 11, "peer_session_id": 11, "liveness": "idle",
               "on_down": ["/usr/bin/touch", str(marker)]}  # fmt: skip
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(d.socket)
            s.sendall(json.dumps({"op": "add_session", "config": cfg}).encode() + b"\n")
            answer = json.loads(s.makefile().readline())
        refusal = "on_up/on_down hooks are taken from the config file only"
        assert answer == {"ok": False, "error": refusal}
        assert [x["session_id"] for x in d.sessions()] == [10]
        assert not marker.exists()
    finally:
        text = d.stop()
        assert "Traceback" not in text, text


def test_idle_goes_down_when_traffic_stops(hosts: tuple[Netns, Netns, Path], impl: str) -> None:
    """liveness idle: the far side's regular traffic (a ping every 0.2 s here) keeps our
    end up; after the far daemon is killed nothing arrives and the carrier goes."""
    near, far, wd = hosts
    fd = Daemon(far, wd, config(B, A, "off"), impl=impl, tag="far")
    nd = Daemon(near, wd, config(A, B, "idle"), impl=impl, tag="near")
    pinger = None
    try:
        _far_segment(far)
        near.ip("addr", "add", f"{L01['ipaddr']}/24", "dev", "l2tpeth0")
        near.ip("link", "set", "l2tpeth0", "up")
        pinger = far.popen("ping", "-i", "0.2", str(L01["ipaddr"]))
        assert wait_until(partial(_seen, nd), timeout=10), nd.log_text()
        time.sleep(INTERVAL * DEAD * 2)  # longer than the budget: still up
        live = liveness_of(nd)
        assert live["state"] == "up" and live["transitions"] == 0, live
        t0 = time.monotonic()
        _kill(fd)
        assert wait_until(lambda: carrier(near) == "0", timeout=INTERVAL * DEAD + 3, interval=0.05)
        took = time.monotonic() - t0
        assert took <= INTERVAL * DEAD + 1.0, f"NO-CARRIER after {took:.2f} s"
        print(f"\n[{impl}] idle: NO-CARRIER {took:.2f} s after SIGKILL")
    finally:
        if pinger is not None:
            pinger.kill()  # by PID
            pinger.communicate()
        for d in (nd, fd):
            text = d.stop()
            assert "Traceback" not in text, text
