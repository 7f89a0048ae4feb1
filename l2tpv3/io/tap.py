"""TAP devices standing in for the kernel's l2tpethN interfaces."""

from __future__ import annotations

import contextlib
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

    def __init__(
        self, name: str | None, mtu: int, vnet_hdr: bool = False, *, _attach: bool = False
    ) -> None:
        self.vnet_hdr = vnet_hdr
        flags = pytun.IFF_TAP | pytun.IFF_NO_PI | (pytun.IFF_VNET_HDR if vnet_hdr else 0)
        if name is not None and not _attach and _exists(name):
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
            elif _attach:
                # The device keeps the offloads an earlier descriptor set: without a
                # virtio-net header to say so, super-frames and partial checksums must
                # not reach this one.
                fcntl.ioctl(self.fd, TUNSETOFFLOAD, 0)
        except (OSError, pytun.Error) as exc:
            self._dev.close()
            raise StateError(f"cannot configure TAP device {self.name}: {exc}") from None

    def set_device_mtu(self, mtu: int) -> None:
        """Change the device's MTU (``ip link set DEV mtu N``), as the daemon does when
        an outbound SA changes what fits in the path; StateError if the kernel refuses."""
        try:
            self._dev.mtu = mtu
        except (OSError, pytun.Error) as exc:
            raise StateError(f"cannot set mtu {mtu} on {self.name}: {exc}") from None
        self.mtu = mtu

    def set_carrier(self, on: bool) -> None:
        """Carrier on or off (``ip link`` shows NO-CARRIER), as a pulled cable would.

        StateError if the kernel refuses (older than 5.0, or no CAP_NET_ADMIN)."""
        try:
            fcntl.ioctl(self.fd, TUNSETCARRIER, struct.pack("i", 1 if on else 0))
        except OSError as exc:
            raise StateError(f"cannot set the carrier of {self.name}: {exc.strerror}") from None

    def keep(self, on: bool = True) -> None:
        """Let the device outlive this descriptor (see :meth:`reattach`), or not."""
        if not on:
            with contextlib.suppress(pytun.Error):
                self._dev.persist(False)
            return
        if self.netnsid is not None:
            raise StateError(
                f"interface {self.name} is in another network namespace: it cannot be "
                "handed to another data path"
            )
        try:
            self._dev.persist(True)
        except pytun.Error as exc:
            raise StateError(f"cannot keep TAP device {self.name}: {exc}") from None

    def reattach(self, vnet_hdr: bool) -> Tap:
        """The device this (closed, kept) Tap had, on a new descriptor.

        A tunnel moving between implementations (ESP runs on the Python ports only)
        keeps its sessions' interfaces: the device is persistent for the instant no
        descriptor holds it, so its ifindex, addresses, bridge port, MTU and state
        stay, and the kernel applies the new descriptor's flags when it attaches
        (tun_set_iff). The carrier drops for that instant (tun_detach), a link flap.
        """
        try:
            new = Tap(self.name, self.mtu, vnet_hdr, _attach=True)
        except StateError:
            self.discard()
            raise
        if new.ifindex != self.ifindex:
            # Not ours any more (deleted, and its name taken, in the instant between).
            new.close()
            raise StateError(f"interface {self.name} went away while being handed over")
        new._dev.persist(False)
        return new

    def discard(self) -> None:
        """Delete the kept device of a closed Tap that will not be reattached."""
        try:
            dev = pytun.TunTapDevice(name=self.name, flags=pytun.IFF_TAP | pytun.IFF_NO_PI)
        except pytun.Error:
            return
        with contextlib.suppress(pytun.Error):
            dev.persist(False)
        dev.close()

    def close(self) -> None:
        self._dev.close()


def _exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True
