"""A session's interface under `ip link set`: renamed, its MTU changed, moved to another
namespace. The daemon follows the device by ifindex through netlink events, as the
kernel's l2tpethN is one device whatever it is called: the new name shows, the new MTU
holds for the very next frame, and nothing is silently dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from subprocess import PIPE, Popen

import pytest

from tests.support.netns import Daemon, Netns, two_hosts, wait_until
from tests.support.progs import prog

pytestmark = pytest.mark.root

UNDERLAY = ("10.7.0.1", "10.7.0.2")
INNER = ("10.43.0.1", "10.43.0.2")
MTU = 1446  # a 1500-byte path, UDP, the default sublayer
SLACK = 18  # frames up to MTU + 14 + a VLAN tag are taken (is_skb_forwardable)


@pytest.fixture
def pair(impl: str) -> Iterator[tuple[Daemon, Daemon]]:
    with two_hosts("dev", [f"{UNDERLAY[0]}/24"], [f"{UNDERLAY[1]}/24"], impl) as (a, b):
        for d, (tid, ptid), (loc, rem), (sp, dp) in (
            (a, (1, 2), UNDERLAY, (5000, 6000)),
            (b, (2, 1), UNDERLAY[::-1], (6000, 5000)),
        ):
            d.cli("add", "tunnel", "tunnel_id", str(tid), "peer_tunnel_id", str(ptid),
                  "local", loc, "remote", rem,
                  "udp_sport", str(sp), "udp_dport", str(dp))  # fmt: skip
            d.cli("add", "session", "tunnel_id", str(tid), "session_id", str(tid * 10),
                  "peer_session_id", str(ptid * 10))  # fmt: skip
        for d, addr in ((a, INNER[0]), (b, INNER[1])):
            d.ns.sysctl("net.ipv6.conf.l2tpeth0.disable_ipv6", "1")
            d.ns.ip("addr", "add", f"{addr}/24", "dev", "l2tpeth0")
            d.ns.ip("link", "set", "l2tpeth0", "up")
        yield a, b


def _drops(d: Daemon, sid: int) -> int:
    return int(d.session(sid)["drops"]["frame_too_long"])


def _outcome(b: Daemon) -> tuple[int, int]:
    """B's frames dropped as too long, and frames its l2tpeth0 received."""
    return _drops(b, 20), b.ns.link_stat("l2tpeth0", "rx_packets")


def test_rename_under_traffic(pair: tuple[Daemon, Daemon]) -> None:
    a, b = pair
    a.ns.ping(INNER[1], count=1)
    ping = a.ns.popen("ping", "-i", "0.05", "-w", "4", INNER[1])
    try:
        time.sleep(0.5)
        # A running device cannot be renamed: down, rename, up, as an operator does.
        b.ns.ip("link", "set", "l2tpeth0", "down")
        b.ns.ip("link", "set", "l2tpeth0", "name", "pw-renamed")
        b.ns.ip("link", "set", "pw-renamed", "up")
        out, _ = ping.communicate(timeout=30)
    finally:
        if ping.poll() is None:
            ping.kill()
            ping.wait()
    # Well past the old one-second MTU poll, which read the MTU by the old name (0).
    time.sleep(1.5)
    a.ns.ping(INNER[1], count=3)
    b.ns.ping(INNER[0], count=3)
    assert _drops(b, 20) == 0, out
    assert b.session(20)["interface"] == "pw-renamed"
    assert b.session(20)["mtu"] == MTU
    shown = b.cli("show", "session").stdout
    assert "interface name: pw-renamed" in shown, shown
    assert "l2tpeth0" not in shown, shown


class MtuThenFrame:
    """Sets B's l2tpeth0 MTU and, microseconds after the ioctl returns, sends a frame out
    of A's l2tpeth0: the tightest `ip link set l2tpeth0 mtu N` then a frame."""

    def __init__(self, a: Netns, b: Netns) -> None:
        self.proc: Popen[str] = Popen(
            ["ip", "netns", "exec", a.name, *prog("mtu_then_frame"), "l2tpeth0", b.name,
             "l2tpeth0"], stdin=PIPE, stdout=PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def __call__(self, mtu: int, size: int) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{mtu} {size}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def close(self) -> None:
        self.proc.communicate(timeout=10)


def test_mtu_change_holds_for_the_next_frame(pair: tuple[Daemon, Daemon]) -> None:
    """Right after B's MTU is set to N, a frame of exactly N + 18 is delivered and one of
    N + 19 is dropped as frame_too_long: lowered, then raised, one by one; then 100
    times each way, counted together (the event must beat the frame every time)."""
    a, b = pair
    step = MtuThenFrame(a.ns, b.ns)
    try:
        # Lowered, raised, lowered, raised; A's packet socket sends at most 1446 + 14.
        for mtu in (1000, 1400, 900, 1440):
            for size, dropped in ((mtu + SLACK, 0), (mtu + SLACK + 1, 1)):
                before = _outcome(b)
                step(mtu, size)
                assert wait_until(lambda: sum(_outcome(b)) > sum(before), 5, 0.05)  # noqa: B023
                after = _outcome(b)
                got = (after[0] - before[0], after[1] - before[1])
                assert got == (dropped, 1 - dropped), (mtu, size, got)
            assert b.session(20)["mtu"] == mtu
        before = _outcome(b)
        rounds = 100
        for _ in range(rounds):
            step(1000, 1000 + SLACK + 1)  # lowered: dropped
            time.sleep(0.01)
            step(1200, 1200 + SLACK)  # raised: delivered
            time.sleep(0.01)
        assert wait_until(lambda: sum(_outcome(b)) >= sum(before) + 2 * rounds, 5, 0.05)
        after = _outcome(b)
        assert (after[0] - before[0], after[1] - before[1]) == (rounds, rounds)
    finally:
        step.close()


def test_moved_to_another_namespace(pair: tuple[Daemon, Daemon]) -> None:
    """The kernel's l2tpethN keeps working when moved with `ip link set ... netns`; ours
    does too, with the MTU it had, and `show` still lists the session."""
    a, b = pair
    other = Netns("dev-c")
    try:
        b.ns.ip("link", "set", "l2tpeth0", "netns", other.name)
        other.ip("addr", "add", f"{INNER[1]}/24", "dev", "l2tpeth0")
        other.ip("link", "set", "l2tpeth0", "up")
        time.sleep(1.5)  # past the old one-second MTU poll, which read 0 by name
        a.ns.ping(INNER[1], count=3)
        other.ping(INNER[0], count=3)
        assert _drops(b, 20) == 0
        s = b.session(20)
        assert (s["interface"], s["mtu"]) == ("l2tpeth0", MTU)
        assert "moved to another network namespace" in b.log_text()
        # Deleted over there, the session goes, as the kernel's would.
        other.ip("link", "del", "l2tpeth0")
        assert wait_until(lambda: not b.sessions(), timeout=5)
    finally:
        other.delete()
