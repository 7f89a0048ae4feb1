"""The kernel peer's per-session state and counters, read from debugfs in the guest.

/sys/kernel/debug/l2tp/tunnels (l2tp_debugfs) prints, per session, a config line
``config 0/0/<R|->/<S|->/-/<LAC|LNS> ...`` (recv_seq, send_seq, LNS mode) and
``<nr>/<ns> tx <pkts>/<bytes>/<errs> rx <pkts>/<bytes>/<errs>``. The counters are the
same ones ``ip l2tp`` reads over netlink (l2tp_stats); debugfs does not print the
discard counters, so those are inferred from what did not arrive.
"""

from __future__ import annotations

import re
from typing import Protocol

_SESSION = re.compile(r"^\s*SESSION (\d+), peer (\d+),")
_CONFIG = re.compile(r"^\s*config \d+/\d+/([R-])/([S-])/[^/]*/(LAC|LNS)")
_COUNTS = re.compile(r"^\s*(\d+)/(\d+) tx (\d+)/(\d+)/(\d+) rx (\d+)/(\d+)/(\d+)")


class Shell(Protocol):
    def sh(self, script: str, timeout: float = 60) -> str: ...


def parse_debugfs(text: str) -> dict[int, dict[str, int]]:
    sessions: dict[int, dict[str, int]] = {}
    current: dict[str, int] | None = None
    for line in text.splitlines():
        if m := _SESSION.match(line):
            current = sessions.setdefault(int(m.group(1)), {"peer_session_id": int(m.group(2))})
        elif current is None:
            continue
        elif m := _CONFIG.match(line):
            current["recv_seq"] = int(m.group(1) == "R")
            current["send_seq"] = int(m.group(2) == "S")
            current["lns_mode"] = int(m.group(3) == "LNS")
        elif m := _COUNTS.match(line):
            names = ("nr", "ns", "tx_packets", "tx_bytes", "tx_errors",
                     "rx_packets", "rx_bytes", "rx_errors")  # fmt: skip
            current.update(zip(names, (int(g) for g in m.groups()), strict=True))
    return sessions


def kernel_sessions(peer: Shell) -> dict[int, dict[str, int]]:
    return parse_debugfs(peer.sh("cat /sys/kernel/debug/l2tp/tunnels"))
