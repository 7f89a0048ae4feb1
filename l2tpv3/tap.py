"""TAP devices standing in for the kernel's l2tpethN interfaces."""

from __future__ import annotations

import fcntl
import os
import socket

import pytun

from .constants import DEFAULT_IFNAME_TEMPLATE
from .errors import StateError


class Tap:
    """A non-persistent TAP: it disappears when closed, as l2tpethN does on delete."""

    __slots__ = ("_dev", "fd", "name")

    def __init__(self, name: str | None, mtu: int) -> None:
        if name is not None and _exists(name):
            raise StateError(f'interface name "{name}" is already taken')
        try:
            # The kernel picks the lowest free N for a "%d" template, like l2tp_eth.
            self._dev = pytun.TunTapDevice(
                name=name or DEFAULT_IFNAME_TEMPLATE, flags=pytun.IFF_TAP | pytun.IFF_NO_PI
            )
        except pytun.Error as exc:
            raise StateError(
                f"cannot create TAP device {name or DEFAULT_IFNAME_TEMPLATE}: {exc}"
            ) from None
        self.name: str = self._dev.name
        self.fd: int = self._dev.fileno()
        try:
            self._dev.mtu = mtu
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            fcntl.fcntl(self.fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        except (OSError, pytun.Error) as exc:
            self._dev.close()
            raise StateError(f"cannot configure TAP device {self.name}: {exc}") from None

    @property
    def mtu(self) -> int:
        try:
            return int(self._dev.mtu)
        except pytun.Error:
            return 0

    def close(self) -> None:
        self._dev.close()


def _exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True
