"""scapy layers for L2TPv3 data messages (scapy itself ships only L2TPv2).

Optional: needs scapy (``pip install l2tpv3[interop]``); the daemon never imports it.

Layers, RFC 3931 §4.1 and RFC 4719 §3:

- :class:`L2TPv3UDP`: the 32-bit word that starts every L2TPv3 message over UDP
  (T bit, reserved bits, version 3, 16 reserved bits). T=0 (data) continues with
  :class:`L2TPv3`; a control message (T=1) or another version is left as Raw.
- :class:`L2TPv3`: the session header, first over IP protocol 115 (bound on import
  for IPv4 and IPv6): session ID, then the cookie. Session ID 0 over IP announces a
  control message, left as Raw.
- :class:`L2SpecDefault`: the Default L2-Specific Sublayer (S bit, 24-bit sequence
  number), then the Ethernet frame (:class:`scapy.layers.l2.Ether`).

Nothing on the wire says how long the cookie is or whether the sublayer is there: both
ends are configured. :func:`bind_l2tpv3` says it, as a default and per session ID, and
binds a UDP port. Building needs none of that: a packet is built from the fields given.

    bind_l2tpv3(udp_port=5000, cookie_len=8, l2spec=True)
    pkt = IP(raw_bytes)          # ... / UDP / L2TPv3UDP / L2TPv3 / L2SpecDefault / Ether
    pkt[L2TPv3].cookie, pkt[L2SpecDefault].S, pkt[L2SpecDefault].seq, pkt[Ether].src
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from scapy.fields import BitField, IntField, StrLenField
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw, bind_layers, split_layers

from l2tpv3.constants import COOKIE_LENGTHS, IPPROTO_L2TP, L2TP_VERSION_3

__all__ = [
    "L2SpecDefault",
    "L2TPv3",
    "L2TPv3UDP",
    "SessionFormat",
    "bind_l2tpv3",
    "reset_l2tpv3",
    "session_format",
    "unbind_l2tpv3_udp",
]


@dataclass(frozen=True, slots=True)
class SessionFormat:
    """What the receiver of a session is configured with: its peer's cookie length and
    whether the default sublayer is used."""

    cookie_len: int = 0
    l2spec: bool = True

    def __post_init__(self) -> None:
        if self.cookie_len not in (0, *COOKIE_LENGTHS):
            raise ValueError(f"cookie_len must be 0, 4 or 8, not {self.cookie_len!r}")


# The kernel's defaults: no cookie, default sublayer.
_default = SessionFormat()
_sessions: dict[int, SessionFormat] = {}
_udp_ports: set[int] = set()


def _format(session_id: int | None) -> SessionFormat:
    if session_id is None:
        return _default
    return _sessions.get(session_id, _default)


def bind_l2tpv3(
    udp_port: int | None = None,
    cookie_len: int | None = None,
    l2spec: bool | None = None,
    session_id: int | None = None,
) -> None:
    """Say how to dissect L2TPv3, and on which UDP port.

    ``cookie_len`` (0, 4, 8) and ``l2spec`` set the default, or the format of one
    session with ``session_id``; ``None`` leaves a value as it was. ``udp_port`` binds
    that port (source or destination) to :class:`L2TPv3UDP`, ahead of scapy's own
    L2TPv2 binding of 1701.
    """
    global _default
    base = _format(session_id)
    fmt = SessionFormat(
        base.cookie_len if cookie_len is None else cookie_len,
        base.l2spec if l2spec is None else l2spec,
    )
    if session_id is None:
        _default = fmt
    else:
        _sessions[session_id] = fmt
    if udp_port is not None:
        _bind_udp(udp_port)


def _bind_udp(port: int) -> None:
    bind_layers(UDP, L2TPv3UDP, dport=port, sport=port)
    ours = [
        {"dport": port, "sport": port},
        {"dport": port},
        {"sport": port},
    ]
    # Dissection takes the first binding that matches: put ours before scapy's L2TPv2.
    rest = [g for g in UDP.payload_guess if not (g[1] is L2TPv3UDP and g[0] in ours)]
    UDP.payload_guess = [(fv, L2TPv3UDP) for fv in ours] + rest
    _udp_ports.add(port)


def unbind_l2tpv3_udp(port: int) -> None:
    split_layers(UDP, L2TPv3UDP, dport=port, sport=port)
    UDP.payload_guess = [
        g for g in UDP.payload_guess if not (g[1] is L2TPv3UDP and port in g[0].values())
    ]
    _udp_ports.discard(port)


def reset_l2tpv3() -> None:
    """Back to the defaults (no cookie, default sublayer) and no UDP port bound."""
    global _default
    _default = SessionFormat()
    _sessions.clear()
    for port in list(_udp_ports):
        unbind_l2tpv3_udp(port)


@contextmanager
def session_format(cookie_len: int, l2spec: bool) -> Iterator[None]:
    """Dissect with this default format inside the block, then put back what was there.

    For one-off dissection (``l2tpv3 explain``) in a process that may have bound its own
    formats: every session is read with this format for the duration; the per-session
    formats and UDP bindings are restored afterwards.
    """
    global _default
    saved, saved_sessions = _default, dict(_sessions)
    _default = SessionFormat(cookie_len, l2spec)
    _sessions.clear()
    try:
        yield
    finally:
        _default = saved
        _sessions.clear()
        _sessions.update(saved_sessions)


class L2TPv3UDP(Packet):
    """RFC 3931 §4.1.2.1: the header word of every L2TPv3 message over UDP."""

    name = "L2TPv3 over UDP"
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        BitField("T", 0, 1),
        BitField("reserved1", 0, 11),
        BitField("version", L2TP_VERSION_3, 4),
        BitField("reserved2", 0, 16),
    ]

    def guess_payload_class(self, payload: bytes) -> Any:
        # The kernel checks the version before the T bit; either way it is not data.
        if self.version != L2TP_VERSION_3 or self.T:
            return Raw
        return L2TPv3


class L2TPv3(Packet):
    """RFC 3931 §4.1.1/§4.1.2.1: session ID and cookie (its length is configured)."""

    name = "L2TPv3 data"
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        IntField("session_id", 0),
        StrLenField("cookie", b"", length_from=lambda pkt: _format(pkt.session_id).cookie_len),
    ]

    def guess_payload_class(self, payload: bytes) -> Any:
        if self.session_id == 0:
            return Raw  # a control message (over IP), not data
        return L2SpecDefault if _format(self.session_id).l2spec else Ether

    def mysummary(self) -> str:
        return str(self.sprintf("L2TPv3 session %session_id%"))


class L2SpecDefault(Packet):
    """RFC 4719 §3: the Default L2-Specific Sublayer, ``x S x x x x x x`` + 24-bit seq."""

    name = "L2TPv3 default L2-specific sublayer"
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        BitField("reserved1", 0, 1),
        BitField("S", 0, 1),
        BitField("reserved2", 0, 6),
        BitField("seq", 0, 24),
    ]

    def guess_payload_class(self, payload: bytes) -> Any:
        return Ether


bind_layers(IP, L2TPv3, proto=IPPROTO_L2TP)
bind_layers(IPv6, L2TPv3, nh=IPPROTO_L2TP)
bind_layers(L2TPv3UDP, L2TPv3)
bind_layers(L2SpecDefault, Ether)
