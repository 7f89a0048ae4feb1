"""Send one UDP datagram of each SIZE to ADDR port 7001 (tests/netns/test_offload_tap.py).

udp_send.py ADDR SIZE [SIZE ...]
"""

from __future__ import annotations

import socket
import sys


def main(argv: list[str]) -> int:
    addr = argv[0]
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    for n in map(int, argv[1:]):
        s.sendto(bytes(range(256)) * (n // 256) + bytes(n % 256), (addr, 7001))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
