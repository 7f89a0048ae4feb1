"""Namespaces, veth pairs and daemons for integration tests, in the shape of the kernel's
tools/testing/selftests/net/l2tp.sh: every object is created by the test, named with a
per-run prefix, and removed afterwards (processes by PID, namespaces by name).

Traffic only ever flows inside these namespaces.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from interop.traffic import HOST_SERVER

PREFIX = f"l2t{os.getpid() % 100000}"
TCP_SERVER = HOST_SERVER
TCP_CLIENT = r"""
import hashlib, random, socket, sys
size = int(sys.argv[3])
data = random.Random(int(sys.argv[4])).randbytes(size)
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(size, hashlib.sha256(data).hexdigest(), flush=True)
"""


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


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll until ``predicate`` holds (for counters to settle after traffic stops)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


class Netns:
    def __init__(self, name: str) -> None:
        self.name = f"{PREFIX}-{name}"
        sh("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")

    def run(self, *args: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return sh("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout)

    def ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("ip", *args)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.name, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def sysctl(self, key: str, value: str) -> None:
        self.run("sysctl", "-qw", f"{key}={value}")

    def link_stat(self, dev: str, name: str) -> int:
        return int(self.run("cat", f"/sys/class/net/{dev}/statistics/{name}").stdout)

    def ping(self, addr: str, count: int = 3) -> None:
        self.run("ping", "-c", str(count), "-i", "0.2", "-W", "2", addr, timeout=30)

    def delete(self) -> None:
        sh("ip", "netns", "del", self.name, check=False)


def veth(a: Netns, a_dev: str, b: Netns, b_dev: str) -> None:
    sh("ip", "link", "add", f"{PREFIX}x", "netns", a.name, "type", "veth", "peer", "name",
       f"{PREFIX}y", "netns", b.name)  # fmt: skip
    a.ip("link", "set", f"{PREFIX}x", "name", a_dev)
    b.ip("link", "set", f"{PREFIX}y", "name", b_dev)
    a.ip("link", "set", a_dev, "up")
    b.ip("link", "set", b_dev, "up")


def client_cmd() -> list[str]:
    """The installed console script, as a user runs it."""
    exe = shutil.which("l2tpv3")
    if exe is None:
        local = Path(sys.executable).with_name("l2tpv3")
        if local.exists():
            exe = str(local)
    if exe is None:
        pytest.fail("the l2tpv3 console script is not installed (pip install .)")
    return [exe]


def daemon_cmd() -> list[str]:
    exe = shutil.which("l2tpv3d") or str(Path(sys.executable).with_name("l2tpv3d"))
    if not Path(exe).exists():
        pytest.fail("the l2tpv3d console script is not installed (pip install .)")
    return [exe]


class Daemon:
    """l2tpv3d running in a namespace, driven only through the l2tpv3 client."""

    def __init__(
        self, ns: Netns, workdir: Path, config: str | None = None, impl: str | None = None
    ) -> None:
        """``impl`` "cython" or "python" picks the data path (see conftest.impl)."""
        self.ns = ns
        self.socket = str(workdir / f"{ns.name}.sock")
        self.log = workdir / f"{ns.name}.log"
        args = [*daemon_cmd(), "-S", self.socket]
        if config is not None:
            cfg = workdir / f"{ns.name}.toml"
            cfg.write_text(config)
            args += ["--config", str(cfg)]
        self._logfh = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ)
        if impl == "python":
            env["L2TPV3_NO_EXTENSIONS"] = "1"
        elif impl == "cython":
            env.pop("L2TPV3_NO_EXTENSIONS", None)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, *args], stdout=self._logfh, stderr=self._logfh,
            env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None:
                raise AssertionError(f"l2tpv3d exited: {self.log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"l2tpv3d did not start: {self.log.read_text()}")
            time.sleep(0.05)
        if impl is not None:
            # The daemon names its data path when it starts listening.
            assert wait_until(lambda: f"{impl} data path" in self.log.read_text()), (
                f"l2tpv3d is not running the {impl} data path: {self.log.read_text()}"
            )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*client_cmd(), "-S", self.socket, *args], capture_output=True,
                              text=True, timeout=30)  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"l2tpv3 {' '.join(args)}: {proc.returncode} {proc.stderr}")
        return proc

    def line(self, text: str) -> subprocess.CompletedProcess[str]:
        """Run one `ip l2tp ...` line from a seed, with `ip l2tp` replaced by `l2tpv3`."""
        words = text.split()
        assert words[:2] == ["ip", "l2tp"], text
        return self.cli(*words[2:])

    def sessions(self) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("-j", "-s", "show", "session").stdout))

    def tunnels(self) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("-j", "-s", "show", "tunnel").stdout))

    def session(self, session_id: int) -> dict[str, Any]:
        for s in self.sessions():
            if s["session_id"] == session_id:
                return s
        raise AssertionError(f"no session {session_id}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logfh.close()
        return self.log.read_text()


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
            for ns, addrs in ((na, addrs_a), (nb, addrs_b)):
                for addr in addrs:
                    extra = ["nodad"] if ":" in addr else []
                    ns.ip("addr", "add", addr, "dev", "veth0", *extra)
            daemons = [Daemon(na, wd, impl=impl), Daemon(nb, wd, impl=impl)]
            yield daemons[0], daemons[1]
        finally:
            logs = [d.stop() for d in daemons]
            na.delete()
            nb.delete()
            for text in logs:
                assert "Traceback" not in text, text


def tcp_transfer(server: Netns, client: Netns, addr: str, size: int, seed: int = 1) -> None:
    """Send ``size`` random bytes over TCP and check the SHA-256 at both ends."""
    srv = server.popen(sys.executable, "-c", TCP_SERVER, addr, "5001")
    try:
        assert srv.stdout is not None
        assert srv.stdout.readline().strip() == "ready"
        out = client.run(sys.executable, "-c", TCP_CLIENT, addr, "5001", str(size), str(seed),
                         timeout=120).stdout.split()  # fmt: skip
        got, _ = srv.communicate(timeout=60)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    assert got.split() == out, f"sent {out}, received {got.split()}"
    expected = hashlib.sha256(__import__("random").Random(seed).randbytes(size)).hexdigest()
    assert out == [str(size), expected]
