"""MSS clamping: the C twin (fast/fp_mss.c through _fastpath.Session) against the
reference (proto/mss.py through proto.session.Session) on random frames: well-formed
SYNs of every shape, random TCP options, random flags, truncations and byte flips,
partial checksums; same bytes out, same verdicts, same counters."""

from __future__ import annotations

import os
from ipaddress import ip_address
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.proto import mss, session

fast: Any
try:
    from l2tpv3.fast import _fastpath as fast
except ImportError:  # pragma: no cover - exercised when the build is missing
    fast = None

pytestmark = pytest.mark.skipif(
    fast is None and os.environ.get("CI") != "true", reason="the Cython extension is not built"
)

_T = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                  remote=ip_address("10.0.0.2"), udp_sport=1, udp_dport=2)  # fmt: skip


def _opt_bytes() -> st.SearchStrategy[bytes]:
    mss = st.integers(0, 0xFFFF).map(lambda v: b"\x02\x04" + v.to_bytes(2, "big"))
    nop = st.just(b"\x01")
    eol = st.just(b"\x00")
    ws = st.integers(0, 14).map(lambda v: b"\x03\x03" + bytes([v]))
    sack = st.just(b"\x04\x02")
    ts = st.binary(min_size=8, max_size=8).map(lambda v: b"\x08\x0a" + v)
    junk = st.binary(max_size=6)
    usual = st.one_of(mss, mss, mss, nop, nop, ws, sack, ts)
    return st.lists(st.one_of(usual, usual, usual, usual, eol, junk), max_size=6).map(b"".join)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
        eth += draw(st.sampled_from([b"\x81\x00", b"\x88\xa8"])) + draw(
            st.binary(min_size=2, max_size=2)
        )
    v6 = draw(st.booleans())
    opts = draw(_opt_bytes())
    if draw(st.booleans()):
        # Most SYNs lead with their MSS option, maybe after NOPs (odd offsets).
        lead = draw(st.sampled_from([b"", b"\x01", b"\x01\x01", b"\x01\x01\x01"]))
        opts = lead + b"\x02\x04" + draw(st.integers(0, 0xFFFF)).to_bytes(2, "big") + opts
    opts += b"\x00" * (-len(opts) % 4)
    opts = opts[:40]
    doff = 5 + len(opts) // 4
    flags = draw(st.sampled_from([0x02, 0x12, 0x02, 0x12, 0x02, 0x12, 0x10, 0x06, 0x18, 0x03]))
    tcp = bytearray(20) + opts
    tcp[0:4] = b"\x9c\x40\x00\x16"
    tcp[12] = doff << 4
    tcp[13] = flags
    tcp[16:18] = draw(st.binary(min_size=2, max_size=2))
    payload = draw(st.binary(max_size=40))
    if v6:
        ext = b""
        if draw(st.booleans()):
            ext = b"\x06\x00" + b"\x01\x04\x00\x00\x00\x00"  # hop-by-hop, then TCP
        nh = 0 if ext else 6
        plen = len(ext) + len(tcp) + len(payload)
        ip = b"\x60\x00\x00\x00" + plen.to_bytes(2, "big") + bytes([nh, 64]) + bytes(32) + ext
        et = b"\x86\xdd"
    else:
        ihl = draw(st.sampled_from([5, 5, 5, 6]))
        total = ihl * 4 + len(tcp) + len(payload)
        frag = draw(st.sampled_from([b"\x40\x00", b"\x40\x00", b"\x20\x00", b"\x00\x10"]))
        ip = bytes([0x40 | ihl, 0]) + total.to_bytes(2, "big") + b"\x00\x01" + frag
        ip += b"\x40\x06\x00\x00" + bytes(8) + bytes(4 * (ihl - 5))
        et = b"\x08\x00"
    frame = bytearray(eth + et + ip + tcp + payload)
    damage = draw(st.sampled_from(["none", "none", "none", "flip", "cut"]))
    if damage == "flip":
        i = draw(st.integers(0, len(frame) - 1))
        frame[i] = draw(st.integers(0, 255))
    elif damage == "cut":
        frame = frame[: draw(st.integers(0, len(frame)))]
    return bytes(frame)


setting = st.sampled_from(["off", "auto", "auto", "88", "536", "1200", "1406", "65535"])
mtu = st.sampled_from([68, 1280, 1400, 1446, 1500, 9000])
partial_kind = st.sampled_from(["none", "none", "tcp", "tcp", "off-by-2", "offset-6", "any"])


def _partial(frame: bytes, kind: str, anywhere: int) -> tuple[int, int] | None:
    """None, or a (csum_start, csum_offset) right for the frame's TCP header, or wrong."""
    if kind == "none":
        return None
    hit = mss.find(frame, 88, 88)  # the TCP header of any frame with an MSS option
    tcp = hit.tcp_offset if hit is not None else anywhere
    return {
        "tcp": (tcp, 16),
        "off-by-2": (tcp + 2, 16),
        "offset-6": (tcp, 6),
        "any": (anywhere, 16),
    }[kind]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), setting, mtu, partial_kind, st.integers(0, 120))
def test_c_equals_python(frame: bytes, clamp: str, mtu_: int, kind: str, anywhere: int) -> None:
    part = _partial(frame, kind, anywhere)
    cfg = SessionConfig(tunnel_id=1, session_id=5, peer_session_id=6, mss_clamp=clamp)
    py, c = session.Session(_T, cfg), fast.Session(_T, cfg)
    for s in (py, c):
        s.set_mtu(mtu_)
    # TAP side, in place, with or without a partial checksum.
    bp, bc = bytearray(frame), bytearray(frame)
    assert py.clamp(bp, part) == c.clamp(bc, part)
    assert bp == bc
    # encapsulate (TAP -> wire) and receive (wire -> TAP), with the frame checks.
    assert py.encapsulate(frame) == c.encapsulate(frame)
    payload = b"\x00\x03\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00" + frame
    assert [bytes(f) for f in py.receive(payload, 0.0)] == c.receive(payload, 0.0)
    assert py.features == c.features
    assert py.counters == c.counters
    assert py.drops == c.drops
