"""l2tpv3d start-up with a config file: one tunnel that cannot come up costs only itself."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.netns import (
    Daemon,
    Netns,
    daemon_cmd,
    require_root,
    veth,
    wait_until,
    workdir,
)

pytestmark = pytest.mark.root

A, B = "10.5.0.1", "10.5.0.2"

TUNNELS = """
[[tunnel]]
tunnel_id = 1
peer_tunnel_id = 1
local = "{a}"
remote = "{b}"
udp_sport = 5000
udp_dport = 5000

  [[tunnel.session]]
  session_id = 10
  peer_session_id = 10

[[tunnel]]
tunnel_id = 2
peer_tunnel_id = 2
local = "{a}"
remote = "{b}"
udp_sport = 5001
udp_dport = 5001

  [[tunnel.session]]
  session_id = 20
  peer_session_id = 20

  [[tunnel.session]]
  session_id = 21
  peer_session_id = 21

[[tunnel]]
tunnel_id = 3
peer_tunnel_id = 3
local = "{a}"
remote = "{b}"
encap = "ip"

[[session]]
tunnel_id = 3
session_id = 30
peer_session_id = 30
"""


@pytest.fixture
def hosts() -> Iterator[tuple[Netns, Netns, Path]]:
    require_root()
    with workdir() as wd:
        ns, peer = Netns("st-a"), Netns("st-b")
        try:
            veth(ns, "eth0", peer, "eth0")
            peer.ip("addr", "add", f"{B}/24", "dev", "eth0")
            yield ns, peer, wd
        finally:
            ns.delete()
            peer.delete()


def _hold_udp_port(ns: Netns, addr: str, port: int) -> subprocess.Popen[str]:
    """Another program bound to addr:port in the namespace, until killed."""
    code = (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"s.bind(({addr!r}, {port}))\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = ns.popen(sys.executable, "-c", code)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_tunnel_that_cannot_start_costs_only_itself(
    hosts: tuple[Netns, Netns, Path], impl: str
) -> None:
    ns, _, wd = hosts
    ns.ip("addr", "add", f"{A}/24", "dev", "eth0")
    holder = _hold_udp_port(ns, A, 5001)  # tunnel 2's port is taken
    d = None
    try:
        d = Daemon(ns, wd, config=TUNNELS.format(a=A, b=B), impl=impl)
        assert d.proc.poll() is None
        assert sorted(t["tunnel_id"] for t in d.tunnels()) == [1, 3]
        assert sorted(s["session_id"] for s in d.sessions()) == [10, 30]
        errors = [line for line in d.log_text().splitlines() if ": ERROR: " in line]
        assert errors == [
            "l2tpv3d: ERROR: tunnel 2 not started (nor its sessions 20, 21): "
            f"udp_sport 5001 on {A} is already in use"
        ]
        # The port is free again: the tunnel can be added at run time.
        holder.kill()
        holder.communicate()
        d.cli("add", "tunnel", "tid", "2", "ptid", "2", "local", A, "remote", B,
              "udp_sport", "5001", "udp_dport", "5001")  # fmt: skip
        d.cli("add", "session", "tid", "2", "sid", "20", "psid", "20")
        assert sorted(s["session_id"] for s in d.sessions()) == [10, 20, 30]
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
        log = d.stop() if d is not None else ""
    assert "Traceback" not in log


def test_a_session_that_cannot_start_costs_only_itself(
    hosts: tuple[Netns, Netns, Path], impl: str
) -> None:
    ns, _, wd = hosts
    ns.ip("addr", "add", f"{A}/24", "dev", "eth0")
    # Session 21's interface name is taken by the underlay device.
    config = TUNNELS.format(a=A, b=B).replace(
        "  session_id = 21\n", '  session_id = 21\n  name = "eth0"\n'
    )
    d = Daemon(ns, wd, config=config, impl=impl)
    try:
        assert sorted(t["tunnel_id"] for t in d.tunnels()) == [1, 2, 3]
        assert sorted(s["session_id"] for s in d.sessions()) == [10, 20, 30]
        errors = [line for line in d.log_text().splitlines() if ": ERROR: " in line]
        assert len(errors) == 1, errors
        assert errors[0].startswith("l2tpv3d: ERROR: session 21 in tunnel 2 not started: ")
    finally:
        log = d.stop()
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda c: c.replace("tunnel_id = 3\n", "tunnel_id = 1\n", 1),
         "tunnel 1 is configured twice"),
        (lambda c: c.replace("session_id = 21", "session_id = 20"),
         "session 20 already exists in tunnel 2"),
        (lambda c: c.replace("tunnel_id = 3\nsession_id", "tunnel_id = 9\nsession_id"),
         "session 30: tunnel 9 does not exist"),
        (lambda c: c.replace('remote = "10.5.0.2"', 'remote = "224.0.0.1"', 1),
         'invalid remote "224.0.0.1": must be a unicast address'),
    ],
)  # fmt: skip
def test_an_inconsistent_file_still_exits_2(
    hosts: tuple[Netns, Netns, Path], change: Callable[[str], str], needle: str
) -> None:
    ns, _, wd = hosts
    ns.ip("addr", "add", f"{A}/24", "dev", "eth0")
    cfg = wd / "bad.toml"
    cfg.write_text(change(TUNNELS.format(a=A, b=B)))
    proc = subprocess.run(
        ["ip", "netns", "exec", ns.name, *daemon_cmd(), "-S", str(wd / "bad.sock"),
         "--config", str(cfg)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "INFO" not in line]
    assert len(errors) == 1, proc.stderr
    assert needle in errors[0]


# -- a tunnel configured before its local address exists ----------------------------------

WAITING = """
[[tunnel]]
tunnel_id = 1
peer_tunnel_id = 1
local = "{a}"
remote = "{b}"
encap = "{encap}"
udp_sport = 5000
udp_dport = 5000

  [[tunnel.session]]
  session_id = 10
  peer_session_id = 10
"""


def _peer(peer: Netns, wd: Path, a: str, b: str, encap: str, impl: str) -> Daemon:
    d = Daemon(peer, wd, impl=impl)
    d.cli("add", "tunnel", "tid", "1", "ptid", "1", "local", b, "remote", a, "encap", encap,
          "udp_sport", "5000", "udp_dport", "5000")  # fmt: skip
    d.cli("add", "session", "tid", "1", "sid", "10", "psid", "10")
    peer.ip("addr", "add", "192.168.77.2/24", "dev", "l2tpeth0")
    peer.ip("link", "set", "l2tpeth0", "up")
    return d


def _ping_within(ns: Netns, addr: str, seconds: float) -> float:
    """Seconds until one ping to ``addr`` is answered; fails after ``seconds``."""
    start = time.monotonic()
    while True:
        ok = ns.run("ping", "-c", "1", "-W", "0.3", addr, check=False).returncode == 0
        took = time.monotonic() - start
        if ok:
            return took
        assert took < seconds, f"no answer from {addr} within {seconds} s"


def _waiting(d: Daemon) -> tuple[bool, bool]:
    text = d.cli("show", "tunnel").stdout
    state = json.loads(d.cli("-j", "show", "tunnel").stdout)[0].get("state")
    return "Waiting for local address" in text, state == "waiting for local address"


@pytest.mark.parametrize("encap", ["udp", "ip"])
def test_tunnel_waits_for_its_local_address(
    hosts: tuple[Netns, Netns, Path], impl: str, encap: str
) -> None:
    ns, peer, wd = hosts
    daemons = [_peer(peer, wd, A, B, encap, impl)]
    try:
        # Before the fix: "local address 10.5.0.1 is not configured on this host", exit 2.
        d = Daemon(ns, wd, config=WAITING.format(a=A, b=B, encap=encap), impl=impl)
        daemons.append(d)
        assert [t["tunnel_id"] for t in d.tunnels()] == [1]
        assert [s["session_id"] for s in d.sessions()] == [10]
        assert _waiting(d) == (True, True)
        assert f"tunnel 1: waiting for local address {A}" in d.log_text()
        ns.ip("addr", "add", "192.168.77.1/24", "dev", "l2tpeth0")
        ns.ip("link", "set", "l2tpeth0", "up")
        ns.ip("addr", "add", f"{A}/24", "dev", "eth0")
        _ping_within(ns, "192.168.77.2", 2.0)
        assert wait_until(lambda: _waiting(d) == (False, False), timeout=2)
        assert f"tunnel 1: local address {A} is up" in d.log_text()
        # Removed again, the tunnel waits again (RTM_DELADDR).
        ns.ip("addr", "del", f"{A}/24", "dev", "eth0")
        assert wait_until(lambda: _waiting(d) == (True, True), timeout=2)
        ns.ip("addr", "add", f"{A}/24", "dev", "eth0")
        _ping_within(ns, "192.168.77.2", 2.0)
    finally:
        logs = [x.stop() for x in daemons]
    for log in logs:
        assert "Traceback" not in log, log


def test_tentative_ipv6_local_address(hosts: tuple[Netns, Netns, Path], impl: str) -> None:
    ns, peer, wd = hosts
    a6, b6 = "fd00:5::1", "fd00:5::2"
    peer.ip("addr", "add", f"{b6}/64", "dev", "eth0", "nodad")
    daemons = [_peer(peer, wd, a6, b6, "udp", impl)]
    try:
        # Duplicate address detection for about 4 s: the daemon starts meanwhile.
        ns.sysctl("net.ipv6.conf.eth0.accept_dad", "1")
        ns.sysctl("net.ipv6.conf.eth0.dad_transmits", "4")
        ns.ip("addr", "add", f"{a6}/64", "dev", "eth0")
        assert "tentative" in ns.ip("-6", "addr", "show", "dev", "eth0").stdout
        # Before the fix: "local address fd00:5::1 is not configured on this host", exit 2.
        d = Daemon(ns, wd, config=WAITING.format(a=a6, b=b6, encap="udp"), impl=impl)
        daemons.append(d)
        assert f"tunnel 1: waiting for local address {a6}" in d.log_text()
        if "tentative" in ns.ip("-6", "addr", "show", "dev", "eth0").stdout:
            assert _waiting(d) == (True, True)
        ns.ip("addr", "add", "192.168.77.1/24", "dev", "l2tpeth0")
        ns.ip("link", "set", "l2tpeth0", "up")
        assert wait_until(
            lambda: "tentative" not in ns.ip("-6", "addr", "show", "dev", "eth0").stdout,
            timeout=10,
        )
        _ping_within(ns, "192.168.77.2", 2.0)
        assert wait_until(lambda: _waiting(d) == (False, False), timeout=2)
    finally:
        logs = [x.stop() for x in daemons]
    for log in logs:
        assert "Traceback" not in log, log
