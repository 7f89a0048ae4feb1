"""Accept one TCP connection on ADDR:PORT, read at least SIZE bytes and print their
SHA-256 (tests/netns/test_offload_tap.py, whose peer is a hand-written TCP stack).

    tcp_hash_listener.py ADDR PORT SIZE
"""

from __future__ import annotations

import hashlib
import socket
import sys


def main(argv: list[str]) -> int:
    addr, port, size = argv[0], int(argv[1]), int(argv[2])
    s = socket.socket()
    s.bind((addr, port))
    s.listen()
    print("ready", flush=True)
    c, _ = s.accept()
    c.settimeout(10)
    d = b""
    while len(d) < size:
        d += c.recv(65536)
    print(hashlib.sha256(d).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
