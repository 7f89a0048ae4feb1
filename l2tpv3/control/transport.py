"""The control protocol between ``l2tpv3`` and ``l2tpv3d``: one JSON object per line.

A request is ``{"op": NAME, ...}``; the answer is ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "one line"}``. Operations:

- ``add_tunnel`` with ``config`` (TunnelConfig.to_dict())
- ``del_tunnel`` with ``tunnel_id``
- ``add_session`` with ``config`` (SessionConfig.to_dict())
- ``del_session`` with ``tunnel_id`` and ``session_id``
- ``show_tunnels`` with optional ``tunnel_id``: a list of tunnel states
- ``show_sessions`` with optional ``tunnel_id`` and ``session_id``: a list of session states
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from l2tpv3.errors import ControlError

MAX_MESSAGE = 16 * 1024 * 1024

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def request(path: str, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request and wait for its answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(json.dumps(message).encode() + b"\n")
            buf = bytearray()
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > MAX_MESSAGE:
                    raise ControlError(f"answer from {path} is too large")
    except FileNotFoundError:
        raise ControlError(
            f"cannot reach l2tpv3d at {path}: no such socket (is it running?)"
        ) from None
    except PermissionError:
        raise ControlError(f"cannot reach l2tpv3d at {path}: permission denied") from None
    except TimeoutError:
        raise ControlError(f"l2tpv3d at {path} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise ControlError(f"cannot reach l2tpv3d at {path}: {exc.strerror or exc}") from None
    try:
        answer = json.loads(buf)
    except ValueError:
        raise ControlError(f"l2tpv3d at {path} sent a malformed answer") from None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise ControlError(f"l2tpv3d at {path} sent a malformed answer")
    return answer


async def serve(path: str, handler: Handler) -> asyncio.AbstractServer:
    """Listen on a Unix socket readable and writable by its owner only (mode 0600)."""
    with contextlib.suppress(FileNotFoundError):
        if _socket_is_live(path):
            raise ControlError(f"another l2tpv3d is already listening on {path}")
        os.unlink(path)

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    message = json.loads(line)
                    if not isinstance(message, dict):
                        raise ValueError
                except ValueError:
                    answer: dict[str, Any] = {"ok": False, "error": "malformed request"}
                else:
                    answer = await handler(message)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(on_client, path=path, limit=MAX_MESSAGE)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return server


def _socket_is_live(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return False
        return True
