"""offload.c under AddressSanitizer and UBSan: a C mutation fuzzer seeded with valid
super-frames and segments (tests/c/fuzz_offload.c). Any out-of-bounds access aborts it."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from l2tpv3.fast import cgen
from tests.unit.test_offload import segments_of, super_frame

ROOT = Path(__file__).resolve().parents[2]


def corpus() -> bytes:
    out = b""
    for v6 in (False, True):
        for size, gso in ((1, 1000), (3000, 1000), (20000, 1448), (1500, 536)):
            vh, frame, _ = super_frame(v6, os.urandom(size), gso, flags="PA")
            out += struct.pack("=I", len(frame)) + vh + frame
        for seg in segments_of(v6, os.urandom(5000), 1000):
            out += struct.pack("=I", len(seg)) + bytes(10) + seg
    return out


def test_fuzz_offload_with_sanitizers(tmp_path: Path) -> None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no C compiler")
        pytest.skip("no C compiler")
    exe = tmp_path / "fuzz"
    cgen.write(tmp_path)  # fp_shared.h, generated as setup.py does
    subprocess.run(
        [cc, "-std=c99", "-O1", "-g", "-Wall", "-Werror", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-I", str(tmp_path), "-I", str(ROOT / "l2tpv3/fast"),
         str(ROOT / "tests/c/fuzz_offload.c"), str(ROOT / "l2tpv3/fast/offload.c"), "-o", str(exe)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (tmp_path / "corpus").write_bytes(corpus())
    for seed in (1, 2, 3):
        proc = subprocess.run(
            [str(exe), str(tmp_path / "corpus"), "100000", str(seed)],
            capture_output=True, text=True, timeout=240,
            env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        fields = proc.stdout.split()
        stats = dict(zip(fields[::2], map(int, fields[1::2]), strict=True))
        # the mutations leave enough frames intact to exercise segmentation and merging
        assert stats["segmented"] > 1000 and stats["merged"] > 1000, stats
