"""The kernel's per-tunnel and per-session data counters."""

from __future__ import annotations

from dataclasses import dataclass, fields


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
