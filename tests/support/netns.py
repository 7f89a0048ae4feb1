"""The namespace tests' side of the shared toolkit (interop/netns.py): skipping or failing
when root is missing, two hosts with a daemon each, and SHA-256-checked TCP transfers.

Everything is created with a per-run prefix and removed afterwards (processes by PID,
namespaces by name); traffic only ever flows inside these namespaces.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest

from interop.netns import (
    PREFIX,
    Daemon,
    Netns,
    client_cmd,
    daemon_cmd,
    prog,
    sh,
    veth,
    wait_until,
)

__all__ = [
    "PREFIX",
    "Daemon",
    "Netns",
    "client_cmd",
    "daemon_cmd",
    "require_root",
    "sh",
    "tcp_transfer",
    "two_hosts",
    "veth",
    "wait_until",
    "workdir",
]


def require_root() -> None:
    """Skip locally, but fail under CI=true, when namespaces and TAP are unavailable."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root")
    if not os.path.exists("/dev/net/tun"):
        problems.append("no /dev/net/tun")
    for tool in ("ip", "ping"):
        if shutil.which(tool) is None:
            problems.append(f"no {tool} command")
    if problems:
        msg = "namespace tests need " + ", ".join(problems)
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="l2tpv3-test-") as d:
        yield Path(d)


@contextlib.contextmanager
def two_hosts(
    tag: str, addrs_a: list[str], addrs_b: list[str], impl: str | None = None
) -> Iterator[tuple[Daemon, Daemon]]:
    """Two namespaces joined by veth0 with the given addresses, an l2tpv3d in each.

    Everything is removed afterwards, and neither daemon may have logged a traceback.
    """
    require_root()
    with workdir() as wd:
        na, nb = Netns(f"{tag}-a"), Netns(f"{tag}-b")
        daemons: list[Daemon] = []
        try:
            veth(na, "veth0", nb, "veth0")
            na.add_addrs("veth0", *addrs_a)
            nb.add_addrs("veth0", *addrs_b)
            daemons.append(Daemon(na, wd, impl=impl))
            daemons.append(Daemon(nb, wd, impl=impl))
            yield daemons[0], daemons[1]
        finally:
            logs = [d.stop() for d in daemons]
            na.delete()
            nb.delete()
            for text in logs:
                assert "Traceback" not in text, text


def tcp_transfer(server: Netns, client: Netns, addr: str, size: int, seed: int = 1) -> None:
    """Send ``size`` random bytes over TCP and check the SHA-256 at both ends."""
    srv = server.popen(*prog("tcp_sink"), addr, "5001")
    try:
        assert srv.stdout is not None
        assert srv.stdout.readline().strip() == "ready"
        out = client.run(*prog("tcp_send"), addr, "5001", str(size), str(seed),
                         timeout=120).stdout.split()  # fmt: skip
        got, _ = srv.communicate(timeout=60)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    assert got.split() == out, f"sent {out}, received {got.split()}"
    expected = sha256(random.Random(seed).randbytes(size)).hexdigest()
    assert out == [str(size), expected]
