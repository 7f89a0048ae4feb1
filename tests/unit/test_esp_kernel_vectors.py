"""Known answers captured from the Linux kernel's ESP (tests/data/esp_kernel_vectors.json).

Each vector is a packet the kernel VM sent under ``ip xfrm state`` with fixed keys, for
every algorithm (GCM-128, GCM-256, ChaCha20-Poly1305, CBC with HMAC-SHA-256 and
HMAC-SHA-1), over UDP and IP, IPv4 and IPv6, small and full-size; the file says how it
was captured (tests/interop/test_interop_esp.py with L2TPV3_WRITE_ESP_VECTORS). Its
``payload`` was opened at capture time with ``cryptography`` alone. Here: the
reference ``EspSA`` and the fast path's ``native.EspSA`` both open each packet to
exactly that L2TPv3 datagram, and sealing it again with the kernel's sequence number
and IV gives the kernel's bytes (the same padding, trailer and ICV).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from l2tpv3.proto.esp import EspSA

try:
    from l2tpv3.fast import native
except ImportError:  # pragma: no cover - the extension is required under CI
    native = None  # type: ignore[assignment]

DATA = json.loads((Path(__file__).parent.parent / "data" / "esp_kernel_vectors.json").read_text())
VECTORS: list[dict[str, Any]] = DATA["vectors"]
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("L2TPV3_REQUIRE_EXTENSIONS") == "1"
# The interop lab's session IDs: the kernel sends to our session 20 (interop/cases.py).
OUR_SID = 20


def _classes() -> list[Any]:
    out: list[Any] = [EspSA]
    if native is not None and native.HAVE_ESP:
        out.append(native.EspSA)
    elif REQUIRED:
        pytest.fail("the fast path's ESP (libcrypto) is not built")
    return out


def _sa(cls: Any, v: dict[str, Any]) -> Any:
    sa = v["sa"]
    key = bytes.fromhex(sa["key"][2:])
    if "aead" in sa:
        return cls(sa["spi"], sa["aead"], key)
    return cls(sa["spi"], sa["enc"], key, bytes.fromhex(sa["auth_key"][2:]), sa["auth"])


def test_every_algorithm_is_covered() -> None:
    assert DATA["provenance"].startswith("ESP packets the Linux kernel sent")
    algs = {v["sa"].get("aead") or v["sa"]["auth"] for v in VECTORS}
    assert algs == {"rfc4106(gcm(aes))", "rfc7539esp(chacha20,poly1305)", "hmac(sha256)",
                    "hmac(sha1)"}  # fmt: skip
    assert {len(v["sa"]["key"]) for v in VECTORS if v["sa"].get("aead") == "rfc4106(gcm(aes))"} == {
        2 + 40, 2 + 72}  # fmt: skip
    assert any(len(v["esp"]) // 2 > 1400 for v in VECTORS)


@pytest.mark.parametrize("v", VECTORS, ids=[f"{v['case']}-seq{v['seq']}" for v in VECTORS])
def test_kernel_packet_opens_and_seals_to_the_same_bytes(v: dict[str, Any]) -> None:
    packet = bytes.fromhex(v["esp"])
    payload = bytes.fromhex(v["payload"])
    nh = v["next_header"]
    # Independent of the crypto: the plaintext is the L2TPv3 datagram to our session
    # (UDP: the UDP header, then flags word 0x0003 0000, then the session ID; IP: the
    # session ID first), the Next Header says which.
    if nh == 17:
        assert struct.unpack_from("!HH", payload, 8) == (0x0003, 0)
        assert struct.unpack_from("!I", payload, 12)[0] == OUR_SID
        assert struct.unpack_from("!H", payload, 4)[0] == len(payload)
    else:
        assert nh == 115
        assert struct.unpack_from("!I", payload, 0)[0] == OUR_SID
    assert struct.unpack_from("!II", packet) == (v["sa"]["spi"], v["seq"])
    for cls in _classes():
        rx = _sa(cls, v)
        assert rx.open(packet) == (payload, nh), cls
        tx = _sa(cls, v)
        tx.seq = v["seq"] - 1
        assert tx.seal(payload, nh, iv=bytes.fromhex(v["iv"])) == packet, cls


def test_kernel_gcm_ivs_are_seqiv() -> None:
    """The kernel's AEAD IV is seqiv's: sequence number XOR a per-state random salt, so
    two packets of one state have IV ^ seq equal (recorded, not something we copy: our
    IVs come from the persisted counter, docs/security.md)."""
    by_case: dict[str, set[int]] = {}
    for v in VECTORS:
        if "aead" in v["sa"]:
            by_case.setdefault(v["case"], set()).add(int(v["iv"], 16) ^ v["seq"])
    assert by_case and all(len(x) == 1 for x in by_case.values()), by_case
