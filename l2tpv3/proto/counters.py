"""The kernel's per-tunnel and per-session data counters, and the drop reasons we keep.

Defined once here for both implementations: the C engine's counter and drop indexes
are generated from these names at build time (l2tpv3/fast/cgen.py), so this module
must import nothing but the standard library (the generator loads it from its file).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final


@dataclass(slots=True)
class Counters:
    """Mutable counters named after the kernel's L2TP_ATTR_STATS attributes.

    Byte counts follow the kernel: they include the L2TP header (session ID, cookie,
    sublayer and, over UDP, the flags word) but not the IP or UDP headers.
    """

    tx_packets: int = 0
    tx_bytes: int = 0
    tx_errors: int = 0
    rx_packets: int = 0
    rx_bytes: int = 0
    rx_seq_discards: int = 0
    rx_oos_packets: int = 0
    rx_errors: int = 0
    rx_cookie_discards: int = 0
    rx_invalid: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Per-tunnel and per-session statistics, named and ordered as the kernel's
# L2TP_ATTR_STATS netlink attributes: the fields of Counters.
COUNTER_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in fields(Counters))

# Counted on the tunnel and on its sessions alike (l2tp_xmit_skb, l2tp_recv_dequeue_skb);
# the other receive counters belong to the session alone, rx_invalid to the tunnel.
SHARED_COUNTERS: Final = ("tx_packets", "tx_bytes", "tx_errors", "rx_packets", "rx_bytes")

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

# Per-session reasons a decapsulated frame did not reach the TAP device; the kernel
# counts these on the l2tpethN device (rx_errors / rx_dropped), not the session.
FRAME_TOO_SHORT: Final = "frame_too_short"
FRAME_TOO_LONG: Final = "frame_too_long"
TAP_WRITE_FAILED: Final = "tap_write_failed"
# A frame received for a trunk session without `pop` whose outer tag is not the
# session's VID (proto/vlan.py): never written to the trunk.
VLAN_MISMATCH: Final = "vlan_mismatch"
SESSION_DROP_REASONS: Final = (FRAME_TOO_SHORT, FRAME_TOO_LONG, TAP_WRITE_FAILED, VLAN_MISMATCH)

# Frames read from a trunk TAP (proto/vlan.py) that no session takes, counted per trunk.
VLAN_UNTAGGED: Final = "vlan_untagged"
VLAN_UNMAPPED: Final = "vlan_unmapped"
TRUNK_DROP_REASONS: Final = (VLAN_UNTAGGED, VLAN_UNMAPPED)

# ESP (RFC 4303, l2tpv3/proto/esp.py), per SA, as `ip -s xfrm state` counts: packets,
# and bytes of payload (the transport header onwards, before padding), each way.
ESP_COUNTER_NAMES: Final = ("tx_packets", "tx_bytes", "tx_errors", "rx_packets", "rx_bytes")

# Why a received ESP packet (or a plaintext one where ESP is required) was dropped.
ESP_TOO_SHORT: Final = "too_short"
ESP_AUTH_FAILED: Final = "auth_failed"  # ICV (or AEAD tag) did not verify: wrong key, bit flip
ESP_REPLAYED: Final = "replayed"  # duplicate, or left of the anti-replay window (§3.4.3)
ESP_BAD_PADDING: Final = "bad_padding"  # Pad Length leaves no payload, or pad bytes not 1, 2, ...
ESP_BAD_NEXT_HEADER: Final = "bad_next_header"  # not what the tunnel carries (17 or 115)
ESP_UNKNOWN_SPI: Final = "unknown_spi"  # no inbound SA of the tunnel has this SPI
ESP_PLAINTEXT: Final = "plaintext"  # L2TPv3 without ESP on a tunnel with an inbound SA
ESP_DROP_REASONS: Final = (
    ESP_TOO_SHORT,
    ESP_AUTH_FAILED,
    ESP_REPLAYED,
    ESP_BAD_PADDING,
    ESP_BAD_NEXT_HEADER,
    ESP_UNKNOWN_SPI,
    ESP_PLAINTEXT,
)

# Per-session counts of what the daemon's own per-packet features did to frames that
# still went on (neither kernel statistics nor drops); `show -s` prints the non-zero ones.
MSS_CLAMPED: Final = "mss_clamped"
SESSION_FEATURE_COUNTERS: Final = (MSS_CLAMPED,)

# `l2tpv3 capture`: the reason written in a captured packet's comment when the receiver
# dropped it (code = index + 1 in the capture record, 0 for none). The tunnel's drop
# reasons, then the session's: the counters the kernel names (a cookie that does not
# match, a sequence number too old; rx_errors for the rest, e.g. shorter than the
# session's header) and the frame checks. A TAP write that fails later is not marked.
CAPTURE_DROP_REASONS: Final = (
    *DROP_REASONS,
    "rx_cookie_discards",
    "rx_seq_discards",
    FRAME_TOO_SHORT,
    FRAME_TOO_LONG,
    "rx_errors",
)
# What a running capture counts (reported to its client and logged when it ends):
# records kept, and records lost because the reader was slower than the tunnel.
CAPTURE_RECORDS: Final = "capture_records"
CAPTURE_LOST: Final = "capture_lost"
CAPTURE_COUNTERS: Final = (CAPTURE_RECORDS, CAPTURE_LOST)
