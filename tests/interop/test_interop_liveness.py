"""``liveness arp`` against the Linux kernel's l2tp_eth in the QEMU guest (interop/):
the kernel needs nothing configured beyond its pseudowire (`l2tpv3 peer-config --for
linux`); its l2tpeth0 answers our ARP probes. Deleting the kernel's tunnel takes our
carrier down within interval x dead (+1 s); configuring it again brings it back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.build import BuildError, build
from interop.cases import KERNEL_TID, OUR_SID, Case, configure_ours, kernel_lines, reset
from interop.lab import INNER_GUEST4, KernelPeer, kernel_peer
from tests.interop.test_interop_kernel import require_interop
from tests.support.netns import Daemon, require_root, wait_until, workdir

pytestmark = [pytest.mark.root, pytest.mark.interop]

INTERVAL, DEAD = 0.5, 3
CASE = Case("udp", 4, 0, "default", "none")


@pytest.fixture(scope="module")
def peer() -> Iterator[tuple[KernelPeer, Path]]:
    require_root()
    require_interop()
    try:
        art = build()
    except BuildError as exc:
        pytest.fail(f"interop build: {exc}")
    with workdir() as wd, kernel_peer(tag="kvl", artifacts=art, workdir=wd) as kp:
        yield kp, wd


def _carrier(kp: KernelPeer) -> str:
    return kp.ns.run("cat", "/sys/class/net/l2tpeth0/carrier", check=False).stdout.strip()


def test_liveness_arp_follows_the_kernel_peer(peer: tuple[KernelPeer, Path], impl: str) -> None:
    kp, wd = peer
    daemon = Daemon(kp.ns, wd, impl=impl, tag=f"kl-{impl}")
    try:
        reset(kp, daemon)
        extra = ("liveness", "arp", INNER_GUEST4, "interval", str(INTERVAL), "dead", str(DEAD))
        configure_ours(kp, daemon, CASE, ipv6=False, extra=extra)
        lines = kernel_lines(daemon, CASE)
        # peer-config says what the kernel end needs for our liveness: nothing.
        assert any("answers our ARP probes" in ln for ln in lines), lines
        kp.configure(lines)

        def live() -> dict[str, object]:
            value = daemon.session(OUR_SID)["liveness"]
            assert isinstance(value, dict)
            return value

        assert wait_until(lambda: live()["last_seen_ago"] is not None, timeout=20), live()
        assert wait_until(lambda: live()["state"] == "up" and _carrier(kp) == "1", timeout=10)
        # Our session may have gone down and up while the (emulated) guest was being set
        # up: count from here.
        before = live()["transitions"]
        assert isinstance(before, int)

        kp.sh(f"ip l2tp del tunnel tunnel_id {KERNEL_TID}")
        t0 = time.monotonic()
        assert wait_until(lambda: _carrier(kp) == "0", timeout=INTERVAL * DEAD + 5,
                          interval=0.05)  # fmt: skip
        took = time.monotonic() - t0
        assert took <= INTERVAL * DEAD + 1.0, f"NO-CARRIER after {took:.2f} s"
        assert live()["state"] == "down"

        kp.configure(lines)
        t1 = time.monotonic()
        assert wait_until(lambda: _carrier(kp) == "1", timeout=20)
        back = time.monotonic() - t1
        assert live()["state"] == "up" and live()["transitions"] == before + 2
        print(f"\n[{impl}] kernel peer: NO-CARRIER {took:.2f} s after its tunnel was "
              f"deleted (budget {INTERVAL * DEAD + 1:.1f} s), carrier back {back:.2f} s "
              "after it was configured again")  # fmt: skip
    finally:
        kp.reset_l2tp()
        text = daemon.stop()
        assert "Traceback" not in text, text
