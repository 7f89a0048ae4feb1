"""The JSON-lines control protocol, over a real Unix socket."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from l2tpv3.control.client import request
from l2tpv3.control.server import serve
from l2tpv3.errors import ControlError


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    path = str(tmp_path / "ctl.sock")
    seen: list[dict[str, Any]] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def handler(msg: dict[str, Any]) -> dict[str, Any]:
        seen.append(msg)
        return {"ok": True, "result": msg.get("op")}

    stop = asyncio.Event()

    async def main() -> None:
        srv = await serve(path, handler)
        ready.set()
        await stop.wait()
        srv.close()
        await srv.wait_closed()
        # Let connection handlers see their EOF and close their sockets.
        for _ in range(20):
            await asyncio.sleep(0.01)
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if not others:
                break
            await asyncio.wait_for(asyncio.gather(*others, return_exceptions=True), 5)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    yield path, seen
    loop.call_soon_threadsafe(stop.set)
    thread.join(5)
    loop.close()


def test_request_and_answer(server: tuple[str, list[dict[str, Any]]]) -> None:
    path, seen = server
    assert request(path, {"op": "show_tunnels"}) == {"ok": True, "result": "show_tunnels"}
    assert seen == [{"op": "show_tunnels"}]


def test_socket_is_owner_only(server: tuple[str, list[dict[str, Any]]]) -> None:
    path, _ = server
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_malformed_request_gets_an_error(server: tuple[str, list[dict[str, Any]]]) -> None:
    path, seen = server
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(b"{not json\n[1,2]\n")
        data = b""
        while data.count(b"\n") < 2:
            data += s.recv(4096)
    assert data.count(b"malformed request") == 2
    assert seen == []


def test_second_daemon_on_the_same_socket_is_refused(
    server: tuple[str, list[dict[str, Any]]],
) -> None:
    path, _ = server

    async def second() -> None:
        await serve(path, lambda m: asyncio.sleep(0, {"ok": True}))

    with pytest.raises(ControlError, match="already listening"):
        asyncio.run(second())
    # The first daemon still answers (and has accepted, and closed, the probe).
    assert request(path, {"op": "ping"})["ok"]


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # the file stays, nobody listens

    async def start() -> None:
        srv = await serve(path, lambda m: asyncio.sleep(0, {"ok": True}))
        srv.close()
        await srv.wait_closed()

    asyncio.run(start())


def test_unreachable_daemon_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ControlError) as info:
        request(str(tmp_path / "none.sock"), {"op": "show_tunnels"})
    assert "is it running" in str(info.value)
    assert "\n" not in str(info.value)


def test_stale_socket_is_one_clear_line(tmp_path: Path) -> None:
    # A daemon killed -9 leaves its socket file: connect is refused, as good as no daemon.
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()
    with pytest.raises(ControlError) as info:
        request(path, {"op": "show_tunnels"})
    assert str(info.value) == (
        f"cannot reach l2tpv3d at {path}: connection refused (is it running?)"
    )
