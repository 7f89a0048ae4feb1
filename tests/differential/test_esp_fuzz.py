"""fp_esp.c under AddressSanitizer and UBSan: a C mutation fuzzer (tests/c/fuzz_esp.c)
seals random datagrams with random SAs (every algorithm, ESN, windows, encap udp and
ip) and opens truncated, extended and bit-flipped copies, each in a heap block of
exactly its size. Any access outside a packet aborts it; every drop must be counted
exactly once with a valid reason."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from l2tpv3.fast import cgen

ROOT = Path(__file__).resolve().parents[2]


def test_fuzz_esp_with_sanitizers(tmp_path: Path) -> None:
    cc = shutil.which("gcc") or shutil.which("cc")
    ci = os.environ.get("CI") == "true"
    if cc is None:
        if ci:
            pytest.fail("no C compiler")
        pytest.skip("no C compiler")
    if not Path("/usr/include/openssl/evp.h").exists():
        if ci:
            pytest.fail("no OpenSSL headers (libssl-dev)")
        pytest.skip("no OpenSSL headers (libssl-dev)")
    exe = tmp_path / "fuzz"
    cgen.write(tmp_path)  # fp_shared.h, generated as setup.py does
    subprocess.run(
        [cc, "-std=gnu99", "-O1", "-g", "-Wall", "-Werror", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-DFP_HAVE_ESP=1", "-I", str(tmp_path),
         "-I", str(ROOT / "l2tpv3/fast"), str(ROOT / "tests/c/fuzz_esp.c"),
         str(ROOT / "l2tpv3/fast/fp_esp.c"), "-lcrypto", "-o", str(exe)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    for seed in (1, 2):
        proc = subprocess.run(
            [str(exe), "3000", str(seed)],
            capture_output=True, text=True, timeout=240,
            env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        fields = proc.stdout.split()
        stats = dict(zip(fields[::2], map(int, fields[1::2]), strict=True))
        # enough packets survive the mutations to exercise the whole receive path
        assert stats["opened"] > 5000 and stats["dropped"] > 50000, stats
