"""ESP in C (l2tpv3/fast/fp_esp.c on OpenSSL's libcrypto, ``native.EspSA``) against
the reference (l2tpv3/proto/esp.py ``EspSA``) and against a small independent model of
RFC 4303 written here on the ``cryptography`` package.

- Every property runs against both implementations (the ``impl`` parameter): seal is
  byte for byte the model's (given the same explicit IV), the packets open, and every
  corrupted, truncated, badly padded or replayed packet is a counted drop with the
  expected reason.
- ``test_c_and_python_agree``: hypothesis drives both SAs through the same random
  stream (seals with random IVs, opens of good, flipped, truncated, replayed and
  reordered packets, ESN, windows) and compares every output, counter and drop.

The model is deliberately apart from both implementations (a few lines per algorithm,
straight from the RFCs) so a misreading they share cannot pass unnoticed.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass
from hashlib import sha1, sha256

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from hypothesis import example, given, settings
from hypothesis import strategies as st

from l2tpv3.proto.esp import EspCounters, EspKeyError
from l2tpv3.proto.esp import EspSA as PyEspSA

try:
    from l2tpv3.fast import native
except ImportError:  # pragma: no cover - the extension is required under CI
    native = None  # type: ignore[assignment]

REQUIRED = os.environ.get("CI") == "true" or os.environ.get("L2TPV3_REQUIRE_EXTENSIONS") == "1"


def _need_c() -> None:
    if native is None or not native.HAVE_ESP:
        if REQUIRED:
            pytest.fail("the fast path's ESP (libcrypto) is not built")
        pytest.skip("the fast path is not built with libcrypto")


@dataclass(frozen=True)
class Alg:
    """One ``ip xfrm`` algorithm: (alg, auth) as EspSA takes them, key lengths."""

    alg: str
    auth: str | None
    key_len: int
    auth_len: int = 0
    iv_len: int = 8
    icv_len: int = 16
    block: int = 4


ALGS = (
    Alg("rfc4106(gcm(aes))", None, 20),
    Alg("rfc4106(gcm(aes))", None, 36),
    Alg("rfc7539esp(chacha20,poly1305)", None, 36),
    Alg("cbc(aes)", "hmac(sha256)", 16, 32, 16, 16, 16),
    Alg("cbc(aes)", "hmac(sha256)", 32, 32, 16, 16, 16),
    Alg("cbc(aes)", "hmac(sha1)", 16, 20, 16, 12, 16),
)


def model_seal(
    a: Alg,
    key: bytes,
    auth_key: bytes,
    spi: int,
    seq: int,
    esn: bool,
    iv: bytes,
    payload: bytes,
    nh: int,
) -> bytes:
    """RFC 4303 §2 transport-mode ESP, padded as the kernel pads (§2.4: to the block
    size, pad bytes 1, 2, 3, ...)."""
    hdr = struct.pack("!II", spi, seq & 0xFFFFFFFF)
    padlen = -(len(payload) + 2) % a.block
    plain = payload + bytes(range(1, padlen + 1)) + bytes([padlen, nh])
    if a.auth is None:
        # RFC 4106 §5 / RFC 7634 §2.1: AAD SPI | (seq high) | seq low; nonce salt | IV.
        aad = struct.pack("!IQ", spi, seq) if esn else hdr
        nonce = key[-4:] + iv
        cls = AESGCM if a.alg.startswith("rfc4106") else ChaCha20Poly1305
        return hdr + iv + cls(key[:-4]).encrypt(nonce, plain, aad)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    body = hdr + iv + enc.update(plain) + enc.finalize()
    # RFC 4303 §3.3.2.1: with ESN the high half follows the authenticated data.
    mac_in = body + (struct.pack("!I", seq >> 32) if esn else b"")
    digest = sha256 if a.auth == "hmac(sha256)" else sha1
    return body + hmac.new(auth_key, mac_in, digest).digest()[: a.icv_len]


def _keys(a: Alg, seed: bytes) -> tuple[bytes, bytes]:
    k = (seed * 64)[: a.key_len]
    ak = (seed[::-1] * 64)[: a.auth_len]
    return k, ak


IMPLS = ("python", "c")


def _cls(impl: str) -> type[PyEspSA]:
    if impl == "python":
        return PyEspSA
    _need_c()
    return native.EspSA  # type: ignore[return-value]


def _sa(
    a: Alg,
    key: bytes,
    auth_key: bytes,
    spi: int,
    esn: bool = False,
    window: int = 0,
    impl: str = "c",
) -> PyEspSA:
    return _cls(impl)(spi, a.alg, key, auth_key or None, a.auth, esn=esn, replay_window=window)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("a", ALGS, ids=lambda a: f"{a.alg}-{a.auth}-{a.key_len}")
@settings(max_examples=40, deadline=None)
@given(
    payload=st.binary(max_size=300),
    seed=st.binary(min_size=1, max_size=40),
    spi=st.integers(1, 0xFFFFFFFF),
    seq=st.integers(0, 2**40),
    esn=st.booleans(),
    nh=st.sampled_from([17, 115, 4, 41]),
    iv_seed=st.binary(min_size=16, max_size=16),
)
# Found by hypothesis: ESN, a low half 10 below 2^32, a fresh receiver with window 64.
@example(payload=b"x", seed=b"s", spi=1, seq=2**32 - 11, esn=True, nh=115, iv_seed=bytes(16))
def test_seal_matches_model_and_opens(
    impl: str,
    a: Alg,
    payload: bytes,
    seed: bytes,
    spi: int,
    seq: int,
    esn: bool,
    nh: int,
    iv_seed: bytes,
) -> None:
    if not esn:
        seq &= 0xFFFFFFFE  # a 32-bit counter; seal takes seq + 1
    key, ak = _keys(a, seed)
    iv = iv_seed[: a.iv_len]
    tx = _sa(a, key, ak, spi, esn, impl=impl)
    tx.seq = seq
    pkt = tx.seal(payload, nh, iv)
    assert pkt == model_seal(a, key, ak, spi, seq + 1, esn, iv, payload, nh)
    assert tx.seq == seq + 1
    assert tx.counters == EspCounters(tx_packets=1, tx_bytes=len(payload))
    window = 64 if esn else 0
    rx = _sa(a, key, ak, spi, esn, window=window, impl=impl)
    # The high half a fresh receiver (T = 0) infers (RFC 4303 A2.2, as the kernel's
    # xfrm_replay_seqhi): 0, except that its window then spans the subspace below
    # (case B), so a low half within the window's reach of 2^32 is taken for Th - 1.
    low = (seq + 1) & 0xFFFFFFFF
    inferred = 0xFFFFFFFF if window and low >= 2**32 - window + 1 else 0
    if (seq + 1) >> 32 != inferred:
        # Not the sender's high half: the packet does not authenticate
        # (test_esn_crosses_the_32_bit_boundary follows a sender across).
        assert rx.open(pkt) == "auth_failed"
        return
    if not payload:
        # As the kernel (esp_remove_trailer): nothing left after the trailer is garbage.
        assert rx.open(pkt) == "bad_padding"
        return
    assert rx.open(pkt) == (payload, nh)
    assert rx.counters == EspCounters(rx_packets=1, rx_bytes=len(payload))
    assert sum(rx.drops.values()) == 0


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("a", ALGS, ids=lambda a: f"{a.alg}-{a.auth}-{a.key_len}")
@settings(max_examples=40, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=200),
    where=st.integers(0, 10_000),
    bit=st.integers(0, 7),
    cut=st.integers(0, 400),
)
def test_corrupted_and_truncated_are_counted_drops(
    impl: str, a: Alg, payload: bytes, where: int, bit: int, cut: int
) -> None:
    key, ak = _keys(a, b"k3y")
    iv = bytes(range(a.iv_len))
    pkt = model_seal(a, key, ak, 0x1001, 7, False, iv, payload, 115)
    rx = _sa(a, key, ak, 0x1001, impl=impl)
    # A flipped bit anywhere past the SPI: authentication fails (the SPI chose the SA).
    i = 4 + where % (len(pkt) - 4)
    bad = bytearray(pkt)
    bad[i] ^= 1 << bit
    assert rx.open(bytes(bad)) == "auth_failed"
    # Truncated: too short to hold header, IV, trailer and ICV, else a bad ICV.
    short = pkt[: cut % len(pkt)]
    expected = "too_short" if len(short) < 8 + a.iv_len + a.icv_len + 2 else "auth_failed"
    clen = len(short) - 8 - a.iv_len - a.icv_len
    if a.auth and clen >= 2 and clen % a.block:
        expected = "too_short"
    assert rx.open(short) == expected
    drops = rx.drops
    assert drops["auth_failed"] + drops["too_short"] == 2
    assert rx.counters.rx_packets == 0
    assert rx.open(pkt) == (payload, 115)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("a", ALGS[::2], ids=lambda a: f"{a.alg}-{a.auth}")
def test_bad_padding_is_a_counted_drop(impl: str, a: Alg) -> None:
    key, ak = _keys(a, b"pad")
    iv = bytes(a.iv_len)
    rx = _sa(a, key, ak, 9, impl=impl)
    good = model_seal(a, key, ak, 9, 1, False, iv, b"abc", 17)
    assert rx.open(good) == (b"abc", 17)
    # Pad bytes not 1, 2, 3, ... (RFC 4303 §2.4), and a Pad Length that eats the
    # payload (the kernel's esp_remove_trailer refuses it): both authenticated.
    for plain_payload, forged in ((b"abc", b"\x09"), (b"", b"")):
        hdr = struct.pack("!II", 9, 2)
        plen = -(len(plain_payload) + len(forged) + 2) % a.block
        pads = bytes(range(1, plen + 1))
        if forged:
            pads = bytes([0x55] * plen) if plen else b""
        trailer = pads + bytes([plen, 17])
        if not forged and not plain_payload:
            trailer = bytes(range(1, a.block - 1)) + bytes([a.block, 17])  # padlen too big
        plain = plain_payload + trailer
        if len(plain) % a.block:
            continue
        if a.auth is None:
            cls = AESGCM if a.alg.startswith("rfc4106") else ChaCha20Poly1305
            pkt = hdr + iv + cls(key[:-4]).encrypt(key[-4:] + iv, plain, hdr)
        else:
            enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
            body = hdr + iv + enc.update(plain) + enc.finalize()
            digest = sha256 if a.auth == "hmac(sha256)" else sha1
            pkt = body + hmac.new(ak, body, digest).digest()[: a.icv_len]
        if forged and not plen:
            continue
        assert rx.open(pkt) == "bad_padding", (plain_payload, forged)
    assert rx.drops["bad_padding"] >= 1


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("esn", [False, True])
def test_anti_replay_window(impl: str, esn: bool) -> None:
    """RFC 4303 §3.4.3 with a window of 32: a duplicate and a number left of the window
    are dropped as replayed, numbers inside it arrive once, in any order."""
    a = ALGS[0]
    key, ak = _keys(a, b"replay")
    rx = _sa(a, key, ak, 5, esn, window=32, impl=impl)

    def pkt(seq: int) -> bytes:
        return model_seal(a, key, ak, 5, seq, esn, struct.pack("!Q", seq), b"p", 17)

    assert isinstance(rx.open(pkt(100)), tuple)
    assert rx.open(pkt(100)) == "replayed"
    assert isinstance(rx.open(pkt(90)), tuple)
    assert rx.open(pkt(90)) == "replayed"
    # 100 - 68 = 32: left of the window. With ESN such a number belongs to the next
    # 2^32 subspace (RFC 4303 A2.2, as the kernel's xfrm_replay_check_esn), so it fails
    # authentication instead.
    assert rx.open(pkt(68)) == ("auth_failed" if esn else "replayed")
    assert isinstance(rx.open(pkt(69)), tuple)
    assert isinstance(rx.open(pkt(200)), tuple)
    assert rx.open(pkt(100)) == ("auth_failed" if esn else "replayed")
    assert isinstance(rx.open(pkt(199)), tuple)
    assert rx.open(pkt(199)) == "replayed"
    # A forged packet does not move the window (it is checked after the ICV).
    forged = bytearray(pkt(1000))
    forged[-1] ^= 1
    assert rx.open(bytes(forged)) == "auth_failed"
    assert isinstance(rx.open(pkt(180)), tuple)
    assert rx.drops["replayed"] == (3 if esn else 5)
    assert rx.drops["auth_failed"] == (3 if esn else 1)
    assert rx.top == 200


def _sealed(tx: PyEspSA, payload: bytes) -> bytes:
    out = tx.seal(payload, 17, bytes(tx.iv_len))
    assert out is not None
    return out


@pytest.mark.parametrize("impl", IMPLS)
def test_esn_crosses_the_32_bit_boundary(impl: str) -> None:
    """ESN: the high half is never sent, yet authenticated, and inferred (RFC 4303
    A2.2) across 2^32 in both directions."""
    a = ALGS[3]
    key, ak = _keys(a, b"esn")
    tx = _sa(a, key, ak, 77, esn=True, impl=impl)
    rx = _sa(a, key, ak, 77, esn=True, window=64, impl=impl)
    # A fresh receiver (top 0) places numbers near 2^32 in the subspace below 0, as the
    # kernel does; one packet half-way brings its window up first.
    tx.seq = 2**31 - 1
    assert rx.open(_sealed(tx, b"mid")) == (b"mid", 17)
    tx.seq = 2**32 - 3
    pkts = [_sealed(tx, bytes([i])) for i in range(6)]
    assert [struct.unpack("!I", p[4:8])[0] for p in pkts] == [2**32 - 2, 2**32 - 1, 0, 1, 2, 3]
    for i in (0, 2, 1, 4, 3, 5):
        assert rx.open(pkts[i]) == (bytes([i]), 17)
    assert rx.top == 2**32 + 3
    # Without ESN a 32-bit counter must not cycle (RFC 4303 §3.3.3).
    plain = _sa(a, key, ak, 78, impl=impl)
    plain.seq = 2**32 - 1
    assert plain.seal(b"x", 17, bytes(16)) is None
    assert plain.counters.tx_errors == 1


@pytest.mark.parametrize("impl", IMPLS)
def test_iv_counter_range_and_random_cbc_iv(impl: str) -> None:
    gcm = _sa(ALGS[0], *_keys(ALGS[0], b"iv"), 1, impl=impl)
    gcm.grant_ivs(42, 43)
    assert gcm.ivs_left == 2
    p = gcm.seal(b"a", 17)
    assert p is not None and p[8:16] == struct.pack("!Q", 42) and gcm.iv_counter == 42
    assert gcm.seal(b"b", 17) is not None and gcm.ivs_left == 0
    # No IV left in the granted range: nothing is sent (RFC 4106 §3.1: never reuse).
    assert gcm.seal(b"c", 17) is None
    assert gcm.counters == EspCounters(tx_packets=2, tx_bytes=2, tx_errors=1)
    # A forced IV (tests) does not use the range.
    assert gcm.seal(b"d", 17, bytes(8)) is not None
    cbc = _sa(ALGS[3], *_keys(ALGS[3], b"iv"), 1, impl=impl)
    ivs = set()
    for _ in range(50):
        q = cbc.seal(b"a", 17)
        assert q is not None
        ivs.add(q[8:24])
    assert len(ivs) == 50


@pytest.mark.parametrize(
    ("alg", "auth", "key", "auth_key"),
    [
        ("rfc4106(gcm(aes))", None, b"\x11" * 16, None),  # no salt
        ("rfc4106(gcm(aes))", "hmac(sha1)", b"\x11" * 20, b"\x22" * 20),
        ("rfc7539esp(chacha20,poly1305)", None, b"\x11" * 32, None),
        ("cbc(aes)", "hmac(sha256)", b"\x11" * 15, b"\x22" * 32),
        ("cbc(aes)", "hmac(sha256)", b"\x11" * 16, b"\x22" * 31),
        ("cbc(aes)", "hmac(sha1)", b"\x11" * 16, None),
        ("cbc(aes)", "hmac(md5)", b"\x11" * 16, b"\x22" * 16),
        ("des", None, b"\x11" * 8, None),
    ],
)
def test_bad_sa_parameters_are_the_same_one_line_errors(
    alg: str, auth: str | None, key: bytes, auth_key: bytes | None
) -> None:
    _need_c()
    with pytest.raises(EspKeyError) as py:
        PyEspSA(1, alg, key, auth_key, auth)
    with pytest.raises(EspKeyError) as c:
        native.EspSA(1, alg, key, auth_key, auth)
    assert str(c.value) == str(py.value)
    assert "\n" not in str(c.value)
    assert "1111" not in str(c.value) and "2222" not in str(c.value)
    assert "1111" not in repr(native.EspSA(1, "rfc4106(gcm(aes))", b"\x11" * 20))


_EVENT = st.one_of(
    st.tuples(st.just("seal"), st.binary(max_size=120), st.sampled_from([17, 115, 0, 255])),
    st.tuples(
        st.just("deliver"),
        st.integers(0, 1000),
        st.sampled_from(["as is", "flip", "truncate", "extend", "spi"]),
        st.integers(0, 10_000),
    ),
    st.tuples(st.just("jump"), st.integers(1, 2**33)),
    st.tuples(st.just("nonsense"), st.binary(max_size=80)),
)


@pytest.mark.parametrize("a", ALGS, ids=lambda a: f"{a.alg}-{a.auth}-{a.key_len}")
@settings(max_examples=40, deadline=None)
@given(
    seed=st.binary(min_size=1, max_size=40),
    esn=st.booleans(),
    window=st.sampled_from([0, 1, 32, 64, 100, 4096]),
    events=st.lists(_EVENT, max_size=40),
    ivs=st.randoms(use_true_random=False),
)
def test_c_and_python_agree(
    a: Alg, seed: bytes, esn: bool, window: int, events: list[tuple[object, ...]], ivs: object
) -> None:
    """The same stream through both implementations: every packet sealed, every
    result of open (payload and Next Header, or the drop reason), every counter, drop
    and window position equal after every step."""
    _need_c()
    import random

    assert isinstance(ivs, random.Random)
    key, ak = _keys(a, seed)
    txs = [_sa(a, key, ak, 0xABC, esn, impl=i) for i in IMPLS]
    rxs = [_sa(a, key, ak, 0xABC, esn, window, impl=i) for i in IMPLS]
    sent: list[bytes] = []
    for ev in events:
        if ev[0] == "seal":
            payload, nh = ev[1], ev[2]
            assert isinstance(payload, bytes) and isinstance(nh, int)
            # AEAD: the IV counter of each SA; CBC: one random IV given to both.
            iv = None if a.auth is None else ivs.randbytes(16)
            out = [tx.seal(payload, nh, iv) for tx in txs]
            assert out[0] == out[1]
            if out[0] is not None:
                sent.append(out[0])
        elif ev[0] == "jump":
            step = ev[1]
            assert isinstance(step, int)
            for tx in txs:
                tx.seq = min(tx.seq + step, 2**64 - 1 if esn else 2**32 - 1)
        else:
            if ev[0] == "nonsense":
                pkt = ev[1]
            elif not sent:
                continue
            else:
                index, how, where = ev[1], ev[2], ev[3]
                assert isinstance(index, int) and isinstance(where, int)
                pkt = sent[index % len(sent)]
                if how == "flip":
                    b = bytearray(pkt)
                    b[where % len(b)] ^= 1 << (where % 8)
                    pkt = bytes(b)
                elif how == "truncate":
                    pkt = pkt[: where % len(pkt)]
                elif how == "extend":
                    pkt = pkt + bytes([where & 0xFF]) * (1 + where % 17)
                elif how == "spi":
                    pkt = b"\0\0\0\1" + pkt[4:]  # the SPI is not the SA's business
            assert isinstance(pkt, bytes)
            got = [rx.open(pkt) for rx in rxs]
            assert got[0] == got[1], pkt.hex()
        for pair in (txs, rxs):
            assert pair[0].counters == pair[1].counters
            assert pair[0].drops == pair[1].drops
            assert (pair[0].seq, pair[0].top, pair[0].iv_counter) == (
                pair[1].seq,
                pair[1].top,
                pair[1].iv_counter,
            )
