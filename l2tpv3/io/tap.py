"""TAP devices standing in for the kernel's l2tpethN interfaces."""

from __future__ import annotations

import fcntl
import os
import socket
import struct

import pytun

from l2tpv3.constants import DEFAULT_IFNAME_TEMPLATE, VNET_HDR_LEN
from l2tpv3.errors import StateError

# linux/if_tun.h
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
TUNSETCARRIER = 0x400454E2  # _IOW('T', 226, int), Linux >= 5.0
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08


class Tap:
    """A non-persistent TAP: it disappears when closed, as l2tpethN does on delete.

    With ``vnet_hdr`` (the Cython fast path only) every read and write starts with a
    virtio-net header and the kernel hands over TCP super-frames and partial checksums,
    which the fast path segments and completes (offload.c).

    The device is known by its ifindex, which stays while it lives; its ``name`` and
    ``mtu`` are what it had when created and then what the daemon's netlink events
    (:mod:`l2tpv3.io.netlink`) say, so a rename or an MTU change is followed and a
    stale name is never used to look anything up.
    """

    __slots__ = ("_dev", "fd", "ifindex", "mtu", "name", "netnsid", "vnet_hdr")

    def __init__(self, name: str | None, mtu: int, vnet_hdr: bool = False) -> None:
        self.vnet_hdr = vnet_hdr
        flags = pytun.IFF_TAP | pytun.IFF_NO_PI | (pytun.IFF_VNET_HDR if vnet_hdr else 0)
        if name is not None and _exists(name):
            raise StateError(f'interface name "{name}" is already taken')
        try:
            # The kernel picks the lowest free N for a "%d" template, like l2tp_eth.
            self._dev = pytun.TunTapDevice(name=name or DEFAULT_IFNAME_TEMPLATE, flags=flags)
        except pytun.Error as exc:
            raise StateError(
                f"cannot create TAP device {name or DEFAULT_IFNAME_TEMPLATE}: {exc}"
            ) from None
        self.name: str = self._dev.name
        self.fd: int = self._dev.fileno()
        self.mtu: int = mtu
        # Set when the device was moved to another namespace (its id there, as seen here).
        self.netnsid: int | None = None
        try:
            self._dev.mtu = mtu
            self.ifindex: int = socket.if_nametoindex(self.name)
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            fcntl.fcntl(self.fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
            if vnet_hdr:
                fcntl.ioctl(self.fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
                offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN
                fcntl.ioctl(self.fd, TUNSETOFFLOAD, offloads)
        except (OSError, pytun.Error) as exc:
            self._dev.close()
            raise StateError(f"cannot configure TAP device {self.name}: {exc}") from None

    def set_carrier(self, on: bool) -> None:
        """Carrier on or off (``ip link`` shows NO-CARRIER), as a pulled cable would.

        StateError if the kernel refuses (older than 5.0, or no CAP_NET_ADMIN)."""
        try:
            fcntl.ioctl(self.fd, TUNSETCARRIER, struct.pack("i", 1 if on else 0))
        except OSError as exc:
            raise StateError(f"cannot set the carrier of {self.name}: {exc.strerror}") from None

    def close(self) -> None:
        self._dev.close()


def _exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True
