"""Take an L2TP data message apart, for tests (the kernel vectors and captures, the scapy
and tshark checks). The daemon never parses a header this way: a session checks the
fields at the offsets of its HeaderLayout (l2tpv3/proto/layout.py)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from l2tpv3.config import Encap
from l2tpv3.constants import (
    L2SPEC_DEFAULT_LEN,
    L2SPEC_S_BIT,
    L2TP_VERSION_3,
    SEQ_MASK,
    UDP_FLAG_T,
    UDP_VERSION_MASK,
)

_U32 = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class ParsedData:
    """A data message taken apart, for tests, dissection and teaching."""

    session_id: int
    cookie: bytes
    l2spec: int | None
    frame: bytes

    @property
    def ns(self) -> int | None:
        if self.l2spec is None or not self.l2spec & L2SPEC_S_BIT:
            return None
        return self.l2spec & SEQ_MASK


class ParseError(ValueError):
    pass


def parse_data(payload: bytes, encap: Encap, cookie_len: int, l2spec: bool) -> ParsedData:
    """Take apart an L2TP data message (UDP or IP payload) given the session's sizes."""
    off = 0
    if encap is Encap.UDP:
        if len(payload) < 8:
            raise ParseError("shorter than the L2TP/UDP header")
        flags = payload[0] << 8 | payload[1]
        # Version first, then the T bit, as the kernel and the tunnel demux do.
        if flags & UDP_VERSION_MASK != L2TP_VERSION_3:
            raise ParseError(f"version {flags & UDP_VERSION_MASK}, not 3")
        if flags & UDP_FLAG_T:
            raise ParseError("T bit set: a control message")
        off = 4
    if len(payload) < off + 4:
        raise ParseError("shorter than a session ID")
    (session_id,) = _U32.unpack_from(payload, off)
    if encap is Encap.IP and session_id == 0:
        raise ParseError("session ID 0: a control message")
    if len(payload) < off + 4 + cookie_len + (L2SPEC_DEFAULT_LEN if l2spec else 0):
        raise ParseError("shorter than the session header")
    off += 4
    cookie = bytes(payload[off : off + cookie_len])
    off += cookie_len
    word = None
    if l2spec:
        (word,) = _U32.unpack_from(payload, off)
        off += L2SPEC_DEFAULT_LEN
    return ParsedData(session_id, cookie, word, bytes(payload[off:]))
