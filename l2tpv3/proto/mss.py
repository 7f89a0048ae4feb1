"""TCP MSS clamping, sans I/O: the rule both implementations follow (C twin: fast/fp_mss.c).

What iptables ``-p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss N`` does on the seed's
tunnel hosts, done by the daemon on the frames of a session (``mss_clamp``), in both
directions: in a TCP SYN or SYN-ACK, an MSS option larger than the session's limit is
lowered to it, and the TCP checksum is fixed incrementally (RFC 1624 eqn. 3).

Frame shapes: Ethernet with 0, 1 or 2 VLAN tags (0x8100 / 0x88a8, QinQ), IPv4 (no
fragments) or IPv6 (hop-by-hop, routing and destination options headers are skipped).
Anything else, or anything malformed (short, bad IHL or lengths, options running off
the end of the TCP header), is left untouched and is never read out of bounds. An MSS
option is only ever lowered, never added (a SYN without one keeps its 536 / 1220 default,
RFC 9293 section 3.7.1, which fits any pseudowire MTU).

Partial checksums: a frame read from a TAP with a virtio-net header may carry
``VIRTIO_NET_HDR_F_NEEDS_CSUM`` (CHECKSUM_PARTIAL): the TCP checksum field then holds the
pseudo-header sum only, and the real checksum is computed later over the bytes as they are
then (fast/offload.c l2o_complete_csum, or segmentation). The pseudo-header does not depend
on the options, so the field must be left alone; the frame is clamped only when the
partial checksum starts at the parsed TCP header with offset 16, else left untouched.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from l2tpv3.constants import MSS_IPV4_OVERHEAD, MSS_IPV6_OVERHEAD, TCP_MIN_MSS

# The setting's canonical forms are checked in config (SessionConfig.mss_clamp).
OFF: Final = "off"
AUTO: Final = "auto"

_ETH_P_IP: Final = 0x0800
_ETH_P_IPV6: Final = 0x86DD
_VLAN_TPIDS: Final = (0x8100, 0x88A8)
_MAX_TAGS: Final = 2
_IPPROTO_TCP: Final = 6
# RFC 8200 section 4: extension headers in the (hdr ext len + 1) * 8 format that may
# precede TCP; a fragment header (44) or anything else ends the search.
_IPV6_EXT: Final = (0, 43, 60)
_MAX_EXT: Final = 8
_TCP_HLEN: Final = 20
_TCP_SYN: Final = 0x02
_TCP_RST: Final = 0x04
_TCPOPT_EOL: Final = 0
_TCPOPT_NOP: Final = 1
_TCPOPT_MSS: Final = 2
_TCPOLEN_MSS: Final = 4
_TCP_CSUM_OFFSET: Final = 16


def setting_code(setting: str) -> int:
    """The C side's form of a canonical setting: 0 off, -1 auto, else the MSS."""
    if setting == OFF:
        return 0
    if setting == AUTO:
        return -1
    return int(setting)


def limits(setting: str, mtu: int) -> tuple[int, int]:
    """(IPv4 limit, IPv6 limit) for a canonical setting and the session's MTU; (0, 0)
    when clamping is off. ``auto`` follows the MTU, floored at TCP_MIN_MSS."""
    code = setting_code(setting)
    if code == 0:
        return 0, 0
    if code > 0:
        return code, code
    return max(TCP_MIN_MSS, mtu - MSS_IPV4_OVERHEAD), max(TCP_MIN_MSS, mtu - MSS_IPV6_OVERHEAD)


class Hit(NamedTuple):
    """Where an MSS option must be lowered: the offset of its value, the offset of the
    TCP header (whose checksum field is at +16), the old and new values, and whether
    the checksum is to be fixed (False: a partial checksum, left alone)."""

    value_offset: int
    tcp_offset: int
    old: int
    new: int
    fix_csum: bool


def _be16(b: bytes | bytearray | memoryview, i: int) -> int:
    return (b[i] << 8) | b[i + 1]


def find(
    frame: bytes | bytearray | memoryview,
    mss4: int,
    mss6: int,
    partial: tuple[int, int] | None = None,
) -> Hit | None:
    """The MSS option of ``frame`` to lower, or None (nothing to do, or not a frame this
    rule may touch). ``partial``: (csum_start, csum_offset) of a NEEDS_CSUM frame."""
    n = len(frame)
    if n < 14:
        return None
    off = 12
    et = _be16(frame, off)
    tags = 0
    while et in _VLAN_TPIDS and tags < _MAX_TAGS:
        if off + 6 > n:
            return None
        off += 4
        et = _be16(frame, off)
        tags += 1
    l3 = off + 2
    if et == _ETH_P_IP:
        limit = mss4
        if l3 + 20 > n or frame[l3] >> 4 != 4:
            return None
        ihl = (frame[l3] & 0x0F) * 4
        total = _be16(frame, l3 + 2)
        if ihl < 20 or total < ihl + _TCP_HLEN or l3 + total > n:
            return None
        if frame[l3 + 9] != _IPPROTO_TCP or _be16(frame, l3 + 6) & 0x3FFF:
            return None  # another protocol, or a fragment (MF or an offset)
        l4 = l3 + ihl
        end = l3 + total
    elif et == _ETH_P_IPV6:
        limit = mss6
        if l3 + 40 > n or frame[l3] >> 4 != 6:
            return None
        plen = _be16(frame, l3 + 4)
        end = l3 + 40 + plen
        if plen == 0 or end > n:
            return None  # a jumbogram, or truncated
        nh = frame[l3 + 6]
        l4 = l3 + 40
        hops = 0
        while nh in _IPV6_EXT:
            if hops == _MAX_EXT or l4 + 8 > end:
                return None
            nh, l4 = frame[l4], l4 + (frame[l4 + 1] + 1) * 8
            hops += 1
        if nh != _IPPROTO_TCP:
            return None
    else:
        return None
    if limit <= 0 or l4 + _TCP_HLEN > end:
        return None
    flags = frame[l4 + 13]
    if not flags & _TCP_SYN or flags & _TCP_RST:
        return None
    doff = (frame[l4 + 12] >> 4) * 4
    if doff < _TCP_HLEN or l4 + doff > end:
        return None
    i = l4 + _TCP_HLEN
    optend = l4 + doff
    while i < optend:
        kind = frame[i]
        if kind == _TCPOPT_EOL:
            return None
        if kind == _TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= optend:
            return None
        olen = frame[i + 1]
        if olen < 2 or i + olen > optend:
            return None
        if kind == _TCPOPT_MSS:
            if olen != _TCPOLEN_MSS:
                return None
            old = _be16(frame, i + 2)
            if old <= limit:
                return None
            fix = True
            if partial is not None:
                # The field holds the pseudo-header sum, which the option does not enter.
                if partial != (l4, _TCP_CSUM_OFFSET):
                    return None
                fix = False
            return Hit(i + 2, l4, old, limit, fix)
        i += olen
    return None


def _swap16(v: int) -> int:
    return ((v & 0xFF) << 8) | (v >> 8)


def csum_replace(check: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), 16-bit one's complement."""
    s = (~check & 0xFFFF) + (~old & 0xFFFF) + new
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def apply(buf: bytearray | memoryview, hit: Hit) -> None:
    """Write ``hit`` into the writable ``buf`` (the frame ``find`` was given)."""
    v = hit.value_offset
    buf[v] = hit.new >> 8
    buf[v + 1] = hit.new & 0xFF
    if not hit.fix_csum:
        return
    old, new = hit.old, hit.new
    if (v - hit.tcp_offset) & 1:
        # The value straddles two 16-bit words of the sum: its bytes count swapped
        # (RFC 1071 section 2(B), byte order independence).
        old, new = _swap16(old), _swap16(new)
    c = hit.tcp_offset + _TCP_CSUM_OFFSET
    check = csum_replace(_be16(buf, c), old, new)
    buf[c] = check >> 8
    buf[c + 1] = check & 0xFF


def clamp(
    buf: bytearray | memoryview,
    mss4: int,
    mss6: int,
    partial: tuple[int, int] | None = None,
) -> bool:
    """Lower the MSS option of the frame in ``buf`` in place; True if it was."""
    hit = find(buf, mss4, mss6, partial)
    if hit is None:
        return False
    apply(buf, hit)
    return True
