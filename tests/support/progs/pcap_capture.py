"""Capture everything crossing DEV into a classic pcap file (tests/netns/test_tshark.py).

    pcap_capture.py FILE DEV

An AF_PACKET capture bound before it says "ready", so nothing is missed (tshark's own
"Capturing on" comes a little before its capture runs); it writes FILE when its stdin
closes (or after 30 s of silence) and prints the number of packets.
"""

from __future__ import annotations

import select
import socket
import struct
import sys
import time


def main(argv: list[str]) -> int:
    path, dev = argv[0], argv[1]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((dev, 0))
    print("ready", flush=True)
    packets: list[tuple[float, bytes]] = []
    while True:
        r, _, _ = select.select([s, sys.stdin], [], [], 30)
        if not r or sys.stdin in r:
            break
        packets.append((time.time(), s.recv(65535)))
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, data in packets:
            f.write(struct.pack("<IIII", int(t), int(t % 1 * 1e6), len(data), len(data)) + data)
    print(len(packets), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
