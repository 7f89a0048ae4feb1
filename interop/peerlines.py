"""The `ip l2tp` lines that configure the kernel VM as the far end of our daemon.

The source of truth is ``l2tpv3 peer-config --for linux``, run against the daemon under
test, so the tests exercise what users run. Until that subcommand exists in this tree,
:func:`peer_lines` falls back to a mirror computed here from the daemon's ``show`` output
and the session options JSON does not carry (l2spec_type, configured seq), using the same
rules (docs/peer-config.md): IDs, cookies, ports and addresses swapped, l2spec the same,
seq none/send/both the same and recv -> both.
"""

from __future__ import annotations

import json
import subprocess
from typing import Protocol


class DaemonClient(Protocol):
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]: ...


def _cli_peer_config(daemon: DaemonClient, tunnel_id: int, session_id: int) -> list[str] | None:
    proc = daemon.cli("peer-config", "--for", "linux", "tunnel_id", str(tunnel_id),
                      "session_id", str(session_id), check=False)  # fmt: skip
    if proc.returncode == 0:
        return [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if "peer-config" in proc.stderr and ("unknown" in proc.stderr.lower()
                                         or "invalid" in proc.stderr.lower()):  # fmt: skip
        return None
    raise RuntimeError(f"l2tpv3 peer-config failed: {proc.stderr.strip()}")


def mirror_lines(daemon: DaemonClient, tunnel_id: int, session_id: int, l2spec: str,
                 seq: str) -> list[str]:  # fmt: skip
    tunnels = json.loads(daemon.cli("-j", "show", "tunnel", "tunnel_id", str(tunnel_id)).stdout)
    sessions = json.loads(daemon.cli("-j", "show", "session", "tunnel_id", str(tunnel_id),
                                     "session_id", str(session_id)).stdout)  # fmt: skip
    t, s = tunnels[0], sessions[0]
    words = ["ip", "l2tp", "add", "tunnel", "tunnel_id", str(t["peer_tunnel"]),
             "peer_tunnel_id", str(t["tunnel_id"]), "encap", t["encap"].lower(),
             "local", t["peer"], "remote", t["local"]]  # fmt: skip
    if t["encap"] == "UDP":
        words += ["udp_sport", str(t["peer_port"]), "udp_dport", str(t["local_port"])]
        if t.get("checksum"):
            words += ["udp_csum", "on"]
        if t.get("checksum_tx") is False:
            words += ["udp6_csum_rx", "off"]
        if t.get("checksum_rx") is False:
            words += ["udp6_csum_tx", "off"]
    sess = ["ip", "l2tp", "add", "session", "tunnel_id", str(t["peer_tunnel"])]
    sess += ["session_id", str(s["peer_session_id"]), "peer_session_id", str(s["session_id"])]
    if "peer_cookie" in s:
        sess += ["cookie", s["peer_cookie"]]
    if "cookie" in s:
        sess += ["peer_cookie", s["cookie"]]
    sess += ["l2spec_type", l2spec]
    if seq != "none":
        sess += ["seq", "both" if seq == "recv" else seq]
    return [" ".join(words), " ".join(sess)]


def peer_lines(daemon: DaemonClient, tunnel_id: int, session_id: int, l2spec: str = "default",
               seq: str = "none") -> list[str]:  # fmt: skip
    """Lines for the far end of our session; ``l2spec``/``seq`` only feed the fallback."""
    lines = _cli_peer_config(daemon, tunnel_id, session_id)
    if lines is None:
        lines = mirror_lines(daemon, tunnel_id, session_id, l2spec, seq)
    return lines


def uses_cli(daemon: DaemonClient) -> bool:
    """Whether peer_lines is reading ``l2tpv3 peer-config`` (not the fallback)."""
    proc = daemon.cli("peer-config", "--help", check=False)
    return proc.returncode == 0
