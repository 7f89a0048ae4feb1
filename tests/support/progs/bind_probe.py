"""Try to take over a UDP address and port the way any local program could: a socket
with SO_REUSEADDR (and, separately, SO_REUSEPORT) bound to it. Prints one word per try:
"bound" (the port was not exclusive) or the errno name (tests/netns/test_hardening.py).

bind_probe.py ADDR PORT
"""

from __future__ import annotations

import errno
import socket
import sys


def attempt(addr: str, port: int, option: int) -> str:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, option, 1)
        try:
            s.bind((addr, port))
        except OSError as exc:
            return errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return "bound"


def main(argv: list[str]) -> int:
    addr, port = argv[0], int(argv[1])
    print(attempt(addr, port, socket.SO_REUSEADDR), attempt(addr, port, socket.SO_REUSEPORT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
