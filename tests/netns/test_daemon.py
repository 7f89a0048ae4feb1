"""l2tpv3d as a process: config file at start, control socket, clean stop on signals."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2tpv3.constants import IPPROTO_L2TP
from tests.support.netns import Daemon, Netns, daemon_cmd, require_root, veth, wait_until, workdir

pytestmark = pytest.mark.root

SITE = """
[[tunnel]]
tunnel_id = 1000
peer_tunnel_id = 2000
local = "{local}"
remote = "{remote}"
udp_sport = 5000
udp_dport = 6000

  [[tunnel.session]]
  session_id = 3000
  peer_session_id = 4000

  [[tunnel.session]]
  session_id = 3001
  peer_session_id = 4001
  name = "pw-dc2"
  cookie = "014d3636deadbeef"

[[tunnel]]
tunnel_id = 7
peer_tunnel_id = 8
local = "{local}"
remote = "{remote}"
encap = "ip"

[[session]]
tunnel_id = 7
session_id = 70
peer_session_id = 80
l2spec_type = "none"
"""


@pytest.fixture
def host() -> Iterator[tuple[Netns, Path]]:
    require_root()
    with workdir() as wd:
        ns, peer = Netns("d-a"), Netns("d-b")
        try:
            veth(ns, "eth0", peer, "eth0")
            ns.ip("addr", "add", "10.5.0.1/24", "dev", "eth0")
            peer.ip("addr", "add", "10.5.0.2/24", "dev", "eth0")
            yield ns, wd
        finally:
            ns.delete()
            peer.delete()


def _links(ns: Netns) -> set[str]:
    out = ns.run("ip", "-o", "link", "show").stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_config_file_and_clean_stop(
    host: tuple[Netns, Path], sig: signal.Signals, impl: str
) -> None:
    ns, wd = host
    d = Daemon(ns, wd, config=SITE.format(local="10.5.0.1", remote="10.5.0.2"), impl=impl)
    try:
        assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o600
        assert {"l2tpeth0", "pw-dc2", "l2tpeth1"} <= _links(ns)
        sessions = {s["session_id"]: s for s in d.sessions()}
        assert sessions[3000]["interface"] == "l2tpeth0"
        assert sessions[3001]["cookie"] == "014d3636deadbeef"
        assert sessions[3001]["mtu"] == 1500 - 20 - 8 - 4 - 4 - 8 - 4 - 14
        assert sessions[70]["mtu"] == 1500 - 20 - 4 - 14
        # Random, locally administered, unicast MACs, as l2tp_eth's eth_hw_addr_random.
        macs = {ns.run("cat", f"/sys/class/net/{dev}/address").stdout.strip()
                for dev in ("l2tpeth0", "l2tpeth1", "pw-dc2")}  # fmt: skip
        assert len(macs) == 3
        for mac in macs:
            assert int(mac.split(":")[0], 16) & 0x03 == 0x02, mac
        # `ip link del` on a session's interface deletes the session, as in the kernel.
        ns.ip("link", "del", "pw-dc2")
        assert wait_until(lambda: 3001 not in {s["session_id"] for s in d.sessions()})
        # Sessions can still be changed at run time next to the configured ones.
        d.cli("add", "session", "tunnel_id", "1000", "session_id", "3002", "peer_session_id",
              "4002")  # fmt: skip
        assert "l2tpeth2" in _links(ns)
    finally:
        d.proc.send_signal(sig)
        d.proc.wait(timeout=10)
        log = d.stop()
    assert d.proc.returncode == 0, log
    assert "Traceback" not in log
    assert not {"l2tpeth0", "l2tpeth1", "l2tpeth2", "pw-dc2"} & _links(ns)
    assert not os.path.exists(d.socket)


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("[[tunnel]]\ntunnel_id = 1\n", 'argument "peer_tunnel_id" is required'),
        (SITE.format(local="10.5.0.1", remote="10.5.0.2").replace("3001", "3000"),
         "session 3000 already exists in tunnel 1000"),
        (SITE.format(local="10.5.0.1", remote="10.5.0.1"), "must not be the local address"),
    ],
)  # fmt: skip
def test_bad_config_is_one_line_and_leaves_nothing(
    host: tuple[Netns, Path], config: str, needle: str
) -> None:
    ns, wd = host
    cfg = wd / "bad.toml"
    cfg.write_text(config)
    sock = str(wd / "bad.sock")
    proc = subprocess.run(
        ["ip", "netns", "exec", ns.name, *daemon_cmd(), "-S", sock, "--config", str(cfg)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "INFO" not in line]
    assert len(errors) == 1, proc.stderr
    assert needle in errors[0]
    assert not any(name.startswith("l2tpeth") for name in _links(ns))
    assert not os.path.exists(sock)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], 'invalid batch "0": 1..1024'),
        (["--batch", "many"], 'invalid batch "many": 1..1024'),
        (["--rcvbuf", "1k"], 'invalid size "1k": 4K..1G bytes'),
        (["--sndbuf", "2G"], 'invalid size "2G": 4K..1G bytes'),
    ],
)
def test_bad_tuning_options_are_one_line(args: list[str], message: str) -> None:
    proc = subprocess.run([*daemon_cmd(), "-S", "/nonexistent/x.sock", *args],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tuning_options_parse() -> None:
    from l2tpv3.daemon.main import parse_batch as _batch
    from l2tpv3.daemon.main import parse_size as _size

    assert _size("4M") == 4 << 20
    assert _size("512k") == 512 << 10
    assert _size("65536") == 65536
    assert _batch("1024") == 1024


def send_l2tp_ip(source: str, dest: str, session_id: int) -> None:
    """One L2TPv3-over-IP data packet (session ID, no cookie, a frame) from ``source``;
    run in the peer's namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_L2TP) as s:
        s.bind((source, 0))
        s.sendto(session_id.to_bytes(4, "big") + bytes(60), (dest, 0))


@pytest.fixture
def pair() -> Iterator[tuple[Netns, Netns, Path]]:
    require_root()
    with workdir() as wd:
        ns, peer = Netns("o-a"), Netns("o-b")
        try:
            veth(ns, "eth0", peer, "eth0")
            ns.ip("addr", "add", "10.5.0.1/24", "dev", "eth0")
            for addr in ("10.5.0.2", "10.5.0.3", "10.5.0.4"):
                peer.ip("addr", "add", f"{addr}/24", "dev", "eth0")
            yield ns, peer, wd
        finally:
            ns.delete()
            peer.delete()


def test_ip_encap_ownership(pair: tuple[Netns, Netns, Path], impl: str) -> None:
    """Two IP-encap tunnels on one local address: session IDs are unique across them,
    and each datagram is counted by exactly one of them."""
    ns, peer, wd = pair
    d = Daemon(ns, wd, impl=impl)
    repo = str(Path(__file__).resolve().parents[2])

    def send(source: str, session_id: int) -> None:
        code = (
            f"import sys; sys.path.insert(0, {repo!r}); "
            "from tests.netns.test_daemon import send_l2tp_ip; "
            f"send_l2tp_ip({source!r}, '10.5.0.1', {session_id})"
        )
        peer.run(sys.executable, "-c", code)

    def drops() -> dict[int, dict[str, int]]:
        return {t["tunnel_id"]: t["drops"] for t in d.tunnels()}

    def stats() -> dict[int, dict[str, int]]:
        return {t["tunnel_id"]: t["stats"] for t in d.tunnels()}

    try:
        for tid, remote in ((1, "10.5.0.2"), (2, "10.5.0.3")):
            d.cli("add", "tunnel", "tunnel_id", str(tid), "peer_tunnel_id", str(tid),
                  "encap", "ip", "local", "10.5.0.1", "remote", remote)  # fmt: skip
        d.cli("add", "session", "tunnel_id", "1", "session_id", "10", "peer_session_id", "10",
              "l2spec_type", "none")  # fmt: skip
        taken = d.cli("add", "session", "tunnel_id", "2", "session_id", "10",
                      "peer_session_id", "10", check=False)  # fmt: skip
        assert taken.returncode == 2
        assert taken.stderr == (
            "Error: session 10 already exists in tunnel 1 "
            "(IP-encap session IDs are unique per host)\n"
        )
        # From tunnel 1's peer: tunnel 1's session gets it, tunnel 2 ignores its copy.
        send("10.5.0.2", 10)
        assert wait_until(lambda: d.session(10)["stats"]["rx_packets"] == 1)
        # Each datagram is counted once (docs/protocol.md 5.1): tunnel 1's session ID
        # from tunnel 2's peer or a stranger is wrong_source at tunnel 1; nobody's ID
        # from tunnel 2's peer is unknown_session at tunnel 2, from a stranger
        # wrong_source at the lowest tunnel ID, 1.
        send("10.5.0.3", 10)
        send("10.5.0.4", 10)
        send("10.5.0.3", 99)
        send("10.5.0.4", 99)
        assert wait_until(lambda: sum(t["rx_invalid"] for t in stats().values()) == 4)
        time.sleep(0.2)
        assert drops()[1]["wrong_source"] == 3 and stats()[1]["rx_invalid"] == 3
        assert drops()[2]["unknown_session"] == 1 and stats()[2]["rx_invalid"] == 1
        assert d.session(10)["stats"]["rx_packets"] == 1
        # A deleted session's ID is free for the other tunnel.
        d.cli("del", "session", "tunnel_id", "1", "session_id", "10")
        d.cli("add", "session", "tunnel_id", "2", "session_id", "10", "peer_session_id", "10",
              "l2spec_type", "none")  # fmt: skip
        d.cli("del", "tunnel", "tunnel_id", "2")
        d.cli("add", "session", "tunnel_id", "1", "session_id", "10", "peer_session_id", "10",
              "l2spec_type", "none")  # fmt: skip
    finally:
        log = d.stop()
    assert "Traceback" not in log
