"""Network namespaces, veth pairs, processes and daemons: the one toolkit of the namespace
tests (tests/support/netns.py), the benchmarks (bench/) and the interop harness.

In the shape of the kernel's tools/testing/selftests/net/l2tp.sh: every object is
created here, named with a per-run prefix (``l2t<PID>``), and removed afterwards:
processes by PID, namespaces by name. A run killed outright (SIGKILL) leaves its
namespaces behind; :func:`remove_stale_namespaces` deletes those of runs whose PID is
gone. Traffic only ever flows inside the namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

PREFIX = f"l2t{os.getpid() % 100000}"
# Namespaces of earlier runs: this prefix, and the bench's and interop harness's of old.
STALE_NAMESPACE = re.compile(r"(l2[tbi](\d+)-\S+)")
PROGS = Path(__file__).resolve().parent / "progs"


class CommandFailed(RuntimeError):
    """A command run with ``check=True`` exited non-zero."""


def sh(*args: str, check: bool = True, timeout: float = 60, env: dict[str, str] | None = None,
       cwd: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    proc = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )
    if check and proc.returncode != 0:
        raise CommandFailed(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def prog(name: str) -> list[str]:
    """The command running helper program ``interop/progs/<name>.py`` (standard library
    only, so it runs by path whatever the current directory)."""
    return [sys.executable, str(PROGS / f"{name}.py")]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.2
               ) -> bool:  # fmt: skip
    """Poll until ``predicate`` holds (for counters to settle after traffic stops)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
             ) -> None:  # fmt: skip
    """Like :func:`wait_until`, polling faster, and raising TimeoutError when it expires."""
    if not wait_until(predicate, timeout, 0.05):
        raise TimeoutError(f"timed out waiting for {what}")


class Netns:
    """A namespace named ``<PREFIX>-<tag>``, created with its loopback up."""

    def __init__(self, tag: str) -> None:
        self.name = f"{PREFIX}-{tag}"
        sh("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")

    def run(self, *args: str, check: bool = True, timeout: float = 60,
            env: dict[str, str] | None = None, cwd: str | None = None
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return sh("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout,
                  env=env, cwd=cwd)  # fmt: skip

    def ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("ip", *args)

    def popen(self, *args: str, cwd: str | None = None) -> subprocess.Popen[str]:
        """A process in the namespace with its stdout and stderr piped (text)."""
        return subprocess.Popen(
            ["ip", "netns", "exec", self.name, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
        )  # fmt: skip

    def sysctl(self, key: str, value: str) -> None:
        self.run("sysctl", "-qw", f"{key}={value}")

    def link_stat(self, dev: str, name: str) -> int:
        return int(self.run("cat", f"/sys/class/net/{dev}/statistics/{name}").stdout)

    def ping(self, addr: str, count: int = 3) -> None:
        self.run("ping", "-c", str(count), "-i", "0.2", "-W", "2", addr, timeout=30)

    def add_addrs(self, dev: str, *addrs: str) -> None:
        """Address ``dev`` (IPv6 without duplicate address detection)."""
        for addr in addrs:
            extra = ["nodad"] if ":" in addr else []
            self.ip("addr", "add", addr, "dev", dev, *extra)

    def delete(self) -> None:
        sh("ip", "netns", "del", self.name, check=False)


def veth(a: Netns, a_dev: str, b: Netns, b_dev: str) -> None:
    """Join two namespaces with a veth pair, ``a_dev`` in ``a`` and ``b_dev`` in ``b``, up."""
    sh("ip", "link", "add", f"{PREFIX}x", "netns", a.name, "type", "veth", "peer", "name",
       f"{PREFIX}y", "netns", b.name)  # fmt: skip
    a.ip("link", "set", f"{PREFIX}x", "name", a_dev)
    b.ip("link", "set", f"{PREFIX}y", "name", b_dev)
    a.ip("link", "set", a_dev, "up")
    b.ip("link", "set", b_dev, "up")


def remove_stale_namespaces() -> list[str]:
    """Delete namespaces an earlier run left behind when it was killed outright (SIGKILL:
    no cleanup ran; QEMU died with it, see interop.vm._die_with_parent). A namespace is
    stale when the process whose PID is in its name no longer exists."""
    removed = []
    me = os.getpid() % 100000
    for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
        m = STALE_NAMESPACE.match(line)
        if m and int(m.group(2)) != me and not _pid_alive(int(m.group(2))):
            sh("ip", "netns", "del", m.group(1), check=False)
            removed.append(m.group(1))
    return removed


def _pid_alive(pid_mod: int) -> bool:
    # Names carry the PID modulo 100000; any live PID with that remainder counts.
    return any(int(p) % 100000 == pid_mod for p in os.listdir("/proc") if p.isdigit())


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def sigterm_cleans_up(sigint: bool = False) -> Iterator[None]:
    """While active, SIGTERM (a CI timeout, `kill PID`) raises KeyboardInterrupt in the
    main thread, so context managers and pytest fixtures still remove the VM, the TAP and
    the namespaces instead of leaving them behind. ``sigint``: SIGINT too, for a program
    a shell started in the background (which starts with SIGINT ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [signal.SIGTERM, *([signal.SIGINT] if sigint else [])]
    previous = {s: signal.signal(s, _interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 5) -> None:
    """SIGTERM by PID, then SIGKILL if it has not exited after ``timeout`` seconds."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def client_cmd() -> list[str]:
    """The installed ``l2tpv3`` console script, as a user runs it."""
    exe = shutil.which("l2tpv3")
    if exe is None:
        local = Path(sys.executable).with_name("l2tpv3")
        if local.exists():
            exe = str(local)
    if exe is None:
        raise CommandFailed("the l2tpv3 console script is not installed (pip install .)")
    return [exe]


def daemon_cmd() -> list[str]:
    """The installed ``l2tpv3d`` console script."""
    exe = shutil.which("l2tpv3d") or str(Path(sys.executable).with_name("l2tpv3d"))
    if not Path(exe).exists():
        raise CommandFailed("the l2tpv3d console script is not installed (pip install .)")
    return [exe]


def impl_env(impl: str | None) -> dict[str, str]:
    """The environment selecting an implementation: "python" (L2TPV3_NO_EXTENSIONS=1),
    "cython" or "compiled" (the variable removed), anything else: unchanged."""
    env = dict(os.environ)
    if impl == "python":
        env["L2TPV3_NO_EXTENSIONS"] = "1"
    elif impl in ("cython", "compiled"):
        env.pop("L2TPV3_NO_EXTENSIONS", None)
    return env


class Daemon:
    """l2tpv3d running in a namespace, driven only through the l2tpv3 client.

    ``impl`` "cython" or "python" picks the data path and checks the daemon names it in
    its log; ``env`` is used as it is otherwise. ``command``/``client`` replace the
    console scripts (the bench runs ``python -m l2tpv3.daemon`` of a chosen interpreter).
    The log goes to ``workdir/<tag>.log`` (``tag`` defaults to the namespace's name).
    """

    def __init__(
        self, ns: Netns, workdir: Path, config: str | None = None, impl: str | None = None,
        *, tag: str | None = None, env: dict[str, str] | None = None,
        command: Sequence[str] | None = None, client: Sequence[str] | None = None,
        start_timeout: float = 20, cwd: str | None = None,
    ) -> None:  # fmt: skip
        self.ns = ns
        tag = tag or ns.name
        self.socket = str(workdir / f"{tag}.sock")
        self.log = workdir / f"{tag}.log"
        self._client = list(client) if client is not None else client_cmd()
        self._cwd = cwd
        args = [*(command if command is not None else daemon_cmd()), "-S", self.socket]
        if config is not None:
            cfg = workdir / f"{tag}.toml"
            cfg.write_text(config)
            args += ["--config", str(cfg)]
        self._logfh: IO[str] = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, *args], stdout=self._logfh,
            stderr=subprocess.STDOUT, env=env if env is not None else impl_env(impl), cwd=cwd,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + start_timeout
            while not os.path.exists(self.socket):
                if self.proc.poll() is not None:
                    raise CommandFailed(f"l2tpv3d exited: {self.log_text()}")
                if time.monotonic() > deadline:
                    raise CommandFailed(f"l2tpv3d did not start: {self.log_text()}")
                time.sleep(0.05)
            # The daemon names its data path when it starts listening.
            if (
                impl is not None
                and env is None
                and not wait_until(lambda: f"{impl} data path" in self.log_text())
            ):
                raise CommandFailed(
                    f"l2tpv3d is not running the {impl} data path: {self.log_text()}"
                )
        except BaseException:
            self.stop()
            raise

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def cli(self, *args: str, check: bool = True, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        proc = subprocess.run([*self._client, "-S", self.socket, *args], capture_output=True,
                              text=True, timeout=30, env=env, cwd=self._cwd)  # fmt: skip
        if check and proc.returncode != 0:
            raise CommandFailed(f"l2tpv3 {' '.join(args)}: {proc.returncode} {proc.stderr}")
        return proc

    def line(self, text: str) -> subprocess.CompletedProcess[str]:
        """Run one `ip l2tp ...` line from a seed, with `ip l2tp` replaced by `l2tpv3`."""
        words = text.split()
        if words[:2] != ["ip", "l2tp"]:
            raise ValueError(f"not an ip l2tp line: {text}")
        return self.cli(*words[2:])

    def sessions(self) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("-j", "-s", "show", "session").stdout))

    def tunnels(self) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("-j", "-s", "show", "tunnel").stdout))

    def session(self, session_id: int) -> dict[str, Any]:
        for s in self.sessions():
            if s["session_id"] == session_id:
                return s
        raise LookupError(f"no session {session_id}")

    def stop(self) -> str:
        """SIGTERM (SIGKILL after 10 s); the daemon's log."""
        stop_process(self.proc, timeout=10)
        self._logfh.close()
        return self.log_text()


class Lab:
    """Owns every namespace, process and daemon it creates; :meth:`close` removes them
    all, also on Ctrl-C and SIGTERM while it is entered as a context manager.

    Commands run with ``cwd`` (the bench uses "/": ``python -m l2tpv3...`` then imports
    the installed package, never a source tree that happens to be the current directory).
    """

    def __init__(self, workdir: Path, cwd: str | None = None) -> None:
        self.workdir = workdir
        self.cwd = cwd
        self.namespaces: list[Netns] = []
        self.procs: list[subprocess.Popen[Any]] = []
        self.daemons: list[Daemon] = []
        self._logs: list[IO[bytes]] = []
        self._signals = contextlib.ExitStack()

    def __enter__(self) -> Lab:
        self._signals.enter_context(sigterm_cleans_up(sigint=True))
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        finally:
            self._signals.close()

    def netns(self, tag: str) -> Netns:
        ns = Netns(tag)
        self.namespaces.append(ns)
        return ns

    def run(self, ns: Netns, *args: str, check: bool = True, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return ns.run(*args, check=check, timeout=timeout, env=env, cwd=self.cwd)

    def spawn(self, ns: Netns, tag: str, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:  # fmt: skip
        """A long-running process in ``ns`` logging to ``<tag>.log``; `ip netns exec`
        execs, so its PID is the process's own."""
        log = open(self.workdir / f"{tag}.log", "wb")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, *args],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.cwd,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def spawn_pipe(self, ns: Netns, *args: str) -> subprocess.Popen[str]:
        """A short-lived process in ``ns`` whose stdout the caller reads; ended in close()."""
        proc = ns.popen(*args, cwd=self.cwd)
        self.procs.append(proc)
        return proc

    def daemon(self, ns: Netns, tag: str, env: dict[str, str], config: str | None = None,
               start_timeout: float = 120) -> Daemon:  # fmt: skip
        """``python -m l2tpv3.daemon`` of this interpreter in ``ns``; stopped in close()."""
        d = Daemon(ns, self.workdir, config, tag=tag, env=env, cwd=self.cwd,
                   command=[sys.executable, "-m", "l2tpv3.daemon"],
                   client=[sys.executable, "-m", "l2tpv3.cli"],
                   start_timeout=start_timeout)  # fmt: skip
        self.daemons.append(d)
        return d

    def log_text(self, tag: str) -> str:
        try:
            return (self.workdir / f"{tag}.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, proc: subprocess.Popen[Any]) -> None:
        stop_process(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(OSError, KeyboardInterrupt):
                stop_process(proc)
        self.procs.clear()
        for d in reversed(self.daemons):
            with contextlib.suppress(OSError, KeyboardInterrupt):
                d.stop()
        self.daemons.clear()
        for ns in reversed(self.namespaces):
            ns.delete()
        self.namespaces.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
