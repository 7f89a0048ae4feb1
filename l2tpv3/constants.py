"""Protocol numbers, defaults and counter names, defined once for every implementation."""

from __future__ import annotations

from typing import Final

# RFC 3931 §4.1.2.1: L2TP over UDP. The T bit marks control messages; data messages
# carry T=0, L=0, S=0, Ver=3 followed by 16 reserved bits.
UDP_FLAG_T: Final = 0x8000
UDP_VERSION_MASK: Final = 0x000F
L2TP_VERSION_3: Final = 3
UDP_DATA_WORD: Final = 0x00030000

# RFC 3931 §4.1.1: L2TP over IP uses IP protocol 115; session ID 0 means the rest is
# a control message (§4.1.1.2).
IPPROTO_L2TP: Final = 115

# RFC 3931 §4.6 / RFC 4719 §3: the Default L2-Specific Sublayer is 4 bytes: bit S
# (0x40000000) says the low 24 bits hold a sequence number.
L2SPEC_DEFAULT_LEN: Final = 4
L2SPEC_S_BIT: Final = 0x40000000
SEQ_MASK: Final = 0xFFFFFF
SEQ_MODULUS: Final = 0x1000000

# Cookie lengths allowed by RFC 3931 §4.1 ("0, 32 or 64 bits").
COOKIE_LENGTHS: Final = (0, 4, 8)

ID_MIN: Final = 1
ID_MAX: Final = 0xFFFFFFFF

ETH_HLEN: Final = 14
ETH_DATA_LEN: Final = 1500
# The kernel (is_skb_forwardable) accepts frames up to MTU + Ethernet header + one
# VLAN tag on the receiving device.
RX_FRAME_SLACK: Final = ETH_HLEN + 4
IPV4_HLEN: Final = 20
IPV6_HLEN: Final = 40
UDP_HLEN: Final = 8

IFNAMSIZ: Final = 16
DEFAULT_IFNAME_TEMPLATE: Final = "l2tpeth%d"
DEFAULT_CONTROL_SOCKET: Final = "/run/l2tpv3.sock"
CONTROL_SOCKET_ENV: Final = "L2TPV3_SOCKET"

# Per-tunnel and per-session statistics, named and ordered as the kernel's
# L2TP_ATTR_STATS netlink attributes.
COUNTER_NAMES: Final = (
    "tx_packets",
    "tx_bytes",
    "tx_errors",
    "rx_packets",
    "rx_bytes",
    "rx_seq_discards",
    "rx_oos_packets",
    "rx_errors",
    "rx_cookie_discards",
    "rx_invalid",
)

# Why a received datagram was dropped before it reached a session. The kernel lumps
# these into rx_invalid or drops them silently; we keep a reason for each as well.
DROP_TOO_SHORT: Final = "too_short"
DROP_BAD_VERSION: Final = "bad_version"
DROP_CONTROL: Final = "control_message"
DROP_UNKNOWN_SESSION: Final = "unknown_session"
DROP_WRONG_SOURCE: Final = "wrong_source"
DROP_REASONS: Final = (
    DROP_TOO_SHORT,
    DROP_BAD_VERSION,
    DROP_CONTROL,
    DROP_UNKNOWN_SESSION,
    DROP_WRONG_SOURCE,
)
