"""Namespaces, devices and processes for the benchmarks, all removed afterwards.

Everything is named with a per-run prefix, processes are ended by PID, and cleanup runs
on normal exit, on failure and on Ctrl-C/SIGTERM. Traffic stays inside the namespaces.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
PREFIX = f"l2b{os.getpid() % 100000}"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def need_tools(tools: Sequence[str]) -> None:
    """Exit with one line naming what is missing (and the apt package to install)."""
    packages = {"iperf3": "iperf3", "openvpn": "openvpn", "ethtool": "ethtool",
                "ip": "iproute2", "ping": "iputils-ping"}  # fmt: skip
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pkgs = " ".join(sorted({packages.get(t, t) for t in missing}))
        sys.exit(f"bench: missing {', '.join(missing)}: apt-get install {pkgs}")
    if os.geteuid() != 0:
        sys.exit("bench: needs root (network namespaces, TAP devices)")
    if not os.path.exists("/dev/net/tun"):
        sys.exit("bench: /dev/net/tun is missing (TAP devices)")


def sh(*args: str, check: bool = True, timeout: float = 60, env: dict[str, str] | None = None
       ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    # cwd "/": `python -m l2tpv3...` imports the installed package (which holds the
    # compiled extension when it was built), never a source tree that happens to be cwd.
    proc = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, env=env, cwd="/"
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


class Lab:
    """Owns every namespace and process it creates; :meth:`close` removes them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[object] = []

    def __enter__(self) -> Lab:
        # SIGTERM ends the run like Ctrl-C, so the cleanup runs either way; SIGINT is
        # set explicitly because a shell starts background jobs with it ignored.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGINT, _raise_interrupt)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def netns(self, tag: str) -> str:
        name = f"{PREFIX}-{tag}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        self.run(name, "ip", "link", "set", "lo", "up")
        return name

    def run(self, ns: str, *args: str, check: bool = True, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return sh("ip", "netns", "exec", ns, *args, check=check, timeout=timeout, env=env)

    def spawn(self, ns: str, tag: str, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:  # fmt: skip
        """Start a long-running process in ``ns``; `ip netns exec` execs, so its PID is ours."""
        log = open(self.workdir / f"{tag}.log", "wb")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *args],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd="/",
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def spawn_pipe(self, ns: str, *args: str) -> subprocess.Popen[bytes]:
        """A short-lived process in ``ns`` whose stdout the caller reads; ended in close()."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def log_text(self, tag: str) -> str:
        try:
            return (self.workdir / f"{tag}.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(OSError, KeyboardInterrupt):
                self.stop(proc)
        self.procs.clear()
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()
        for log in self._logs:
            log.close()  # type: ignore[attr-defined]
        self._logs.clear()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def veth(lab: Lab, a: str, b: str, addr_a: str, addr_b: str, dev: str = "veth0") -> None:
    """Join two namespaces with a veth pair named ``dev`` at both ends."""
    sh("ip", "link", "add", f"{PREFIX}x", "netns", a, "type", "veth", "peer", "name",
       f"{PREFIX}y", "netns", b)  # fmt: skip
    for ns, tmp, addr in ((a, f"{PREFIX}x", addr_a), (b, f"{PREFIX}y", addr_b)):
        lab.run(ns, "ip", "link", "set", tmp, "name", dev)
        extra = ["nodad"] if ":" in addr else []
        lab.run(ns, "ip", "addr", "add", addr, "dev", dev, *extra)
        lab.run(ns, "ip", "link", "set", dev, "up")


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def mapped_extensions(pid: int) -> list[str]:
    """Compiled modules of the l2tpv3 package mapped into a running process."""
    with open(f"/proc/{pid}/maps") as f:
        paths = {line.split(None, 5)[-1].strip() for line in f if line.count(" ") >= 5}
    return sorted(p for p in paths if "/l2tpv3/" in p and ".so" in p.rsplit("/", 1)[-1])


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def package_location() -> str:
    """Where the daemons will import l2tpv3 from (they run with cwd "/")."""
    probe = "import l2tpv3, os; print(os.path.dirname(l2tpv3.__file__))"
    out = sh(sys.executable, "-c", probe, check=False)
    if out.returncode != 0:
        sys.exit(f"bench: l2tpv3 is not installed for {sys.executable}: pip install .")
    return out.stdout.strip()


def implementation(no_extensions: bool) -> tuple[bool, str]:
    """Whether the l2tpv3 daemon would run the compiled fast path, and why not.

    Imports ``l2tpv3.io.datapath`` (the chooser) the way the daemon does, in a child with
    the same environment, and looks for a compiled module of the package among those
    loaded.
    """
    probe = (
        "import sys\n"
        "try:\n"
        "    import l2tpv3\n"
        "except ImportError:\n"
        "    print('noinstall'); sys.exit()\n"
        "try:\n"
        "    import l2tpv3.io.datapath\n"
        "except ImportError as exc:\n"
        "    print('missing', exc); sys.exit()\n"
        "so = [n for n, m in list(sys.modules.items()) if n.startswith('l2tpv3')\n"
        "      and str(getattr(m, '__file__', '')).endswith(('.so', '.pyd'))]\n"
        "print('ext' if so else 'pure', ' '.join(so))\n"
    )
    env = dict(os.environ)
    if no_extensions:
        env["L2TPV3_NO_EXTENSIONS"] = "1"
    else:
        env.pop("L2TPV3_NO_EXTENSIONS", None)
    out = sh(sys.executable, "-c", probe, env=env, check=False).stdout.strip()
    kind, _, detail = out.partition(" ")
    if kind == "ext":
        return True, f"compiled: {detail}"
    if kind == "pure":
        return False, "l2tpv3.io.datapath loaded no compiled extension (not built?)"
    if kind == "noinstall":
        sys.exit(f"bench: l2tpv3 is not installed for {sys.executable}: pip install .")
    if kind == "missing":
        return False, f"no l2tpv3.io.datapath module (fast path not merged): {detail}"
    return False, f"probe failed: {out or 'no output'}"
