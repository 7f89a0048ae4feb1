"""Send crafted datagrams to DST with raw sockets, so the source address and port can be
chosen freely (tests/netns/test_bad_input.py).

    inject.py DST SRC,SPORT,HEX [SRC,SPORT,HEX ...]

SPORT is a UDP source port (destination port 5000), or "ip" for L2TPv3 over IP
(protocol 115); HEX is the payload after the UDP header (or the IP header).
"""

from __future__ import annotations

import socket
import struct
import sys


def main(argv: list[str]) -> int:
    dst = argv[0]
    for item in argv[1:]:
        src, sport, hexpayload = item.split(",")
        payload = bytes.fromhex(hexpayload)
        if sport == "ip":
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 115)
            s.bind((src, 0))
            s.sendto(payload, (dst, 0))
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
            s.bind((src, 0))
            udp = struct.pack("!HHHH", int(sport), 5000, 8 + len(payload), 0)
            s.sendto(udp + payload, (dst, 0))
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
