"""Traffic between the namespace and the guest: ping, and TCP with SHA-256 at both ends.

The host side is a small Python program run in the namespace (interop/progs/tcp_sink.py
and tcp_send.py); the guest side is busybox ``nc`` and ``sha256sum``. Data is random,
generated where it is sent, hashed where it is sent and where it arrives; the two
digests (and the byte counts) must agree.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

from interop.lab import KernelPeer
from interop.netns import prog

PORT = 5001
# Under the guest command limit (300 s) and pytest-timeout.
GUEST_NC_SECONDS = 150


@dataclass(frozen=True)
class Transfer:
    size: int
    seconds: float
    sent: tuple[str, str]  # (byte count, sha256) where it was sent
    received: tuple[str, str]  # the same, computed where it arrived

    @property
    def ok(self) -> bool:
        return self.sent == self.received == (str(self.size), self.sent[1])

    @property
    def mbit_s(self) -> float:
        return self.size * 8 / self.seconds / 1e6


def host_to_guest(peer: KernelPeer, addr: str, size: int) -> Transfer:
    """Random bytes from the namespace to the guest's ``addr``."""
    # tee feeds a fifo that wc counts, while sha256sum hashes the same bytes.
    peer.sh(
        "rm -f /tmp/rx.*; mkfifo /tmp/rx.fifo\n"
        "(wc -c < /tmp/rx.fifo > /tmp/rx.cpart; mv /tmp/rx.cpart /tmp/rx.count)"
        " </dev/null >/dev/null 2>&1 &\n"
        f"(nc -l -p {PORT} | tee /tmp/rx.fifo | sha256sum > /tmp/rx.part;"
        " mv /tmp/rx.part /tmp/rx.sum) </dev/null >/dev/null 2>&1 &\n"
        f"for i in $(seq 100); do netstat -ltn | grep -q ':{PORT} ' && exit 0; usleep 50000;"
        " done; exit 1"
    )
    t0 = time.monotonic()
    out = peer.ns.run(*prog("tcp_send"), addr, str(PORT), str(size), timeout=300).stdout.split()
    seconds = time.monotonic() - t0
    got = peer.sh(
        "for i in $(seq 200); do [ -e /tmp/rx.sum ] && [ -e /tmp/rx.count ] && break;"
        " usleep 50000; done; cat /tmp/rx.sum /tmp/rx.count"
    ).split()
    # sha256sum of a pipe prints "<digest>  -", then wc's byte count.
    received = (got[2], got[0]) if len(got) == 3 and got[1] == "-" else ("?", " ".join(got))
    return Transfer(size, seconds, (out[0], out[1]), received)


def guest_to_host(peer: KernelPeer, addr: str, size: int) -> Transfer:
    """Random bytes from the guest to the namespace's ``addr``."""
    peer.sh(f"head -c {size} /dev/urandom > /tmp/tx")
    sent = peer.sh("wc -c < /tmp/tx; sha256sum /tmp/tx").split()
    srv = subprocess.Popen(
        ["ip", "netns", "exec", peer.ns.name, *prog("tcp_sink"), addr, str(PORT)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert srv.stdout is not None
        if srv.stdout.readline().strip() != "ready":
            raise RuntimeError(f"host TCP server did not start: {srv.stderr.read()}")  # type: ignore[union-attr]
        t0 = time.monotonic()
        # busybox timeout ends a stalled nc inside the guest, so that one stalled
        # transfer fails its own test and leaves the guest's shell usable for the next.
        res = peer.vm.run(f"timeout {GUEST_NC_SECONDS} nc {addr} {PORT} < /tmp/tx", timeout=300)
        if res.status != 0:
            srv.kill()
            got, err = srv.communicate(timeout=30)
            raise RuntimeError(f"guest nc failed (status {res.status}): {res.output}; "
                               f"host side: {got!r} {err!r}")  # fmt: skip
        got, err = srv.communicate(timeout=120)
        seconds = time.monotonic() - t0
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
        for pipe in (srv.stdout, srv.stderr):
            if pipe is not None:
                pipe.close()
    peer.sh("rm -f /tmp/tx")
    g = got.split()
    return Transfer(size, seconds, (sent[0], sent[1]), (g[0], g[1]) if len(g) == 2 else ("?", err))
