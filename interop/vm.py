"""A QEMU (TCG) guest running the kernel peer, driven over its second serial port.

QEMU runs inside a network namespace (``ip netns exec``), so its NIC, whatever the
backend, only ever reaches that namespace. It is stopped by PID, and the socket and log
live in a directory the caller owns.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from interop.build import Artifacts
from interop.guest import BEGIN, END, READY


class GuestError(Exception):
    pass


class GuestHang(GuestError):
    """The guest's shell stopped answering: the VM is stopped and must be booted again
    (KernelPeer.revive). The interop tests rerun once on this error alone
    (tests/interop/conftest.py), never on a failed command or a data-path failure."""


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child before exec (`ip netns exec` then execs qemu, keeping it): if
    # the harness is killed outright, the kernel kills QEMU too instead of orphaning it.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass(frozen=True)
class Result:
    status: int
    output: str

    def check(self) -> str:
        if self.status != 0:
            raise GuestError(f"guest command failed ({self.status}): {self.output.strip()}")
        return self.output


class Vm:
    """One guest. ``netdev`` is the QEMU -netdev value for its single NIC."""

    def __init__(self, art: Artifacts, netns: str, netdev: str, workdir: Path,
                 memory_mb: int = 256, boot_timeout: float = 120) -> None:  # fmt: skip
        self.workdir = workdir
        self.console = workdir / "console.log"
        self.sock_path = workdir / "cmd.sock"
        self._seq = 0
        self._buf = b""
        args = [
            "ip", "netns", "exec", netns,
            "qemu-system-x86_64", "-accel", "tcg", "-M", "pc", "-m", str(memory_mb),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", str(art.kernel), "-initrd", str(art.initrd),
            "-append", "console=ttyS0 panic=-1 quiet loglevel=4 net.ifnames=0",
            "-serial", f"file:{self.console}",
            "-chardev", f"socket,id=cmd,path={self.sock_path},server=on,wait=off",
            "-serial", "chardev:cmd",
            "-netdev", netdev,
            "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:02",
        ]  # fmt: skip
        started = time.monotonic()
        self.qemu_log = open(workdir / "qemu.log", "w")  # noqa: SIM115 - closed in stop()
        # `ip netns exec` execs qemu, so this PID is qemu's own.
        self.proc = subprocess.Popen(
            args, stdout=self.qemu_log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        try:
            self.sock = self._connect(started + 10)
            self._wait_ready(started + boot_timeout)
        except BaseException:
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - started

    def _connect(self, deadline: float) -> socket.socket:
        while True:
            if self.proc.poll() is not None:
                raise GuestError(f"qemu exited: {self._qemu_output()}")
            if self.sock_path.exists():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(str(self.sock_path))
                    return s
                except OSError:
                    s.close()
            if time.monotonic() > deadline:
                raise GuestError("qemu did not open its command socket")
            time.sleep(0.05)

    def _qemu_output(self) -> str:
        self.qemu_log.flush()
        return (self.workdir / "qemu.log").read_text(errors="replace").strip()

    def _read_line(self, deadline: float) -> str:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                if self.proc.poll() is not None:
                    raise GuestError(f"qemu exited: {self._qemu_output()}") from None
                continue
            if not chunk:
                raise GuestError(f"guest closed its command port: {self.console_text()[-2000:]}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode(errors="replace").rstrip("\r")

    def _wait_ready(self, deadline: float) -> None:
        try:
            while self._read_line(deadline) != READY:
                pass
        except TimeoutError:
            raise GuestError(f"guest did not boot: {self.console_text()[-3000:]}") from None

    def console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def run(self, script: str, timeout: float = 60) -> Result:
        """Run a shell script in the guest; its exit status and combined output."""
        self._seq += 1
        tag = str(self._seq)
        payload = base64.b64encode(script.encode()).decode()
        self.sock.sendall(f"{tag} {payload}\n".encode())
        deadline = time.monotonic() + timeout
        out: list[str] = []
        begun = False
        try:
            while self._read_line(deadline) != f"{BEGIN} {tag}":
                pass
            begun = True
            while True:
                line = self._read_line(deadline)
                if line.startswith(f"{END} {tag} "):
                    return Result(int(line.split()[2]), "".join(s + "\n" for s in out))
                out.append(line)
        except TimeoutError:
            # The guest shell is now busy with a command we gave up on; no later command
            # could be trusted, so the guest is unusable.
            self.stop()
            # Whether the guest's shell took the command at all, what it printed, and the
            # kernel console's last lines (an oops or a stall shows there).
            state = "started" if begun else "never started"
            raise GuestHang(
                f"guest command timed out after {timeout}s ({state}): {script!r}\n"
                f"output so far: {''.join(s + chr(10) for s in out)[-1500:]!r}\n"
                f"console:\n{self.console_text()[-3000:]}"
            ) from None

    def sh(self, script: str, timeout: float = 60) -> str:
        return self.run(script, timeout).check()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        with contextlib.suppress(AttributeError, OSError):
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.qemu_log.close()
