"""Least privilege (docs/operations.md): after start-up l2tpv3d keeps CAP_NET_ADMIN and
CAP_NET_RAW only, with no_new_privs, as root or as ``--user``; it still creates sessions
in both encapsulations and carries traffic, and it can no longer do what root could.
Also sd_notify from a running daemon (READY=1, WATCHDOG=1, STOPPING=1)."""

from __future__ import annotations

import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import Daemon, Netns, require_root, veth, wait_until, workdir

pytestmark = pytest.mark.root

CAP_NET_BIND_SERVICE = 1 << 10
CAP_NET_ADMIN = 1 << 12
CAP_NET_RAW = 1 << 13
CAP_DAC_OVERRIDE = 1 << 1
CAP_SYS_ADMIN = 1 << 21
NOBODY = 65534
TUN = "/dev/net/tun"
A, B = "10.8.0.1", "10.8.0.2"


def _cmd(*extra: str) -> list[str]:
    return [sys.executable, "-m", "l2tpv3.daemon", *extra]


def _pid(d: Daemon) -> int:
    """The daemon's own pid, as it logs it (``ip netns exec`` and shims exec it)."""
    assert wait_until(lambda: "data path)" in d.log_text())
    m = re.search(r"listening on .* pid (\d+),", d.log_text())
    assert m, d.log_text()
    return int(m.group(1))


def _status(pid: int, task: str | None = None) -> dict[str, str]:
    path = f"/proc/{pid}/status" if task is None else f"/proc/{pid}/task/{task}/status"
    out = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _check_dropped(pid: int, uid: int, caps: int = CAP_NET_ADMIN | CAP_NET_RAW) -> None:
    """Every thread of the daemon (capabilities are per thread): only ``caps``."""
    tasks = os.listdir(f"/proc/{pid}/task")
    assert tasks
    for task in tasks:
        st = _status(pid, task)
        for key in ("CapEff", "CapPrm", "CapBnd"):
            assert int(st[key], 16) == caps, (task, key, st[key])
        assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0
        assert st["NoNewPrivs"] == "1", task
        assert st["Uid"].split() == [str(uid)] * 4, st["Uid"]
        eff = int(st["CapEff"], 16)
        assert not eff & (CAP_SYS_ADMIN | CAP_DAC_OVERRIDE)


@pytest.fixture
def hosts() -> Iterator[tuple[Netns, Netns, Path]]:
    """Two namespaces; /dev/net/tun readable and writable by all, as udev makes it on
    Debian, Ubuntu and Fedora (some containers have it 0600: its mode is restored)."""
    require_root()
    mode = os.stat(TUN).st_mode & 0o777
    with workdir() as wd:
        if mode & 0o006 != 0o006:
            os.chmod(TUN, mode | 0o666)
        na, nb = Netns("pv-a"), Netns("pv-b")
        try:
            veth(na, "veth0", nb, "veth0")
            na.ip("addr", "add", f"{A}/24", "dev", "veth0")
            nb.ip("addr", "add", f"{B}/24", "dev", "veth0")
            yield na, nb, wd
        finally:
            na.delete()
            nb.delete()
            os.chmod(TUN, mode)


def test_user_nobody_carries_both_encapsulations(
    hosts: tuple[Netns, Netns, Path], impl: str
) -> None:
    """(a) as nobody with two capabilities, sessions over UDP and IP carry pings; (b) it
    cannot do what root could: bind a UDP port below 1024, or remove its control
    socket from the root-owned 0700 directory it was bound in."""
    na, nb, wd = hosts
    a = Daemon(na, wd, impl=impl, command=_cmd("--user", "nobody"), tag="pv-a")
    b = Daemon(nb, wd, impl=impl, tag="pv-b")
    logs = ""
    try:
        pid = _pid(a)
        _check_dropped(pid, NOBODY)
        _check_dropped(_pid(b), 0)  # without --user: root's uid, the same two capabilities
        for n, encap in enumerate(("udp", "ip")):
            tid_a, tid_b, sid_a, sid_b = 10 + n, 20 + n, 100 + n, 200 + n
            udp_a = ["udp_sport", "5001", "udp_dport", "5002"] if encap == "udp" else []
            udp_b = ["udp_sport", "5002", "udp_dport", "5001"] if encap == "udp" else []
            a.cli("add", "tunnel", "tunnel_id", str(tid_a), "peer_tunnel_id", str(tid_b),
                  "encap", encap, "local", A, "remote", B, *udp_a)  # fmt: skip
            b.cli("add", "tunnel", "tunnel_id", str(tid_b), "peer_tunnel_id", str(tid_a),
                  "encap", encap, "local", B, "remote", A, *udp_b)  # fmt: skip
            a.cli("add", "session", "tunnel_id", str(tid_a), "session_id", str(sid_a),
                  "peer_session_id", str(sid_b))  # fmt: skip
            b.cli("add", "session", "tunnel_id", str(tid_b), "session_id", str(sid_b),
                  "peer_session_id", str(sid_a))  # fmt: skip
            dev_a, dev_b = a.session(sid_a)["interface"], b.session(sid_b)["interface"]
            na.ip("addr", "add", f"192.168.{50 + n}.1/24", "dev", dev_a)
            nb.ip("addr", "add", f"192.168.{50 + n}.2/24", "dev", dev_b)
            na.ip("link", "set", dev_a, "up")
            nb.ip("link", "set", dev_b, "up")
            na.ping(f"192.168.{50 + n}.2")
            nb.ping(f"192.168.{50 + n}.1")
            assert a.session(sid_a)["stats"]["rx_packets"] >= 3
        # The data path threads started since the drop have no more than the main thread.
        _check_dropped(pid, NOBODY)
        # (b) Root could bind UDP port 999 (CAP_NET_BIND_SERVICE): this daemon cannot.
        r = a.cli("add", "tunnel", "tunnel_id", "30", "peer_tunnel_id", "40", "encap", "udp",
                  "local", A, "remote", B, "udp_sport", "999", "udp_dport", "999",
                  check=False)  # fmt: skip
        assert r.returncode != 0 and "ermission denied" in r.stderr, r
        assert all(t["tunnel_id"] != 30 for t in a.tunnels())
        assert a.socket and os.stat(a.socket).st_uid == NOBODY
    finally:
        logs = a.stop()
        b.stop()
    # Root could remove the socket from the root-only directory; nobody cannot, and says so.
    assert oct(os.stat(wd).st_mode & 0o777) == "0o700"
    assert "will stay behind at exit" in logs and "left the control socket" in logs, logs
    assert os.path.exists(a.socket)
    assert "Traceback" not in logs, logs


def test_low_port_in_config_keeps_bind_service(hosts: tuple[Netns, Netns, Path]) -> None:
    """A config tunnel on a port below 1024 keeps CAP_NET_BIND_SERVICE, nothing more."""
    na, _, wd = hosts
    config = f"""
[[tunnel]]
tunnel_id = 1
peer_tunnel_id = 2
local = "{A}"
remote = "{B}"
udp_sport = 701
udp_dport = 701
"""
    d = Daemon(na, wd, config=config, command=_cmd("--user", "nobody"), tag="pv-low")
    try:
        _check_dropped(_pid(d), NOBODY, CAP_NET_ADMIN | CAP_NET_RAW | CAP_NET_BIND_SERVICE)
        assert [t["tunnel_id"] for t in d.tunnels()] == [1]
    finally:
        log = d.stop()
    assert "CAP_NET_BIND_SERVICE" in log and "Traceback" not in log


def test_sd_notify_ready_watchdog_stopping(hosts: tuple[Netns, Netns, Path]) -> None:
    """(c) The whole daemon, as nobody, sending to a socket the test binds (in a
    directory nobody may enter, mode 0777 as systemd's own notify socket)."""
    na, _, wd = hosts
    with tempfile.TemporaryDirectory(prefix="l2tpv3-notify-") as nd:
        os.chmod(nd, 0o755)
        path = os.path.join(nd, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            os.chmod(path, 0o777)
            sock.settimeout(5)
            env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000")
            d = Daemon(na, wd, command=_cmd("--user", "nobody"), tag="pv-notify", env=env)
            try:
                first = sock.recv(4096).decode()
                assert first.startswith("READY=1\n") and "STATUS=listening on" in first
                start = time.monotonic()
                beats = [sock.recv(4096) for _ in range(4)]
                assert set(beats) == {b"WATCHDOG=1"}
                assert 0.2 <= time.monotonic() - start <= 2
            finally:
                log = d.stop()
            msgs = []
            sock.settimeout(1)
            while True:
                try:
                    msgs.append(sock.recv(4096))
                except TimeoutError:
                    break
            assert msgs and msgs[-1] == b"STOPPING=1", msgs
    assert "Traceback" not in log
