"""The engines' receive threads apply IP-encap ownership as the sans-I/O tunnels do
(test_tunnel.py): a datagram for a session or from a peer of another tunnel on the same
listener is that tunnel's copy; anything else is counted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.support.netns import Netns, require_root

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]


def test_receive_threads_consult_the_ownership() -> None:
    require_root()
    pytest.importorskip("l2tpv3.fast._fastpath")
    ns = Netns("own")
    try:
        proc = ns.run("env", f"PYTHONPATH={ROOT}", sys.executable, "-m",
                      "tests.differential.ip_ownership_probe", timeout=30)  # fmt: skip
    finally:
        ns.delete()
    drops = json.loads(proc.stdout.strip().splitlines()[-1])
    zero = {"too_short": 0, "bad_version": 0, "control_message": 0}
    # Tunnel 1 sees: 8 from peer 2 (other peer: not counted), 8 from its peer (other
    # copy: not counted), 9 from its peer (unknown), the stranger (wrong source).
    assert drops["1"] == {**zero, "unknown_session": 1, "wrong_source": 1}
    # Tunnel 2 sees the three from peer 1 as another tunnel's, and the stranger.
    assert drops["2"] == {**zero, "unknown_session": 0, "wrong_source": 1}
