"""What the far end is configured with: ``l2tpv3 peer-config``, run against our daemon.

The tests configure the kernel and QEMU peers only from what this subcommand prints, so
they exercise what users run (docs/peer-config.md describes the mirroring).
"""

from __future__ import annotations

import subprocess
from typing import Protocol


class DaemonClient(Protocol):
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]: ...


def peer_config(daemon: DaemonClient, target: str, tunnel_id: int, session_id: int,
                *extra: str) -> str:  # fmt: skip
    proc = daemon.cli("peer-config", "--for", target, *extra, "tunnel_id", str(tunnel_id),
                      "session_id", str(session_id), check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"l2tpv3 peer-config --for {target}: {proc.stderr.strip()}")
    return proc.stdout


def peer_lines(daemon: DaemonClient, tunnel_id: int, session_id: int) -> list[str]:
    """The ``ip l2tp`` lines (and ``#`` comments) for the far end of our session."""
    text = peer_config(daemon, "linux", tunnel_id, session_id)
    return [ln for ln in text.splitlines() if ln.strip()]


def uses_cli(daemon: DaemonClient) -> bool:
    """Whether the installed l2tpv3 client has the peer-config subcommand."""
    return daemon.cli("peer-config", "--help", check=False).returncode == 0
