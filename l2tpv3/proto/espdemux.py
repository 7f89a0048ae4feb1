"""Which of the daemon's tunnels answers for an inbound ESP packet (sans I/O).

Every raw IPPROTO_ESP socket bound to an address receives a copy of every ESP packet
sent to that address, and each tunnel with an SA has one. A tunnel ignores the copies
from hosts other than its peer (the peer's tunnel has its own), but two tunnels to the
same peer on the same local address (two tunnels between two sites, each with its own
SAs) both see every packet of both. Each must then ignore, silently, the packets whose
SPI is an inbound SA of the other (that tunnel opens and counts its own copy), and only
one of them may count a packet whose SPI no tunnel knows, so that every ESP packet that
arrives lands in exactly one counter:

- the tunnels that see the same packets form a group (:class:`EspListener`): same
  address family and local address, same peer address, and for ``encap espinudp`` the
  same local UDP port (the socket's) and peer port (the socket only takes that one);
- a tunnel's *foreign* SPIs are the inbound SPIs of the other tunnels of its group: a
  packet under one of them is not counted by this tunnel (EspInbound.open returns None);
- of a group, one tunnel counts ``unknown_spi``: the lowest tunnel ID among those with an
  inbound SA (``show sa`` shows the count with its inbound SAs), or the lowest of the
  group when none has one. The others ignore a packet with an unknown SPI, and one too
  short to hold an SPI (``too_short``, counted by that same tunnel).

The daemon works this out again whenever an SA or a tunnel is added or deleted
(daemon/core.py ``_esp_demux``) and gives each ESP path its part (``set_foreign``):
io/espport.py EspPath (this module's rule in proto/esp.py EspInbound) and the C engine's
fp_esp_path (fp_esp.c fp_esp_path_open), which decide alike per packet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["EspDemux", "EspListener", "esp_demux"]


@dataclass(frozen=True, slots=True)
class EspListener:
    """What a tunnel's ESP socket hears: the packets to ``local`` (on UDP ``port`` for
    espinudp, 0 for raw ESP) from ``peer`` (from UDP ``peer_port``, 0 for raw ESP)."""

    family: int
    local: str
    port: int
    peer: str
    peer_port: int


@dataclass(frozen=True, slots=True)
class EspDemux:
    """One tunnel's part: the other tunnels' inbound SPIs it ignores, and whether it
    counts a packet under an SPI no tunnel of its group knows (``unknown_spi``)."""

    foreign: frozenset[int] = frozenset()
    count_unknown: bool = True


def esp_demux(tunnels: Mapping[int, tuple[EspListener, frozenset[int]]]) -> dict[int, EspDemux]:
    """For every tunnel (ID: its listener and its inbound SPIs), its :class:`EspDemux`."""
    groups: dict[EspListener, list[int]] = {}
    for tid, (listener, _) in tunnels.items():
        groups.setdefault(listener, []).append(tid)
    out: dict[int, EspDemux] = {}
    for members in groups.values():
        with_in = [tid for tid in members if tunnels[tid][1]]
        counter = min(with_in or members)
        for tid in members:
            own = tunnels[tid][1]
            foreign = frozenset().union(*(tunnels[o][1] for o in members if o != tid)) - own
            out[tid] = EspDemux(foreign, tid == counter)
    return out
