"""Control messages that arrive inside ESP reach the daemon like clear-text ones.

A tunnel with an inbound SA drops clear-text L2TPv3 as `plaintext`, so a HELLO or ZLB
ACK from the peer only ever arrives sealed; TunnelPort._deliver (the ESP receive path)
must hand what the tunnel queued to ``on_control``, as _on_sock_readable does, or
`liveness hello` over ESP declares a live peer dead. Found by review after the merge
of ESP and liveness; this test failed before the fix (0 calls, 8 messages queued).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from l2tpv3.config import Encap, TunnelConfig
from l2tpv3.io.api import Buffers, Options
from l2tpv3.io.datapath import choose
from l2tpv3.io.ports import TunnelPort
from l2tpv3.proto.liveness import hello_message


def test_hello_delivered_in_esp_reaches_on_control() -> None:
    impl = choose("python")
    cfg = TunnelConfig(
        tunnel_id=1,
        peer_tunnel_id=2,
        encap=Encap.UDP,
        local=ipaddress.ip_address("127.0.0.1"),
        remote=ipaddress.ip_address("127.0.0.1"),
        udp_sport=41701,
        udp_dport=41702,
    )
    ownership = impl.ownership()
    tunnel = impl.tunnel(cfg, ownership)
    loop = asyncio.new_event_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        port = TunnelPort(loop, tunnel, sock, ownership, Options(), Buffers())
        got: list[list[bytes]] = []
        port.on_control = got.append
        for ns in range(3):
            port._deliver(hello_message(ns, 0, udp=True))
        assert [len(batch) for batch in got] == [1, 1, 1]
        assert tunnel.take_control() == []
        port.close()
    finally:
        sock.close()
        loop.close()
