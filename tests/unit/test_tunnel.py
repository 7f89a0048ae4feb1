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
    # 1. The owner of the session ID on the listener, whoever sent it.
    assert own.counter(1, 8) == own.counter(3, 8) == own.counter(1, 8, "10.0.0.2") == 3
    assert own.counter(3, 7, "10.0.0.9") == own.counter(1, 7, "10.0.0.77") == 1
    # ... but not on another listener: there it is nobody's.
    assert own.counter(5, 7) == 5
    # 2. Nobody's ID here: the tunnel whose peer sent it.
    assert own.counter(1, 9, "10.0.0.9") == own.counter(3, 9) == 3
    assert own.counter(3, 0, "10.0.0.2") == own.counter(1, 0) == 1
    # 3. A stranger: the lowest tunnel ID on the listener, once.
    assert own.counter(3, 9, "10.0.0.77") == own.counter(1, 9, "10.0.0.77") == 1
    assert own.counter(3, 9, "not an address") == 1
    assert own.counter(5, 9, "10.0.0.9") == 5  # tunnel 3's peer is a stranger there
    assert own.counter(42, 8) == 42  # never added: alone
    own.remove_tunnel(3)
    assert own.owner(8) is None
    assert own.counter(1, 8, "10.0.0.9") == 1
    own.claim(1, 8)
    own.release(8)
    assert own.owner(8) is None


def test_shared_peer_is_counted_by_the_lowest_tunnel_id(sansio: Implementation) -> None:
    own = sansio.ownership()
    for tid in (4, 2, 3):
        own.add_tunnel(tid, 4, "10.0.0.1", "10.0.0.9" if tid == 3 else "10.0.0.2")
    own.claim(4, 40)
    assert own.counter(4, 99) == own.counter(2, 99) == 2
    assert own.counter(2, 40) == 4
    assert own.counter(4, 99, "10.0.0.9") == 3


def test_ipv6_ownership(sansio: Implementation) -> None:
    own = sansio.ownership()
    own.add_tunnel(1, 6, "fd00::1", "fd00::2")
    own.add_tunnel(2, 6, "fd00::1", "fd00::3")
    own.add_tunnel(3, 4, "10.0.0.1", "10.0.0.3")  # another family: another listener
    own.claim(2, 8)
    assert own.counter(1, 9, "fd00::3") == 2
    assert own.counter(2, 9, "fd00::2") == 1
    assert own.counter(2, 9, "fd00::4") == 1
    assert own.counter(3, 8, "10.0.0.3") == 3
    tunnel, _ = _tunnel(sansio, Encap.IP, own, local="fd00::1", remote="fd00::2")
    assert tunnel.receive(OTHER, 0.0) == (None, [])
    assert tunnel.counters.rx_invalid == 0


# One listener 10.0.0.1 with tunnel 3 (peer B, sessions 30, 31) and tunnel 4 (peer B2,
# session 40); tunnel 5 on 10.0.0.5 (peer B, session 50), which sees none of these.
B, B2, STRANGER = "10.0.0.2", "10.0.0.12", "10.0.0.99"
LISTENER = {3: B, 4: B2}


def _listener(sansio: Implementation) -> dict[int, TunnelAPI]:
    own = sansio.ownership()
    tunnels = {}
    for tid, local, peer, sids in ((3, "10.0.0.1", B, (30, 31)), (4, "10.0.0.1", B2, (40,)),
                                   (5, "10.0.0.5", B, (50,))):  # fmt: skip
        own.add_tunnel(tid, 4, local, peer)
        cfg = TunnelConfig(tunnel_id=tid, peer_tunnel_id=tid, local=ip_address(local),
                           remote=ip_address(peer), encap=Encap.IP)  # fmt: skip
        tunnel = sansio.tunnel(cfg, own)
        for sid in sids:
            own.claim(tid, sid)
            tunnel.add(sansio.session(cfg, SessionConfig(tunnel_id=tid, session_id=sid,
                                                         peer_session_id=sid)))  # fmt: skip
        tunnels[tid] = tunnel
    return tunnels


def _counts(t: TunnelAPI) -> dict[str, int]:
    out = {k: v for k, v in t.drops.items() if v}
    for sid, s in t.sessions.items():
        if s.counters.rx_packets + s.counters.rx_errors:
            out[f"session {sid}"] = s.counters.rx_packets + s.counters.rx_errors
    return out


@pytest.mark.parametrize(
    ("host", "payload", "want"),
    [
        # 1. The owner of the session ID on the listener counts it.
        (B, (30).to_bytes(4, "big") + bytes(4) + FRAME, (3, "session 30")),
        (B2, (40).to_bytes(4, "big") + bytes(4) + FRAME, (4, "session 40")),
        (B, (40).to_bytes(4, "big") + bytes(4) + FRAME, (4, "wrong_source")),  # the finding
        (B2, (31).to_bytes(4, "big") + bytes(4) + FRAME, (3, "wrong_source")),
        (STRANGER, (40).to_bytes(4, "big") + bytes(4) + FRAME, (4, "wrong_source")),
        # 2. Nobody's ID here (50 is on another listener): the tunnel whose peer sent it.
        (B, (50).to_bytes(4, "big") + bytes(4) + FRAME, (3, "unknown_session")),
        (B2, (99).to_bytes(4, "big") + bytes(4) + FRAME, (4, "unknown_session")),
        (B2, b"\x00\x00", (4, "too_short")),
        (B, bytes(4) + b"\xc8\x03", (3, "control_message")),
        # 3. A stranger with nobody's ID: the lowest tunnel ID, once.
        (STRANGER, (99).to_bytes(4, "big") + bytes(4) + FRAME, (3, "wrong_source")),
        (STRANGER, b"\x00", (3, "wrong_source")),
        (STRANGER, bytes(8), (3, "wrong_source")),
    ],
)
def test_every_datagram_on_a_shared_ip_listener_is_counted_once(
    sansio: Implementation, host: str, payload: bytes, want: tuple[int, str]
) -> None:
    """Every tunnel on the listener gets a copy, as each raw socket does: through
    receive() from its peer, receive_foreign() from anyone else."""
    tunnels = _listener(sansio)
    for tid, peer in LISTENER.items():
        if host == peer:
            tunnels[tid].receive(payload, 0.0)
        else:
            tunnels[tid].receive_foreign(payload, host)
    got = {tid: c for tid, t in tunnels.items() if (c := _counts(t))}
    assert got == {want[0]: {want[1]: 1}}


def test_udp_foreign_is_always_wrong_source(sansio: Implementation) -> None:
    own = _shared(sansio, 4, "10.0.0.1", "10.0.0.1")
    tunnel, _ = _tunnel(sansio, Encap.UDP, own)
    tunnel.receive_foreign(b"\x00\x03\x00\x00" + OTHER, "10.0.0.9")
    tunnel.receive_foreign(b"", "10.0.0.2")
    assert tunnel.drops["wrong_source"] == 2


def test_ip_foreign_without_ownership_is_wrong_source(sansio: Implementation) -> None:
    tunnel, _ = _tunnel(sansio, Encap.IP)
    tunnel.receive_foreign(OTHER, "10.0.0.9")
    assert tunnel.drops["wrong_source"] == 1
    assert tunnel.counters.rx_invalid == 1


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
