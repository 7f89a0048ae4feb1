"""Liveness in the Cython fast path against the pure-Python reference: the same random
streams of data packets (right and wrong cookies, ARP replies to our MAC and to others,
ARP requests, sequenced and not) and control messages give the same ``last_rx``,
``last_arp``, queued control messages and drops."""

from __future__ import annotations

import os
from ipaddress import ip_address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.l2 import ARP, Ether

from l2tpv3.config import Encap, SessionConfig, TunnelConfig
from l2tpv3.proto import session, tunnel
from l2tpv3.proto.liveness import arp_request, hello_message, liveness_mac, zlb_ack
from tests.support.configs import UdpPorts

fast: Any
try:
    from l2tpv3.fast import _fastpath as fast
except ImportError:  # pragma: no cover - exercised when the build is missing
    fast = None

pytestmark = pytest.mark.skipif(
    fast is None and os.environ.get("CI") != "true", reason="the Cython extension is not built"
)

MAC = liveness_mac(1, 7)
OTHER = liveness_mac(1, 8)


def _reply(dst: bytes, op: int = 2) -> bytes:
    return bytes(Ether(dst=dst.hex(":"), src="02:00:00:00:00:01") / ARP(op=op, hwdst=dst.hex(":")))


FRAMES = [_reply(MAC), _reply(OTHER), _reply(MAC, op=1), arp_request(MAC, "10.0.0.9"),
          bytes(60), b"\x00" * 13, _reply(MAC)[:21]]  # fmt: skip


@st.composite
def streams(draw: st.DrawFn) -> tuple[Encap, list[tuple[int, bytes]]]:
    encap = draw(st.sampled_from(list(Encap)))
    udp = encap is Encap.UDP
    out: list[tuple[int, bytes]] = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.integers(0, 3))
        if kind == 3:
            msg = draw(st.sampled_from([hello_message(1, 2, udp), zlb_ack(3, 4, udp)]))
            out.append((kind, msg + draw(st.binary(max_size=300)) if draw(st.booleans()) else msg))
            continue
        frame = draw(st.sampled_from(FRAMES))
        cookie = b"abcd" if kind != 2 else b"abce"
        seq = draw(st.integers(0, 5)) | 0x40000000 if kind == 1 else 0
        hdr = (b"\x00\x03\x00\x00" if udp else b"") + (7).to_bytes(4, "big")
        out.append((kind, hdr + cookie + seq.to_bytes(4, "big") + frame))
    return encap, out


@given(streams(), st.booleans())
@settings(max_examples=150, deadline=None)
def test_liveness_state_is_the_same(stream: tuple[Encap, list[tuple[int, bytes]]],
                                    watch: bool) -> None:  # fmt: skip
    encap, packets = stream
    udp: UdpPorts = {"udp_sport": 1, "udp_dport": 2} if encap is Encap.UDP else {}
    cfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                       remote=ip_address("10.0.0.2"), encap=encap, **udp)  # fmt: skip
    scfg = SessionConfig(tunnel_id=1, session_id=7, peer_session_id=7, peer_cookie=b"abcd")
    pairs = []
    for tcls, scls in ((tunnel.Tunnel, session.Session), (fast.Tunnel, fast.Session)):
        t, s = tcls(cfg), scls(cfg, scfg)
        t.add(s)
        if watch:
            s.watch_arp(MAC)
        pairs.append((t, s))
    for i, (_, payload) in enumerate(packets):
        now = 1.0 + i
        results = [t.receive(payload, now)[1] for t, _ in pairs]
        assert [list(map(bytes, r)) for r in results[:1]] == [
            list(map(bytes, r)) for r in results[1:]
        ]
        (pt, ps), (ft, fs) = pairs
        assert (ps.last_rx, ps.last_arp) == (fs.last_rx, fs.last_arp)
        assert pt.take_control() == ft.take_control()
        assert pt.drops == ft.drops and ps.counters == fs.counters
