"""Micro-benchmark of offload.c (no I/O): TSO segmentation and GRO, loops run in C.

    python3 bench/offload_micro.py [seconds-per-case]

Prints segments and GRO merges per CPU-second of this thread (thread CPU time, so other
load on the machine does not count), and the TCP payload rate that amounts to, for IPv4 and
IPv6 64 KB super-frames of 45 segments (gso_size 1448 / 1428, max frame 1514).
"""

from __future__ import annotations

import os
import struct
import sys
import time
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

# The wrapper is test-only (tests/c/_offload.pyx), built on first use by tests/support.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import offload_ext

off = offload_ext.load()

TS = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]


def fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def super_frame(v6: bool, payload: bytes, gso: int) -> tuple[bytes, bytes]:
    ip = IPv6(src="fd00::1", dst="fd00::2") if v6 else IP(src="10.0.0.1", dst="10.0.0.2")
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    pkt = eth / ip / TCP(sport=1, dport=2, flags="A", options=TS) / Raw(payload)
    raw = bytearray(bytes(pkt))
    l4 = len(raw) - len(bytes(pkt[TCP]))
    addrs = bytes(pkt)[22:54] if v6 else bytes(pkt)[26:34]
    words = struct.unpack(f"!{len(addrs) // 2}H", addrs)
    struct.pack_into("!H", raw, l4 + 16, fold(sum(words) + 6 + len(raw) - l4))
    gso_type = 4 if v6 else 1
    return struct.pack("<BBHHHH", 1, gso_type, l4 + 32, gso, l4, 16), bytes(raw)


def timed(fn, seconds: float) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    n, iters, start = 0, 64, time.thread_time()
    while time.thread_time() - start < seconds:
        n += fn(iters)
        iters *= 2
    return time.thread_time() - start, n


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    print(f"{'per CPU-s':<10}{'segments':>14}{'Gbit/s':>9}{'GRO merges':>15}{'Gbit/s':>9}")
    for v6 in (False, True):
        gso = 1428 if v6 else 1448
        payload = os.urandom(gso * 45)
        vh, frame = super_frame(v6, payload, gso)
        segs = off.segment(vh, frame, 1514)
        el, nseg = timed(lambda i: off.bench_segment(vh, frame, 1514, i), seconds)  # noqa: B023
        merged = 0

        def gro(i: int) -> int:
            nonlocal merged
            _, m = off.bench_gro(segs, i)  # noqa: B023
            merged += m
            return m

        gel, _ = timed(gro, seconds)
        print(
            f"{'ipv6' if v6 else 'ipv4':<10}{nseg / el:>14,.0f}{nseg * gso * 8 / el / 1e9:>9.1f}"
            f"{merged / gel:>15,.0f}{merged * gso * 8 / gel / 1e9:>9.1f}"
        )


if __name__ == "__main__":
    main()
