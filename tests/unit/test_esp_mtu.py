"""ESP overhead in the session MTU, ``mss_clamp auto``, ``peer-config`` and ``explain``.

One computation (proto/esp.py ``EspShape``) feeds all four. The test checks it
against the arithmetic written out by hand for the default session on a 1500-byte path
(each algorithm, encap udp and ip, IPv4 and IPv6, with and without ESP in UDP), and
against a brute-force oracle built from RFC 4303 §2 alone: the MTU is the largest for
which a full-size frame, sealed, fits in the path MTU.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2tpv3.cli import peerconfig, peerxfrm
from l2tpv3.config import Encap
from l2tpv3.proto import mss
from l2tpv3.proto.esp import EspSA, EspShape
from l2tpv3.proto.layout import HeaderLayout, session_mtu
from l2tpv3.tools import overhead

GCM, CHACHA, CBC = "rfc4106(gcm(aes))", "rfc7539esp(chacha20,poly1305)", "cbc(aes)"
SHA256, SHA1 = "hmac(sha256)", "hmac(sha1)"
ALGS = [(GCM, None), (CHACHA, None), (CBC, SHA256), (CBC, SHA1)]

# l2tpethN MTU on a 1500-byte path, default session (sublayer, no cookie). Worked out:
#   IPv4 UDP GCM: 1500 - 20 IP = 1480 for ESP; minus 8 SPI/seq, 8 IV, 16 ICV = 1448,
#   a multiple of 4, so payload + 2 trailer = 1448, payload 1446; minus 8 UDP, 12 L2TP,
#   14 Ethernet = 1412. ESP in UDP: 8 more, 1440 - 2 - 34 = 1404.
#   IPv4 UDP CBC/SHA-256: 1480 - 8 - 16 IV - 16 ICV = 1440 = 90 blocks, payload 1438,
#   1404; in UDP 1432 -> 89 blocks = 1424, payload 1422, 1388.
#   IPv4 UDP CBC/SHA-1 (12-byte ICV): 1480 - 36 = 1444 -> 90 blocks 1440, 1404; in UDP
#   1436 -> 1424, 1388.
#   IPv6: 40-byte header, 1460 for ESP; CBC/SHA-256 1420 -> 88 blocks 1408, payload 1406,
#   1372, and in UDP 1412 -> 1408 too: padding swallows the UDP header.
#   encap ip: no UDP header, 4 bytes less L2TP (no flags word): 12 more each.
EXPECTED = {
    # (family, encap): [no ESP, GCM, GCM+UDP, ChaCha, ChaCha+UDP, SHA256, +UDP, SHA1, +UDP]
    (4, Encap.UDP): [1446, 1412, 1404, 1412, 1404, 1404, 1388, 1404, 1388],
    (4, Encap.IP): [1458, 1424, 1416, 1424, 1416, 1416, 1400, 1416, 1400],
    (6, Encap.UDP): [1426, 1392, 1384, 1392, 1384, 1372, 1372, 1388, 1372],
    (6, Encap.IP): [1438, 1404, 1396, 1404, 1396, 1384, 1384, 1400, 1384],
}


def _shapes() -> list[EspShape | None]:
    out: list[EspShape | None] = [None]
    for alg, auth in ALGS:
        out += [EspShape.of(alg, auth, False), EspShape.of(alg, auth, True)]
    return out


@pytest.mark.parametrize(("family", "encap"), list(EXPECTED))
def test_default_session_mtu_by_hand(family: int, encap: Encap) -> None:
    t, s = overhead.session_for(family, encap, 0, True)
    got = [session_mtu(t, s, None, shape) for shape in _shapes()]
    assert got == EXPECTED[(family, encap)]
    assert [session_mtu(t, s, 1500, shape) for shape in _shapes()] == got


def _sealed_len(alg: str, auth: str | None, espinudp: bool, payload: int) -> int:
    """RFC 4303 §2 written out: what an IP payload of ``payload`` bytes becomes."""
    iv = 8 if alg != CBC else 16
    block = 4 if alg != CBC else 16  # kernel esp_output: ALIGN(blocksize, 4) for AEADs
    icv = 12 if auth == SHA1 else 16
    padded = -(-(payload + 2) // block) * block
    return (8 if espinudp else 0) + 4 + 4 + iv + padded + icv


@settings(max_examples=300, deadline=None)
@given(
    alg=st.sampled_from(ALGS),
    espinudp=st.booleans(),
    family=st.sampled_from([4, 6]),
    encap=st.sampled_from([Encap.UDP, Encap.IP]),
    cookie=st.sampled_from([0, 4, 8]),
    l2spec=st.booleans(),
    path=st.integers(1280, 9000),
)
def test_full_size_frame_fits_and_one_more_byte_does_not(
    alg: tuple[str, str | None], espinudp: bool, family: int, encap: Encap, cookie: int,
    l2spec: bool, path: int,
) -> None:  # fmt: skip
    t, s = overhead.session_for(family, encap, cookie, l2spec)
    shape = EspShape.of(alg[0], alg[1], espinudp)
    mtu = session_mtu(t, s, path, shape)
    ip_hlen = 20 if family == 4 else 40
    inner = (8 if encap is Encap.UDP else 0) + HeaderLayout.for_session(t, s).tx_header_len + 14
    assert ip_hlen + _sealed_len(*alg, espinudp, inner + mtu) <= path
    assert ip_hlen + _sealed_len(*alg, espinudp, inner + mtu + 1) > path
    assert shape.wire_len(inner + mtu) == _sealed_len(*alg, espinudp, inner + mtu)
    # Never more than the worst case below the clear-text MTU.
    plain = session_mtu(t, s, path)
    assert 0 < plain - mtu <= shape.worst


@pytest.mark.parametrize(("alg", "auth"), ALGS)
def test_shape_is_what_the_sa_seals(alg: str, auth: str | None) -> None:
    """The arithmetic matches what EspSA.seal really produces, for every length."""
    key = bytes(36 if alg == CHACHA else 20 if alg == GCM else 16)
    sa = EspSA(0x100, alg, key, bytes(32 if auth == SHA256 else 20) if auth else None, auth)
    sa.grant_ivs(1, 1 << 20)
    shape = EspShape.of(alg, auth)
    for n in range(1, 80):
        sealed = sa.seal(bytes(n), 17)
        assert sealed is not None
        assert len(sealed) == shape.wire_len(n), n


def test_explain_overhead_uses_the_same_mtu() -> None:
    for (family, encap), row in EXPECTED.items():
        t, s = overhead.session_for(family, encap, 0, True)
        names = ["rfc4106(gcm(aes))", "rfc7539esp(chacha20,poly1305)",
                 "cbc(aes)+hmac(sha256)", "cbc(aes)+hmac(sha1)"]  # fmt: skip
        for i, name in enumerate(names):
            for u in (False, True):
                o = overhead.compute(t, s, 1500, overhead.ESP_ALGS[name], u)
                assert o.mtu == row[1 + 2 * i + u]
                assert o.wire <= 1500
                assert o.mss4 == o.mtu - 40


def _sa(tid: int, d: str, alg: str, auth: str | None, dport: int | None) -> peerxfrm.SaView:
    aead, enc = (None, alg) if auth else (alg, None)
    return peerxfrm.SaView(tid, d, 0x10 if d == "out" else 0x20, aead, enc, auth, None, None,
                           0, False, dport and 4500, dport)  # fmt: skip


def test_peer_config_lowers_the_kernel_mtu_and_mss_rule() -> None:
    t, s = overhead.session_for(4, Encap.UDP, 0, True)
    s = replace(s, name="l2tpeth7", mss_clamp="auto")
    plain = peerconfig.linux([t], [s])
    assert "ip link set" not in plain
    assert "far end 1446, ours 1446" in plain
    assert "--set-mss 1406" in plain  # 1446 - 40
    # Our outbound SA is GCM, the far end's (our inbound) CBC/SHA-1 in UDP.
    sas = [_sa(1, "out", GCM, None, None), _sa(1, "in", CBC, SHA1, 4500)]
    text = peerconfig.linux([t], [s], peerxfrm.esp_shapes(sas))
    assert "far end 1388, ours 1412; set both to 1388" in text
    assert "ip link set dev l2tpeth7 mtu 1388" in text
    assert "--set-mss 1372" in text  # auto: our MTU with ESP, 1412 - 40
    unnamed = peerconfig.linux([t], [replace(s, name=None)], peerxfrm.esp_shapes(sas))
    assert "\n# ip link set dev L2TPETH_DEVICE mtu 1388\n" in unnamed
    assert mss.limits("auto", 1412) == (1372, 1352)
