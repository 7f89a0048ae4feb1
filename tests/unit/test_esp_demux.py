"""proto/espdemux.py: which tunnel answers for an ESP packet its socket shares with
other tunnels (same local address and peer): foreign SPIs, and the one tunnel that
counts an unknown SPI; and the reference's per-packet rule in EspInbound.open."""

from __future__ import annotations

import struct

from l2tpv3.proto import counters
from l2tpv3.proto.esp import AEAD_GCM, EspInbound, EspSA
from l2tpv3.proto.espdemux import EspDemux, EspListener, esp_demux

A = EspListener(4, "10.0.0.1", 0, "10.0.0.2", 0)
A_OTHER_PEER = EspListener(4, "10.0.0.1", 0, "10.0.0.3", 0)
A_V6 = EspListener(6, "fd00::1", 0, "fd00::2", 0)
UDP_A = EspListener(4, "10.0.0.1", 4500, "10.0.0.2", 4500)
UDP_B = EspListener(4, "10.0.0.1", 4501, "10.0.0.2", 4500)


def test_alone_on_its_listener_a_tunnel_counts_everything() -> None:
    assert esp_demux({7: (A, frozenset({1, 2}))}) == {7: EspDemux(frozenset(), True)}
    assert esp_demux({}) == {}


def test_two_tunnels_to_one_peer_ignore_each_others_spis() -> None:
    plan = esp_demux({20: (A, frozenset({0x20, 0x21})), 10: (A, frozenset({0x10}))})
    assert plan[10] == EspDemux(frozenset({0x20, 0x21}), True)  # the lowest ID counts
    assert plan[20] == EspDemux(frozenset({0x10}), False)


def test_an_spi_both_tunnels_have_is_their_own_not_foreign() -> None:
    plan = esp_demux({1: (A, frozenset({5, 6})), 2: (A, frozenset({6}))})
    assert plan[1].foreign == frozenset()
    assert plan[2].foreign == frozenset({5})


def test_the_counter_is_the_lowest_id_with_an_inbound_sa() -> None:
    # Tunnel 1 only sends (no inbound SA, so `show sa` could not show its count).
    plan = esp_demux({1: (A, frozenset()), 3: (A, frozenset({9})), 2: (A, frozenset({8}))})
    assert [tid for tid, part in sorted(plan.items()) if part.count_unknown] == [2]
    assert plan[1].foreign == frozenset({8, 9})
    # None has one: the lowest ID counts (nothing shows it, but exactly one counts).
    plan = esp_demux({4: (A, frozenset()), 3: (A, frozenset())})
    assert plan[3].count_unknown and not plan[4].count_unknown


def test_other_listeners_and_other_peers_are_apart() -> None:
    """Another peer's packets never reach this tunnel (its source is checked), another
    family or espinudp port is another socket: none of their SPIs are foreign here,
    and each group has its own counter."""
    plan = esp_demux(
        {
            1: (A, frozenset({1})),
            2: (A_OTHER_PEER, frozenset({2})),
            3: (A_V6, frozenset({3})),
            4: (UDP_A, frozenset({4})),
            5: (UDP_B, frozenset({5})),
        }
    )
    assert all(part == EspDemux(frozenset(), True) for part in plan.values()), plan


def _packet(spi: int, sa: EspSA | None = None) -> bytes:
    if sa is None:
        return struct.pack("!II", spi, 1) + bytes(40)
    packet = sa.seal(b"datagram", 115)
    assert packet is not None
    return packet


def test_inbound_ignores_foreign_spis_and_counts_unknown_once() -> None:
    key = bytes(20)
    inbound = EspInbound()
    inbound.sas[0x10] = EspSA(0x10, AEAD_GCM, key)
    part = esp_demux({1: (A, frozenset({0x10})), 2: (A, frozenset({0x20}))})[1]
    inbound.foreign, inbound.count_unknown = part.foreign, part.count_unknown
    assert inbound.open(_packet(0x20), 115) is None
    assert inbound.open(_packet(0x10, EspSA(0x10, AEAD_GCM, key)), 115) == (b"datagram", 115)
    assert inbound.open(_packet(0x30), 115) == counters.ESP_UNKNOWN_SPI
    assert inbound.open(b"\0\0", 115) == counters.ESP_TOO_SHORT
    assert inbound.drops[counters.ESP_UNKNOWN_SPI] == 1
    assert inbound.drops[counters.ESP_TOO_SHORT] == 1
    # Not the counter of its group: an unknown SPI (or none) is the other tunnel's.
    inbound.count_unknown = False
    assert inbound.open(_packet(0x30), 115) is None
    assert inbound.open(b"\0\0", 115) is None
    assert inbound.open(_packet(0x20), 115) is None
    assert inbound.drops[counters.ESP_UNKNOWN_SPI] == 1
    assert inbound.drops[counters.ESP_TOO_SHORT] == 1
