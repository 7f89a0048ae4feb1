"""Tunnel demultiplexing and drop reasons, sans I/O."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from l2tpv3.config import Encap, SessionConfig, TunnelConfig
from l2tpv3.errors import StateError
from l2tpv3.io.datapath import Implementation
from l2tpv3.proto.api import IpOwnershipAPI, SessionAPI, TunnelAPI
from tests.support.configs import UdpPorts

FRAME = bytes(range(20))

# Every test here runs against the pure-Python classes and the Cython ones (``sansio``).


def _tunnel(
    sansio: Implementation,
    encap: Encap,
    ownership: IpOwnershipAPI | None = None,
    tunnel_id: int = 1,
    local: str = "10.0.0.1",
    remote: str = "10.0.0.2",
) -> tuple[TunnelAPI, SessionAPI]:
    udp: UdpPorts = {"udp_sport": 1, "udp_dport": 2} if encap is Encap.UDP else {}
    cfg = TunnelConfig(tunnel_id=tunnel_id, peer_tunnel_id=2, local=ip_address(local),
                       remote=ip_address(remote), encap=encap, **udp)  # fmt: skip
    tunnel = sansio.tunnel(cfg, ownership)
    session = sansio.session(
        cfg, SessionConfig(tunnel_id=tunnel_id, session_id=7, peer_session_id=7)
    )
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
def test_drops_are_counted_with_a_reason(
    sansio: Implementation, encap: Encap, payload: bytes, reason: str
) -> None:
    tunnel, session = _tunnel(sansio, encap)
    assert tunnel.receive(payload, 0.0) == (None, [])
    assert tunnel.drops[reason] == 1
    assert sum(tunnel.drops.values()) == 1
    assert tunnel.counters.rx_invalid == 1
    assert session.counters.rx_packets == 0


@pytest.mark.parametrize("encap", list(Encap))
def test_reserved_bits_are_ignored_and_data_delivered(sansio: Implementation, encap: Encap) -> None:
    tunnel, session = _tunnel(sansio, encap)
    head = b"\x00\x03\xff\xff" if encap is Encap.UDP else b""
    got_session, frames = tunnel.receive(head + (7).to_bytes(4, "big") + bytes(4) + FRAME, 0.0)
    assert got_session is session
    assert frames == [FRAME]


OTHER = b"\x00\x00\x00\x08" + bytes(4) + FRAME  # session 8: not tunnel 1's


def _shared(sansio: Implementation, family: int, local: str, other_local: str) -> IpOwnershipAPI:
    """Tunnel 1 listens on 10.0.0.1 (family 4); tunnel 3 on ``family``/``other_local``
    owns session 8."""
    own = sansio.ownership()
    own.add_tunnel(1, 4, local, "10.0.0.2")
    peer = "fd00::9" if family == 6 else "10.0.0.9"
    own.add_tunnel(3, family, other_local, peer)
    own.claim(1, 7)
    own.claim(3, 8)
    return own


def test_ip_session_of_another_tunnel_on_the_same_listener_is_its_copy(
    sansio: Implementation,
) -> None:
    own = _shared(sansio, 4, "10.0.0.1", "10.0.0.1")
    tunnel, _ = _tunnel(sansio, Encap.IP, own)
    assert tunnel.receive(OTHER, 0.0) == (None, [])
    assert tunnel.counters.rx_invalid == 0
    assert tunnel.drops["unknown_session"] == 0


@pytest.mark.parametrize(
    ("family", "other_local"), [(4, "10.0.0.5"), (6, "fd00::1")], ids=["local", "family"]
)
def test_ip_session_of_a_tunnel_on_another_listener_is_unknown(
    sansio: Implementation, family: int, other_local: str
) -> None:
    # That tunnel's socket never saw this datagram: nobody else would count it.
    own = _shared(sansio, family, "10.0.0.1", other_local)
    tunnel, _ = _tunnel(sansio, Encap.IP, own)
    assert tunnel.receive(OTHER, 0.0) == (None, [])
    assert tunnel.drops["unknown_session"] == 1
    assert tunnel.counters.rx_invalid == 1


def test_ip_session_nobody_owns_is_unknown(sansio: Implementation) -> None:
    own = _shared(sansio, 4, "10.0.0.1", "10.0.0.1")
    own.release(8)
    tunnel, _ = _tunnel(sansio, Encap.IP, own)
    assert tunnel.receive(OTHER, 0.0) == (None, [])
    assert tunnel.drops["unknown_session"] == 1


def test_udp_ignores_ownership(sansio: Implementation) -> None:
    own = _shared(sansio, 4, "10.0.0.1", "10.0.0.1")
    tunnel, _ = _tunnel(sansio, Encap.UDP, own)
    tunnel.receive(b"\x00\x03\x00\x00" + OTHER, 0.0)
    assert tunnel.drops["unknown_session"] == 1


def test_ownership_semantics(sansio: Implementation) -> None:
    own = _shared(sansio, 4, "10.0.0.1", "10.0.0.1")
    own.add_tunnel(5, 4, "10.0.0.5", "10.0.0.2")
    assert (own.owner(7), own.owner(8), own.owner(9)) == (1, 3, None)
    own.claim(1, 7)  # again, by its owner: fine
    with pytest.raises(StateError, match="already exists in tunnel 3"):
        own.claim(1, 8)
    assert own.is_other_copy(1, 8) and own.is_other_copy(3, 7)
    assert not own.is_other_copy(1, 7)  # its own session
    assert not own.is_other_copy(5, 7)  # another listener
    assert own.is_other_peer(1, "10.0.0.9")
    assert not own.is_other_peer(3, "10.0.0.9")  # its own peer
    assert not own.is_other_peer(5, "10.0.0.9")  # another listener
    assert not own.is_other_peer(1, "10.0.0.8")
    assert not own.is_other_peer(1, "not an address")
    own.remove_tunnel(3)
    assert own.owner(8) is None
    assert not own.is_other_peer(1, "10.0.0.9")
    own.claim(1, 8)
    own.release(8)
    assert own.owner(8) is None


def test_ipv6_ownership(sansio: Implementation) -> None:
    own = sansio.ownership()
    own.add_tunnel(1, 6, "fd00::1", "fd00::2")
    own.add_tunnel(2, 6, "fd00::1", "fd00::3")
    own.claim(2, 8)
    assert own.is_other_peer(1, "fd00::3") and not own.is_other_peer(1, "fd00::2")
    tunnel, _ = _tunnel(sansio, Encap.IP, own, local="fd00::1", remote="fd00::2")
    assert tunnel.receive(OTHER, 0.0) == (None, [])
    assert tunnel.counters.rx_invalid == 0


def test_cython_tunnel_takes_only_its_own_ownership(sansio: Implementation) -> None:
    # The engine's receive thread reads the C struct behind _fastpath.IpOwnership; the
    # pure-Python tunnel takes any IpOwnershipAPI.
    from l2tpv3.proto.ownership import IpOwnership

    if sansio.name == "cython":
        with pytest.raises(TypeError):
            _tunnel(sansio, Encap.IP, IpOwnership())
    else:
        tunnel, _ = _tunnel(sansio, Encap.IP, IpOwnership())
        assert tunnel.receive(OTHER, 0.0) == (None, [])


def test_totals_keep_deleted_sessions(sansio: Implementation) -> None:
    tunnel, session = _tunnel(sansio, Encap.UDP)
    tunnel.receive(b"\x00\x03\x00\x00\x00\x00\x00\x07" + bytes(4) + FRAME, 0.0)
    tunnel.receive(b"\x00", 0.0)
    session.encapsulate(FRAME)
    tunnel.remove(7)
    totals = tunnel.totals()
    assert totals.rx_packets == 1
    assert totals.tx_packets == 1
    assert totals.rx_invalid == 1
    assert totals.rx_bytes == 8 + 4 + len(FRAME)


def test_session_only_counters_stay_on_the_session(sansio: Implementation) -> None:
    # Made by traffic rather than by writing the counters, so both implementations run it.
    cfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                       remote=ip_address("10.0.0.2"), encap=Encap.UDP, udp_sport=1,
                       udp_dport=2)  # fmt: skip
    tunnel = sansio.tunnel(cfg, None)
    session = sansio.session(cfg, SessionConfig(tunnel_id=1, session_id=7, peer_session_id=7,
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
