"""Control messages that arrive inside ESP reach the daemon like clear-text ones.

A tunnel with an inbound SA drops clear-text L2TPv3 as `plaintext`, so a HELLO or ZLB
ACK from the peer only ever arrives sealed; TunnelPort._deliver (the ESP receive path)
must hand what the tunnel queued to ``on_control``, as _on_sock_readable does, or
`liveness hello` over ESP declares a live peer dead. Found by review after the merge
of ESP and liveness; this test failed before the fix (0 calls, 8 messages queued).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Iterator

import pytest

from l2tpv3.config import Encap, TunnelConfig
from l2tpv3.io.api import Buffers, Options
from l2tpv3.io.datapath import choose
from l2tpv3.io.ports import TunnelPort
from l2tpv3.proto.api import TunnelAPI
from l2tpv3.proto.liveness import hello_message


@contextlib.contextmanager
def python_port(sport: int) -> Iterator[tuple[TunnelPort, TunnelAPI]]:
    """A pure-Python tunnel's port on a loopback socket (no I/O happens)."""
    impl = choose("python")
    cfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, encap=Encap.UDP,
                       local=ipaddress.ip_address("127.0.0.1"),
                       remote=ipaddress.ip_address("127.0.0.1"),
                       udp_sport=sport, udp_dport=sport + 1)  # fmt: skip
    ownership = impl.ownership()
    tunnel = impl.tunnel(cfg, ownership)
    loop = asyncio.new_event_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        port = TunnelPort(loop, tunnel, sock, ownership, Options(), Buffers())
        try:
            yield port, tunnel
        finally:
            port.close()
    finally:
        sock.close()
        loop.close()


def test_hello_delivered_in_esp_reaches_on_control() -> None:
    with python_port(41701) as (port, tunnel):
        got: list[list[bytes]] = []
        port.on_control = got.append
        for ns in range(3):
            port._deliver(hello_message(ns, 0, udp=True))
        assert [len(batch) for batch in got] == [1, 1, 1]
        assert tunnel.take_control() == []


def test_control_send_failures_are_logged_once_per_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An inbound-only ESP tunnel cannot answer HELLOs (no clear-text fallback): one
    warning, not one per HELLO; a success re-arms it."""
    with python_port(41703) as (port, _):
        sent: list[bytes] = []

        def failing(data: bytes | memoryview, peer: tuple[str, int]) -> None:
            raise OSError("no outbound SA")

        def working(data: bytes | memoryview, peer: tuple[str, int]) -> None:
            sent.append(bytes(data))

        with caplog.at_level(logging.WARNING, logger="l2tpv3d"):
            port.sendto = failing
            for _ in range(5):
                port.send_control(b"x")
            port.sendto = working
            port.send_control(b"y")
            port.sendto = failing
            port.send_control(b"z")
        warnings = [r.getMessage() for r in caplog.records if "control message" in r.getMessage()]
        assert len(warnings) == 2, warnings
        assert "no outbound SA" in warnings[0]
        assert sent == [b"y"]
