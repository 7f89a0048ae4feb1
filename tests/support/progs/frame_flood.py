"""Send Ethernet frames of SIZE bytes out of IFACE for SECONDS, as fast as the device takes
them (tests/netns/test_faults.py): a 64-byte flood into a session's interface.

frame_flood.py IFACE SIZE SECONDS

The frames go to a locally administered unicast MAC nobody has, with the local
experimental EtherType (88b5), so nothing at the far end answers them. The device may
vanish meanwhile (the test deletes it or stops the daemon): the program then stops and
prints how many frames it sent, as when the time is up.
"""

from __future__ import annotations

import errno
import socket
import sys
import time


def main(argv: list[str]) -> int:
    iface, size, seconds = argv[0], int(argv[1]), float(argv[2])
    frame = bytes.fromhex("02000000000902000000000a88b5") + bytes(max(size - 14, 46))
    sent = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((iface, 0))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for _ in range(256):
                try:
                    s.send(frame)
                    sent += 1
                except OSError as exc:
                    if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                        # The device's queue is full (the daemon is behind): go on.
                        break
                    # The device is down or gone (ENETDOWN, ENXIO, ENODEV): stop.
                    print(sent, flush=True)
                    return 0
    print(sent, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
