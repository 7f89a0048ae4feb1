"""ESP (RFC 4303) codec: known answers, round trips, padding, the window, every drop.

Known answers, each with its source:
- draft-mcgrew-gcm-test-01 §4 (McGrew/Viega, "GCM test vectors for IPsec ESP"), the
  packets of pages 6 and 8: full ESP packets (SPI, sequence number, IV, ciphertext, tag)
  with rfc4106 keys (the 4-byte salt at the end of the key), page 6 with a 64-bit
  (extended) sequence number in the AAD;
- RFC 7539 §2.8.2 (the AEAD_CHACHA20_POLY1305 example): its 12-byte AAD is exactly an
  ESN ESP AAD (SPI 50515253, sequence c0c1c2c3 c4c5c6c7) and its nonce salt | IV as
  RFC 7634 §2 builds it (salt 07000000, IV 4041424344454647);
- RFC 4868 §2.7.1 test case 1 (HMAC-SHA-256, 32-byte key) and RFC 2202 §3 test cases 1
  and 2 (HMAC-SHA-1), for the ICV primitive the CBC SAs use.
"""

from __future__ import annotations

import hmac
import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from l2tpv3.proto import counters
from l2tpv3.proto.esp import (
    AEAD_CHACHA,
    AEAD_GCM,
    AUTH_SHA1,
    AUTH_SHA256,
    ENC_CBC,
    EspInbound,
    EspKeyError,
    EspSA,
    genkey,
    key_fingerprint,
)

# -- draft-mcgrew-gcm-test-01 -------------------------------------------------------------

# Page 6: AES-128, SPI 0x4321, ESN 0x87654321_00000000, IV 4956ed7e3b244cfe.
P6_KEY = bytes.fromhex("4c80cdefbb5d10da906ac73c3613a6342e443b68")
P6_SEQ = 0x8765432100000000
P6_IV = bytes.fromhex("4956ed7e3b244cfe")
P6_PLAIN = bytes.fromhex(
    "45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000"
    "00000000045f736970045f756470037369700963796265726369747902646b00"
    "0021000101020201"
)
P6_CT_TAG = bytes.fromhex(
    "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34"
    "cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce"
    "61bc17d768fd9732"
    "459018148f6cbe722fd04796562dfdb4"
)

# Page 8: AES-256, SPI 0x4a2cbfe3, sequence number 2, IV 0102030405060708.
P8_KEY = bytes.fromhex("abbccddef00112233445566778899aababbccddef00112233445566778899aab11223344")
P8_CT_TAG = bytes.fromhex(
    "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763"
    "748a637985771d347f0545659f14e99def842d8e"
    "b335f4eecfdbf831824b4c4915956c96"
)


def test_gcm128_esn_known_answer_seal_and_open() -> None:
    sa = EspSA(0x4321, AEAD_GCM, P6_KEY, esn=True)
    sa.seq = P6_SEQ - 1
    # The draft's plaintext is payload | pad 01 02 | pad length 2 | next header 1.
    payload, nh = P6_PLAIN[:-4], P6_PLAIN[-1]
    packet = sa.seal(payload, nh, iv=P6_IV)
    # With ESN only the low 32 bits of the sequence number travel (RFC 4303 §2.2.1).
    assert packet == struct.pack("!II", 0x4321, 0) + P6_IV + P6_CT_TAG
    rx = EspSA(0x4321, AEAD_GCM, P6_KEY, esn=True)
    rx.top = P6_SEQ - 1
    assert rx.open(packet) == (payload, nh)
    assert rx.top == P6_SEQ


def test_gcm256_known_answer_opens_to_a_padded_ip_packet() -> None:
    packet = struct.pack("!II", 0x4A2CBFE3, 2) + bytes(range(1, 9)) + P8_CT_TAG
    rx = EspSA(0x4A2CBFE3, AEAD_GCM, P8_KEY)
    out = rx.open(packet)
    assert isinstance(out, tuple), out
    payload, nh = out
    # An IPv4 packet whose total length is the payload's; the draft writes Next Header
    # 1 in its packets (as on page 6, where the plaintext is printed).
    assert payload[0] >> 4 == 4 and struct.unpack_from("!H", payload, 2)[0] == len(payload)
    assert nh == 1
    # Sealing it again with the same sequence number and IV gives the same bytes:
    # padding as the draft (and the kernel) pads.
    tx = EspSA(0x4A2CBFE3, AEAD_GCM, P8_KEY)
    tx.seq = 1
    assert tx.seal(payload, nh, iv=bytes(range(1, 9))) == packet


RFC7539_KEY = bytes(range(0x80, 0xA0))
RFC7539_CT_TAG = bytes.fromhex(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116"
    "1ae10b594f09e26a7e902ecbd0600691"
)


def test_chacha20poly1305_rfc7539_vector_authenticates_as_esn_esp() -> None:
    # key | salt as `ip xfrm` takes rfc7539esp keys: 32 bytes, then the 4-byte salt.
    key = RFC7539_KEY + bytes.fromhex("07000000")
    packet = bytes.fromhex("50515253c4c5c6c7") + bytes.fromhex("4041424344454647") + RFC7539_CT_TAG
    rx = EspSA(0x50515253, AEAD_CHACHA, key, esn=True)
    rx.top = 0xC0C1C2C3C4C5C6C7 - 1
    # The tag verifies (nonce salt | IV, AAD SPI | seq hi | seq lo); the plaintext is
    # English, not an ESP trailer, so the packet is then refused for its padding.
    assert rx.open(packet) == counters.ESP_BAD_PADDING
    flipped = bytearray(packet)
    flipped[20] ^= 1
    assert rx.open(bytes(flipped)) == counters.ESP_AUTH_FAILED
    assert rx.counters.rx_packets == 0


def test_hmac_primitives_rfc4868_rfc2202() -> None:
    # RFC 4868 §2.7.1 test case 1, PRF-HMAC-SHA-256; HMAC-SHA-256-128 is its first half.
    full = hmac.digest(b"\x0b" * 32, b"Hi There", "sha256")
    assert full.hex() == "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
    # RFC 2202 §3 test cases 1 and 2.
    assert hmac.digest(b"\x0b" * 20, b"Hi There", "sha1").hex() == (
        "b617318655057264e28bc0b6fb378c8ef146be00"
    )
    assert hmac.digest(b"Jefe", b"what do ya want for nothing?", "sha1").hex() == (
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    )


@pytest.mark.parametrize(
    ("auth", "digest", "icv"), [(AUTH_SHA256, "sha256", 16), (AUTH_SHA1, "sha1", 12)]
)
@pytest.mark.parametrize("esn", [False, True])
def test_cbc_hmac_layout_rebuilt_independently(auth: str, digest: str, icv: int, esn: bool) -> None:
    key, akey = b"\x01" * 16, b"\x0b" * (32 if digest == "sha256" else 20)
    iv = bytes(range(16))
    sa = EspSA(0x1234, ENC_CBC, key, akey, auth, esn=esn)
    sa.seq = (5 << 32 | 0xFFFFFFFE) if esn else 0xFFFFFFFE
    payload = b"L2TPv3 payload 12345"  # 20 bytes: + 2 -> 22 -> 10 bytes of padding
    packet = sa.seal(payload, 115, iv=iv)
    assert packet is not None
    seq = sa.seq
    plain = payload + bytes(range(1, 11)) + bytes((10, 115))
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    body = struct.pack("!II", 0x1234, seq & 0xFFFFFFFF) + iv + enc.update(plain) + enc.finalize()
    # RFC 4303 §3.3.2.1: with ESN the high half is authenticated after the payload.
    signed = body + (struct.pack("!I", seq >> 32) if esn else b"")
    assert packet == body + hmac.digest(akey, signed, digest)[:icv]


# -- round trips, padding --------------------------------------------------------------


def _pair(alg: str, *, esn: bool = False, window: int = 0) -> tuple[EspSA, EspSA]:
    if alg in (AEAD_GCM, AEAD_CHACHA):
        key = genkey(alg)
        return (
            EspSA(7, alg, key, esn=esn, replay_window=window),
            EspSA(7, alg, key, esn=esn, replay_window=window),
        )
    auth = AUTH_SHA1 if alg == "cbc-sha1" else AUTH_SHA256
    key, akey = genkey(ENC_CBC), genkey(auth)
    return (
        EspSA(7, ENC_CBC, key, akey, auth, esn=esn, replay_window=window),
        EspSA(7, ENC_CBC, key, akey, auth, esn=esn, replay_window=window),
    )


ALGS = [AEAD_GCM, AEAD_CHACHA, "cbc-sha256", "cbc-sha1"]


@pytest.mark.parametrize("alg", ALGS)
@settings(max_examples=40, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=300), nh=st.sampled_from([17, 115]), esn=st.booleans()
)
def test_round_trip_and_padding(alg: str, payload: bytes, nh: int, esn: bool) -> None:
    tx, rx = _pair(alg, esn=esn, window=64)
    packet = tx.seal(payload, nh)
    assert packet is not None
    block = 4 if tx.aead else 16
    clen = len(packet) - 8 - tx.iv_len - tx.icv_len
    # No over-padding: the fewest bytes that make payload + 2 a multiple of the block.
    assert clen % block == 0 and clen - len(payload) - 2 < block
    assert rx.open(packet) == (payload, nh)
    assert tx.counters.tx_bytes == rx.counters.rx_bytes == len(payload)


def test_pad_bytes_are_1_2_3() -> None:
    key = genkey(AEAD_GCM)
    tx = EspSA(9, AEAD_GCM, key)
    packet = tx.seal(b"x", 17, iv=bytes(8))
    assert packet is not None
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    plain = AESGCM(key[:-4]).decrypt(key[-4:] + bytes(8), packet[16:], packet[:8])
    assert plain == b"x" + bytes((1, 1, 17))  # 1 + 2 = 3 -> one pad byte, value 1


def test_sequence_numbers_start_at_1_and_aead_iv_is_the_counter() -> None:
    tx, _ = _pair(AEAD_GCM)
    tx.grant_ivs(1000, 1001)
    a, b = tx.seal(b"a", 17), tx.seal(b"b", 17)
    assert a is not None and b is not None
    assert struct.unpack_from("!I", a, 4)[0] == 1 and struct.unpack_from("!I", b, 4)[0] == 2
    assert a[8:16] == (1000).to_bytes(8, "big") and b[8:16] == (1001).to_bytes(8, "big")
    # The granted range is used up: nothing is sent with an IV outside it.
    assert tx.seal(b"c", 17) is None
    assert tx.counters.tx_errors == 1 and tx.counters.tx_packets == 2


def test_sequence_number_never_cycles() -> None:
    tx, _ = _pair(AEAD_CHACHA)
    tx.seq = 0xFFFFFFFF
    assert tx.seal(b"a", 17) is None
    assert tx.counters.tx_errors == 1
    esn, _ = _pair(AEAD_CHACHA, esn=True)
    esn.seq = 0xFFFFFFFF
    packet = esn.seal(b"a", 17)
    assert packet is not None and struct.unpack_from("!I", packet, 4)[0] == 0


@pytest.mark.parametrize("alg", ALGS)
def test_esn_crosses_the_32_bit_boundary(alg: str) -> None:
    tx, rx = _pair(alg, esn=True, window=32)
    tx.seq = rx.top = 0xFFFFFFF0
    for i in range(40):
        packet = tx.seal(bytes([i]), 17)
        assert packet is not None
        assert rx.open(packet) == (bytes([i]), 17), i
    assert rx.top == 0xFFFFFFF0 + 40


# -- anti-replay (RFC 4303 §3.4.3) ----------------------------------------------------------


def test_replay_window() -> None:
    tx, rx = _pair(AEAD_GCM, window=32)
    packets = [tx.seal(bytes([i]), 17) for i in range(100)]
    assert all(p is not None for p in packets)
    p = [x for x in packets if x is not None]
    assert rx.open(p[50]) == (bytes([50]), 17)
    assert rx.open(p[50]) == counters.ESP_REPLAYED  # duplicate
    assert rx.open(p[30]) == (bytes([30]), 17)  # late, inside the window
    assert rx.open(p[10]) == counters.ESP_REPLAYED  # left of the window
    assert rx.open(p[60]) == (bytes([60]), 17)
    assert rx.drops[counters.ESP_REPLAYED] == 2


def test_no_window_no_replay_check() -> None:
    # ip xfrm state with manual keys defaults to replay-window 0: no check.
    tx, rx = _pair(AEAD_GCM)
    packet = tx.seal(b"a", 17)
    assert packet is not None
    assert rx.open(packet) == (b"a", 17) and rx.open(packet) == (b"a", 17)


def test_window_moves_only_after_authentication() -> None:
    tx, rx = _pair("cbc-sha256", window=16)
    tx.seq = 1000
    forged = bytearray(tx.seal(b"a", 17) or b"")
    forged[-1] ^= 1
    assert rx.open(bytes(forged)) == counters.ESP_AUTH_FAILED
    assert rx.top == 0


# -- every drop reason -----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_drops(alg: str) -> None:
    tx, rx = _pair(alg, window=8)
    good = tx.seal(b"frame", 115)
    assert good is not None
    for n in range(len(good) - 1):
        out = rx.open(good[:n])
        assert out in (counters.ESP_TOO_SHORT, counters.ESP_AUTH_FAILED), n
    for i in range(len(good)):
        flipped = bytearray(good)
        flipped[i] ^= 0x80
        assert isinstance(rx.open(bytes(flipped)), str), i
    other, _ = _pair(alg)
    wrong_key = other.seal(b"frame", 115)
    assert wrong_key is not None
    wrong_key = good[:4] + wrong_key[4:]
    assert rx.open(wrong_key) == counters.ESP_AUTH_FAILED
    assert rx.open(good) == (b"frame", 115)
    assert rx.open(good) == counters.ESP_REPLAYED
    assert rx.open(b"") == counters.ESP_TOO_SHORT
    assert rx.counters.rx_packets == 1


def test_bad_padding_is_counted() -> None:
    key = genkey(AEAD_GCM)
    rx = EspSA(5, AEAD_GCM, key)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(key[:-4])
    hdr = struct.pack("!II", 5, 1)
    for plain in (b"ab" + bytes((2, 2, 17)) + b"xyz", b"abcd" + bytes((9, 9, 17)), bytes((2, 17))):
        # wrong pad bytes (2, 2 instead of 1, 2); pad length eating the payload
        pkt = hdr + bytes(8) + aead.encrypt(key[-4:] + bytes(8), plain, hdr)
        assert rx.open(pkt) == counters.ESP_BAD_PADDING, plain
    assert rx.drops[counters.ESP_BAD_PADDING] == 3


def test_inbound_demux_unknown_spi_bad_next_header_plaintext() -> None:
    tx, rx = _pair(AEAD_GCM)
    inbound = EspInbound()
    inbound.sas[7] = rx
    packet = tx.seal(b"frame", 17)
    assert packet is not None
    assert inbound.open(packet, 115) == counters.ESP_BAD_NEXT_HEADER
    assert rx.drops[counters.ESP_BAD_NEXT_HEADER] == 1
    packet = tx.seal(b"frame", 115)
    assert packet is not None
    assert inbound.open(packet, 115) == (b"frame", 115)
    assert inbound.open(b"\0\0\0\x08" + packet[4:], 115) == counters.ESP_UNKNOWN_SPI
    assert inbound.open(b"\0\0", 115) == counters.ESP_TOO_SHORT
    assert inbound.plaintext() == counters.ESP_PLAINTEXT
    assert inbound.drops[counters.ESP_UNKNOWN_SPI] == 1
    assert inbound.drops[counters.ESP_PLAINTEXT] == 1


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_open_never_raises(data: bytes) -> None:
    for alg in ALGS:
        _, rx = _pair(alg, window=4, esn=len(data) % 2 == 1)
        out = rx.open(data)
        assert out in counters.ESP_DROP_REASONS


# -- keys ----------------------------------------------------------------------------------------


def test_key_lengths_and_no_key_in_errors_or_repr() -> None:
    key = bytes.fromhex("deadbeefcafebabe0011223344556677") + b"\x99\x88\x77"
    with pytest.raises(EspKeyError) as err:
        EspSA(1, AEAD_GCM, key)
    assert "deadbeef" not in str(
        err.value
    ) and "rfc4106(gcm(aes)) needs a 160 or 224 or 288-bit key" in str(err.value)
    for alg in (AEAD_GCM, AEAD_CHACHA):
        assert len(genkey(alg)) == 36
    sa = EspSA(1, AEAD_GCM, key + b"\x01")
    assert "deadbeef" not in repr(sa) and key.hex() not in repr(sa)
    with pytest.raises(EspKeyError):
        EspSA(1, ENC_CBC, os.urandom(16), os.urandom(32), AUTH_SHA1)
    with pytest.raises(EspKeyError):
        EspSA(1, ENC_CBC, os.urandom(16))
    with pytest.raises(EspKeyError):
        EspSA(1, "cbc(des)", os.urandom(8))


def test_fingerprint_hides_the_key() -> None:
    key = genkey(AEAD_GCM)
    fp = key_fingerprint(AEAD_GCM, key)
    assert key.hex() not in fp and len(fp) == 32
    assert fp != key_fingerprint(AEAD_GCM, genkey(AEAD_GCM))
    assert fp != key_fingerprint(AEAD_CHACHA, key)
