"""The daemon's end of the control socket: JSON lines in, answers out.

:func:`serve` listens; :func:`handler` answers each request by the op table of
:mod:`l2tpv3.control.protocol`, running it on the daemon's :class:`Operations`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from l2tpv3.control.protocol import MAX_MESSAGE, Operations, decode_request
from l2tpv3.errors import ControlError, L2TPError

__all__ = ["Handler", "answer", "handler", "serve"]

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

log = logging.getLogger("l2tpv3d")


def answer(ops: Operations, message: dict[str, Any]) -> dict[str, Any]:
    """Run one request on ``ops``; every failure becomes a one-line error answer."""
    try:
        return {"ok": True, "result": decode_request(message).run(ops)}
    except L2TPError as exc:
        return {"ok": False, "error": str(exc)}
    except (TypeError, ValueError, KeyError) as exc:
        return {"ok": False, "error": f"malformed request: {exc}"}
    except Exception as exc:
        # A bug of ours must not take the pseudowires down with it: answer, log
        # one line (the traceback only with -v), carry on.
        log.error("internal error handling %s: %r", message.get("op"), exc)
        log.debug("traceback", exc_info=True)
        return {"ok": False, "error": f"internal error: {exc!r}"}


def handler(ops: Operations) -> Handler:
    """The :func:`serve` handler that answers with :func:`answer`."""

    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        return answer(ops, message)

    return handle


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
                    reply: dict[str, Any] = {"ok": False, "error": "malformed request"}
                else:
                    reply = await handler(message)
                writer.write(json.dumps(reply).encode() + b"\n")
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
