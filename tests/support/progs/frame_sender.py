"""Send Ethernet frames of given sizes out of an interface, one per line read from stdin,
as soon as the line arrives (tests/netns/test_device.py).

    frame_sender.py IFNAME

Prints "ready" once the packet socket is open, then "sent SIZE" after each frame.
"""

from __future__ import annotations

import socket
import sys

ETHERTYPE = b"\x88\xb5"  # IEEE 802 local experimental: nothing in the namespace answers


def main(argv: list[str]) -> int:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((argv[0], 0))
        print("ready", flush=True)
        for line in sys.stdin:
            size = int(line)
            frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + ETHERTYPE
            s.send(frame + b"x" * (size - len(frame)))
            print(f"sent {size}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
