"""offload.c through its test wrapper: TSO segmentation, checksum completion and GRO, checked
against scapy's own checksums. The kernel's side is in test_offload_tap.py."""

from __future__ import annotations

import os
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet, Raw

from tests.support import offload_ext

try:
    off = offload_ext.load()  # test-only, built on first use (not part of the package)
except ImportError as exc:  # pragma: no cover - no Cython or C compiler here
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"the test-only _offload extension cannot be built: {exc}", allow_module_level=True)

F_NEEDS_CSUM = 1
GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_ECN = 0, 1, 4, 0x80
MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"
TS_OPT = [("NOP", None), ("NOP", None), ("Timestamp", (123456, 654321))]


def vnet(
    flags: int = 0,
    gso_type: int = 0,
    hdr_len: int = 0,
    gso_size: int = 0,
    csum_start: int = 0,
    csum_offset: int = 0,
    size: int = 10,
) -> bytes:
    return struct.pack(
        "<BBHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
    ) + bytes(size - 10)


def parse_vnet(buf: bytes) -> dict[str, int]:
    keys = ("flags", "gso_type", "hdr_len", "gso_size", "csum_start", "csum_offset")
    return dict(zip(keys, struct.unpack_from("<BBHHHH", buf), strict=True))


def fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    return fold(sum(struct.unpack(f"!{len(data) // 2}H", data)))


def pseudo_sum(ip: Packet, l4len: int, proto: int) -> int:
    """Folded, uncomplemented pseudo-header sum: what Linux leaves in a CHECKSUM_PARTIAL field."""
    addrs = bytes(ip)[12:20] if isinstance(ip, IP) else bytes(ip)[8:40]
    return fold(sum16(addrs) + proto + (l4len & 0xFFFF) + (l4len >> 16))


def tcp_packet(
    v6: bool,
    payload: bytes,
    flags: str = "A",
    options: list[tuple[str, object]] | None = None,
    vlan: bool = False,
    seq: int = 1000,
    ip_id: int = 77,
    df: bool = True,
    tos: int = 0,
) -> Packet:
    eth = Ether(src=MAC_A, dst=MAC_B)
    if vlan:
        eth = eth / Dot1Q(vlan=5)
    if v6:
        ip: Packet = IPv6(src="fd00::1", dst="fd00::2", tc=tos, fl=0x12345)
    else:
        ip = IP(src="10.0.0.1", dst="10.0.0.2", id=ip_id, flags="DF" if df else 0, tos=tos)
    tcp = TCP(
        sport=40000,
        dport=5201,
        seq=seq,
        ack=99,
        flags=flags,
        window=500,
        options=TS_OPT if options is None else options,
    )
    return eth / ip / tcp / Raw(payload)


def super_frame(
    v6: bool, payload: bytes, gso_size: int, flags: str = "A", ecn: bool = False, **kw: object
) -> tuple[bytes, bytes, int]:
    """(vnet header, frame, l4 offset) as a TAP with TSO hands a TCP super-frame over."""
    pkt = tcp_packet(v6, payload, flags, **kw)  # type: ignore[arg-type]
    raw = bytearray(bytes(pkt))
    ip = pkt[IPv6] if v6 else pkt[IP]
    l4 = len(raw) - len(bytes(pkt[TCP]))
    l4len = len(raw) - l4
    struct.pack_into("!H", raw, l4 + 16, pseudo_sum(ip, l4len, 6))
    hdr_len = l4 + len(bytes(pkt[TCP])) - len(payload)
    gso = (GSO_TCPV6 if v6 else GSO_TCPV4) | (GSO_ECN if ecn else 0)
    return vnet(F_NEEDS_CSUM, gso, hdr_len, gso_size, l4, 16), bytes(raw), l4


def assert_valid(frame: bytes) -> Packet:
    """Every checksum in the frame is what scapy computes from scratch."""
    pkt = Ether(frame)
    if IP in pkt:
        fresh = pkt.copy()
        del fresh[IP].chksum
        assert Ether(bytes(fresh))[IP].chksum == pkt[IP].chksum, "IPv4 header checksum"
    layer = TCP if TCP in pkt else UDP
    fresh = pkt.copy()
    del fresh[layer].chksum
    assert Ether(bytes(fresh))[layer].chksum == pkt[layer].chksum, "L4 checksum"
    return pkt


def tcp_payload(pkt: Packet) -> bytes:
    return bytes(pkt[TCP].payload)


def check_segments(
    segs: list[bytes],
    v6: bool,
    payload: bytes,
    max_frame: int,
    mss: int,
    orig_flags: str,
    seq: int = 1000,
    ip_id: int = 77,
) -> None:
    assert segs
    got = b""
    for i, s in enumerate(segs):
        assert len(s) <= max_frame
        pkt = assert_valid(s)
        tcp = pkt[TCP]
        data = tcp_payload(pkt)
        assert len(data) <= mss
        if i < len(segs) - 1:
            assert len(data) == mss
        assert tcp.seq == (seq + len(got)) & 0xFFFFFFFF
        flags = str(tcp.flags)
        last, first = i == len(segs) - 1, i == 0
        for f, keep in (("F", last), ("P", last), ("C", first)):
            assert (f in flags) == (f in orig_flags and keep), (i, flags)
        assert "A" in flags
        if v6:
            assert pkt[IPv6].plen == len(bytes(pkt[IPv6].payload))
        else:
            assert pkt[IP].len == len(bytes(pkt[IP]))
            assert pkt[IP].id == (ip_id + i) & 0xFFFF
        assert tcp.options == [("NOP", None), ("NOP", None), ("Timestamp", (123456, 654321))]
        got += data
    assert got == payload


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("size_delta", [-1, 0, 1])
@pytest.mark.parametrize("nseg", [1, 2, 7])
def test_segment_around_gso_size(v6: bool, size_delta: int, nseg: int) -> None:
    gso_size = 1448 if not v6 else 1428
    payload = random.Random(nseg).randbytes(max(1, nseg * gso_size + size_delta))
    vh, frame, _ = super_frame(v6, payload, gso_size, flags="PA")
    segs = off.segment(vh, frame, 1514)
    expected = -(-len(payload) // gso_size)
    assert len(segs) == expected
    check_segments(segs, v6, payload, 1514, gso_size, "PA")


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_segment_flags_and_ecn(v6: bool) -> None:
    payload = bytes(range(256)) * 40
    vh, frame, _ = super_frame(v6, payload, 1000, flags="FPAC", ecn=True)
    segs = off.segment(vh, frame, 1514)
    assert len(segs) == 11
    check_segments(segs, v6, payload, 1514, 1000, "FPAC")


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_segment_max_frame_below_gso_size(v6: bool) -> None:
    """The session MTU may be smaller than the TAP's gso_size: max_frame wins."""
    payload = os.urandom(9000)
    vh, frame, l4 = super_frame(v6, payload, 1448)
    max_frame = 1000
    hdrs = l4 + 32
    segs = off.segment(vh, frame, max_frame)
    check_segments(segs, v6, payload, max_frame, max_frame - hdrs, "A")
    assert max(len(s) for s in segs) == max_frame


def test_segment_ipv4_id_wraps_and_seq_wraps() -> None:
    payload = os.urandom(5000)
    vh, frame, _ = super_frame(False, payload, 1000, seq=0xFFFFFC00, ip_id=0xFFFE, df=False)
    segs = off.segment(vh, frame, 1514)
    check_segments(segs, False, payload, 1514, 1000, "A", seq=0xFFFFFC00, ip_id=0xFFFE)


def test_segment_vlan_and_odd_sizes() -> None:
    payload = os.urandom(3001)
    vh, frame, _ = super_frame(False, payload, 999, vlan=True)
    segs = off.segment(vh, frame, 1518)
    assert [Ether(s)[Dot1Q].vlan for s in segs] == [5] * 4
    check_segments(segs, False, payload, 1518, 999, "A")


def test_segment_without_needs_csum_ignores_the_field() -> None:
    payload = os.urandom(4000)
    _, frame, l4 = super_frame(True, payload, 1400)
    vh = vnet(0, GSO_TCPV6, l4 + 32, 1400)
    check_segments(off.segment(vh, frame, 1514), True, payload, 1514, 1400, "A")


def test_segment_too_many_segments() -> None:
    vh, frame, _ = super_frame(False, os.urandom(10000), 1000)
    with pytest.raises(OverflowError):
        off.segment(vh, frame, 1514, max_segs=9)
    assert len(off.segment(vh, frame, 1514, max_segs=10)) == 10


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda h: h | {"gso_type": GSO_NONE}, id="gso-none"),
        pytest.param(lambda h: h | {"gso_type": 3}, id="gso-udp"),
        pytest.param(lambda h: h | {"gso_type": GSO_TCPV6}, id="family-mismatch"),
        pytest.param(lambda h: h | {"gso_size": 0}, id="gso-size-0"),
        pytest.param(lambda h: h | {"hdr_len": 60000}, id="hdr-len-past-end"),
        pytest.param(lambda h: h | {"csum_start": h["csum_start"] + 4}, id="csum-start"),
        pytest.param(lambda h: h | {"csum_offset": 6}, id="csum-offset-udp"),
    ],
)
def test_segment_rejects_bogus_vnet_headers(mutate) -> None:  # type: ignore[no-untyped-def]
    vh, frame, _ = super_frame(False, os.urandom(3000), 1000)
    bad = mutate(parse_vnet(vh))
    with pytest.raises(ValueError):
        off.segment(vnet(**bad), frame, 1514)


def test_segment_rejects_non_tcp_and_tiny_max_frame() -> None:
    vh, frame, l4 = super_frame(False, os.urandom(3000), 1000)
    udp = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / Raw(os.urandom(3000)))
    with pytest.raises(ValueError):
        off.segment(vh, udp, 1514)
    with pytest.raises(ValueError):
        off.segment(vh, frame, l4 + 32)  # no room for a payload byte
    frag = bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2", flags="MF") / TCP() / Raw(b"x" * 50))
    with pytest.raises(ValueError):
        off.segment(vh, frag, 1514)


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_segment_truncated_never_crashes(data: st.DataObject) -> None:
    v6 = data.draw(st.booleans())
    payload = data.draw(st.binary(min_size=1, max_size=6000))
    vh, frame, _ = super_frame(v6, payload, data.draw(st.integers(1, 2000)))
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(ValueError):
        off.segment(vh, frame[:cut], 1514)


@given(
    st.binary(min_size=10, max_size=10),
    st.binary(max_size=300),
    st.integers(0, 2000),
)
@settings(max_examples=500, deadline=None)
def test_segment_garbage_never_crashes(vh: bytes, frame: bytes, max_frame: int) -> None:
    try:
        segs = off.segment(vh, frame, max_frame, max_segs=64)
    except (ValueError, OverflowError):
        return
    assert all(len(s) <= max_frame for s in segs)


@given(
    st.binary(min_size=10, max_size=10),
    st.integers(0, 100),
    st.integers(0, 100),
    st.binary(max_size=120),
)
@settings(max_examples=300, deadline=None)
def test_complete_csum_bounds(vh: bytes, start: int, offset: int, frame: bytes) -> None:
    hdr = vnet(F_NEEDS_CSUM, 0, 0, 0, start, offset)
    if start + offset + 2 <= len(frame):
        assert len(off.complete_csum(hdr, frame)) == len(frame)
    else:
        with pytest.raises(ValueError):
            off.complete_csum(hdr, frame)
    try:  # any vnet header: a result of the same length or ValueError, never a crash
        assert len(off.complete_csum(vh, frame)) == len(frame)
    except ValueError:
        assert vh[0] & F_NEEDS_CSUM


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
@pytest.mark.parametrize("size", [0, 1, 2, 3, 1400, 1401])
def test_complete_csum(v6: bool, proto: str, size: int) -> None:
    ip: Packet = IPv6(src="fd00::1", dst="fd00::2") if v6 else IP(src="10.1.1.1", dst="10.2.2.2")
    l4: Packet = TCP(sport=1, dport=2, options=TS_OPT) if proto == "tcp" else UDP(sport=1, dport=2)
    pkt = Ether() / ip / l4 / Raw(os.urandom(size))
    raw = bytearray(bytes(pkt))
    start = len(raw) - len(bytes(pkt[TCP if proto == "tcp" else UDP]))
    field = 16 if proto == "tcp" else 6
    struct.pack_into(
        "!H", raw, start + field, pseudo_sum(ip, len(raw) - start, 6 if proto == "tcp" else 17)
    )
    done = off.complete_csum(vnet(F_NEEDS_CSUM, 0, 0, 0, start, field), bytes(raw))
    assert_valid(done)
    assert off.complete_csum(vnet(), bytes(raw)) == bytes(raw)  # no NEEDS_CSUM: untouched


def test_complete_csum_zero_becomes_ffff() -> None:
    """skb_checksum_help() sends a zero sum as 0xffff (RFC 768: 0 means none for UDP)."""
    frame = bytes(16) + b"\xff\xff" + bytes(4)  # sums to 0xffff: complement 0
    done = off.complete_csum(vnet(F_NEEDS_CSUM, 0, 0, 0, 16, 2), frame)
    assert done[18:20] == b"\xff\xff"


# ---- GRO -----------------------------------------------------------------------------------


def segments_of(
    v6: bool,
    payload: bytes,
    mss: int,
    flags: str = "A",
    seq: int = 1000,
    sport: int = 40000,
    ip_id: int = 77,
) -> list[bytes]:
    out = []
    for i in range(0, len(payload), mss):
        last = i + mss >= len(payload)
        f = flags if last else flags.replace("P", "").replace("F", "")
        p = tcp_packet(v6, payload[i : i + mss], f, seq=seq + i, ip_id=ip_id + i // mss)
        p[TCP].sport = sport
        out.append(bytes(p))
    return out


def unwrap(buf: bytes, vlen: int = 10) -> tuple[dict[str, int], bytes]:
    """Split an emitted buffer; finish a NEEDS_CSUM checksum as the kernel would trust it."""
    h = parse_vnet(buf)
    frame = buf[vlen:]
    if h["flags"] & F_NEEDS_CSUM:
        frame = off.complete_csum(buf[:10], frame)
    return h, frame


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("vlen", [10, 12])
def test_gro_merges_one_flow(v6: bool, vlen: int) -> None:
    payload = os.urandom(1448 * 10 + 100)
    segs = segments_of(v6, payload, 1448, flags="PA")
    out = off.coalesce(segs, vlen)
    assert len(out) == 1
    h, frame = unwrap(out[0], vlen)
    assert h["gso_type"] == (GSO_TCPV6 if v6 else GSO_TCPV4)
    assert h["gso_size"] == 1448
    assert h["flags"] == F_NEEDS_CSUM
    pkt = assert_valid(frame)
    assert h["csum_start"] == len(frame) - len(bytes(pkt[TCP]))
    assert h["hdr_len"] == h["csum_start"] + 32 and h["csum_offset"] == 16
    assert tcp_payload(pkt) == payload
    assert str(pkt[TCP].flags) == "PA"
    assert pkt[TCP].seq == 1000
    # and the super-frame segments back into exactly what went in
    assert off.segment(out[0][:10], out[0][vlen:], 1600) == segs


def test_gro_interleaved_flows_and_passthrough() -> None:
    a = os.urandom(1400 * 6)
    b = os.urandom(1400 * 5)
    sa = segments_of(False, a, 1400, sport=1111)
    sb = segments_of(True, b, 1400, sport=2222)
    arp = bytes(Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff", type=0x0806) / Raw(bytes(28)))
    udp = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / Raw(b"x" * 100))
    mixed: list[bytes] = []
    for i in range(6):
        mixed.append(sa[i])
        if i < 5:
            mixed.append(sb[i])
        if i == 2:
            mixed += [arp, udp]
    c = off.Coalescer()
    out = []
    for f in mixed:
        out += c.add(f)
    assert [o[10:] for o in out] == [arp, udp]  # unchanged, zero vnet header, not delayed
    assert all(o[:10] == bytes(10) for o in out)
    out += c.flush()
    supers = [unwrap(o) for o in out[2:]]
    got = {Ether(f)[TCP].sport: tcp_payload(assert_valid(f)) for _, f in supers}
    assert got == {1111: a, 2222: b}
    assert c.stats["merged"] == 5 + 4 and c.stats["superframes"] == 2


def test_gro_out_of_order_flushes_and_restarts() -> None:
    payload = os.urandom(1000 * 6)
    segs = segments_of(False, payload, 1000)
    order = [0, 1, 3, 2, 4, 5]
    out = off.coalesce([segs[i] for i in order])
    frames = [unwrap(o)[1] for o in out]
    pieces = [tcp_payload(assert_valid(f)) for f in frames]
    # 0+1 merged, then 3 cannot follow: flushed; 3 starts, 2 cannot follow 3; 2 starts, 4 5 ...
    assert b"".join(sorted(pieces, key=payload.index)) == payload
    assert pieces[0] == payload[:2000]
    assert all(len(p) % 1000 == 0 for p in pieces)
    assert len(out) == 4  # [0,1] [3] [2] [4,5]


def test_gro_non_mergeable_tcp_is_passed_and_flushes_its_flow() -> None:
    payload = os.urandom(3000)
    segs = segments_of(False, payload, 1000)
    fin = bytes(tcp_packet(False, b"", "FA", seq=4000))
    out = off.coalesce([*segs, fin])
    assert len(out) == 2
    assert unwrap(out[0])[0]["gso_type"] == GSO_TCPV4
    assert out[1] == bytes(10) + fin


def test_gro_does_not_merge_differing_headers() -> None:
    payload = os.urandom(2000)
    s0, s1 = segments_of(False, payload, 1000)
    p1 = Ether(s1)
    p1[TCP].window = 9999
    del p1[TCP].chksum
    out = off.coalesce([s0, bytes(p1)])
    assert [o[10:] for o in out] == [s0, bytes(p1)]
    p1 = Ether(s1)
    p1[IP].id = 5  # DF set: any ID is fine (kernel accepts fixed IDs with DF)
    del p1[IP].chksum
    assert len(off.coalesce([s0, bytes(p1)])) == 1


def test_gro_ipv4_id_must_increment_without_df() -> None:
    payload = os.urandom(2000)
    s0, s1 = segments_of(False, payload, 1000)
    pkts = [Ether(s0), Ether(s1)]
    for p in pkts:
        p[IP].flags = 0
        del p[IP].chksum
    assert len(off.coalesce([bytes(p) for p in pkts])) == 1
    pkts[1][IP].id = 500
    del pkts[1][IP].chksum
    assert len(off.coalesce([bytes(p) for p in pkts])) == 2


def test_gro_bad_checksum_is_not_merged() -> None:
    payload = os.urandom(3000)
    segs = segments_of(False, payload, 1000)
    bad = bytearray(segs[1])
    bad[-1] ^= 0xFF
    c = off.Coalescer()
    out = [*c.add(segs[0]), *c.add(bytes(bad)), *c.add(segs[2]), *c.flush()]
    assert out[0] == bytes(10) + segs[0]
    assert out[1] == bytes(10) + bytes(bad)
    assert out[2] == bytes(10) + segs[2]
    assert c.stats["bad_csum"] == 1


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_gro_65535_limit(v6: bool) -> None:
    mss = 1448
    payload = os.urandom(mss * 60)
    out = off.coalesce(segments_of(v6, payload, mss))
    total = b""
    for o in out:
        _h, frame = unwrap(o)
        pkt = assert_valid(frame)
        iplen = pkt[IPv6].plen if v6 else pkt[IP].len
        assert iplen <= 65535
        total += tcp_payload(pkt)
    assert total == payload
    assert len(out) == 2


def test_gro_many_flows_evicts_oldest() -> None:
    flows = {sport: os.urandom(2000) for sport in range(1000, 1012)}
    segs = {s: segments_of(False, p, 1000, sport=s) for s, p in flows.items()}
    stream = [segs[s][0] for s in flows] + [segs[s][1] for s in flows]
    out = off.coalesce(stream)
    got: dict[int, bytes] = {}
    for o in out:
        pkt = assert_valid(unwrap(o)[1])
        got[pkt[TCP].sport] = got.get(pkt[TCP].sport, b"") + tcp_payload(pkt)
    assert got == flows


@given(
    st.booleans(),
    st.binary(min_size=1, max_size=20000),
    st.integers(200, 1460),
    st.sampled_from(["A", "PA", "FPA"]),
)
@settings(max_examples=150, deadline=None)
def test_segment_then_coalesce_round_trips(v6: bool, payload: bytes, gso: int, flags: str) -> None:
    vh, frame, _ = super_frame(v6, payload, gso, flags=flags)
    segs = off.segment(vh, frame, 1514)
    out = off.coalesce(segs)
    data = b""
    seq = 1000
    for o in out:
        pkt = assert_valid(unwrap(o)[1])
        assert pkt[TCP].seq == seq + len(data)
        data += tcp_payload(pkt)
    assert data == payload
    if "F" not in flags:
        assert len(out) == 1


@given(st.lists(st.binary(max_size=200), max_size=20), st.integers(0, 3))
@settings(max_examples=300, deadline=None)
def test_gro_garbage_passes_through(frames: list[bytes], seed: int) -> None:
    rnd = random.Random(seed)
    base = segments_of(rnd.random() < 0.5, os.urandom(300), 100)
    mixed = frames + [b[: rnd.randrange(len(b) + 1)] for b in base]
    out = off.coalesce(mixed)
    assert all(len(o) >= 10 for o in out)


def test_gro_same_flow_with_ip_options_flushes_first() -> None:
    """A segment of a pending flow that cannot merge (IPv4 options) must not overtake it."""
    payload = os.urandom(3000)
    s0, s1, s2 = segments_of(False, payload, 1000)
    p2 = Ether(s2)
    p2[IP].options = [b"\x01\x01\x01\x00"]  # NOP NOP NOP EOL
    del p2[IP].chksum, p2[IP].len, p2[IP].ihl
    with_opts = bytes(p2)
    out = off.coalesce([s0, s1, with_opts])
    assert len(out) == 2
    assert tcp_payload(assert_valid(unwrap(out[0])[1])) == payload[:2000]
    assert out[1] == bytes(10) + with_opts


def expand(buf: bytes) -> list[bytes]:
    """An emitted buffer back as the frames that went in: super-frames are re-segmented."""
    h = parse_vnet(buf)
    if h["gso_type"] == GSO_NONE:
        assert buf[:10] == bytes(10)
        return [buf[10:]]
    return off.segment(buf[:10], buf[10:], 1600, max_segs=64)


@given(st.data())
@settings(max_examples=120, deadline=None)
def test_gro_loses_nothing_and_keeps_each_flow_in_order(data: st.DataObject) -> None:
    """Whatever the interleaving, reordering and junk, GRO output re-segmented is exactly
    the input, and each flow's frames come out in the order they went in."""
    nflows = data.draw(st.integers(1, 10))
    queues = []
    for sport in range(nflows):
        v6 = data.draw(st.booleans())
        mss = data.draw(st.integers(50, 1400))
        size = data.draw(st.integers(1, mss * 30))
        flags = data.draw(st.sampled_from(["A", "PA"]))
        q = segments_of(v6, random.Random(sport).randbytes(size), mss, flags, sport=2000 + sport)
        if len(q) > 2 and data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(q) - 2))
            q[i], q[i + 1] = q[i + 1], q[i]  # out of order on the wire
        queues.append(q)
    junk = data.draw(st.lists(st.binary(max_size=80), max_size=5))
    queues.append([bytes(Ether() / IP() / UDP() / Raw(j)) for j in junk])
    stream: list[bytes] = []
    while any(queues):
        q = data.draw(st.sampled_from([q for q in queues if q]))
        stream.append(q.pop(0))
    out = off.coalesce(stream)
    frames = [f for o in out for f in expand(o)]
    assert sorted(frames) == sorted(stream)

    def by_flow(seq: list[bytes]) -> dict[int, list[bytes]]:
        flows: dict[int, list[bytes]] = {}
        for f in seq:
            p = Ether(f)
            if TCP in p:
                flows.setdefault(p[TCP].sport, []).append(f)
        return flows

    assert by_flow(frames) == by_flow(stream)


def test_gro_merges_ece_but_not_cwr() -> None:
    payload = os.urandom(3000)
    ece = [bytes(tcp_packet(False, payload[i : i + 1000], "EA", seq=1000 + i, ip_id=77 + i // 1000))
           for i in range(0, 3000, 1000)]  # fmt: skip
    out = off.coalesce(ece)
    assert len(out) == 1
    pkt = assert_valid(unwrap(out[0])[1])
    assert str(pkt[TCP].flags) == "AE" and tcp_payload(pkt) == payload
    cwr = [bytes(tcp_packet(False, payload[i : i + 1000], "CA", seq=1000 + i, ip_id=77 + i // 1000))
           for i in range(0, 3000, 1000)]  # fmt: skip
    assert [o[10:] for o in off.coalesce(cwr)] == cwr
