"""Set an interface's MTU in one namespace and, microseconds after the ioctl returns,
send an Ethernet frame from an interface of another (tests/netns/test_device.py): the
tightest form of `ip link set l2tpeth0 mtu N` followed by a frame from the far end.

    ip netns exec NS_A mtu_then_frame.py A_IFNAME NS_B B_IFNAME

Reads "MTU SIZE" lines: sets B_IFNAME's MTU (in NS_B) to MTU, then sends a frame of SIZE
bytes out of A_IFNAME (in NS_A); prints "ready" once set up and "done" after each line.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import sys

CLONE_NEWNET = 0x40000000
SIOCSIFMTU = 0x8922
HEADER = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5"


def main(argv: list[str]) -> int:
    a_ifname, b_netns, b_ifname = argv
    sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sender.bind((a_ifname, 0))
    # The packet socket stays in NS_A; the process moves to NS_B for the ioctl.
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{b_netns}", os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = b_ifname.encode()
    print("ready", flush=True)
    for line in sys.stdin:
        mtu, size = (int(w) for w in line.split())
        fcntl.ioctl(ctl, SIOCSIFMTU, struct.pack("16si12x", ifr, mtu))
        sender.send(HEADER + b"x" * (size - len(HEADER)))
        print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
