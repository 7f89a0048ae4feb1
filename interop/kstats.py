"""The kernel peer's per-session state and counters, read in the guest.

/sys/kernel/debug/l2tp/tunnels (l2tp_debugfs) prints, per session, a config line
``config 0/0/<R|->/<S|->/-/<LAC|LNS> ...`` (recv_seq, send_seq, LNS mode) and
``<nr>/<ns> tx <pkts>/<bytes>/<errs> rx <pkts>/<bytes>/<errs>``. It leaves out the
discard counters, so all ten counters come from ``l2tpstats`` (interop/tools), which
asks for L2TP_ATTR_STATS over generic netlink as iproute2 does without printing them.
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


def parse_l2tpstats(text: str) -> dict[int, dict[str, int]]:
    """``session 3 tunnel 1 peer_session 4 tx_packets 12 ...`` lines, by session ID."""
    sessions: dict[int, dict[str, int]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 6 or words[0] != "session" or len(words) % 2:
            continue
        values = {words[i]: int(words[i + 1]) for i in range(2, len(words), 2)}
        sessions[int(words[1])] = values
    return sessions


def kernel_sessions(peer: Shell) -> dict[int, dict[str, int]]:
    """Per session: debugfs's state (nr, ns, recv_seq, send_seq, lns_mode) and the
    kernel's ten counters from netlink."""
    out = peer.sh("cat /sys/kernel/debug/l2tp/tunnels; echo @@; l2tpstats")
    debugfs, stats = out.split("@@\n", 1)
    sessions = parse_debugfs(debugfs)
    for sid, counters in parse_l2tpstats(stats).items():
        sessions.setdefault(sid, {}).update(counters)
    return sessions
