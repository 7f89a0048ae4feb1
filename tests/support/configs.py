"""Typed pieces for building l2tpv3.config objects in tests."""

from __future__ import annotations

from typing import TypedDict


class UdpPorts(TypedDict, total=False):
    """TunnelConfig's UDP ports as keyword arguments (``TunnelConfig(..., **ports)``):
    both for encap udp, neither for encap ip."""

    udp_sport: int
    udp_dport: int
