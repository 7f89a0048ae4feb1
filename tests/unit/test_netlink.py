"""io.netlink's reading of link events: the same name, MTU and namespace move as
pyroute2's full decoding, and nothing read from a message without an MTU."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from l2tpv3.io.netlink import LinkChange, LinkEvent, LinkMonitor, parse_link

pyroute2 = pytest.importorskip("pyroute2")
from pyroute2.netlink.rtnl import RTM_DELLINK, RTM_NEWADDR, RTM_NEWLINK  # noqa: E402
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg  # noqa: E402
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # noqa: E402


def link_msg(kind: int, index: int, attrs: list[tuple[str, Any]]) -> bytes:
    msg = ifinfmsg()
    msg["header"]["type"] = kind
    msg["index"] = index
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data)


def addr_msg(index: int, address: str) -> bytes:
    msg = ifaddrmsg()
    msg["header"]["type"] = RTM_NEWADDR
    msg["family"] = 2
    msg["prefixlen"] = 24
    msg["index"] = index
    msg["attrs"] = [("IFA_ADDRESS", address)]
    msg.encode()
    return bytes(msg.data)


CASES = [
    (RTM_NEWLINK, 7, [("IFLA_IFNAME", "l2tpeth0"), ("IFLA_MTU", 1446), ("IFLA_TXQLEN", 1000)],
     LinkEvent(LinkChange.CHANGED, 7, "l2tpeth0", 1446)),
    (RTM_NEWLINK, 7, [("IFLA_IFNAME", "pw-renamed")],  # no MTU: 0, which changes nothing
     LinkEvent(LinkChange.CHANGED, 7, "pw-renamed", 0)),
    (RTM_DELLINK, 7, [("IFLA_IFNAME", "l2tpeth0"), ("IFLA_MTU", 1446)],
     LinkEvent(LinkChange.DELETED, 7, "l2tpeth0", 1446)),
    # pyroute2 encodes IFLA_NEW_NETNSID big-endian; the kernel puts it in host order.
    (RTM_DELLINK, 7, [("IFLA_IFNAME", "l2tpeth0"), ("IFLA_MTU", 1400),
                      ("IFLA_NEW_NETNSID", int.from_bytes((3).to_bytes(4, sys.byteorder))),
                      ("IFLA_NEW_IFINDEX", 12)],
     LinkEvent(LinkChange.MOVED, 7, "l2tpeth0", 1400, 3, 12)),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "index", "attrs", "expected"), CASES)
def test_parse_link(kind: int, index: int, attrs: list[tuple[str, Any]], expected: LinkEvent
                    ) -> None:  # fmt: skip
    data = link_msg(kind, index, attrs)
    assert parse_link(data, 0, len(data), kind) == expected


def test_dispatch_in_order() -> None:
    """Several messages in one datagram reach the callbacks in order; address events
    go to on_addr."""
    links: list[LinkEvent] = []
    addrs: list[Any] = []
    loop = asyncio.new_event_loop()
    try:
        mon = LinkMonitor(loop, links.append, addrs.append)
        try:
            mon.dispatch(
                link_msg(RTM_NEWLINK, 5, [("IFLA_IFNAME", "a"), ("IFLA_MTU", 1000)])
                + addr_msg(5, "10.0.0.1")
                + link_msg(RTM_NEWLINK, 5, [("IFLA_IFNAME", "b"), ("IFLA_MTU", 1200)])
            )
        finally:
            mon.close()
    finally:
        loop.close()
    assert [(e.name, e.mtu) for e in links] == [("a", 1000), ("b", 1200)]
    assert [(a.added, a.ifindex, a.address) for a in addrs] == [(True, 5, "10.0.0.1")]
