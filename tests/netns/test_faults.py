"""Faults under a running pseudowire (issue 11, "What must exist" 2), on both data paths.

Two hosts joined by a veth pair, each running l2tpv3d from a config file with one UDP
tunnel of two sessions (l2tpeth0: 10.46.0.0/24, l2tpeth1: 10.47.0.0/24). Each test
breaks one thing while the pseudowire runs, checks what the daemon does meanwhile, and
that traffic resumes by itself afterwards; figures (restart to first reply, RSS, exit
time) are printed. Neither daemon may log a traceback.

Shown elsewhere: the peer restarted under ``seq both`` (test_resync.py), the interface
renamed, moved or its MTU changed (test_device.py), a tunnel configured before its local
address exists (test_startup.py). docs/operations.md section 3 lists them all.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.netns import Daemon, Netns, require_root, veth, wait_until, workdir
from tests.support.progs import prog

pytestmark = pytest.mark.root

A, B = "10.9.0.1", "10.9.0.2"
INNER = ("10.46.0.1", "10.46.0.2")  # l2tpeth0: sessions 10 <-> 20
INNER2 = ("10.47.0.1", "10.47.0.2")  # l2tpeth1: sessions 11 <-> 21


def site(local: str, remote: str, tid: int, ptid: int, ports: tuple[int, int],
         sessions: list[tuple[int, int]]) -> str:  # fmt: skip
    text = (
        f'[[tunnel]]\ntunnel_id = {tid}\npeer_tunnel_id = {ptid}\nlocal = "{local}"\n'
        f'remote = "{remote}"\nudp_sport = {ports[0]}\nudp_dport = {ports[1]}\n'
    )
    for sid, psid in sessions:
        text += f"\n  [[tunnel.session]]\n  session_id = {sid}\n  peer_session_id = {psid}\n"
    return text


def up(ns: Netns, dev: str, addr: str) -> None:
    """What an operator's up script does with a session's interface."""
    ns.sysctl(f"net.ipv6.conf.{dev}.disable_ipv6", "1")
    ns.ip("addr", "add", f"{addr}/24", "dev", dev)
    ns.ip("link", "set", dev, "up")


def taps(ns: Netns) -> set[str]:
    out = ns.run("ip", "-o", "link", "show").stdout
    names = {line.split(": ")[1].split("@")[0] for line in out.splitlines()}
    return {n for n in names if n.startswith("l2tpeth")}


def ping_within(ns: Netns, addr: str, seconds: float) -> float:
    """Seconds until one ping to ``addr`` is answered; fails after ``seconds``."""
    start = time.monotonic()
    while True:
        ok = ns.run("ping", "-c", "1", "-W", "0.3", addr, check=False).returncode == 0
        took = time.monotonic() - start
        if ok:
            return took
        assert took < seconds, f"no answer from {addr} within {seconds} s"


def no_loss(ns: Netns, addr: str) -> None:
    # -c with -w: exit status 1 unless all 10 replies arrive.
    ns.run("ping", "-c", "10", "-i", "0.05", "-w", "5", addr, timeout=30)


def tx_errors(d: Daemon, sid: int) -> int:
    return int(d.session(sid)["stats"]["tx_errors"])


def waiting(d: Daemon) -> tuple[bool, bool]:
    """`show tunnel` says it waits, and so does its JSON state."""
    text = d.cli("show", "tunnel").stdout
    state = d.tunnels()[0].get("state")
    return "Waiting for local address" in text, state == "waiting for local address"


def proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise LookupError(key)


def cpu_seconds(pid: int) -> float:
    """User + system time of every thread of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Wire:
    na: Netns
    nb: Netns
    wd: Path
    impl: str
    a: Daemon
    b: Daemon
    others: list[Daemon] = field(default_factory=list)

    def start_a(self) -> Daemon:
        return Daemon(self.na, self.wd, config=CONFIG_A, impl=self.impl, tag="a")

    def configure_a(self) -> None:
        up(self.na, "l2tpeth0", INNER[0])
        up(self.na, "l2tpeth1", INNER2[0])


CONFIG_A = site(A, B, 1, 2, (5000, 6000), [(10, 20), (11, 21)])
CONFIG_B = site(B, A, 2, 1, (6000, 5000), [(20, 10), (21, 11)])


def underlay(na: Netns, nb: Netns) -> None:
    veth(na, "eth0", nb, "eth0")
    na.ip("addr", "add", f"{A}/24", "dev", "eth0")
    nb.ip("addr", "add", f"{B}/24", "dev", "eth0")


@pytest.fixture
def wire(impl: str) -> Iterator[Wire]:
    require_root()
    with workdir() as wd:
        na, nb = Netns("f-a"), Netns("f-b")
        started: list[Daemon] = []
        w: Wire | None = None
        try:
            underlay(na, nb)
            started.append(Daemon(nb, wd, config=CONFIG_B, impl=impl, tag="b"))
            started.append(Daemon(na, wd, config=CONFIG_A, impl=impl, tag="a"))
            w = Wire(na, nb, wd, impl, started[1], started[0])
            up(nb, "l2tpeth0", INNER[1])
            up(nb, "l2tpeth1", INNER2[1])
            w.configure_a()
            na.ping(INNER[1], count=1)
            na.ping(INNER2[1], count=1)
            yield w
        finally:
            daemons = [*started, *(w.others if w is not None else [])]
            logs = [d.stop() for d in daemons]
            na.delete()
            nb.delete()
        for text in logs:
            assert "Traceback" not in text, text


def test_killed_and_restarted_from_its_config_file(wire: Wire) -> None:
    """kill -9, then the same `l2tpv3d -S PATH --config FILE`: the stale socket is
    replaced, the dead daemon's TAP devices went with it, and the sessions carry traffic
    again in under 2 s, counted from the restart to the first answered ping (the
    interface configured as soon as it appears, as an ExecStartPost script would)."""
    a = wire.a
    a.proc.kill()
    a.proc.wait()
    # Non-persistent TAPs: the kernel deletes them when the dead process's fds close.
    assert wait_until(lambda: not taps(wire.na), timeout=2), taps(wire.na)
    assert os.path.exists(a.socket)  # left behind: no clean-up ran
    # One shell in A's namespace: wait for l2tpeth0, configure it, ping until answered;
    # it prints the milliseconds it took. Started just before the daemon.
    script = (
        "s=$(date +%s%N); "
        "until ip link show l2tpeth0 >/dev/null 2>&1; do sleep 0.01; done; "
        "d=$(date +%s%N); echo $(( (d - s) / 1000000 )); "
        "sysctl -qw net.ipv6.conf.l2tpeth0.disable_ipv6=1; "
        f"ip addr add {INNER[0]}/24 dev l2tpeth0 && ip link set l2tpeth0 up && "
        f"until ping -c 1 -W 0.2 {INNER[1]} >/dev/null; do :; done; "
        "e=$(date +%s%N); echo $(( (e - s) / 1000000 ))"
    )
    operator = wire.na.popen("timeout", "20", "sh", "-c", script)
    try:
        a2 = Daemon(wire.na, wire.wd, config=CONFIG_A, impl=wire.impl, tag="a")
    except BaseException:
        operator.kill()
        operator.communicate()
        raise
    wire.others.append(a2)
    out, err = operator.communicate(timeout=30)
    assert operator.returncode == 0, (out, err, a2.log_text())
    appeared, took = (int(x) / 1000 for x in out.split()[-2:])
    print(
        f"{wire.impl}: restart to the first answered ping: {took:.2f} s "
        f"(l2tpeth0 after {appeared:.2f} s)"
    )
    assert a2.socket == a.socket
    assert f"removed the stale control socket {a.socket}" in a2.log_text()
    # The same devices as before, none left over (no l2tpeth2, l2tpeth3).
    assert taps(wire.na) == {"l2tpeth0", "l2tpeth1"}
    up(wire.na, "l2tpeth1", INNER2[0])
    no_loss(wire.na, INNER[1])
    no_loss(wire.na, INNER2[1])
    no_loss(wire.nb, INNER[0])
    # The bound, measured from the restart: the daemon starts, the interface is
    # configured, ARP resolves through the pseudowire.
    assert took < 2.0, took


def test_underlay_deleted_and_readded(wire: Wire) -> None:
    """The veth pair (and with it both local addresses) deleted under the pseudowire:
    the tunnels wait, sends fail as tx_errors; re-created with the same addresses, the
    traffic resumes by itself."""
    a, b = wire.a, wire.b
    before = tx_errors(a, 10)
    wire.na.ip("link", "del", "eth0")  # both ends of the pair go
    assert wait_until(lambda: waiting(a) == (True, True), timeout=3)
    assert wait_until(lambda: waiting(b) == (True, True), timeout=3)
    wire.na.run("ping", "-c", "3", "-i", "0.2", "-W", "1", INNER[1], check=False)
    assert wait_until(lambda: tx_errors(a, 10) > before, timeout=3), a.session(10)
    print(f"{wire.impl}: tx_errors while the underlay was gone: {tx_errors(a, 10) - before}")
    underlay(wire.na, wire.nb)
    took = ping_within(wire.na, INNER[1], 10.0)
    print(f"{wire.impl}: underlay back: first answer after {took:.2f} s")
    assert wait_until(lambda: waiting(a) == (False, False), timeout=3)
    assert wait_until(lambda: waiting(b) == (False, False), timeout=3)
    no_loss(wire.na, INNER[1])
    no_loss(wire.na, INNER2[1])
    no_loss(wire.nb, INNER[0])


def test_local_address_removed_and_readded(wire: Wire) -> None:
    """The tunnel's local address removed: `show` says the tunnel waits, sends fail as
    tx_errors; added again, the tunnel stops waiting and traffic resumes by itself."""
    a = wire.a
    before = tx_errors(a, 10)
    wire.na.ip("addr", "del", f"{A}/24", "dev", "eth0")
    assert wait_until(lambda: waiting(a) == (True, True), timeout=3)
    assert f"tunnel 1: waiting for local address {A}" in a.log_text()
    wire.na.run("ping", "-c", "3", "-i", "0.2", "-W", "1", INNER[1], check=False)
    assert wait_until(lambda: tx_errors(a, 10) > before, timeout=3), a.session(10)
    print(f"{wire.impl}: tx_errors while the address was gone: {tx_errors(a, 10) - before}")
    wire.na.ip("addr", "add", f"{A}/24", "dev", "eth0")
    took = ping_within(wire.na, INNER[1], 10.0)
    print(f"{wire.impl}: address back: first answer after {took:.2f} s")
    assert wait_until(lambda: waiting(a) == (False, False), timeout=3)
    assert f"tunnel 1: local address {A} is up" in a.log_text()
    no_loss(wire.na, INNER[1])
    no_loss(wire.na, INNER2[1])
    no_loss(wire.nb, INNER[0])


def test_tunnel_configured_before_a_route_to_the_peer(impl: str) -> None:
    """The peer's address (10.10.0.2, on its loopback) is not routed from A yet: the
    tunnel and its session are created all the same, A's sends fail as tx_errors (no
    traceback, no hang), and traffic flows as soon as the route is added."""
    require_root()
    remote = "10.10.0.2"
    with workdir() as wd:
        na, nb = Netns("r-a"), Netns("r-b")
        daemons: list[Daemon] = []
        try:
            underlay(na, nb)
            nb.ip("addr", "add", f"{remote}/32", "dev", "lo")
            cfg_b = site(remote, A, 2, 1, (6000, 5000), [(20, 10)])
            daemons.append(Daemon(nb, wd, config=cfg_b, impl=impl, tag="b"))
            up(nb, "l2tpeth0", INNER[1])
            assert "unreachable" in na.run("ip", "route", "get", remote, check=False).stderr
            a = Daemon(na, wd, config=site(A, remote, 1, 2, (5000, 6000), [(10, 20)]),
                       impl=impl, tag="a")  # fmt: skip
            daemons.append(a)
            assert [t["tunnel_id"] for t in a.tunnels()] == [1]
            assert [s["session_id"] for s in a.sessions()] == [10]
            up(na, "l2tpeth0", INNER[0])
            proc = na.run("ping", "-c", "3", "-i", "0.2", "-W", "1", INNER[1], check=False)
            assert proc.returncode != 0
            assert wait_until(lambda: tx_errors(a, 10) > 0, timeout=3), a.session(10)
            print(f"{impl}: tx_errors before the route: {tx_errors(a, 10)}")
            na.ip("route", "add", f"{remote}/32", "via", B)
            took = ping_within(na, INNER[1], 5.0)
            print(f"{impl}: route added: first answer after {took:.2f} s")
            no_loss(na, INNER[1])
            no_loss(nb, INNER[0])
        finally:
            logs = [d.stop() for d in daemons]
            na.delete()
            nb.delete()
    for text in logs:
        assert "Traceback" not in text, text


def test_tap_deleted_under_the_daemon(wire: Wire) -> None:
    """`ip link del` on a session's interface while the far end floods into it: the
    session goes, as the kernel's l2tp_eth deletes the session with its netdev; one log
    line; `show` no longer lists it; the other sessions and the daemon carry on, with no
    descriptor or thread left behind and no busy loop."""
    a, b = wire.a, wire.b
    pid = a.proc.pid
    fds, threads = len(os.listdir(f"/proc/{pid}/fd")), proc_status(pid, "Threads")
    a.cli("add", "session", "tunnel_id", "1", "session_id", "12", "peer_session_id", "22")
    b.cli("add", "session", "tunnel_id", "2", "session_id", "22", "peer_session_id", "12")
    wire.na.ip("link", "set", "l2tpeth2", "up")
    wire.nb.ip("link", "set", "l2tpeth2", "up")
    flood = wire.nb.popen(*prog("frame_flood"), "l2tpeth2", "64", "3")
    try:
        assert wait_until(lambda: a.session(12)["stats"]["rx_packets"] > 1000, timeout=5)
        wire.na.ip("link", "del", "l2tpeth2")
        assert wait_until(lambda: 12 not in {s["session_id"] for s in a.sessions()}, timeout=3)
        flood.communicate(timeout=10)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.communicate()
    assert sorted(s["session_id"] for s in a.sessions()) == [10, 11]
    assert "l2tpeth2" not in a.cli("show", "session").stdout
    lines = [ln for ln in a.log_text().splitlines() if "l2tpeth2" in ln or "session 12 " in ln]
    # Created, then deleted: one line for each.
    assert len(lines) == 2, lines
    assert lines[1] == (
        "l2tpv3d: INFO: session 12 in tunnel 1: deleted with its interface l2tpeth2"
    ), lines
    # Nothing left behind, nothing spinning once the flood is over.
    assert wait_until(lambda: len(os.listdir(f"/proc/{pid}/fd")) == fds, timeout=3)
    assert proc_status(pid, "Threads") == threads
    start = cpu_seconds(pid)
    time.sleep(2.0)
    used = cpu_seconds(pid) - start
    print(f"{wire.impl}: daemon CPU over 2 s after the TAP was deleted: {used:.2f} s")
    assert used < 0.5, used  # a spinning thread would take most of a core
    no_loss(wire.na, INNER[1])
    no_loss(wire.na, INNER2[1])
    # The session can be added again, with a new interface.
    a.cli("add", "session", "tunnel_id", "1", "session_id", "12", "peer_session_id", "22")
    assert "l2tpeth2" in taps(wire.na)


def test_peer_stopped_during_a_flood(wire: Wire) -> None:
    """SIGSTOP on the far daemon while this one forwards a 64-byte flood to it: this
    daemon survives and its memory stays flat while the peer is stopped; after SIGCONT
    the traffic resumes."""
    a, b = wire.a, wire.b
    pid = a.proc.pid
    flood = wire.na.popen(*prog("frame_flood"), "l2tpeth0", "64", "5")
    rss: list[int] = []
    try:
        assert wait_until(lambda: a.session(10)["stats"]["tx_packets"] > 1000, timeout=5)
        rss.append(proc_status(pid, "VmRSS"))
        os.kill(b.proc.pid, signal.SIGSTOP)
        try:
            sent = a.session(10)["stats"]["tx_packets"]
            for _ in range(12):
                time.sleep(0.25)
                rss.append(proc_status(pid, "VmRSS"))
            forwarded = a.session(10)["stats"]["tx_packets"] - sent
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        flood.communicate(timeout=15)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.communicate()
    print(
        f"{wire.impl}: {forwarded} frames forwarded in 3 s to the stopped peer; RSS (KiB) "
        f"before {rss[0]}, while stopped {min(rss[1:])}..{max(rss[1:])}"
    )
    assert a.proc.poll() is None and b.proc.poll() is None
    assert forwarded > 0  # the flood went on while the peer was stopped
    # Nothing queued per frame: a stopped peer costs this daemon no memory (generous
    # bound: 16 MiB over some 10^4..10^5 frames).
    assert max(rss) - rss[0] < 16 * 1024, rss
    took = ping_within(wire.na, INNER[1], 10.0)
    print(f"{wire.impl}: after SIGCONT: first answer after {took:.2f} s")
    no_loss(wire.na, INNER[1])
    no_loss(wire.nb, INNER[0])


def test_sigterm_during_bulk_traffic(wire: Wire) -> None:
    """SIGTERM while full-size frames flood both ways through the pseudowire: exit
    status 0 promptly, no traceback, the TAP devices and the control socket removed."""
    a = wire.a
    flood = wire.na.popen(*prog("frame_flood"), "l2tpeth0", "1400", "10")
    pings = wire.nb.popen("ping", "-f", "-s", "1400", "-w", "10", INNER[0])
    try:
        assert wait_until(lambda: a.session(10)["stats"]["tx_packets"] > 1000, timeout=5)
        assert wait_until(lambda: a.session(10)["stats"]["rx_packets"] > 200, timeout=5)
        start = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        rc = a.proc.wait(timeout=15)
        took = time.monotonic() - start
    finally:
        for p in (flood, pings):
            if p.poll() is None:
                p.kill()
            p.communicate()
    log = a.log_text()
    print(f"{wire.impl}: SIGTERM under traffic: exited {rc} after {took:.2f} s")
    assert rc == 0, log
    assert "Traceback" not in log, log
    assert not taps(wire.na)
    assert not os.path.exists(a.socket)
    assert took < 5.0, took
