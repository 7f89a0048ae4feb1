"""The control socket never harms (issue 11): what ``-S PATH`` may remove, and what one
client may cost the daemon (size limit, read and idle timeouts, connection limit).

Peer credentials and the daemon as a process are in tests/netns/test_control_socket.py
(they need root).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from l2tpv3.control.client import request
from l2tpv3.control.protocol import MAX_REQUEST, Operations
from l2tpv3.control.server import ControlServer, Limits, handler, serve
from l2tpv3.errors import ControlError, StateError

FAST = Limits(read_timeout=0.3, idle_timeout=0.6, connections=4)


async def _echo(msg: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": msg.get("op")}


@contextlib.contextmanager
def running(path: str, limits: Limits | None = None) -> Iterator[ControlServer]:
    """``serve(path)`` on its own event loop in a thread, closed afterwards."""
    loop = asyncio.new_event_loop()
    box: dict[str, ControlServer] = {}
    ready = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        box["srv"] = await serve(path, _echo, limits=limits)
        ready.set()
        await stop.wait()
        await box["srv"].aclose()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        yield box["srv"]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        assert not thread.is_alive()
        loop.close()


def _start(path: str) -> None:
    async def start() -> None:
        srv = await serve(path, _echo)
        await srv.aclose()

    asyncio.run(start())


def _lines(sock: socket.socket, timeout: float = 5) -> list[bytes]:
    """Everything the daemon sends until it closes the connection, as lines."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data.splitlines()


# -- -S PATH: only a stale socket is ever removed ---------------------------------------


def test_regular_file_is_not_removed(tmp_path: Path) -> None:
    config = tmp_path / "l2tpv3d.toml"
    config.write_text("[[tunnel]]\n")
    with pytest.raises(ControlError, match="not a socket") as info:
        _start(str(config))
    assert "\n" not in str(info.value)
    assert config.read_text() == "[[tunnel]]\n"


def test_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="directory"):
        _start(str(tmp_path))
    assert tmp_path.is_dir()


def test_symlink_is_not_removed(tmp_path: Path) -> None:
    # Also a link to a stale socket: the link is not ours to remove.
    target = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(target))
    s.close()
    link = tmp_path / "link.sock"
    link.symlink_to(target)
    with pytest.raises(ControlError, match="symbolic link"):
        _start(str(link))
    assert link.is_symlink()
    assert stat.S_ISSOCK(os.lstat(target).st_mode)


def test_missing_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="no such directory") as info:
        _start(str(tmp_path / "missing" / "ctl.sock"))
    assert "\n" not in str(info.value)


def test_live_socket_of_another_program_stays(tmp_path: Path) -> None:
    path = str(tmp_path / "other.sock")
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(path)
        other.listen(1)
        ino = os.lstat(path).st_ino
        with pytest.raises(ControlError, match="already listening"):
            _start(path)
        assert os.lstat(path).st_ino == ino


def test_datagram_socket_of_another_program_stays(tmp_path: Path) -> None:
    # A stream connect to it is not refused (EPROTOTYPE): not a stale l2tpv3d socket.
    path = str(tmp_path / "dgram.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as other:
        other.bind(path)
        ino = os.lstat(path).st_ino
        with pytest.raises(ControlError, match="not removed"):
            _start(path)
        assert os.lstat(path).st_ino == ino


def test_stale_socket_is_replaced_and_ours_removed_on_close(tmp_path: Path) -> None:
    path = str(tmp_path / "ctl.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()
    with running(path):
        assert request(path, {"op": "ping"})["ok"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not os.path.lexists(path)


def test_close_leaves_a_socket_that_is_not_ours(tmp_path: Path) -> None:
    path = str(tmp_path / "ctl.sock")
    with running(path):
        os.unlink(path)
        with socket.socket(socket.AF_UNIX) as other:
            other.bind(path)
            ino = os.lstat(path).st_ino
    assert os.lstat(path).st_ino == ino


# -- messages -----------------------------------------------------------------------------


def test_request_over_the_size_limit_is_one_error_then_closed(tmp_path: Path) -> None:
    path = str(tmp_path / "ctl.sock")
    with running(path), socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(b'{"op": "' + b"x" * MAX_REQUEST + b'"}\n{"op": "ping"}\n')
        (line,) = _lines(s)
    answer = json.loads(line)
    assert answer["ok"] is False
    assert f"longer than {MAX_REQUEST} bytes" in answer["error"]


def test_ten_megabytes_without_a_newline_are_not_buffered(tmp_path: Path) -> None:
    path = str(tmp_path / "ctl.sock")
    with running(path), socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.settimeout(5)
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < 10 << 20:
                sent += s.send(b"[" * 65536)
        assert sent < 10 << 20  # the daemon closed the connection long before
        with contextlib.suppress(ConnectionResetError):
            assert b"longer than" in s.recv(65536)


def test_largest_request_is_answered(tmp_path: Path) -> None:
    path = str(tmp_path / "ctl.sock")
    with running(path):
        pad = "x" * (MAX_REQUEST - 100)
        assert request(path, {"op": "ping", "pad": pad}) == {"ok": True, "result": "ping"}


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deeply_nested_json_is_answered(tmp_path: Path, opener: bytes) -> None:
    path = str(tmp_path / "ctl.sock")
    with running(path), socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(opener * 10_000 + b"\n" + b'{"op": "ping"}\n')
        s.shutdown(socket.SHUT_WR)
        first, second = (json.loads(line) for line in _lines(s))
    assert first == {"ok": False, "error": "malformed request: nested too deeply"}
    assert second == {"ok": True, "result": "ping"}


def test_decode_errors_say_why(tmp_path: Path) -> None:
    path = str(tmp_path / "ctl.sock")
    with running(path), socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(b"\xff\n[1]\n\n")
        s.shutdown(socket.SHUT_WR)
        answers = [json.loads(line) for line in _lines(s)]
    assert [a["ok"] for a in answers] == [False, False, False]
    for a in answers:
        assert a["error"].startswith("malformed request: ")
    assert answers[1]["error"] == "malformed request: not a JSON object"


def test_error_answers_are_one_line(tmp_path: Path) -> None:
    path = str(tmp_path / "ctl.sock")

    class Ops:
        def del_tunnel(self, tunnel_id: int) -> None:
            raise StateError("tunnel\n1\u2028does not exist")

    async def main() -> list[dict[str, Any]]:
        srv = await serve(path, handler(cast(Operations, Ops())))
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b'{"op": "del_tunnel", "tunnel_id": 1}\n{"op": "a\\rb"}\n')
        writer.write(b'{"op": "add_tunnel", "config": {"x\\ny": 1}}\n')
        lines = [await reader.readline() for _ in range(3)]
        writer.close()
        await srv.aclose()
        return [json.loads(line) for line in lines]

    errors = [a["error"] for a in asyncio.run(main())]
    assert errors[:2] == ["tunnel\\n1\\u2028does not exist", 'unknown operation "a\\rb"']
    assert "x\\ny" in errors[2]
    for error in errors:
        assert len(error.splitlines()) == 1


# -- what one client may cost ---------------------------------------------------------------


def test_half_sent_request_times_out(tmp_path: Path) -> None:
    path = str(tmp_path / "ctl.sock")
    with running(path, FAST), socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(b'{"op": "pi')
        start = time.monotonic()
        (line,) = _lines(s)
        assert time.monotonic() - start < 3
    assert "not completed within 0.3 s" in json.loads(line)["error"]


def test_idle_connection_is_closed(tmp_path: Path) -> None:
    path = str(tmp_path / "ctl.sock")
    with running(path, FAST), socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        # Requests keep it open; then silence closes it.
        for _ in range(3):
            time.sleep(0.3)
            s.sendall(b'{"op": "ping"}\n')
            assert json.loads(s.recv(4096))["ok"]
        start = time.monotonic()
        assert _lines(s) == []
        assert 0.4 < time.monotonic() - start < 3


def _wait(predicate: Any, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_connection_limit_turns_away_new_ones_when_all_are_busy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "ctl.sock")
    limits = Limits(read_timeout=5, idle_timeout=30, connections=4)
    caplog.set_level(logging.INFO, logger="l2tpv3d")
    with running(path, limits) as srv, contextlib.ExitStack() as stack:
        busy = []
        for _ in range(4):
            s = stack.enter_context(socket.socket(socket.AF_UNIX))
            s.connect(path)
            s.sendall(b'{"op": "pi')  # a request begun: not idle
            busy.append(s)
        _wait(lambda: srv.connections == 4)
        time.sleep(0.2)
        # The fifth to twentieth are turned away at once, each with one line.
        for _ in range(16):
            with socket.socket(socket.AF_UNIX) as extra:
                extra.connect(path)
                (line,) = _lines(extra, timeout=2)
            assert "too many connections" in json.loads(line)["error"]
        assert srv.refused_busy == 16
        busy_logs = [r for r in caplog.records if "connections open" in r.getMessage()]
        assert len(busy_logs) == 1  # once per burst, not per connection
        # One of them completes its request: answered, and then there is room again.
        busy[0].sendall(b'ng"}\n')
        assert json.loads(busy[0].recv(4096)) == {"ok": True, "result": "ping"}
        busy.pop(0).close()
        _wait(lambda: srv.connections == 3)
        assert request(path, {"op": "ping"}) == {"ok": True, "result": "ping"}


def test_connection_limit_closes_the_longest_idle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Idle connections cannot keep a client out: over the limit, the longest idle one
    is closed to make room."""
    path = str(tmp_path / "ctl.sock")
    limits = Limits(read_timeout=5, idle_timeout=30, connections=4)
    caplog.set_level(logging.INFO, logger="l2tpv3d")
    with running(path, limits) as srv, contextlib.ExitStack() as stack:
        idle = []
        for _ in range(4):
            s = stack.enter_context(socket.socket(socket.AF_UNIX))
            s.connect(path)
            idle.append(s)
            n = len(idle)
            _wait(lambda: srv.connections == n)  # noqa: B023 - waited for here
        for _ in range(4):  # each served, and left open (then idle too)
            s = stack.enter_context(socket.socket(socket.AF_UNIX))
            s.connect(path)
            s.sendall(b'{"op": "ping"}\n')
            assert json.loads(s.recv(4096)) == {"ok": True, "result": "ping"}
        assert srv.evicted == 4
        assert srv.refused_busy == 0
        assert srv.connections == 4
        for s in idle:  # the four first: closed, with no answer
            assert _lines(s, timeout=2) == []
        busy_logs = [r for r in caplog.records if "connections open" in r.getMessage()]
        assert len(busy_logs) == 1


def test_client_that_does_not_read_is_dropped(tmp_path: Path) -> None:
    # Answers it never reads may not pile up: the write times out, the connection goes.
    path = str(tmp_path / "ctl.sock")
    with running(path, FAST) as srv, socket.socket(socket.AF_UNIX) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(path)
        s.settimeout(1)
        big = b'{"op": "' + b"x" * 60000 + b'"}\n'  # echoed back in each answer
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
            for _ in range(1000):
                s.sendall(big)
        _wait(lambda: srv.connections == 0)
