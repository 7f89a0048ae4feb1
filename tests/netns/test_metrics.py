"""``l2tpv3d --metrics``: a running daemon's scrape equals ``show -s -j`` taken with no
traffic in between, counter by counter, drop by drop; the offload state and the log line
of what a tunnel's options cost (issue 12 items 4 and 6); the endpoint binds before the
privilege drop and goes away on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from l2tpv3 import __version__
from tests.support.netns import (
    Daemon,
    Netns,
    daemon_cmd,
    require_root,
    tcp_transfer,
    veth,
    workdir,
)

pytestmark = pytest.mark.root

A, B = "10.9.0.1", "10.9.0.2"
PORT = 9464

# Run in the namespace: print the body of one HTTP GET (the test's own plain HTTP).
SCRAPE = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    sys.stdout.write(r.read().decode())
"""

# Run in the namespace: can anything be reached on this TCP address?
PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(2)
print("open" if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else "closed")
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(ns: Netns, host: str = "127.0.0.1", port: int = PORT) -> str:
    return str(ns.run(sys.executable, "-c", SCRAPE, f"http://{host}:{port}/metrics").stdout)


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def get(found: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in found, f"no {name}{labels} in the scrape"
    return found[key]


@pytest.fixture
def hosts() -> Iterator[tuple[Netns, Netns, Path]]:
    require_root()
    with workdir() as wd:
        na, nb = Netns("mx-a"), Netns("mx-b")
        try:
            veth(na, "veth0", nb, "veth0")
            for ns, addr in ((na, A), (nb, B)):
                # No IPv6 on the session interfaces: no router solicitations or MLD
                # reports moving the counters between the scrape and show.
                ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
                ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
                ns.ip("addr", "add", f"{addr}/24", "dev", "veth0")
            yield na, nb, wd
        finally:
            na.delete()
            nb.delete()


def _pseudowire(a: Daemon, b: Daemon, n: int, encap: str, *csum: str) -> str:
    """Tunnel and session ``n`` between a and b; returns a's session interface."""
    tid_a, tid_b, sid_a, sid_b = 10 + n, 20 + n, 100 + n, 200 + n
    udp_a = ["udp_sport", str(5000 + n), "udp_dport", str(6000 + n)] if encap == "udp" else []
    udp_b = ["udp_sport", str(6000 + n), "udp_dport", str(5000 + n)] if encap == "udp" else []
    a.cli("add", "tunnel", "tunnel_id", str(tid_a), "peer_tunnel_id", str(tid_b),
          "encap", encap, "local", A, "remote", B, *udp_a, *csum)  # fmt: skip
    b.cli("add", "tunnel", "tunnel_id", str(tid_b), "peer_tunnel_id", str(tid_a),
          "encap", encap, "local", B, "remote", A, *udp_b, *csum)  # fmt: skip
    a.cli("add", "session", "tunnel_id", str(tid_a), "session_id", str(sid_a),
          "peer_session_id", str(sid_b))  # fmt: skip
    b.cli("add", "session", "tunnel_id", str(tid_b), "session_id", str(sid_b),
          "peer_session_id", str(sid_a))  # fmt: skip
    dev_a, dev_b = a.session(sid_a)["interface"], b.session(sid_b)["interface"]
    a.ns.ip("addr", "add", f"192.168.{60 + n}.1/24", "dev", dev_a)
    b.ns.ip("addr", "add", f"192.168.{60 + n}.2/24", "dev", dev_b)
    a.ns.ip("link", "set", dev_a, "up")
    b.ns.ip("link", "set", dev_b, "up")
    return str(dev_a)


def _quiet_scrape(a: Daemon) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """A scrape between two equal ``show -s -j`` answers: nothing moved in between."""
    for _ in range(20):
        tunnels, sessions = a.tunnels(), a.sessions()
        text = scrape(a.ns)
        if a.tunnels() == tunnels and a.sessions() == sessions:
            return text, tunnels, sessions
        time.sleep(0.5)
    raise AssertionError("the counters kept moving: no quiet moment to compare")


def _during_traffic(a: Daemon, peer: Netns) -> None:
    """A scrape while pings flow: each counter lies between show -s -j taken just before
    and just after it (the scrape reads the live state, not a copy)."""
    flood = peer.popen("ping", "-q", "-c", "300", "-i", "0.01", "192.168.60.1")
    try:
        time.sleep(0.5)
        before = {s["session_id"]: s["stats"] for s in a.sessions()}
        found = samples(scrape(a.ns))
        after = {s["session_id"]: s for s in a.sessions()}
    finally:
        flood.communicate(timeout=60)
    assert after[100]["stats"]["rx_packets"] > before[100]["rx_packets"], "no traffic"
    for sid, s in after.items():
        sl = {"tunnel_id": str(s["tunnel_id"]), "session_id": str(sid),
              "ifname": s["interface"]}  # fmt: skip
        for name, value in s["stats"].items():
            got = get(found, f"l2tpv3_session_{name}_total", **sl)
            assert before[sid][name] <= got <= value, (sid, name)


def test_scrape_equals_show(hosts: tuple[Netns, Netns, Path], impl: str) -> None:
    na, nb, wd = hosts
    a = Daemon(na, wd, impl=impl, command=[*daemon_cmd(), "--metrics", f":{PORT}"])
    b = Daemon(nb, wd, impl=impl)
    try:
        assert f"metrics on http://127.0.0.1:{PORT}/metrics" in a.log_text()
        _pseudowire(a, b, 0, "udp")  # udp_csum off: the kernel's default
        _pseudowire(a, b, 1, "udp", "udp_csum", "on")
        _pseudowire(a, b, 2, "ip")
        for n in range(3):
            nb.ping(f"192.168.{60 + n}.1", count=3 + n)
        # Drops: a datagram from a stranger's port to tunnel 10.
        nb.run(sys.executable, "-c", "import socket; s = socket.socket(socket.AF_INET, "
               f"socket.SOCK_DGRAM); s.bind(('{B}', 7777)); "
               f"[s.sendto(bytes(16), ('{A}', 5000)) for _ in range(4)]")  # fmt: skip
        _during_traffic(a, nb)
        text, tunnels, sessions = _quiet_scrape(a)
    finally:
        log_a = a.stop()
        b.stop()
    assert a.proc.returncode == 0, log_a
    assert "Traceback" not in log_a, log_a
    found = samples(text)

    assert get(found, "l2tpv3_daemon_tunnels") == len(tunnels) == 3
    assert get(found, "l2tpv3_daemon_sessions") == len(sessions) == 3
    assert get(found, "l2tpv3_daemon_info", version=__version__, implementation=impl) == 1
    assert 0 < time.time() - get(found, "l2tpv3_daemon_start_time_seconds") < 300

    moved = 0
    for t in tunnels:
        tl = {"tunnel_id": str(t["tunnel_id"])}
        for name, value in t["stats"].items():
            assert get(found, f"l2tpv3_tunnel_{name}_total", **tl) == value, (tl, name)
            moved += value
        for reason, value in t["drops"].items():
            assert get(found, "l2tpv3_tunnel_drops_total", **tl, reason=reason) == value
        for kind in ("udp_gso", "udp_gro", "tap_tso"):
            got = get(found, "l2tpv3_tunnel_offload", **tl, offload=kind)
            assert got == int(t["offload"][kind]), (tl, kind)
    for s in sessions:
        sl = {"tunnel_id": str(s["tunnel_id"]), "session_id": str(s["session_id"]),
              "ifname": s["interface"]}  # fmt: skip
        for name, value in s["stats"].items():
            assert get(found, f"l2tpv3_session_{name}_total", **sl) == value, (sl, name)
        for reason, value in s["drops"].items():
            assert get(found, "l2tpv3_session_drops_total", **sl, reason=reason) == value
        assert get(found, "l2tpv3_session_mtu", **sl) == s["mtu"]
        assert s["stats"]["rx_packets"] >= 3 and s["stats"]["tx_packets"] >= 3
    # Nothing more than show has: one series per tunnel and session.
    assert sum(1 for name, _ in found if name == "l2tpv3_tunnel_rx_packets_total") == 3
    assert sum(1 for name, _ in found if name == "l2tpv3_session_rx_packets_total") == 3
    assert moved > 0
    by_id = {t["tunnel_id"]: t for t in tunnels}
    assert by_id[10]["drops"]["wrong_source"] == 4

    # Item 6: the offload state per tunnel, and the log line of what it costs.
    offload = {tid: t["offload"] for tid, t in by_id.items()}
    if impl == "cython":
        on = {"udp_gso": True, "udp_gro": True, "tap_tso": True}
        csum_off = {"limited_by": "udp_csum off", "lifted_by": "udp_csum on"}
        assert offload[10] == {**on, "udp_gso": False, **csum_off}
        assert offload[11] == {**on, "limited_by": None, "lifted_by": None}
        assert offload[12]["udp_gso"] is False and offload[12]["udp_gro"] is False
        assert offload[12]["limited_by"] == "encap ip"
        notes = [line for line in log_a.splitlines() if "rules out UDP GSO" in line
                 or "has no UDP GSO" in line]  # fmt: skip
        assert [line.split("tunnel ")[1].split(":")[0] for line in notes] == ["10", "12"], notes
        assert "udp_csum on lifts it" in notes[0] and "3.20/3.12 Gbit/s" in notes[0]
        assert "8.79/8.38 Gbit/s" in notes[1] and "encap udp with udp_csum on" in notes[1]
    else:
        for state in offload.values():
            assert state == {"udp_gso": False, "udp_gro": False, "tap_tso": False,
                             "limited_by": "pure-Python data path",
                             "lifted_by": state["lifted_by"]}  # fmt: skip
        assert "rules out UDP GSO" not in log_a

    # SIGTERM closed the endpoint with the rest.
    assert na.run(sys.executable, "-c", PROBE, "127.0.0.1", str(PORT)).stdout.strip() == "closed"


def test_bound_before_the_drop_served_after_it(hosts: tuple[Netns, Netns, Path]) -> None:
    """Port 443 needs CAP_NET_BIND_SERVICE: bound before the drop to nobody, and the
    serving thread, started after it, holds nothing more than the daemon's two."""
    na, _, wd = hosts
    cmd = [sys.executable, "-m", "l2tpv3.daemon", "--user", "nobody", "--metrics", f"{A}:443"]
    d = Daemon(na, wd, command=cmd, tag="mx-priv")
    try:
        text = scrape(na, A, 443)
        log = d.log_text()
        m = re.search(r"listening on .* pid (\d+),", log)
        assert m, log
        pid = int(m.group(1))
        threads = {}
        for task in os.listdir(f"/proc/{pid}/task"):
            status = Path(f"/proc/{pid}/task/{task}/status").read_text()
            eff = re.search(r"CapEff:\s*([0-9a-f]+)", status)
            assert eff
            threads[task] = int(eff[1], 16)
        # The main thread and the metrics server's (no data path thread: no tunnel).
        assert len(threads) >= 2, threads
        assert set(threads.values()) == {1 << 12 | 1 << 13}, threads
    finally:
        log = d.stop()
    assert "l2tpv3_daemon_tunnels 0.0" in text
    # Warned once: A is not a loopback address.
    assert log.count("not a loopback address") == 1, log
    assert "started before the capability drop" not in log and "Traceback" not in log, log


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("10.99.99.99:9464",
         "--metrics 10.99.99.99:9464: cannot listen: Cannot assign requested address"),
        ("9464", '--metrics "9464": expected ADDR:PORT'),
        ("[::1:9464", '--metrics "[::1:9464": write an IPv6 address in brackets'),
    ],
)  # fmt: skip
def test_bad_address_is_one_line_and_exit_2(
    hosts: tuple[Netns, Netns, Path], address: str, message: str
) -> None:
    na, _, wd = hosts
    sock = str(wd / "bad.sock")
    proc = subprocess.run(
        ["ip", "netns", "exec", na.name, *daemon_cmd(), "-S", sock, "--metrics", address],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if ": INFO: " not in line]
    assert len(errors) == 1 and errors[0].startswith(f"l2tpv3d: {message}"), proc.stderr
    assert not os.path.exists(sock)


def test_port_in_use_is_one_line(hosts: tuple[Netns, Netns, Path]) -> None:
    na, _, wd = hosts
    holder = Daemon(na, wd, command=[*daemon_cmd(), "--metrics", f":{PORT}"], tag="mx-1")
    try:
        proc = subprocess.run(
            ["ip", "netns", "exec", na.name, *daemon_cmd(), "-S", str(wd / "2.sock"),
             "--metrics", f"127.0.0.1:{PORT}"], capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        holder.stop()
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if ": INFO: " not in line]
    assert errors == [f"l2tpv3d: --metrics 127.0.0.1:{PORT}: cannot listen: Address already in use"]


def test_features_liveness_and_sas_equal_show(hosts: tuple[Netns, Netns, Path], impl: str) -> None:
    """What the daemon adds to the kernel's counters is scraped too: mss_clamped, the
    liveness state and its transitions, the tunnel's HELLO counters, and every SA's
    counters and drops, equal to ``show -s -j`` and ``show -s -j sa``."""
    na, nb, wd = hosts
    cmd = [*daemon_cmd(), "--state-dir"]
    a = Daemon(na, wd, impl=impl, command=[*cmd, str(wd / "sa"), "--metrics", f":{PORT}"])
    b = Daemon(nb, wd, impl=impl, command=[*cmd, str(wd / "sb")])
    try:
        for d, (local, remote, sport, dport, sid, psid) in (
            (a, (A, B, 5100, 6100, 100, 200)),
            (b, (B, A, 6100, 5100, 200, 100)),
        ):
            d.cli("add", "tunnel", "tunnel_id", "30", "peer_tunnel_id", "30", "local", local,
                  "remote", remote, "udp_sport", str(sport), "udp_dport", str(dport))  # fmt: skip
            d.cli("add", "session", "tunnel_id", "30", "session_id", str(sid),
                  "peer_session_id", str(psid), "mss_clamp", "1300", "liveness", "idle",
                  "interval", "0.5")  # fmt: skip
        for d, out_spi, in_spi in ((a, 0x5001, 0x5002), (b, 0x5002, 0x5001)):
            for direction, spi in (("out", out_spi), ("in", in_spi)):
                key = wd / f"mx-key-{d.ns.name}-{direction}"
                key.write_text("0x" + f"{spi:04x}" * 10 + "\n")
                key.chmod(0o600)
                d.cli("add", "sa", "tunnel_id", "30", "dir", direction, "spi", str(spi),
                      "aead", "rfc4106(gcm(aes))", "key", f"@{key}")  # fmt: skip
        for d, host in ((a, 1), (b, 2)):
            dev = d.session(100 if d is a else 200)["interface"]
            d.ns.ip("addr", "add", f"192.168.70.{host}/24", "dev", dev)
            d.ns.ip("link", "set", dev, "up")
        tcp_transfer(na, nb, "192.168.70.1", 256 * 1024, seed=7)
        # And from A: its outbound SA then seals data, not only ACKs (on the compiled
        # path GRO into the TAP coalesces what A receives, so it sends fewer ACKs).
        tcp_transfer(nb, na, "192.168.70.2", 256 * 1024, seed=8)
        for _ in range(20):
            sessions = a.sessions()
            sas = json.loads(a.cli("-j", "-s", "show", "sa").stdout)
            found = samples(scrape(a.ns))
            if a.sessions()[0]["stats"] == sessions[0]["stats"] and sas == json.loads(
                a.cli("-j", "-s", "show", "sa").stdout
            ):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the counters kept moving: no quiet moment to compare")
    finally:
        log_a = a.stop()
        b.stop()
    assert "Traceback" not in log_a, log_a
    s = sessions[0]
    sl = {"tunnel_id": "30", "session_id": "100", "ifname": s["interface"]}
    assert s["features"]["mss_clamped"] > 0
    assert get(found, "l2tpv3_session_mss_clamped_total", **sl) == s["features"]["mss_clamped"]
    live = s["liveness"]
    assert live["state"] == "up"
    assert get(found, "l2tpv3_session_liveness", **sl, state="up") == 1
    assert get(found, "l2tpv3_session_liveness_transitions_total", **sl) == live["transitions"]
    assert len(sas) == 2
    for sa in sas:
        labels = {"tunnel_id": "30", "dir": sa["dir"], "spi": f"0x{sa['spi']:08x}"}
        for name, v in sa["stats"].items():
            assert get(found, f"l2tpv3_sa_{name}_total", **labels) == v, (labels, name)
        for reason, v in sa["drops"].items():
            assert get(found, "l2tpv3_sa_drops_total", **labels, reason=reason) == v
    out = next(sa for sa in sas if sa["dir"] == "out")
    assert out["stats"]["tx_packets"] > 100
    assert "5001500150015001" not in str(found)
