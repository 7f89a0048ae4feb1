"""What a tunnel's options cost: which offloads they rule out, the measured price, and
the option that lifts it (issue 12 item 6).

The rules are the fast path's (``Tunnel.start`` in ``l2tpv3/fast/_fastpath.pyx``; see
docs/offload.md and docs/performance.md "Why the misses"):

- UDP GSO (``UDP_SEGMENT``) needs UDP checksums on the datagrams it sends: Linux
  refuses it on a socket that sends zero checksums, which over IPv4 is ``udp_csum off``
  (the kernel's default, and ours) and over IPv6 ``udp6_csum_tx off``;
- ``encap ip`` (raw IP sockets) has neither UDP GSO nor UDP GRO;
- the pure-Python data path offloads nothing, and ``l2tpv3d --no-offload`` turns the
  offloads off.

The state itself is read from the running data path (:meth:`TunnelPortAPI.offloads`);
this module only says why UDP GSO is off and what would turn it on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from l2tpv3.config import Encap, TunnelConfig
from l2tpv3.control.protocol import OffloadState
from l2tpv3.io.api import Offloads

__all__ = [
    "MEASURED_RUN",
    "MEASURED_SOURCE",
    "NO_GSO",
    "UDP_CSUM_ON",
    "Measured",
    "cost_note",
    "offload_state",
]


@dataclass(frozen=True, slots=True)
class Measured:
    """One row of the benchmark table in docs/performance.md."""

    case: str  # the row's name in the table
    tcp_ab_gbps: float  # TCP A→B, Gbit/s
    tcp_ba_gbps: float  # TCP B→A, Gbit/s
    cpu_percent: int  # CPU % (TCP) of both daemons, in percent of one core

    @property
    def tcp(self) -> str:
        return f"{self.tcp_ab_gbps:.2f}/{self.tcp_ba_gbps:.2f} Gbit/s"


# Copied from docs/performance.md ("Latest run", written by bench/run.py): two
# namespaces over a veth pair, 2 CPUs, iperf3 TCP medians of 3 repetitions, both
# directions. tests/unit/test_offload_cost.py fails when the page and these differ, so a
# new benchmark run must be copied here (never edit the figures by hand otherwise).
MEASURED_SOURCE: Final = "docs/performance.md"
MEASURED_RUN: Final = "2026-11-21T21:49:49Z"
NO_GSO: Final = Measured("l2tpv3 Cython", 3.20, 3.12, 169)
UDP_CSUM_ON: Final = Measured("l2tpv3 Cython, udp_csum on", 8.79, 8.38, 120)

# What rules UDP GSO out, and what lifts it.
_NOT_BUILT = (
    "pure-Python data path",
    "the Cython fast path (built by pip install with a C compiler; L2TPV3_NO_EXTENSIONS unset)",
)
_SWITCHED_OFF = ("--no-offload", "l2tpv3d without --no-offload")
_ENCAP_IP = ("encap ip", "encap udp with udp_csum on, at both ends")
_CSUM4 = ("udp_csum off", "udp_csum on")
_CSUM6 = ("udp6_csum_tx off", "udp6_csum_tx on")
_REFUSED = ("the kernel refused UDP GSO", None)


def offload_state(
    config: TunnelConfig, capable: Offloads, offload: bool, running: Offloads
) -> OffloadState:
    """The tunnel's record for ``show -s -j``: ``running`` (the data path's own report),
    and when UDP GSO is off, what rules it out. ``capable``: what the implementation can
    do; ``offload``: False under ``--no-offload``."""
    limit: tuple[str, str | None] | None = None
    if not running.udp_gso:
        if not capable.udp_gso:
            limit = _NOT_BUILT
        elif not offload:
            limit = _SWITCHED_OFF
        elif config.encap is Encap.IP:
            limit = _ENCAP_IP
        elif config.family == 4 and not config.udp_csum:
            limit = _CSUM4
        elif config.family == 6 and not config.udp6_csum_tx:
            limit = _CSUM6
        else:
            limit = _REFUSED
    return OffloadState(
        udp_gso=running.udp_gso,
        udp_gro=running.udp_gro,
        tap_tso=running.tap_vnet_hdr,
        limited_by=limit[0] if limit else None,
        lifted_by=limit[1] if limit else None,
    )


def cost_note(config: TunnelConfig, state: OffloadState) -> str | None:
    """The line ``l2tpv3d`` logs once for a tunnel whose OPTIONS rule out UDP GSO on a
    data path that could use it (None otherwise: nothing ruled out, or ruled out by the
    implementation or ``--no-offload`` rather than by the tunnel's options)."""
    if state.limited_by not in (_CSUM4[0], _CSUM6[0], _ENCAP_IP[0]):
        return None
    measured = (
        f"{NO_GSO.tcp} TCP at {NO_GSO.cpu_percent} % CPU against {UDP_CSUM_ON.tcp} at "
        f"{UDP_CSUM_ON.cpu_percent} % with udp_csum on ({MEASURED_SOURCE}, run of "
        f"{MEASURED_RUN}, IPv4 over veth, both daemons' CPU)"
    )
    tid = config.tunnel_id
    if state.limited_by == _ENCAP_IP[0]:
        return (
            f"tunnel {tid}: encap ip has no UDP GSO or GRO (raw IP sockets), so every "
            f"frame crosses the kernel's IP stack on its own, as with udp_csum off: "
            f"measured {measured}; {_ENCAP_IP[1]} lifts it"
        )
    if state.limited_by == _CSUM4[0]:
        return (
            f"tunnel {tid}: udp_csum off (the kernel's default) rules out UDP GSO: the "
            f"kernel refuses it on zero-checksum datagrams, so every datagram crosses its "
            f"UDP/IP stack on its own: measured {measured}; udp_csum on lifts it (the peer "
            f"accepts either)"
        )
    return (
        f"tunnel {tid}: udp6_csum_tx off rules out UDP GSO: the kernel refuses it on "
        f"zero-checksum datagrams, so every datagram crosses its UDP/IP stack on its own "
        f"(over IPv4, measured {measured}); udp6_csum_tx on (the default) lifts it"
    )
