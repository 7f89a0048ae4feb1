"""The engines' receive threads apply IP-encap ownership as the sans-I/O tunnels do
(test_tunnel.py): of two tunnels on one listener, exactly one counts each datagram, by
the rule of proto/api.py IpOwnershipAPI."""

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
    # Each of the six datagrams is counted by exactly one of the two receive threads.
    assert drops["1"] == {**zero, "unknown_session": 1, "wrong_source": 2, "sessions": 0}
    assert drops["2"] == {**zero, "unknown_session": 0, "wrong_source": 2, "sessions": 1}
