"""Receive COUNT UDP datagrams on ADDR port 7001 and print their lengths
(tests/netns/test_offload_tap.py).

    udp_sink.py ADDR COUNT
"""

from __future__ import annotations

import socket
import sys


def main(argv: list[str]) -> int:
    addr, count = argv[0], int(argv[1])
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 7001))
    s.settimeout(10)
    print("ready", flush=True)
    got = [len(s.recvfrom(65536)[0]) for _ in range(count)]
    print(" ".join(map(str, got)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
