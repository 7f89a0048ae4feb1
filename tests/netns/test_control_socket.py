"""l2tpv3d's control socket never harms (issue 11): ``-S PATH`` removes nothing but a
stale socket, peers are checked (SO_PEERCRED), idle and half-sent connections cannot
block it, and SIGTERM/SIGHUP with clients connected are clean.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import resource
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import (
    Daemon,
    Netns,
    client_cmd,
    daemon_cmd,
    require_root,
    wait_until,
    workdir,
)

pytestmark = pytest.mark.root

NOBODY = 65534  # uid nobody, gid nogroup on Debian
STRANGER = 54321  # a uid and gid nobody uses


@pytest.fixture
def ns() -> Iterator[tuple[Netns, Path]]:
    require_root()
    with workdir() as wd:
        n = Netns("ctl")
        try:
            yield n, wd
        finally:
            n.delete()


def _daemon_fails(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*daemon_cmd(), "-S", path], capture_output=True, text=True,
                          timeout=30)  # fmt: skip


def _one_line(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("l2tpv3d: "), proc.stderr
    assert needle in proc.stderr, proc.stderr


# -- -S PATH ------------------------------------------------------------------------------


def test_config_file_given_as_socket_is_kept(tmp_path: Path) -> None:
    require_root()
    config = tmp_path / "l2tpv3d.toml"
    config.write_text("# my tunnels\n")
    _one_line(_daemon_fails(str(config)), "not a socket")
    assert config.read_text() == "# my tunnels\n"


def test_directory_and_missing_directory_are_one_line(tmp_path: Path) -> None:
    require_root()
    _one_line(_daemon_fails(str(tmp_path)), "is a directory")
    assert tmp_path.is_dir()
    _one_line(_daemon_fails(str(tmp_path / "missing" / "l2tpv3.sock")), "no such directory")


def test_symlink_is_kept(tmp_path: Path) -> None:
    require_root()
    target = tmp_path / "notes.txt"
    target.write_text("keep\n")
    link = tmp_path / "l2tpv3.sock"
    link.symlink_to(target)
    _one_line(_daemon_fails(str(link)), "symbolic link")
    assert link.is_symlink()
    assert target.read_text() == "keep\n"


def test_live_socket_of_another_program_is_kept(tmp_path: Path) -> None:
    require_root()
    path = str(tmp_path / "other.sock")
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(path)
        other.listen(1)
        ino = os.lstat(path).st_ino
        _one_line(_daemon_fails(path), "already listening")
        assert os.lstat(path).st_ino == ino


def test_stale_socket_replaced_and_only_ours_removed(ns: tuple[Netns, Path]) -> None:
    n, wd = ns
    sock = wd / f"{n.name}.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.close()  # a daemon killed -9 leaves this behind
    d = Daemon(n, wd)
    try:
        # The stale file exists already: wait for the daemon's own.
        assert wait_until(lambda: "listening on" in d.log_text()), d.log_text()
        assert json.loads(d.cli("-j", "show", "tunnel").stdout) == []
        assert "removed the stale control socket" in d.log_text()
    finally:
        log = d.stop()
    assert d.proc.returncode == 0, log
    assert not os.path.lexists(sock)
    # Its socket replaced while it runs: the replacement stays.
    d = Daemon(n, wd)
    try:
        sock.unlink()
        sock.write_text("not yours\n")
    finally:
        log = d.stop()
    assert d.proc.returncode == 0, log
    assert sock.read_text() == "not yours\n"


# -- signals --------------------------------------------------------------------------------


def _connect(path: str, data: bytes = b"") -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    if data:
        s.sendall(data)
    return s


def test_sigterm_with_clients_connected_is_clean(ns: tuple[Netns, Path]) -> None:
    n, wd = ns
    d = Daemon(n, wd)
    with contextlib.ExitStack() as stack:
        try:
            for data in (b"", b'{"op": "show_t', b'{"op": "ping"}\n'):
                for _ in range(3):
                    stack.enter_context(_connect(d.socket, data))
            time.sleep(0.5)
            d.proc.send_signal(signal.SIGTERM)
            d.proc.wait(timeout=5)
        finally:
            log = d.stop()
    assert d.proc.returncode == 0, log
    for word in ("Traceback", "CancelledError", "Exception", "ERROR"):
        assert word not in log, log
    assert not os.path.lexists(d.socket)


def test_sighup_is_logged_and_ignored(ns: tuple[Netns, Path]) -> None:
    n, wd = ns
    d = Daemon(n, wd)
    try:
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert d.proc.poll() is None, d.log_text()
        d.proc.send_signal(signal.SIGHUP)
        assert json.loads(d.cli("-j", "show", "tunnel").stdout) == []
        hups = [line for line in d.log_text().splitlines() if "SIGHUP" in line]
        assert len(hups) == 2, d.log_text()
        assert "ignored" in hups[0]
    finally:
        log = d.stop()
    assert d.proc.returncode == 0, log
    assert "Traceback" not in log


# -- idle and slow clients --------------------------------------------------------------------


def _raise_fd_limit(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def test_a_thousand_idle_connections_do_not_block_show(ns: tuple[Netns, Path]) -> None:
    n, wd = ns
    _raise_fd_limit(4096)
    # The daemon with systemd's default soft limit of open files.
    d = Daemon(n, wd, command=["prlimit", "--nofile=1024", *daemon_cmd()])
    with contextlib.ExitStack() as stack:
        try:
            # 1,100: more than its file descriptors.
            for _ in range(1100):
                stack.enter_context(_connect(d.socket))
            start = time.monotonic()
            show = d.cli("show", "tunnel", check=False)
            took = time.monotonic() - start
            assert show.returncode == 0, show.stderr
            assert took < 5
        finally:
            log = d.stop()
    assert d.proc.returncode == 0, log
    busy = [line for line in log.splitlines() if "connections open" in line]
    assert len(busy) == 1, log


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:"))  # fmt: skip


def _daemon_pid(d: Daemon) -> int:
    # `ip netns exec` execs the daemon: same PID.
    return d.proc.pid


def test_slow_clients_do_not_grow_memory(ns: tuple[Netns, Path]) -> None:
    """60 clients (under the limit) each sending a 10 MB request without its newline,
    slowly: the daemon buffers at most about twice the request limit for each."""
    n, wd = ns
    d = Daemon(n, wd)
    socks: list[socket.socket] = []
    try:
        before = _rss_kib(_daemon_pid(d))
        for _ in range(60):
            s = _connect(d.socket)
            s.setblocking(False)
            socks.append(s)
        sent = 0
        for _ in range(40):
            for s in socks:
                with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionResetError):
                    sent += s.send(b"[" * 262144)
            time.sleep(0.02)
        grown = _rss_kib(_daemon_pid(d)) - before
        assert grown < 40 * 1024, f"RSS grew by {grown} KiB"
        assert d.proc.poll() is None
    finally:
        for s in socks:
            s.close()
        log = d.stop()
    assert d.proc.returncode == 0, log


# -- peer credentials ---------------------------------------------------------------------------


def _as_user(path: str, uid: int, gid: int, groups: tuple[int, ...] = ()) -> str:
    """Connect as ``uid``/``gid`` (supplementary ``groups``) in a child, send a ping: the
    answer line, or the OSError's name."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(rfd)
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(5)
                    s.connect(path)
                    s.sendall(b'{"op": "ping"}\n')
                    out = s.recv(4096)
            except OSError as exc:
                out = type(exc).__name__.encode()
            os.write(wfd, out)
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        out = r.read()
    os.waitpid(pid, 0)
    return out.decode()


def test_peer_credentials_are_checked(ns: tuple[Netns, Path]) -> None:
    n, wd = ns
    d = Daemon(n, wd)
    try:
        assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o600
        # The file mode keeps others out; then SO_PEERCRED does, each refusal logged once
        # per uid.
        os.chmod(wd, 0o755)
        assert _as_user(d.socket, NOBODY, NOBODY) == "PermissionError"
        os.chmod(d.socket, 0o666)
        for _ in range(5):
            answer = json.loads(_as_user(d.socket, NOBODY, NOBODY))
            assert answer["ok"] is False
            assert answer["error"].startswith("permission denied")
        assert json.loads(_as_user(d.socket, 0, 0))["ok"] is True
        refusals = [line for line in d.log_text().splitlines() if "refused uid" in line]
        assert len(refusals) == 1, d.log_text()
        assert f"uid {NOBODY}" in refusals[0]
    finally:
        log = d.stop()
    assert d.proc.returncode == 0, log


def test_group_may_use_the_socket(ns: tuple[Netns, Path]) -> None:
    n, wd = ns
    nogroup = grp.getgrgid(NOBODY).gr_name
    d = Daemon(n, wd, command=[*daemon_cmd(), "--group", nogroup])
    try:
        st = os.stat(d.socket)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert st.st_gid == NOBODY
        os.chmod(wd, 0o755)
        # Its primary group, a supplementary group: in; no group: out (file mode).
        assert json.loads(_as_user(d.socket, NOBODY, NOBODY))["ok"] is True
        assert json.loads(_as_user(d.socket, STRANGER, STRANGER, (NOBODY,)))["ok"] is True
        assert _as_user(d.socket, STRANGER, STRANGER) == "PermissionError"
        # And past the file mode, SO_PEERCRED.
        os.chmod(d.socket, 0o666)
        answer = json.loads(_as_user(d.socket, STRANGER, STRANGER))
        assert answer["error"].startswith("permission denied")
    finally:
        log = d.stop()
    assert d.proc.returncode == 0, log


def test_unknown_group_is_one_line(tmp_path: Path) -> None:
    require_root()
    proc = subprocess.run(
        [*daemon_cmd(), "-S", str(tmp_path / "x.sock"), "--group", "no-such-group-l2tp"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    _one_line(proc, 'unknown group "no-such-group-l2tp"')
    assert not os.path.lexists(tmp_path / "x.sock")


# -- the client ---------------------------------------------------------------------------------


def test_client_on_a_stale_socket_asks_if_it_runs(tmp_path: Path) -> None:
    require_root()
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()
    proc = subprocess.run([*client_cmd(), "-S", path, "show", "tunnel"], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr == (
        f"Error: cannot reach l2tpv3d at {path}: connection refused (is it running?)\n"
    )
