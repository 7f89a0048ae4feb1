"""tshark for the tests: decoding a pcap with the preferences l2tpv3.cli.wireshark gives,
and reading its fields (tests/unit/test_tshark.py, tests/netns/test_tshark.py).

tshark missing: skipped locally, a failure under CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

FIELDS = [
    "ip.src", "ip.dst", "ipv6.src", "l2tp.sid", "l2tp.cookie", "l2tp.l2_spec_s",
    "l2tp.l2_spec_sequence", "eth.src", "eth.dst", "eth.type", "icmp.type",
]  # fmt: skip


def require_tshark() -> str:
    exe = shutil.which("tshark")
    if exe is None:
        msg = "tshark is not installed (apt-get install tshark)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def decode(pcap: Path, options: list[str]) -> list[dict[str, list[str]]]:
    """One dict per packet: field -> every occurrence (outer first, then inner)."""
    cmd = [require_tshark(), "-n", "-r", str(pcap), *options, "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=|", "-E", "separator=/t"]  # fmt: skip
    for f in FIELDS:
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = []
    for line in proc.stdout.splitlines():
        values = line.split("\t")
        assert len(values) == len(FIELDS), line
        rows.append({f: (v.split("|") if v else []) for f, v in zip(FIELDS, values, strict=True)})
    return rows


def nums(values: list[str]) -> list[int]:
    # tshark prints some integers in hex (l2tp.sid as 0x...), others in decimal.
    return [int(v, 0) for v in values]


def cookies(row: dict[str, list[str]]) -> list[str]:
    # Bytes fields: plain hex in tshark 4.0, colon-separated in some other versions.
    return [v.replace(":", "").lower() for v in row["l2tp.cookie"]]


def s_bit(value: str) -> bool:
    # tshark prints booleans as 1/0 (4.x) or True/False (older).
    return value in ("1", "True")
