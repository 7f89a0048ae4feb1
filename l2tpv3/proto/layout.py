"""L2TPv3 data-message headers: a per-session layout computed once, then built from it.

Wire format (RFC 3931 §4.1.1 IP, §4.1.2.1 UDP, §4.6 sublayer; RFC 4719 §3):

    UDP:  | 0x0003 flags/ver | 0x0000 reserved | session ID | cookie 0/4/8 | [sublayer 4] | frame
    IP:                                         | session ID | cookie 0/4/8 | [sublayer 4] | frame

Following the kernel, the session ID we send is ``peer_session_id`` and the cookie we
send is ``cookie``; received packets are looked up by ``session_id`` and must carry
``peer_cookie``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from l2tpv3.config import Encap, L2SpecType, SessionConfig, TunnelConfig
from l2tpv3.constants import (
    ETH_DATA_LEN,
    ETH_HLEN,
    IPV4_HLEN,
    IPV6_HLEN,
    L2SPEC_DEFAULT_LEN,
    L2SPEC_S_BIT,
    MAX_MTU,
    MIN_MTU,
    SEQ_MASK,
    UDP_DATA_WORD,
    UDP_HLEN,
)

if TYPE_CHECKING:
    from l2tpv3.proto.esp import EspShape

_U32 = struct.Struct("!I")
_UDP_WORD = _U32.pack(UDP_DATA_WORD)


@dataclass(frozen=True, slots=True)
class HeaderLayout:
    """Where each field sits in the L2TP part of a datagram (the UDP or IP payload).

    The receive-side offsets are absolute within the payload (the session ID starts
    at 4 over UDP, after the flags word, and at 0 over IP), so the hot path does no
    arithmetic.
    """

    encap: Encap
    tx_prefix: bytes  # flags word (UDP), peer_session_id, cookie: fixed per session
    tx_l2spec: bool
    tx_header_len: int
    rx_cookie: bytes
    rx_cookie_offset: int
    rx_cookie_end: int  # rx_cookie_offset + len(rx_cookie)
    rx_l2spec_offset: int  # -1 when there is no sublayer
    rx_header_len: int

    @classmethod
    def for_session(cls, tunnel: TunnelConfig, session: SessionConfig) -> HeaderLayout:
        udp = tunnel.encap is Encap.UDP
        l2spec = session.l2spec_type is L2SpecType.DEFAULT
        prefix = (_UDP_WORD if udp else b"") + _U32.pack(session.peer_session_id) + session.cookie
        session_offset = 4 if udp else 0
        cookie_offset = session_offset + 4
        l2spec_offset = cookie_offset + len(session.peer_cookie)
        rx_len = l2spec_offset + (L2SPEC_DEFAULT_LEN if l2spec else 0)
        return cls(
            encap=tunnel.encap,
            tx_prefix=prefix,
            tx_l2spec=l2spec,
            tx_header_len=len(prefix) + (L2SPEC_DEFAULT_LEN if l2spec else 0),
            rx_cookie=session.peer_cookie,
            rx_cookie_offset=cookie_offset,
            rx_cookie_end=l2spec_offset,
            rx_l2spec_offset=l2spec_offset if l2spec else -1,
            rx_header_len=rx_len,
        )

    def header(self, ns: int | None) -> bytes:
        """The header to put before a frame; ``ns`` None sends no sequence number."""
        if not self.tx_l2spec:
            return self.tx_prefix
        # RFC 4719 §3 / kernel: with the default sublayer the 4 bytes are always sent,
        # all zero when not sequencing.
        word = 0 if ns is None else L2SPEC_S_BIT | (ns & SEQ_MASK)
        return self.tx_prefix + _U32.pack(word)

    def build(self, frame: bytes, ns: int | None = None) -> bytes:
        return self.header(ns) + frame


def session_mtu(
    tunnel: TunnelConfig,
    session: SessionConfig,
    path_mtu: int | None,
    esp: EspShape | None = None,
) -> int:
    """The l2tpethN MTU exactly as the kernel's l2tp_eth_adjust_mtu computes it.

    Overhead = underlay IP header + UDP header (UDP encap) + the L2TP header we send
    (session ID, our cookie, sublayer, UDP flags word) + the inner Ethernet header.

    With ``esp`` (the tunnel's outbound SA) the datagram is sealed in ESP before it
    reaches IP, so the L2TP overhead is taken from the largest ESP payload that fits
    (:meth:`EspShape.max_payload`: header, IV, worst-case padding, trailer, ICV and the
    RFC 3948 UDP header): a full-size frame never makes an outer packet above the path
    MTU. The kernel's l2tp_eth ignores xfrm; there the MTU must be set by hand (our
    ``peer-config`` says how).
    """
    layout = HeaderLayout.for_session(tunnel, session)
    ip_hlen = IPV4_HLEN if tunnel.family == 4 else IPV6_HLEN
    overhead = ip_hlen + (UDP_HLEN if tunnel.encap is Encap.UDP else 0)
    overhead += layout.tx_header_len + ETH_HLEN

    def fit(path: int) -> int:
        if esp is None:
            return path - overhead
        return ip_hlen + esp.max_payload(path - ip_hlen) - overhead

    if path_mtu is None:
        return fit(ETH_DATA_LEN)
    mtu = fit(path_mtu)
    # The kernel falls back to 1500 - overhead when the result is outside the
    # Ethernet device's limits (68..65535).
    if mtu < MIN_MTU or mtu > MAX_MTU:
        return fit(ETH_DATA_LEN)
    return mtu
