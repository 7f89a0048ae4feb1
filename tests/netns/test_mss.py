"""The bridging seed (linux-l2tp-ethernet-pseudowires.md) without iptables: two hosts
behind bridges at MTU 1500, the pseudowire's l2tpeth0 at 1446 in each bridge.

    host01 (eth0 1500) -- br0 [eth1 + l2tpeth0 1446] tun01 ==udp== tun02 [..] -- host02

With ``mss_clamp auto`` on tun01's session only (the other end could be a kernel peer),
the SYN host02 receives carries MSS 1406 and the SYN-ACK host01 receives too; a 50 MB
transfer and an ssh-like exchange complete. With clamping off (the default), full-size
segments do not fit the pseudowire and the bridge drops them: both stall, which is shown
within a bounded time. The hosts are on a "wire": no TSO/GSO on their NICs, no GRO on
the bridge ports, so frames are at most MTU + 14 bytes, as between real machines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import pytest

from interop.netns import daemon_cmd
from l2tpv3.io import datapath
from tests.support.netns import Daemon, Netns, require_root, veth, workdir
from tests.support.progs import prog

pytestmark = pytest.mark.root

H1, H2 = "192.168.0.1", "192.168.0.4"
H1_6, H2_6 = "fd00:168::1", "fd00:168::4"
SIZE = 50 * 1024 * 1024
STALL_SECONDS = 8.0


class Seed:
    def __init__(self, h1: Netns, h2: Netns, t1: Daemon, t2: Daemon) -> None:
        self.h1, self.h2, self.t1, self.t2 = h1, h2, t1, t2
        self.clamp = ""

    def sessions(self, clamp: str) -> None:
        """(Re)create the seed's sessions, tun01's with ``mss_clamp clamp``, bridged."""
        if clamp == self.clamp:
            return
        for d, (tid, sid, psid) in ((self.t1, (1000, 3000, 4000)), (self.t2, (2000, 4000, 3000))):
            d.cli("del", "session", "tunnel_id", str(tid), "session_id", str(sid), check=False)
            extra = ["mss_clamp", clamp] if d is self.t1 else []
            d.cli("add", "session", "tunnel_id", str(tid), "session_id", str(sid),
                  "peer_session_id", str(psid), *extra)  # fmt: skip
            d.ns.ip("link", "set", "l2tpeth0", "master", "br0")
            d.ns.ip("link", "set", "l2tpeth0", "up")
            assert d.session(sid)["mtu"] == 1446
        self.clamp = clamp
        # The bridges learn and forward (STP is off): wait until host01 reaches host02.
        self.h1.run("ping", "-c", "1", "-W", "5", H2, timeout=30)


@pytest.fixture(scope="module")
def seed(impl: str) -> Iterator[Seed]:
    with _seed_lab("mss", impl, []) as lab:
        yield lab


@pytest.fixture(scope="module")
def seed_no_offload() -> Iterator[Seed]:
    """The C engine without TAP offloads (l2tpv3d --no-offload): frames read one by one,
    full checksums, the engine's other TAP-to-wire branch."""
    try:
        datapath.choose("cython")
    except datapath.ImplementationUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    with _seed_lab("mssn", "cython", ["--no-offload"]) as lab:
        yield lab


@contextlib.contextmanager
def _seed_lab(tag: str, impl: str, args: list[str]) -> Iterator[Seed]:
    require_root()
    with workdir() as wd:
        h1, t1, t2, h2 = (Netns(f"{tag}-{n}") for n in ("h1", "t1", "t2", "h2"))
        daemons: list[Daemon] = []
        try:
            veth(h1, "eth0", t1, "eth1")
            veth(t1, "wan", t2, "wan")
            veth(t2, "eth1", h2, "eth0")
            for host, addr, addr6 in ((h1, H1, H1_6), (h2, H2, H2_6)):
                host.ip("addr", "add", f"{addr}/24", "dev", "eth0")
                host.add_addrs("eth0", f"{addr6}/64")
                host.run("ethtool", "-K", "eth0", "tso", "off", "gso", "off")
            t1.ip("addr", "add", "1.1.1.2/30", "dev", "wan")
            t2.ip("addr", "add", "1.1.1.1/30", "dev", "wan")
            for t in (t1, t2):
                t.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
                t.run("ethtool", "-K", "eth1", "gro", "off", "tso", "off", "gso", "off")
                t.ip("link", "add", "br0", "type", "bridge", "stp_state", "0")
                t.ip("link", "set", "eth1", "master", "br0")
                t.ip("link", "set", "br0", "up")
            command = [*daemon_cmd(), *args]
            daemons.append(Daemon(t1, wd, impl=impl, command=command))
            daemons.append(Daemon(t2, wd, impl=impl, command=command))
            d1, d2 = daemons
            d1.cli("add", "tunnel", "tunnel_id", "1000", "peer_tunnel_id", "2000", "encap", "udp",
                   "local", "1.1.1.2", "remote", "1.1.1.1", "udp_sport", "6000",
                   "udp_dport", "5000")  # fmt: skip
            d2.cli("add", "tunnel", "tunnel_id", "2000", "peer_tunnel_id", "1000", "encap", "udp",
                   "local", "1.1.1.1", "remote", "1.1.1.2", "udp_sport", "5000",
                   "udp_dport", "6000")  # fmt: skip
            yield Seed(h1, h2, d1, d2)
        finally:
            logs = [d.stop() for d in daemons]
            for ns in (h1, t1, t2, h2):
                ns.delete()
            for text in logs:
                assert "Traceback" not in text, text


def _captured(seed: Seed, run: object) -> tuple[list[str], list[str]]:
    """SYNs seen by host02 and SYN-ACKs seen by host01 while ``run()`` runs."""
    caps = [
        ns.popen(*prog("mss_probe"), "capture", "eth0", "5001", "in") for ns in (seed.h2, seed.h1)
    ]
    try:
        for c in caps:
            assert c.stdout is not None
            assert c.stdout.readline().strip() == "ready"
        run()  # type: ignore[operator]
    finally:
        for c in caps:
            c.send_signal(signal.SIGINT)
        outs = [c.communicate(timeout=30)[0].split("\n") for c in caps]
    syns = [line for line in outs[0] if line.startswith("syn ")]
    synacks = [line for line in outs[1] if line.startswith("synack ")]
    return syns, synacks


def _exchange(seed: Seed, mode: str, arg: int, seconds: float, to: str = H2
              ) -> tuple[str, str, float]:  # fmt: skip
    """Run one client/server exchange host01 -> host02: (server line, client line, s)."""
    srv = seed.h2.popen(*prog("mss_probe"), "server", to, "5001", str(seconds))
    try:
        assert srv.stdout is not None
        assert srv.stdout.readline().strip() == "ready"
        start = time.monotonic()
        cli = seed.h1.run(*prog("mss_probe"), mode, to, "5001", str(arg), str(seconds),
                          timeout=seconds + 30).stdout.strip()  # fmt: skip
        out, _ = srv.communicate(timeout=seconds + 30)
        elapsed = time.monotonic() - start
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    return out.strip(), cli, elapsed


def test_mss_clamp_auto_transfer_and_chat(seed: Seed, impl: str) -> None:
    seed.sessions("auto")
    before = seed.t1.session(3000)["features"]["mss_clamped"]
    result: dict[str, tuple[str, str, float]] = {}

    def bulk() -> None:
        result["bulk"] = _exchange(seed, "bulk", SIZE, 120)

    syns, synacks = _captured(seed, bulk)
    # What host02 received: the SYN host01 sent with 1460, lowered by tun01 on its way
    # to the wire; the SYN-ACK host02 sent with 1460, lowered by tun01 on its way in.
    assert syns == ["syn 1406 csum-ok"], syns
    assert synacks == ["synack 1406 csum-ok"], synacks
    server, client, secs = result["bulk"]
    words = server.split()
    assert words[:2] == ["done", str(SIZE)], (server, client)
    import hashlib
    import random

    assert words[2] == hashlib.sha256(random.Random(1).randbytes(SIZE)).hexdigest()
    print(f"\n[{impl}] mss_clamp auto: 50 MB in {secs:.1f} s ({SIZE * 8 / secs / 1e6:.0f} Mbit/s)")
    server, client, secs = _exchange(seed, "chat", 200, 60)
    assert client == "done 200", (server, client)
    print(f"[{impl}] mss_clamp auto: 200 ssh-like rounds in {secs:.1f} s")
    state = seed.t1.session(3000)
    assert state["mss_clamp"] == "auto" and state["mss_ipv4"] == 1406
    # Two connections, each a SYN out and a SYN-ACK in.
    assert state["features"]["mss_clamped"] - before == 4


def test_without_clamping_tcp_stalls(seed: Seed, impl: str) -> None:
    seed.sessions("off")
    result: dict[str, tuple[str, str, float]] = {}

    def bulk() -> None:
        result["bulk"] = _exchange(seed, "bulk", SIZE, STALL_SECONDS)

    syns, synacks = _captured(seed, bulk)
    assert syns == ["syn 1460 csum-ok"], syns
    assert synacks == ["synack 1460 csum-ok"], synacks
    server, client, _ = result["bulk"]
    # Full-size segments (1514-byte frames) do not fit l2tpeth0 (1446 + 14): the bridge
    # drops every one, so not even the first reaches host02 within the time allowed.
    assert server.split()[0] == "stalled", server
    assert int(server.split()[1]) < SIZE // 100
    server, client, _ = _exchange(seed, "chat", 200, STALL_SECONDS)
    # The short requests and answers cross; the first 20 kB answer never does.
    assert client.startswith("stalled"), (server, client)
    print(f"\n[{impl}] mss_clamp off: bulk {server!r}, chat {client!r} after {STALL_SECONDS} s")


def test_mss_clamp_ipv6_and_mtu_change(seed: Seed, impl: str) -> None:
    """IPv6 SYNs get MTU - 60; `auto` follows `ip link set l2tpeth0 mtu` (netlink)."""
    seed.sessions("auto")
    result: dict[str, tuple[str, str, float]] = {}

    def chat(to: str) -> None:
        result[to] = _exchange(seed, "chat", 50, 60, to)

    syns, synacks = _captured(seed, lambda: chat(H2_6))
    assert syns == ["syn 1386 csum-ok"], syns
    assert synacks == ["synack 1386 csum-ok"], synacks
    assert result[H2_6][1] == "done 50", result
    for d in (seed.t1, seed.t2):
        d.ns.ip("link", "set", "l2tpeth0", "mtu", "1400")
    try:
        syns, synacks = _captured(seed, lambda: chat(H2))
        assert syns == ["syn 1360 csum-ok"], syns
        assert synacks == ["synack 1360 csum-ok"], synacks
        assert result[H2][1] == "done 50", result
        state = seed.t1.session(3000)
        assert (state["mtu"], state["mss_ipv4"], state["mss_ipv6"]) == (1400, 1360, 1340)
    finally:
        for d in (seed.t1, seed.t2):
            d.ns.ip("link", "set", "l2tpeth0", "mtu", "1446")


def test_engine_without_offloads_clamps(seed_no_offload: Seed) -> None:
    """l2tpv3d --no-offload: the same SYNs, the same ssh-like exchange."""
    seed = seed_no_offload
    seed.sessions("auto")
    result: dict[str, tuple[str, str, float]] = {}

    def chat() -> None:
        result["chat"] = _exchange(seed, "chat", 50, 60)

    syns, synacks = _captured(seed, chat)
    assert syns == ["syn 1406 csum-ok"], syns
    assert synacks == ["synack 1406 csum-ok"], synacks
    assert result["chat"][1] == "done 50", result
