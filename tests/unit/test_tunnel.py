"""Tunnel demultiplexing and drop reasons, sans I/O."""

from __future__ import annotations

import pytest

from l2tpv3.config import Encap, SessionConfig, TunnelConfig
from l2tpv3.proto.session import Session
from l2tpv3.proto.tunnel import Tunnel

FRAME = bytes(range(20))

# Every test here runs against the pure-Python classes and the Cython ones.
pytestmark = pytest.mark.usefixtures("sansio_impl")


def _tunnel(encap: Encap, foreign: tuple[int, ...] = ()) -> tuple[Tunnel, Session]:
    udp = {"udp_sport": 1, "udp_dport": 2} if encap is Encap.UDP else {}
    cfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local="10.0.0.1", remote="10.0.0.2",
                       encap=encap, **udp)  # fmt: skip
    tunnel = Tunnel(cfg, foreign)
    session = Session(cfg, SessionConfig(tunnel_id=1, session_id=7, peer_session_id=7))
    tunnel.add(session)
    return tunnel, session


@pytest.mark.parametrize(
    ("encap", "payload", "reason"),
    [
        (Encap.UDP, b"\x00\x03\x00", "too_short"),
        (Encap.UDP, b"\x00\x02\x00\x00\x00\x00\x00\x07" + bytes(4) + FRAME, "bad_version"),
        (Encap.UDP, b"\xc8\x03\x00\x00\x00\x00\x00\x07", "control_message"),
        (Encap.UDP, b"\x00\x03\x00\x00\x00\x00\x00\x08" + bytes(4) + FRAME, "unknown_session"),
        (Encap.IP, b"\x00\x00", "too_short"),
        (Encap.IP, b"\x00\x00\x00\x00\xc8\x03", "control_message"),
        (Encap.IP, b"\x00\x00\x00\x08" + bytes(4) + FRAME, "unknown_session"),
    ],
)
def test_drops_are_counted_with_a_reason(encap: Encap, payload: bytes, reason: str) -> None:
    tunnel, session = _tunnel(encap)
    assert tunnel.receive(payload, 0.0) == (None, [])
    assert tunnel.drops[reason] == 1
    assert sum(tunnel.drops.values()) == 1
    assert tunnel.counters.rx_invalid == 1
    assert session.counters.rx_packets == 0


@pytest.mark.parametrize("encap", list(Encap))
def test_reserved_bits_are_ignored_and_data_delivered(encap: Encap) -> None:
    tunnel, session = _tunnel(encap)
    head = b"\x00\x03\xff\xff" if encap is Encap.UDP else b""
    got_session, frames = tunnel.receive(head + (7).to_bytes(4, "big") + bytes(4) + FRAME, 0.0)
    assert got_session is session
    assert frames == [FRAME]


def test_ip_session_of_another_tunnel_is_not_an_error() -> None:
    tunnel, _ = _tunnel(Encap.IP, foreign=(8,))
    assert tunnel.receive(b"\x00\x00\x00\x08" + bytes(4) + FRAME, 0.0) == (None, [])
    assert tunnel.counters.rx_invalid == 0


def test_totals_keep_deleted_sessions() -> None:
    tunnel, session = _tunnel(Encap.UDP)
    tunnel.receive(b"\x00\x03\x00\x00\x00\x00\x00\x07" + bytes(4) + FRAME, 0.0)
    tunnel.receive(b"\x00", 0.0)
    session.encapsulate(FRAME)
    tunnel.remove(7)
    totals = tunnel.totals()
    assert totals.rx_packets == 1
    assert totals.tx_packets == 1
    assert totals.rx_invalid == 1
    assert totals.rx_bytes == 8 + 4 + len(FRAME)


def test_session_only_counters_stay_on_the_session() -> None:
    # Made by traffic rather than by writing the counters, so both implementations run it.
    udp = {"udp_sport": 1, "udp_dport": 2}
    cfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local="10.0.0.1", remote="10.0.0.2",
                       encap=Encap.UDP, **udp)  # fmt: skip
    tunnel = Tunnel(cfg, ())
    session = Session(cfg, SessionConfig(tunnel_id=1, session_id=7, peer_session_id=7,
                                         peer_cookie=bytes.fromhex("01020304")))  # fmt: skip
    tunnel.add(session)
    header = b"\x00\x03\x00\x00\x00\x00\x00\x07"
    tunnel.receive(header + bytes.fromhex("09090909") + bytes(4) + FRAME, 0.0)
    tunnel.receive(header + bytes.fromhex("09090909") + bytes(4) + FRAME, 0.0)
    tunnel.receive(header + b"\x01\x02", 0.0)  # shorter than the session's header
    pkt = session.encapsulate(FRAME)
    session.tx_failed(len(pkt))
    assert (session.counters.rx_cookie_discards, session.counters.rx_errors) == (2, 3)
    totals = tunnel.totals()
    assert (totals.rx_errors, totals.rx_cookie_discards) == (0, 0)
    assert (totals.tx_errors, totals.tx_packets, totals.tx_bytes) == (1, 0, 0)
