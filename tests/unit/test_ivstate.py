"""The durable IV reservation (l2tpv3/io/ivstate.py): no IV repeats under one key
across restarts, including a 'crash' after any number of packets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from l2tpv3.errors import StateError
from l2tpv3.io.ivstate import IvStore
from l2tpv3.proto.esp import AEAD_GCM, EspSA, genkey, key_fingerprint


def test_no_iv_repeats_across_100_restarts(tmp_path: Path) -> None:
    key = genkey(AEAD_GCM)
    fp = key_fingerprint(AEAD_GCM, key)
    seen: set[bytes] = set()
    for restart in range(100):
        store = IvStore(tmp_path / "state", block=8)  # a new daemon
        sa = EspSA(0x100, AEAD_GCM, key)
        sa.grant_ivs(*store.grant(fp))
        # a varying number of packets, sometimes past a block, then a "crash"
        for _ in range(restart % 13):
            left = sa.ivs_left
            if left is not None and left == 0:
                sa.grant_ivs(*store.grant(fp))
            packet = sa.seal(b"frame", 115)
            assert packet is not None
            iv = packet[8:16]
            assert iv not in seen, restart
            seen.add(iv)
    assert len(seen) == sum(r % 13 for r in range(100))


def test_files_are_private_and_hide_the_key(tmp_path: Path) -> None:
    key = genkey(AEAD_GCM)
    store = IvStore(tmp_path / "d")
    store.grant(key_fingerprint(AEAD_GCM, key))
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700
    (f,) = (tmp_path / "d").iterdir()
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert key.hex() not in f.name and key.hex() not in f.read_text()


def test_corrupt_state_is_refused(tmp_path: Path) -> None:
    store = IvStore(tmp_path)
    (tmp_path / "esp-iv-abc").write_text("garbage")
    with pytest.raises(StateError, match="corrupt"):
        store.grant("abc")


def test_blocks_are_consecutive_and_start_after_the_high_water(tmp_path: Path) -> None:
    a = IvStore(tmp_path, block=10)
    assert a.grant("k") == (1, 10)
    assert a.grant("k") == (11, 20)
    b = IvStore(tmp_path, block=10)  # restart: everything up to 20 may have been used
    assert b.grant("k") == (21, 30)
