"""Underlay sockets: checksum options on the wire, DF, path MTU, binding errors.

Runs on loopback only; the capture uses an AF_PACKET socket, so it needs root.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from l2tpv3.config import Encap, TunnelConfig
from l2tpv3.errors import StateError
from l2tpv3.io.sockets import local_address_ready, open_socket, path_mtu, peer_address

ETH_P_ALL = 0x0003
LOOPBACK = ipaddress.ip_address("127.0.0.1")


def _need_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("underlay capture tests need root")
        pytest.skip("underlay capture tests need root")


@pytest.fixture
def capture() -> Iterator[socket.socket]:
    _need_root()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind(("lo", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


def _pair(family: int, sport: int, **opts: bool) -> tuple[socket.socket, socket.socket]:
    """Two tunnel sockets facing each other on loopback, connected for the test's ease."""
    a = b = "127.0.0.1" if family == 4 else "::1"
    ta = TunnelConfig.from_dict({"tunnel_id": 1, "peer_tunnel_id": 2, "local": a, "remote": b,
                                 "udp_sport": sport, "udp_dport": sport + 1, **opts})  # fmt: skip
    tb = TunnelConfig.from_dict({"tunnel_id": 2, "peer_tunnel_id": 1, "local": b, "remote": a,
                                 "udp_sport": sport + 1, "udp_dport": sport, **opts})  # fmt: skip
    sa, sb = open_socket(ta), open_socket(tb)
    sa.connect(peer_address(ta))
    sb.connect(peer_address(tb))
    return sa, sb


def _udp_header(capture: socket.socket, family: int, dport: int) -> tuple[bytes, bytes]:
    """The first captured UDP datagram to ``dport``: (IP header, UDP header)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        frame = capture.recv(65535)
        pkt = frame[14:]  # loopback frames carry a zeroed Ethernet header
        if family == 4 and pkt[0] >> 4 == 4 and pkt[9] == 17:
            ihl = (pkt[0] & 0x0F) * 4
            ip, udp = pkt[:ihl], pkt[ihl : ihl + 8]
        elif family == 6 and pkt[0] >> 4 == 6 and pkt[6] == 17:
            ip, udp = pkt[:40], pkt[40:48]
        else:
            continue
        if struct.unpack("!H", udp[2:4])[0] == dport:
            return ip, udp
    raise AssertionError("no datagram captured")


@pytest.mark.parametrize(
    ("family", "opts", "zero"),
    [
        (4, {}, True),  # udp_csum defaults to off, as in the kernel vectors
        (4, {"udp_csum": True}, False),
        (6, {}, False),  # udp6_csum_tx defaults to on
        (6, {"udp6_csum_tx": False, "udp6_csum_rx": False}, True),
    ],
)
def test_udp_checksum_options_on_the_wire(
    capture: socket.socket, family: int, opts: dict[str, bool], zero: bool
) -> None:
    sport = 41000 + family * 10 + len(opts) * 2 + int(zero)
    a, b = _pair(family, sport, **opts)
    try:
        a.send(b"\x00\x03\x00\x00payload")
        ip, udp = _udp_header(capture, family, sport + 1)
        assert (udp[6:8] == b"\0\0") is zero
        if family == 4:
            # The kernel sends the outer IPv4 packet with DF clear (ignore_df).
            assert struct.unpack("!H", ip[6:8])[0] & 0x4000 == 0
        # The far end took it: with udp6_csum_rx off a zero IPv6 checksum is accepted.
        b.setblocking(True)
        b.settimeout(2)
        assert b.recv(100) == b"\x00\x03\x00\x00payload"
    finally:
        a.close()
        b.close()


def test_path_mtu_of_loopback() -> None:
    a, b = _pair(4, 42000)
    try:
        with open("/sys/class/net/lo/mtu") as fh:
            lo_mtu = int(fh.read())
        # IPv4 routes cap the MTU at 65535 (IP_MAX_MTU).
        cfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local=LOOPBACK,
                           remote=ipaddress.ip_address("127.0.0.2"), encap=Encap.IP)  # fmt: skip
        assert path_mtu(cfg) == min(lo_mtu, 65535)
        assert peer_address(cfg) == ("127.0.0.2", 0)
    finally:
        a.close()
        b.close()


def test_port_in_use_and_missing_address_are_clear() -> None:
    a, b = _pair(4, 42010)
    try:
        in_use = re.escape("udp_sport 42010 on 127.0.0.1 is already in use")
        with pytest.raises(StateError, match=in_use):
            _pair(4, 42010)
    finally:
        a.close()
        b.close()
    absent = ipaddress.ip_address("192.0.2.77")
    cfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local=absent, remote=LOOPBACK,
                       encap=Encap.UDP, udp_sport=42020, udp_dport=42021)  # fmt: skip
    # FREEBIND: a tunnel may wait for its local address (tests/netns/test_startup.py).
    assert not local_address_ready(cfg)
    sock = open_socket(cfg)
    try:
        assert sock.getsockname() == ("192.0.2.77", 42020)
    finally:
        sock.close()
    assert local_address_ready(replace(cfg, local=LOOPBACK))


def test_buffer_sizes_are_options() -> None:
    _need_root()  # without root the *FORCE options fail and rmem_max caps the size
    cfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=LOOPBACK, remote=LOOPBACK,
                       udp_sport=40000 + os.getpid() % 20000, udp_dport=9)  # fmt: skip
    with open_socket(cfg, rcvbuf=1 << 20, sndbuf=3 << 19) as sock:
        # The kernel doubles what it is given, for its bookkeeping (socket(7)).
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 << 20
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 3 << 20
