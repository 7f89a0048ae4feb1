"""`l2tpv3 capture` on the pure-Python data path: a tunnel's bounded capture buffer.

The record format and the rules are shared with the C engine (fast/fp_capture.c), which
gets the numbers from constants.py and proto/counters.py through fast/cgen.py:

* a record is :data:`RECORD` (time in ns since the epoch, our session ID, the packet's
  length, :data:`~l2tpv3.constants.CAPTURE_IN` or ``CAPTURE_OUT``, the drop reason code:
  0, or 1 + its index in :data:`~l2tpv3.proto.counters.CAPTURE_DROP_REASONS`; two
  bytes of padding), then the packet: the L2TP part of the datagram (the UDP payload,
  or the IP payload over IP) as it left or arrived;
* two buffers of ``CAPTURE_HALF_BYTES``: the data path appends to one, the daemon takes
  it whole (:meth:`CaptureRing.take`) and the data path goes on in the other. A record
  that does not fit is lost and counted (``capture_lost``), so a reader that never
  reads costs the tunnel nothing but the copies;
* with a session filter, only records of that session (for a packet that reached no
  session: whose header names it) are kept;
* a received packet is marked with the first reason whose counter it moved
  (:func:`drop_snapshot`); a datagram from a stranger only when this tunnel counted it.

Nothing here runs unless a capture does: the ports test for one once per batch.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Final

from l2tpv3.constants import CAPTURE_HALF_BYTES, CAPTURE_HDR_LEN, CAPTURE_IN, CAPTURE_OUT
from l2tpv3.proto.api import Payload, SessionAPI, TunnelAPI
from l2tpv3.proto.counters import (
    CAPTURE_DROP_REASONS,
    DROP_REASONS,
    DROP_WRONG_SOURCE,
    FRAME_TOO_LONG,
    FRAME_TOO_SHORT,
)

__all__ = [
    "RECORD",
    "CaptureRing",
    "Foreign",
    "Receive",
    "Sender",
    "capture_receivers",
    "drop_code",
    "drop_snapshot",
    "header_session_id",
]

RECORD: Final = struct.Struct("<QIIBBH")
assert RECORD.size == CAPTURE_HDR_LEN, "CAPTURE_HDR_LEN in constants.py"

Sender = Callable[[bytes | memoryview, tuple[str, int]], object]
_WRONG_SOURCE_CODE: Final = CAPTURE_DROP_REASONS.index(DROP_WRONG_SOURCE) + 1
_NO_SESSION: Final = (0, 0, 0, 0, 0)


def header_session_id(payload: Payload, udp: bool) -> int:
    """The session ID a datagram's L2TP header names (0 if it is too short for one)."""
    if udp:
        return int.from_bytes(payload[4:8], "big") if len(payload) >= 8 else 0
    return int.from_bytes(payload[0:4], "big") if len(payload) >= 4 else 0


def drop_snapshot(tunnel: TunnelAPI, session: SessionAPI | None) -> tuple[int, ...]:
    """The counters of :data:`CAPTURE_DROP_REASONS`, in its order."""
    drops = tunnel.drops
    tun = tuple(drops[r] for r in DROP_REASONS)
    if session is None:
        return tun + _NO_SESSION
    c = session.counters
    sd = session.drops
    return (
        *tun,
        c.rx_cookie_discards,
        c.rx_seq_discards,
        sd[FRAME_TOO_SHORT],
        sd[FRAME_TOO_LONG],
        c.rx_errors,
    )


def drop_code(before: tuple[int, ...], after: tuple[int, ...]) -> int:
    """1 + the index of the first counter that moved, or 0."""
    for i, (a, b) in enumerate(zip(before, after, strict=True)):
        if b != a:
            return i + 1
    return 0


class CaptureRing:
    """One tunnel's capture: two bounded buffers and the count of records lost."""

    __slots__ = ("_parts", "_used", "lost", "records", "session_id")

    def __init__(self, session_id: int = 0) -> None:
        # 0: every session's packets.
        self.session_id = session_id
        # CAPTURE_COUNTERS (proto/counters.py): kept, and lost to a slow reader.
        self.records = 0
        self.lost = 0
        self._parts: list[bytes] = []
        self._used = 0

    def add(self, direction: int, session_id: int, drop: int, data: Payload) -> None:
        if self.session_id and session_id != self.session_id:
            return
        size = CAPTURE_HDR_LEN + len(data)
        if self._used + size > CAPTURE_HALF_BYTES:
            self.lost += 1
            return
        self._parts.append(RECORD.pack(time.time_ns(), session_id, len(data), direction, drop, 0))
        self._parts.append(bytes(data))
        self._used += size
        self.records += 1

    def take(self) -> bytes:
        """The records added since the last call, and room for as many again."""
        out = b"".join(self._parts)
        self._parts = []
        self._used = 0
        return out

    def sender(self, send: Sender, session_id: int) -> Sender:
        """``send``, recording each datagram first (what the engine records too,
        whether or not the send then succeeds)."""
        add = self.add

        def capturing(data: bytes | memoryview, peer: tuple[str, int]) -> object:
            add(CAPTURE_OUT, session_id, 0, data)
            return send(data, peer)

        return capturing


Receive = Callable[[Payload, float], tuple[SessionAPI | None, list[Payload]]]
Foreign = Callable[[Payload, str], None]


def capture_receivers(ring: CaptureRing, tunnel: TunnelAPI, udp: bool) -> tuple[Receive, Foreign]:
    """The tunnel's ``receive`` and ``receive_foreign``, recording each datagram with
    the drop reason it was counted under."""
    receive = tunnel.receive
    foreign = tunnel.receive_foreign
    sessions = tunnel.sessions
    add = ring.add

    def capturing_receive(data: Payload, now: float) -> tuple[SessionAPI | None, list[Payload]]:
        sid = header_session_id(data, udp)
        session = sessions.get(sid)
        before = drop_snapshot(tunnel, session)
        result = receive(data, now)
        add(CAPTURE_IN, sid, drop_code(before, drop_snapshot(tunnel, session)), data)
        return result

    def capturing_foreign(data: Payload, host: str) -> None:
        before = tunnel.drops[DROP_WRONG_SOURCE]
        foreign(data, host)
        if tunnel.drops[DROP_WRONG_SOURCE] != before:
            add(CAPTURE_IN, header_session_id(data, udp), _WRONG_SOURCE_CODE, data)

    return capturing_receive, capturing_foreign
