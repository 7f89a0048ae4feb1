"""The receiving end of every SHA-256-checked TCP transfer (interop, tests, bench).

    tcp_sink.py ADDR PORT

Prints "ready" once listening, then, when the sender has closed, the byte count and
SHA-256 of what arrived.
"""

from __future__ import annotations

import hashlib
import socket
import sys


def main(argv: list[str]) -> int:
    addr, port = argv[0], int(argv[1])
    srv = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(1)
    srv.settimeout(120)
    print("ready", flush=True)
    conn, _ = srv.accept()
    conn.settimeout(120)
    h = hashlib.sha256()
    n = 0
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while True:
        got = conn.recv_into(buf)
        if not got:
            break
        h.update(view[:got])
        n += got
    conn.close()
    print(n, h.hexdigest(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
