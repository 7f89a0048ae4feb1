"""The sending end of every SHA-256-checked TCP transfer (interop, tests, bench).

    tcp_send.py ADDR PORT SIZE [SEED]

Sends SIZE bytes, made 1 MiB at a time (so no transfer sits in memory whole):
``random.Random(SEED).randbytes`` when SEED is given (the same bytes as one
``randbytes(SIZE)``, so the receiver's digest can be recomputed), else ``os.urandom``.
Waits for the receiver to close, then prints the byte count and SHA-256 of what it sent.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import sys

CHUNK = 1 << 20


def main(argv: list[str]) -> int:
    addr, port, size = argv[0], int(argv[1]), int(argv[2])
    make = random.Random(int(argv[3])).randbytes if len(argv) > 3 else os.urandom
    s = socket.create_connection((addr, port), timeout=120)
    h = hashlib.sha256()
    left = size
    while left:
        chunk = make(min(left, CHUNK))
        s.sendall(chunk)
        h.update(chunk)
        left -= len(chunk)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    print(size, h.hexdigest(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
