"""The two implementations' trunk ports side by side (tests/differential/trunk_probe.py):
the C engine's send thread reading the trunk (fp_engine.c trunk_read) and the Python
TrunkPort, and both receive paths writing to it, on the same frames: tagged, QinQ,
untagged, unmapped, pre-standard TPID, with and without pop. Same datagrams, same frames
on the trunk (tags read back from PACKET_AUXDATA), same counters and drops."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from l2tpv3.io.datapath import ImplementationUnavailable, choose
from tests.support.netns import Netns, require_root

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
MACS = "020000000002020000000001"
PAYLOAD = "0800" + bytes(range(46)).hex()
HDR = {5: "000300000000000500000000", 7: "000300000000000700000000"}


def _probe(impl: str) -> dict[str, Any]:
    ns = Netns(f"trk{impl[0]}")
    try:
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        ns.ip("link", "set", "lo", "up")
        with tempfile.TemporaryDirectory() as state:
            proc = ns.run("env", f"PYTHONPATH={ROOT}", sys.executable, "-m",
                          "tests.differential.trunk_probe", impl, state, timeout=60)  # fmt: skip
    finally:
        ns.delete()
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_trunk_ports_agree() -> None:
    require_root()
    try:
        choose("cython")
    except ImplementationUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    py, c = _probe("python"), _probe("cython")
    assert py == c
    # Trunk -> wire: 5 as it came (also PCP 1), 7 without its outer tag (the QinQ frame
    # keeps its inner C-tag); QinQ with outer 5 goes to 5 whole.
    assert py["datagrams"] == [
        HDR[5] + MACS + "81000005" + PAYLOAD,
        HDR[7] + MACS + PAYLOAD,
        HDR[7] + MACS + "81000064" + PAYLOAD,
        HDR[5] + MACS + "88a80005" + "81000064" + PAYLOAD,
        HDR[5] + MACS + "81002005" + PAYLOAD,
    ]
    # untagged and the 0x9100 frame; VLAN 9
    assert (py["tunnel_drops"]["vlan_untagged"], py["tunnel_drops"]["vlan_unmapped"]) == (2, 1)
    # Wire -> trunk: 5 only with its own tag (outer 802.1ad 5 too), 7 gets tag 7 pushed
    # (also in front of a tag it already had).
    assert py["frames"] == [
        MACS + "81000005" + PAYLOAD,
        MACS + "88a80005" + "81000003" + PAYLOAD,
        MACS + "81000007" + PAYLOAD,
        MACS + "81000007" + "81000007" + PAYLOAD,
    ]
    assert py["sessions"]["5"]["drops"]["vlan_mismatch"] == 2
    assert py["sessions"]["7"]["drops"]["vlan_mismatch"] == 0
