"""`l2tpv3 capture`: the daemon's end. A capture request takes its control connection
over: the tunnel's port starts recording (io/capture.py, or the engine's
fast/fp_capture.c), and this loop hands the records to the client as they come
(control/protocol.py CAPTURE_FRAME) until the client hangs up, the tunnel (or the one
session captured) is deleted, or the daemon stops. The client writes the file: the
daemon, which runs with reduced privileges, opens nothing.

A slow client never slows the tunnel: while the connection's send buffer holds more
than :data:`MAX_PENDING` bytes no records are taken, so the port's buffer fills and
further records are lost and counted (``capture_lost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Final

from l2tpv3.control.protocol import CAPTURE_END, CAPTURE_FRAME, CAPTURE_RECORDS
from l2tpv3.control.server import Streamer
from l2tpv3.daemon.core import Daemon
from l2tpv3.errors import L2TPError
from l2tpv3.proto.counters import CAPTURE_LOST

__all__ = ["MAX_PENDING", "POLL", "capture_streamer"]

log = logging.getLogger("l2tpv3d")

# Seconds between takes: what a capture adds to the daemon's loop is this tick.
POLL: Final = 0.02
# Bytes the connection may hold unsent before records are left in the port's buffer.
MAX_PENDING: Final = 4 * 1024 * 1024
# With nothing captured, a frame this often anyway: the client learns capture_lost.
_HEARTBEAT: Final = 1.0


def _id(message: dict[str, Any], key: str) -> int:
    value = message.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f'"{key}" must be an ID')
    return value


def capture_streamer(daemon: Daemon) -> Streamer:
    """The ``capture`` streamer of the control server (control/server.py Streamer)."""

    async def stream(
        message: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            tid = _id(message, "tunnel_id")
            sid = _id(message, "session_id")
            port = daemon.capture_open(tid, sid)
        except (L2TPError, ValueError) as exc:
            writer.write(json.dumps({"ok": False, "error": str(exc)}).encode() + b"\n")
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.drain(), 10.0)
            return
        what = f"tunnel {tid}" + (f" session {sid}" if sid else "")
        log.info("capture of %s: started", what)
        writer.write(b'{"ok": true, "result": null}\n')
        hangup = asyncio.ensure_future(reader.read(1))
        lost = 0
        why = "the client closed the connection"
        idle = 0.0
        gone = False
        try:
            while True:
                if daemon.tunnels.get(tid) is not port:
                    why = f"tunnel {tid} was deleted"
                    break
                if sid and sid not in port.ports:
                    why = f"session {sid} was deleted"
                    break
                if writer.transport.get_write_buffer_size() < MAX_PENDING:
                    data, lost = port.capture_take()
                    if data or idle >= _HEARTBEAT:
                        writer.write(CAPTURE_FRAME.pack(CAPTURE_RECORDS, lost, len(data)) + data)
                        idle = 0.0
                done, _ = await asyncio.wait({hangup}, timeout=POLL)
                idle += POLL
                if done or writer.is_closing():
                    gone = True
                    break
        finally:
            hangup.cancel()
            if daemon.tunnels.get(tid) is port:
                _, lost = port.capture_take()
                port.capture_stop()
            log.info("capture of %s: ended (%s), %s %d", what, why, CAPTURE_LOST, lost)
        if not gone:
            end = why.encode()
            with contextlib.suppress(OSError, RuntimeError):
                writer.write(CAPTURE_FRAME.pack(CAPTURE_END, lost, len(end)) + end)
                await asyncio.wait_for(writer.drain(), 1.0)

    return stream
