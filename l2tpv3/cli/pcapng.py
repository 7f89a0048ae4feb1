"""A pcapng writer (draft-ietf-opsawg-pcapng): what ``l2tpv3 capture`` writes.

One section, one interface, Enhanced Packet Blocks with nanosecond timestamps, each with
its direction (``epb_flags`` bits 0-1: 1 inbound, 2 outbound) and, for a packet the
receiver dropped, a comment (``opt_comment``) naming the drop reason. Little-endian,
as the byte-order magic says; readers take either.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Final

__all__ = [
    "INBOUND",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "OUTBOUND",
    "PcapngWriter",
]

LINKTYPE_ETHERNET: Final = 1
# An IPv4 or IPv6 packet, no link-layer header (the version nibble tells which).
LINKTYPE_RAW: Final = 101

# epb_flags direction (bits 0-1).
INBOUND: Final = 1
OUTBOUND: Final = 2

_SHB: Final = 0x0A0D0D0A
_IDB: Final = 0x00000001
_EPB: Final = 0x00000006
_BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
_OPT_END: Final = 0
_OPT_COMMENT: Final = 1
_SHB_USERAPPL: Final = 4
_IF_NAME: Final = 2
_IF_TSRESOL: Final = 9
_EPB_FLAGS: Final = 2


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad(value)


def _options(opts: list[bytes]) -> bytes:
    return b"".join(opts) + struct.pack("<HH", _OPT_END, 0) if opts else b""


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


class PcapngWriter:
    """Writes the section and interface headers at once, then one block per packet."""

    def __init__(
        self, out: BinaryIO, linktype: int, if_name: str = "", app: str = "l2tpv3 capture"
    ) -> None:
        self.out = out
        self.packets = 0
        shb = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)
        shb += _options([_option(_SHB_USERAPPL, app.encode())])
        idb = struct.pack("<HHI", linktype, 0, 0)
        opts = [_option(_IF_TSRESOL, b"\x09")]  # 10^-9 s: nanoseconds
        if if_name:
            opts.insert(0, _option(_IF_NAME, if_name.encode()))
        idb += _options(opts)
        out.write(_block(_SHB, shb) + _block(_IDB, idb))

    def write(
        self, time_ns: int, data: bytes, direction: int = 0, comment: str | None = None
    ) -> None:
        body = struct.pack(
            "<IIIII", 0, time_ns >> 32, time_ns & 0xFFFFFFFF, len(data), len(data)
        ) + _pad(data)
        opts = []
        if comment:
            opts.append(_option(_OPT_COMMENT, comment.encode()))
        if direction:
            opts.append(_option(_EPB_FLAGS, struct.pack("<I", direction)))
        self.out.write(_block(_EPB, body + _options(opts)))
        self.packets += 1

    def flush(self) -> None:
        self.out.flush()
