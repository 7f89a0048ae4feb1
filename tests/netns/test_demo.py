"""The README's main job: the narrated demo pseudowire between two namespaces."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.netns import require_root, sh

pytestmark = pytest.mark.root


@pytest.mark.parametrize("encap", ["udp", "ip"])
def test_demo_runs_and_cleans_up(encap: str) -> None:
    require_root()
    proc = subprocess.run([sys.executable, "-m", "l2tpv3.tools.demo", "--encap", encap],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 packets transmitted, 4 received" in proc.stdout
    assert "rx_packets" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    spaces = sh("ip", "netns", "list").stdout
    assert "l2tpv3-demo" not in spaces
