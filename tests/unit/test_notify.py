"""sd_notify datagrams (l2tpv3.daemon.notify) received on a socket the test binds."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2tpv3.daemon.notify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2)
    try:
        yield sock, path
    finally:
        sock.close()


def test_ready_and_stopping_on_a_path(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled and n.watchdog_interval is None
    assert n.ready("listening on /run/x")
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening on /run/x"
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    n.close()


def test_abstract_namespace() -> None:
    name = f"l2tpv3-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert sock.recv(4096) == b"READY=1"
        n.close()


def test_watchdog_every_half_interval(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    assert n.watchdog_interval == pytest.approx(0.05)

    async def run() -> None:
        task = asyncio.create_task(n.watchdog())
        await asyncio.sleep(0.22)
        task.cancel()

    asyncio.run(run())
    got = []
    sock.settimeout(0.1)
    while True:
        try:
            got.append(sock.recv(4096))
        except TimeoutError:
            break
    assert 4 <= len(got) <= 6 and set(got) == {b"WATCHDOG=1"}
    n.close()


def test_watchdog_for_another_pid_or_without_socket() -> None:
    other = Notifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000",
                      "WATCHDOG_PID": str(os.getpid() + 1)})  # fmt: skip
    assert other.watchdog_interval is None
    mine = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000",
                     "WATCHDOG_PID": str(os.getpid())})  # fmt: skip
    assert mine.watchdog_interval == 0.5
    off = Notifier({"WATCHDOG_USEC": "1000000"})
    assert not off.enabled and off.watchdog_interval is None
    assert not off.ready()
    asyncio.run(off.watchdog())  # returns at once


def test_unreachable_socket_is_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing")})
    assert not n.ready()
    assert not n.send("WATCHDOG=1")
    assert sum("sd_notify" in r.message for r in caplog.records) == 1
    n.close()
