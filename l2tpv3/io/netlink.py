"""Link and address changes from the kernel, as rtnetlink events on the asyncio loop.

The kernel queues an RTM_NEWLINK notification on every subscribed socket before
`ip link set l2tpeth0 mtu N` (or ``name X``) returns, so the daemon learns of a change
without polling and before any frame sent afterwards reaches it. pyroute2 parses the
messages; the socket is a plain non-blocking netlink socket watched with ``add_reader``.

Devices are identified by ifindex, never by name: a name can change (``ip link set ...
name``) or be reused, an ifindex cannot while the device lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from pyroute2.netlink import NLM_F_REQUEST, NLMSG_ERROR
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
)
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

__all__ = ["AddrEvent", "LinkChange", "LinkEvent", "LinkMonitor", "query_link"]

log = logging.getLogger("l2tpv3d")

# Enough for a burst of events (a few hundred bytes each) between two loop iterations;
# an overrun (ENOBUFS) is recovered by re-reading the watched links (on_overrun).
RCVBUF = 1 << 20


class LinkChange(enum.Enum):
    CHANGED = "changed"  # RTM_NEWLINK: name, MTU, flags as they are now
    DELETED = "deleted"  # RTM_DELLINK: the device is gone
    MOVED = "moved"  # RTM_DELLINK with IFLA_NEW_NETNSID: moved to another namespace


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """One RTM_NEWLINK/RTM_DELLINK of this namespace."""

    change: LinkChange
    ifindex: int
    name: str
    mtu: int  # 0 when the message carries no IFLA_MTU
    netnsid: int | None = None  # MOVED: the new namespace's id as seen from ours
    new_ifindex: int | None = None  # MOVED: the device's ifindex there


@dataclass(frozen=True, slots=True)
class AddrEvent:
    """One RTM_NEWADDR/RTM_DELADDR (for tunnels waiting for their local address)."""

    added: bool
    ifindex: int
    family: int
    address: str


# linux/if_link.h: the attributes a link event is read for.
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_NEW_NETNSID = 45
IFLA_NEW_IFINDEX = 49
_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_RTATTR = struct.Struct("=HH")  # len, type


def _align(n: int) -> int:
    return (n + 3) & ~3


def parse_link(data: bytes | memoryview, start: int, end: int, kind: int) -> LinkEvent:
    """One RTM_NEWLINK/RTM_DELLINK message (``data[start:end]``, header included), read
    for its four attributes only.

    pyroute2 decodes every attribute of a link message (statistics, per-family data):
    about 175 microseconds each on the test machine, longer than a frame takes to cross
    the tunnel; reading the four needed ones takes about 12. (pyroute2 0.9 also reads
    IFLA_NEW_NETNSID as big-endian; the kernel puts it in host order, nla_put_s32.)
    """
    pos = start + _NLMSGHDR.size
    ifindex = _IFINFOMSG.unpack_from(data, pos)[2]
    pos += _IFINFOMSG.size
    name, mtu, netnsid, new_ifindex = "", 0, None, None
    while pos + _RTATTR.size <= end:
        alen, atype = _RTATTR.unpack_from(data, pos)
        if alen < _RTATTR.size or pos + alen > end:
            break
        body = pos + _RTATTR.size
        atype &= 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
        if atype == IFLA_IFNAME:
            name = bytes(data[body : pos + alen]).split(b"\0", 1)[0].decode(errors="replace")
        elif atype == IFLA_MTU and alen >= 8:
            mtu = struct.unpack_from("=I", data, body)[0]
        elif atype == IFLA_NEW_NETNSID and alen >= 8:
            netnsid = struct.unpack_from("=i", data, body)[0]
        elif atype == IFLA_NEW_IFINDEX and alen >= 8:
            new_ifindex = struct.unpack_from("=i", data, body)[0]
        pos += _align(alen)
    if kind == RTM_NEWLINK:
        change = LinkChange.CHANGED
    else:
        change = LinkChange.DELETED if netnsid is None else LinkChange.MOVED
    return LinkEvent(change, ifindex, name, mtu, netnsid, new_ifindex)


def _netlink_socket(groups: int) -> socket.socket:
    sock = socket.socket(
        socket.AF_NETLINK,
        socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
        socket.NETLINK_ROUTE,
    )
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((0, groups))
    except BaseException:
        sock.close()
        raise
    return sock


def query_link(ifindex: int) -> LinkEvent | None:
    """RTM_GETLINK by index: the device's name and MTU now; None if there is none."""
    req = ifinfmsg()
    req["header"]["type"] = RTM_GETLINK
    req["header"]["flags"] = NLM_F_REQUEST
    req["header"]["seq"] = 1
    req["index"] = ifindex
    req.encode()
    with _netlink_socket(0) as sock:
        sock.setblocking(True)
        sock.settimeout(2.0)
        sock.send(req.data)
        data = sock.recv(65536)
    pos = 0
    while pos + _NLMSGHDR.size <= len(data):
        length, kind = _NLMSGHDR.unpack_from(data, pos)[:2]
        if kind == NLMSG_ERROR or length < _NLMSGHDR.size or pos + length > len(data):
            return None
        if kind == RTM_NEWLINK:
            event = parse_link(data, pos, pos + length, kind)
            if event.ifindex == ifindex:
                return event
        pos += _align(length)
    return None


class LinkMonitor:
    """Subscribes to link (and IPv4/IPv6 address) events; calls ``on_link`` for each
    RTM_NEWLINK/RTM_DELLINK and ``on_addr`` for each address event, in the loop's thread.

    ``on_overrun`` is called when the kernel dropped events because the socket's queue
    was full (ENOBUFS): the listener must then re-read what it watches (:func:`query_link`).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_link: Callable[[LinkEvent], None],
        on_addr: Callable[[AddrEvent], None] | None = None,
        on_overrun: Callable[[], None] | None = None,
    ) -> None:
        self.loop = loop
        self.on_link = on_link
        self.on_addr = on_addr
        self.on_overrun = on_overrun
        self._marshal = MarshalRtnl()
        self.sock = _netlink_socket(RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
        loop.add_reader(self.sock.fileno(), self._on_readable)

    def drain(self) -> None:
        """Handle every event queued now (the kernel queues one before the system call
        that caused it returns)."""
        self._on_readable()

    def _on_readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    log.warning("netlink: events were lost; re-reading the interfaces")
                    if self.on_overrun is not None:
                        self.on_overrun()
                    continue
                log.warning("netlink: receive failed: %s", exc.strerror)
                return
            self.dispatch(data)

    def dispatch(self, data: bytes) -> None:
        """Hand the events in one netlink datagram to the callbacks, in order."""
        pos = 0
        while pos + _NLMSGHDR.size <= len(data):
            length, kind = _NLMSGHDR.unpack_from(data, pos)[:2]
            if length < _NLMSGHDR.size or pos + length > len(data):
                break
            if kind in (RTM_NEWLINK, RTM_DELLINK):
                self.on_link(parse_link(data, pos, pos + length, kind))
            elif kind in (RTM_NEWADDR, RTM_DELADDR) and self.on_addr is not None:
                for msg in self._marshal.parse(data[pos : pos + length]):
                    self.on_addr(
                        AddrEvent(
                            added=kind == RTM_NEWADDR,
                            ifindex=int(msg["index"]),
                            family=int(msg["family"]),
                            address=str(msg.get_attr("IFA_ADDRESS") or ""),
                        )
                    )
            pos += _align(length)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
