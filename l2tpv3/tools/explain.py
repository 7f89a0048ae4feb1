"""``l2tpv3 explain``: every field of an L2TPv3 packet, and what our receiver does with it.

Input is one packet as hex (an IP packet from its IPv4/IPv6 header, or an Ethernet
frame; detected), every packet of a pcap/pcapng file, or either of these read with a
running daemon's tunnel configuration (``tunnel_id ID``). The fields are dissected with
scapy and the project's L2TPv3 layers (:mod:`l2tpv3.tools.scapy_layers`); each is
printed with its offset, bytes, meaning and the RFC section defining it.

What the bytes cannot say (the cookie length, whether the Default L2-Specific Sublayer
is there) comes from the options or from the daemon's session, and the output says
which. The verdict ("delivered", "dropped: unknown_session ...") is not worked out
here: the payload goes through the project's own sans-I/O receive path
(:class:`l2tpv3.proto.tunnel.Tunnel` and :class:`l2tpv3.proto.session.Session`) built
from the same configuration, and the counters it moved are reported by name.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from struct import error as struct_error
from typing import TYPE_CHECKING, Any

from scapy.error import Scapy_Exception
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet
from scapy.utils import RawPcapReader

from l2tpv3.config import (
    Encap,
    IPAddress,
    L2SpecType,
    SeqMode,
    SessionConfig,
    TunnelConfig,
    check_enum,
    parse_cookie,
)
from l2tpv3.constants import (
    COOKIE_LENGTHS,
    ETH_HLEN,
    IPPROTO_L2TP,
    L2SPEC_DEFAULT_LEN,
    L2TP_VERSION_3,
)
from l2tpv3.control import client
from l2tpv3.control.protocol import (
    SaState,
    SessionState,
    ShowSas,
    ShowSessions,
    ShowTunnels,
    TunnelState,
)
from l2tpv3.errors import ConfigError, ControlError, L2TPError, RefusedError
from l2tpv3.proto.session import Session
from l2tpv3.proto.tunnel import Tunnel

if TYPE_CHECKING:
    from l2tpv3.tools.overhead import EspAlg
from l2tpv3.tools.scapy_layers import L2SpecDefault, L2TPv3, L2TPv3UDP, session_format

__all__ = [
    "DaemonView",
    "ExplainError",
    "Explanation",
    "Settings",
    "daemon_view",
    "explain",
    "parse_hex",
    "read_capture",
]

IPPROTO_UDP = 17
IPPROTO_ESP = 50
NAT_T_PORT = 4500  # RFC 3948 §2.1: ESP-in-UDP

ETHERTYPES = {
    0x0800: "IPv4",
    0x0806: "ARP",
    0x86DD: "IPv6",
    0x8100: "802.1Q VLAN tag",
    0x88A8: "802.1ad service VLAN tag",
    0x88CC: "LLDP",
}
VLAN_TPIDS = (0x8100, 0x88A8)
IP_PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 50: "ESP", 58: "ICMPv6", 115: "L2TP"}

# Where each field is defined.
RFC_IPV4 = "RFC 791 §3.1"
RFC_IPV6 = "RFC 8200 §3"
RFC_UDP = "RFC 768"
RFC_L2TP_UDP = "RFC 3931 §4.1.2.1"
RFC_L2TP_IP = "RFC 3931 §4.1.1.1"
RFC_L2TP_IP_CONTROL = "RFC 3931 §4.1.1.2"
RFC_SESSION = "RFC 3931 §4.1"
RFC_SUBLAYER = "RFC 3931 §4.6, RFC 4719 §3"
RFC_ETH = "RFC 4719 §3; IEEE 802.3"
RFC_VLAN = "IEEE 802.1Q §9.6"
RFC_ESP = "RFC 4303 §2"
RFC_NAT_T = "RFC 3948 §2"


class ExplainError(L2TPError):
    """Input that cannot be explained: odd hex, a truncated header, an unreadable file."""


# -- what the receiver is assumed to be --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """The options: how to read what the bytes do not say, and the receiver to judge by.

    ``cookie`` is the cookie the receiver requires (its ``peer_cookie``); when only a
    length is known, the packet's own cookie is taken as the right one.
    """

    cookie_len: int | None = None
    l2spec: L2SpecType | None = None
    cookie: bytes | None = None
    seq: SeqMode = SeqMode.NONE

    def resolved(self) -> tuple[int, bool, str]:
        """Cookie length, sublayer, and where they came from (for the output)."""
        length = len(self.cookie) if self.cookie is not None else self.cookie_len
        given = [
            o for o, v in (("--cookie", self.cookie), ("--cookie-len", self.cookie_len),
                           ("--l2spec", self.l2spec)) if v is not None
        ]  # fmt: skip
        l2spec = self.l2spec or L2SpecType.DEFAULT
        src = f"options {', '.join(given)}" if given else "the defaults of ip l2tp"
        if given and (length is None or self.l2spec is None):
            src += ", defaults for the rest"
        return length or 0, l2spec is L2SpecType.DEFAULT, src


@dataclass(frozen=True, slots=True)
class DaemonView:
    """One tunnel of a running daemon, as ``show`` reports it: what ``tunnel_id`` reads."""

    tunnel: TunnelConfig
    sessions: tuple[SessionConfig, ...]
    mtus: dict[int, int | None] = field(default_factory=dict)


def daemon_view(socket_path: str, tunnel_id: int) -> DaemonView:
    """Ask the daemon for the tunnel and its sessions (ControlError if it cannot)."""
    tunnels: list[TunnelState] = client.call(socket_path, ShowTunnels(tunnel_id))
    match = [t for t in tunnels if t.config.tunnel_id == tunnel_id]
    if not match:
        raise ExplainError(f"l2tpv3d has no tunnel {tunnel_id}")
    sessions: list[SessionState] = client.call(socket_path, ShowSessions(tunnel_id))
    mine = [s for s in sessions if s.config.tunnel_id == tunnel_id]
    return DaemonView(
        match[0].config,
        tuple(s.config for s in mine),
        {s.config.session_id: s.mtu for s in mine},
    )


def daemon_out_sa(socket_path: str, tunnel_id: int) -> tuple[EspAlg, bool] | None:
    """The ESP transform of the tunnel's outbound SA in the daemon (and whether it is in
    UDP), None when it sends in clear or the daemon has no ESP."""
    from l2tpv3.tools import overhead as oh

    try:
        states: list[SaState] | None = client.call(socket_path, ShowSas(tunnel_id))
    except RefusedError:
        return None  # a daemon without ESP (no show_sas operation)
    for st in states or []:
        info = st.info
        if info.get("tunnel_id") != tunnel_id or info.get("dir") != "out":
            continue
        aead, auth = info.get("aead"), info.get("auth")
        name = aead if isinstance(aead, str) else f"cbc(aes)+{auth}"
        if name in oh.ESP_ALGS:
            return oh.ESP_ALGS[name], info.get("encap_dport") is not None
    return None


# -- the output records -------------------------------------------------------------------


@dataclass(slots=True)
class Field:
    offset: int
    length: int
    layer: str
    name: str
    meaning: str
    ref: str
    data: bytes = b""

    def to_json(self) -> dict[str, object]:
        return {
            "offset": self.offset,
            "length": self.length,
            "bytes": self.data.hex(),
            "layer": self.layer,
            "field": self.name,
            "meaning": self.meaning,
            "ref": self.ref,
        }


@dataclass(slots=True)
class Explanation:
    """One packet explained: fields, the summary keys of ``-j``, and the verdict."""

    index: int
    length: int
    link: str  # ipv4 | ipv6 | ether
    fields: list[Field] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    assumed: dict[str, Any] | None = None
    verdict: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"packet": self.index, "length": self.length, "link": self.link}
        out.update(self.summary)
        out["assumed"] = self.assumed
        out["verdict"] = self.verdict
        out["notes"] = self.notes
        out["fields"] = [f.to_json() for f in self.fields]
        return out


_SUMMARY_KEYS = (
    "outer_src", "outer_dst", "encap", "udp_sport", "udp_dport", "control", "session_id",
    "cookie", "l2spec", "s", "seq", "src", "dst", "vlans", "ethertype", "inner", "esp",
)  # fmt: skip


class _Walk:
    """Collects fields over one packet's bytes; offsets are from the packet's start."""

    def __init__(self, data: bytes, out: Explanation) -> None:
        self.data = data
        self.out = out

    def add(self, offset: int, length: int, layer: str, name: str, meaning: str, ref: str) -> None:
        chunk = self.data[offset : offset + length]
        self.out.fields.append(Field(offset, len(chunk), layer, name, meaning, ref, chunk))

    def need(self, offset: int, length: int, what: str) -> None:
        if len(self.data) < offset + length:
            have = max(0, len(self.data) - offset)
            raise ExplainError(
                f"packet truncated: {what} needs {length} bytes at offset {offset}, {have} left"
            )


# -- input ----------------------------------------------------------------------------------

_OFFSET_COLUMN = re.compile(r"^\s*(?:0x)?[0-9a-fA-F]{4,8}(?::|\s{2,})")


def parse_hex(text: str) -> bytes:
    """Hex digits as typed or pasted: spaces, colons, ``0x``, and the offset column of
    ``tcpdump -x``/hexdump lines (``0000  45 00 ...``) are allowed; an ASCII column is not."""
    digits: list[str] = []
    for line in text.splitlines():
        line = _OFFSET_COLUMN.sub("", line, count=1) if len(text.splitlines()) > 1 else line
        line = line.replace("0x", " ").replace("0X", " ")
        digits.append(re.sub(r"[\s:.-]", "", line))
    hexstr = "".join(digits)
    if not hexstr:
        raise ExplainError("no packet: give hex digits, - for stdin, or -r FILE")
    bad = re.search(r"[^0-9a-fA-F]", hexstr)
    if bad:
        raise ExplainError(f"not hex: {bad.group()!r} in the packet")
    if len(hexstr) % 2:
        raise ExplainError(f"odd number of hex digits ({len(hexstr)}): a byte is cut in half")
    return bytes.fromhex(hexstr)


# pcap link types (tcpdump.org/linktypes.html): bytes before the IP header, or Ethernet.
LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW = 0, 1, 101
LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2 = 113, 228, 229, 276
_LINK_SKIP = {LINKTYPE_NULL: 4, LINKTYPE_RAW: 0, LINKTYPE_IPV4: 0, LINKTYPE_IPV6: 0,
              LINKTYPE_LINUX_SLL: 16, LINKTYPE_LINUX_SLL2: 20}  # fmt: skip


def read_capture(path: str) -> list[tuple[bytes, str | None]]:
    """Every packet of a pcap or pcapng file, with ``"ether"`` or ``"ip"`` as its start."""
    try:
        fobj = open(path, "rb")  # noqa: SIM115 - closed below, also when scapy refuses it
    except OSError as exc:
        raise ExplainError(f"cannot read {path}: {_reason(exc)}") from None
    out: list[tuple[bytes, str | None]] = []
    quiet = logging.getLogger("scapy.runtime")
    level = quiet.level
    # scapy warns on stderr about a truncated record; we say it in our one line instead.
    quiet.setLevel(logging.ERROR)
    try:
        with fobj:
            reader = RawPcapReader(fobj)  # type: ignore[arg-type]  # a file object is allowed
            for data, meta in reader:
                caplen = getattr(meta, "caplen", len(data))
                if len(data) < caplen:
                    raise ExplainError(
                        f"{path}: packet {len(out) + 1} is cut off: the file ends inside it"
                    )
                linktype = getattr(meta, "linktype", None)
                if linktype is None:
                    linktype = getattr(reader, "linktype", LINKTYPE_ETHERNET)
                if linktype == LINKTYPE_ETHERNET:
                    out.append((bytes(data), "ether"))
                elif linktype in _LINK_SKIP:
                    out.append((bytes(data)[_LINK_SKIP[linktype] :], "ip"))
                else:
                    raise ExplainError(f"{path}: link type {linktype} is not supported")
    except (OSError, Scapy_Exception, EOFError, ValueError, struct_error) as exc:
        raise ExplainError(f"cannot read {path}: {_reason(exc)}") from None
    finally:
        quiet.setLevel(level)
    return out


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def detect(data: bytes) -> str:
    """``ether``, ``ipv4`` or ``ipv6``: an Ethernet frame carrying IP is recognised by
    its EtherType and the version nibble after it; anything else by its own first nibble."""
    if len(data) >= ETH_HLEN + 1:
        off = 12
        etype = int.from_bytes(data[off : off + 2], "big")
        while etype in VLAN_TPIDS and len(data) >= off + 6:
            off += 4
            etype = int.from_bytes(data[off : off + 2], "big")
        body = data[off + 2 : off + 3]
        if body and (
            (etype == 0x0800 and body[0] >> 4 == 4) or (etype == 0x86DD and body[0] >> 4 == 6)
        ):
            return "ether"
    if data and data[0] >> 4 == 4:
        return "ipv4"
    if data and data[0] >> 4 == 6:
        return "ipv6"
    if len(data) >= ETH_HLEN:
        return "ether"
    raise ExplainError(f"{len(data)} bytes: neither an IPv4/IPv6 packet nor an Ethernet frame")


# -- the explainer --------------------------------------------------------------------------


def _hexs(data: bytes) -> str:
    return data.hex()


def _mac(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


def explain(
    data: bytes,
    settings: Settings | None = None,
    daemon: DaemonView | None = None,
    link: str | None = None,
    index: int = 1,
) -> Explanation:
    """Explain one packet. ``link`` ``"ether"`` or ``"ip"`` skips detection (pcap files
    say it); ExplainError for what cannot be read."""
    settings = settings or Settings()
    if link == "ether":
        kind = "ether"
    elif link == "ip":
        version = data[0] >> 4 if data else 0
        if version not in (4, 6):
            raise ExplainError(f"not an IP packet: version nibble {version}, not 4 or 6")
        kind = f"ipv{version}"
    else:
        kind = detect(data)
    out = Explanation(index, len(data), kind)
    walk = _Walk(data, out)
    try:
        _explain(walk, kind, settings, daemon)
    except (Scapy_Exception, struct_error, IndexError) as exc:
        raise ExplainError(f"packet {index}: cannot dissect: {_reason(exc)}") from None
    for key in _SUMMARY_KEYS:
        out.summary.setdefault(key, None)
    return out


def _explain(walk: _Walk, kind: str, settings: Settings, daemon: DaemonView | None) -> None:
    out = walk.out
    off = 0
    if kind == "ether":
        walk.need(0, ETH_HLEN, "the outer Ethernet header")
        off, etype, _ = _ethernet(walk, 0, "outer Ethernet", outer=True)
        if etype not in (0x0800, 0x86DD):
            out.notes.append(f"not an IP packet: EtherType 0x{etype:04x}, nothing more to read")
            out.verdict = {"action": "not-l2tp", "reason": "not IP"}
            return
    data = walk.data
    walk.need(off, 1, "the IP header")
    version = data[off] >> 4
    if version == 4:
        l4, proto, src, dst, end = _ipv4(walk, off)
    elif version == 6:
        l4, proto, src, dst, end = _ipv6(walk, off)
    else:
        raise ExplainError(f"IP version {version} at offset {off}: not IPv4 or IPv6")
    out.summary["outer_src"], out.summary["outer_dst"] = str(src), str(dst)
    if end < len(data):
        walk.add(end, len(data) - end, "trailer", "padding",
                 f"{len(data) - end} bytes after the IP packet (link-layer padding), ignored",
                 RFC_IPV4 if version == 4 else RFC_IPV6)  # fmt: skip
    data = data[:end]
    walk.data = data
    if proto == IPPROTO_UDP:
        walk.need(l4, 8, "the UDP header")
        udp = UDP(data[l4 : l4 + 8])
        sport, dport = int(udp.sport), int(udp.dport)
        walk.add(l4, 2, "UDP", "source port", str(sport), RFC_UDP)
        walk.add(l4 + 2, 2, "UDP", "destination port", str(dport), RFC_UDP)
        walk.add(l4 + 4, 2, "UDP", "length", f"{udp.len} (header 8 + payload {int(udp.len) - 8})",
                 RFC_UDP)  # fmt: skip
        csum = int(udp.chksum)
        walk.add(l4 + 6, 2, "UDP", "checksum",
                 f"0x{csum:04x}" + (" (none: udp_csum off, IPv4 only, RFC 3931 §4.1.2.3)"
                                    if csum == 0 else ""), RFC_UDP)  # fmt: skip
        out.summary["udp_sport"], out.summary["udp_dport"] = sport, dport
        payload_at = l4 + 8
        if NAT_T_PORT in (sport, dport) and data[payload_at : payload_at + 4] != b"\0\0\0\0":
            out.summary["encap"] = "espinudp"
            _esp(walk, payload_at, nat_t=True)
            return
        out.summary["encap"] = "udp"
        _l2tp(walk, payload_at, Encap.UDP, (src, sport, dst, dport), settings, daemon)
    elif proto == IPPROTO_L2TP:
        out.summary["encap"] = "ip"
        _l2tp(walk, l4, Encap.IP, (src, 0, dst, 0), settings, daemon)
    elif proto == IPPROTO_ESP:
        out.summary["encap"] = "esp"
        _esp(walk, l4, nat_t=False)
    else:
        name = IP_PROTOCOLS.get(proto, "")
        out.notes.append(f"not L2TPv3: IP protocol {proto} {name}".rstrip())
        out.verdict = {"action": "not-l2tp", "reason": f"IP protocol {proto}"}


def _ethernet(walk: _Walk, off: int, layer: str, outer: bool) -> tuple[int, int, list[int]]:
    """Ethernet header and VLAN tags at ``off``: (offset after them, EtherType, VIDs)."""
    data = walk.data
    eth = Ether(data[off : off + ETH_HLEN])
    ref = "IEEE 802.3" if outer else RFC_ETH
    walk.add(off, 6, layer, "destination MAC", str(eth.dst) + _mac_kind(data[off]), ref)
    walk.add(off + 6, 6, layer, "source MAC", str(eth.src), ref)
    # Not eth.type: scapy reads a value up to 1500 as an 802.3 length (Dot3).
    etype = int.from_bytes(data[off + 12 : off + 14], "big")
    pos = off + 12
    vids: list[int] = []
    while etype in VLAN_TPIDS:
        walk.add(pos, 2, layer, "TPID", f"0x{etype:04x}: {ETHERTYPES[etype]} follows", RFC_VLAN)
        walk.need(pos + 2, 4, "the VLAN tag")
        tag = Dot1Q(data[pos + 2 : pos + 6])
        vids.append(int(tag.vlan))
        walk.add(pos + 2, 2, layer, "VLAN TCI",
                 f"priority {tag.prio}, DEI {tag.dei}, VLAN ID {tag.vlan}", RFC_VLAN)  # fmt: skip
        pos += 4
        etype = int.from_bytes(data[pos : pos + 2], "big")
    kind = ETHERTYPES.get(etype, "") if etype > 1500 else "(an 802.3 length, not a type)"
    walk.add(pos, 2, layer, "EtherType", f"0x{etype:04x} {kind}".rstrip(), ref)
    return pos + 2, etype, vids


def _mac_kind(first: int) -> str:
    if first == 0xFF:
        return " (broadcast)"
    if first & 1:
        return " (multicast)"
    return ""


def _ipv4(walk: _Walk, off: int) -> tuple[int, int, IPAddress, IPAddress, int]:
    data = walk.data
    walk.need(off, 20, "the IPv4 header")
    ip = IP(data[off : off + 20])
    ihl = int(ip.ihl) * 4
    if ihl < 20:
        raise ExplainError(f"IPv4 header length {ihl} at offset {off}: less than 20")
    walk.need(off, ihl, "the IPv4 header with its options")
    total = int(ip.len)
    if total < ihl or off + total > len(data):
        raise ExplainError(
            f"packet truncated: IPv4 total length {total}, {len(data) - off} bytes present"
        )
    L = "outer IPv4"
    walk.add(off, 1, L, "version, IHL", f"version 4, header {ihl} bytes", RFC_IPV4)
    walk.add(off + 1, 1, L, "DSCP, ECN", f"DSCP {int(ip.tos) >> 2}, ECN {int(ip.tos) & 3}",
             "RFC 2474 §3, RFC 3168 §5")  # fmt: skip
    walk.add(off + 2, 2, L, "total length", str(total), RFC_IPV4)
    walk.add(off + 4, 2, L, "identification", f"0x{int(ip.id):04x}", RFC_IPV4)
    flags = int.from_bytes(data[off + 6 : off + 8], "big")
    df = "DF=1" if flags & 0x4000 else "DF=0 (may be fragmented, as the kernel sends)"
    walk.add(off + 6, 2, L, "flags, fragment offset",
             f"{df}, MF={int(bool(flags & 0x2000))}, offset {(flags & 0x1FFF) * 8}",
             RFC_IPV4)  # fmt: skip
    walk.add(off + 8, 1, L, "TTL", str(ip.ttl), RFC_IPV4)
    proto = int(ip.proto)
    walk.add(off + 9, 1, L, "protocol", _proto_meaning(proto), RFC_IPV4)
    walk.add(off + 10, 2, L, "header checksum", f"0x{int(ip.chksum):04x}", RFC_IPV4)
    walk.add(off + 12, 4, L, "source address", str(ip.src), RFC_IPV4)
    walk.add(off + 16, 4, L, "destination address", str(ip.dst), RFC_IPV4)
    if ihl > 20:
        walk.add(off + 20, ihl - 20, L, "options", f"{ihl - 20} bytes (skipped by the IHL)",
                 RFC_IPV4)  # fmt: skip
    if flags & 0x3FFF:
        walk.out.notes.append("a fragment: the receiver's IP stack reassembles it first")
    src, dst = ipaddress.IPv4Address(ip.src), ipaddress.IPv4Address(ip.dst)
    return off + ihl, proto, src, dst, off + total


def _ipv6(walk: _Walk, off: int) -> tuple[int, int, IPAddress, IPAddress, int]:
    data = walk.data
    walk.need(off, 40, "the IPv6 header")
    ip = IPv6(data[off : off + 40])
    plen = int(ip.plen)
    if off + 40 + plen > len(data):
        raise ExplainError(
            f"packet truncated: IPv6 payload length {plen}, {len(data) - off - 40} bytes present"
        )
    L = "outer IPv6"
    walk.add(off, 4, L, "version, traffic class, flow label",
             f"version 6, traffic class 0x{int(ip.tc):02x}, flow label 0x{int(ip.fl):05x}",
             RFC_IPV6)  # fmt: skip
    walk.add(off + 4, 2, L, "payload length", str(plen), RFC_IPV6)
    proto = int(ip.nh)
    walk.add(off + 6, 1, L, "next header", _proto_meaning(proto), RFC_IPV6)
    walk.add(off + 7, 1, L, "hop limit", str(ip.hlim), RFC_IPV6)
    walk.add(off + 8, 16, L, "source address", str(ip.src), RFC_IPV6)
    walk.add(off + 24, 16, L, "destination address", str(ip.dst), RFC_IPV6)
    src, dst = ipaddress.IPv6Address(ip.src), ipaddress.IPv6Address(ip.dst)
    return off + 40, proto, src, dst, off + 40 + plen


def _proto_meaning(proto: int) -> str:
    extra = {
        IPPROTO_UDP: ": L2TPv3 over UDP follows (encap udp)",
        IPPROTO_L2TP: ": L2TPv3 directly over IP (encap ip)",
        IPPROTO_ESP: ": ESP, encrypted",
    }.get(proto, "")
    return f"{proto} {IP_PROTOCOLS.get(proto, '')}".rstrip() + extra


def _esp(walk: _Walk, off: int, nat_t: bool) -> None:
    out = walk.out
    walk.need(off, 8, "the ESP header")
    data = walk.data
    spi = int.from_bytes(data[off : off + 4], "big")
    seq = int.from_bytes(data[off + 4 : off + 8], "big")
    if nat_t:
        out.notes.append("UDP port 4500 with a non-zero first word: ESP in UDP (NAT traversal)")
    walk.add(off, 4, "ESP", "SPI", f"0x{spi:08x}: selects the receiver's SA", "RFC 4303 §2.1")
    walk.add(off + 4, 4, "ESP", "sequence number", f"{seq}: per SA, from 1, anti-replay",
             "RFC 4303 §2.2")  # fmt: skip
    rest = len(data) - off - 8
    walk.add(off + 8, rest, "ESP", "IV, encrypted payload, padding, pad length, next header, ICV",
             f"{rest} bytes: the L2TPv3 datagram, readable only with the SA's key",
             "RFC 4303 §2.3-§2.8")  # fmt: skip
    out.summary["esp"] = {"spi": spi, "seq": seq, "nat_t": nat_t}
    out.verdict = {
        "action": "encrypted",
        "reason": "ESP: the L2TPv3 header is inside the encrypted payload",
    }


def _l2tp(
    walk: _Walk,
    start: int,
    encap: Encap,
    endpoints: tuple[IPAddress, int, IPAddress, int],
    settings: Settings,
    daemon: DaemonView | None,
) -> None:
    out = walk.out
    data = walk.data
    payload = data[start:]
    udp = encap is Encap.UDP
    ref_hdr = RFC_L2TP_UDP if udp else RFC_L2TP_IP
    L = "L2TPv3"
    sid_at = start + (4 if udp else 0)
    control = False
    if udp and len(payload) >= 4:
        word = L2TPv3UDP(payload[:4])
        t, ver = int(word.T), int(word.version)
        bits = int.from_bytes(payload[:2], "big")
        meaning = (
            f"T={t} L={bits >> 14 & 1} S={bits >> 11 & 1} version {ver}: "
            + ("data message" if t == 0 and ver == L2TP_VERSION_3 else
               "control message (T=1)" if ver == L2TP_VERSION_3 else
               f"not L2TPv3 (version {ver}" + (", L2TPv2 RFC 2661)" if ver == 2 else ")"))
        )  # fmt: skip
        walk.add(start, 2, L, "T/L/S flags, version", meaning, ref_hdr)
        walk.add(start + 2, 2, L, "reserved", f"0x{int(word.reserved2):04x}", ref_hdr)
        control = t == 1 or ver != L2TP_VERSION_3
    sid: int | None = None
    if not control and len(data) >= sid_at + 4:
        sid = int.from_bytes(data[sid_at : sid_at + 4], "big")
        control = not udp and sid == 0
    out.summary["session_id"] = sid
    out.summary["control"] = control
    rx = _receiver(encap, endpoints, sid, settings, daemon)
    cookie_len, l2spec = rx.cookie_len, rx.l2spec
    out.assumed = {"cookie_len": cookie_len, "l2spec": "default" if l2spec else "none",
                   "from": rx.source}  # fmt: skip
    if sid is not None:
        what = (
            "0 over IP: a control message follows" if control else
            f"{sid} (0x{sid:08x}): the receiver's session_id, its peer's peer_session_id"
        )  # fmt: skip
        ref = RFC_L2TP_IP_CONTROL if control else f"{RFC_SESSION}, {ref_hdr.split()[-1]}"
        walk.add(sid_at, 4, L, "session ID", what, ref)
    out.verdict = _judge(rx, encap, endpoints, payload, sid)
    if control or sid is None:
        if sid is None and not control:
            out.notes.append("too short for the session ID")
        return
    pos = sid_at + 4
    with session_format(cookie_len, l2spec):
        pkt: Packet = L2TPv3UDP(payload) if udp else L2TPv3(payload)
    if cookie_len:
        cookie = bytes(pkt[L2TPv3].cookie) if L2TPv3 in pkt else b""
        if len(cookie) < cookie_len:
            walk.add(
                pos,
                len(cookie),
                L,
                "cookie (cut short)",
                f"{len(cookie)} of {cookie_len} bytes ({rx.cookie_from})",
                RFC_SESSION,
            )
            out.summary["cookie"] = cookie.hex()
            return
        want = rx.expected_cookie
        check = "" if want is None else (
            ": matches the receiver's peer_cookie" if want == cookie else
            f": the receiver requires {want.hex()} (its peer_cookie)"
        )  # fmt: skip
        walk.add(
            pos,
            cookie_len,
            L,
            "cookie",
            f"{cookie.hex()} ({cookie_len} bytes, {rx.cookie_from}){check}",
            RFC_SESSION,
        )
        out.summary["cookie"] = cookie.hex()
        pos += cookie_len
    else:
        out.summary["cookie"] = ""
    out.summary["l2spec"] = "default" if l2spec else "none"
    if l2spec:
        if L2SpecDefault not in pkt or len(data) < pos + L2SPEC_DEFAULT_LEN:
            walk.add(pos, len(data) - pos, L, "L2-Specific Sublayer (cut short)",
                     f"{len(data) - pos} of 4 bytes", RFC_SUBLAYER)  # fmt: skip
            return
        sub = pkt[L2SpecDefault]
        s_bit, seq = bool(sub.S), int(sub.seq)
        sub_word = int.from_bytes(data[pos : pos + 4], "big")
        meaning = (
            f"0x{sub_word:08x}: S=1, sequence number {seq}" if s_bit else
            f"0x{sub_word:08x}: S=0, no sequence number (the 24 bits are ignored)"
        )  # fmt: skip
        walk.add(pos, 4, L, "Default L2-Specific Sublayer", meaning, RFC_SUBLAYER)
        out.summary["s"] = s_bit
        out.summary["seq"] = seq if s_bit else None
        if s_bit:
            out.notes.append(
                "the receiver's verdict on sequence numbers is that of a fresh session "
                "(expecting 0): a running session's state is not known here"
            )
        pos += L2SPEC_DEFAULT_LEN
    else:
        out.summary["s"] = None
        out.summary["seq"] = None
    if len(data) - pos < ETH_HLEN:
        if len(data) > pos:
            walk.add(
                pos,
                len(data) - pos,
                "inner Ethernet",
                "frame (cut short)",
                f"{len(data) - pos} bytes: less than an Ethernet header",
                RFC_ETH,
            )
        return
    _inner(walk, pos)


def _inner(walk: _Walk, pos: int) -> None:
    out = walk.out
    data = walk.data
    L = "inner Ethernet"
    after, etype, vids = _ethernet(walk, pos, L, outer=False)
    frame = data[pos:]
    out.summary["dst"] = _mac(frame[0:6])
    out.summary["src"] = _mac(frame[6:12])
    out.summary["ethertype"] = f"0x{etype:04x}"
    out.summary["vlans"] = vids
    body = data[after:]
    inner, ref = _inner_summary(etype, body)
    if body:
        walk.add(after, len(body), "inner payload", ETHERTYPES.get(etype, "payload"),
                 inner, ref)  # fmt: skip
    out.summary["inner"] = inner


def _inner_summary(etype: int, body: bytes) -> tuple[str, str]:
    n = len(body)
    try:
        if etype == 0x0806 and n >= 28:
            arp = ARP(body)
            op = {1: "request", 2: "reply"}.get(int(arp.op), f"op {arp.op}")
            return (f"ARP {op} sha={arp.hwsrc} spa={arp.psrc} tha={arp.hwdst} "
                    f"tpa={arp.pdst} ({n} bytes)", "RFC 826")  # fmt: skip
        if etype == 0x0800 and n >= 20:
            ip = IP(body)
            text = f"IPv4 {ip.src} > {ip.dst} proto {ip.proto} len {ip.len}"
            return text + _l4_summary(ip), "RFC 791"
        if etype == 0x86DD and n >= 40:
            ip6 = IPv6(body)
            text = f"IPv6 {ip6.src} > {ip6.dst} next header {ip6.nh} payload {ip6.plen}"
            return text + _l4_summary(ip6), "RFC 8200"
    except (Scapy_Exception, struct_error, IndexError):
        pass
    return f"{n} bytes", RFC_ETH


def _l4_summary(ip: Packet) -> str:
    if TCP in ip:
        tcp = ip[TCP]
        mss = [v for k, v in (tcp.options or []) if k == "MSS"]
        extra = f", MSS option {mss[0]}" if mss else ""
        return (f"; TCP {tcp.sport} > {tcp.dport} flags {tcp.flags} seq {tcp.seq} "
                f"ack {tcp.ack} win {tcp.window}{extra} (RFC 9293)")  # fmt: skip
    if UDP in ip:
        u = ip[UDP]
        return f"; UDP {u.sport} > {u.dport} len {u.len} (RFC 768)"
    if ICMP in ip:
        c = ip[ICMP]
        return f"; ICMP type {c.type} code {c.code} id 0x{int(c.id):04x} seq {c.seq} (RFC 792)"
    if ip.payload and ip.payload.name not in ("Raw", "Padding", "NoPayload"):
        return f"; {ip.payload.name}"
    return ""


# -- the receiver, and its verdict ----------------------------------------------------------


_DOC_ADDRESSES = {
    4: (ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("192.0.2.2")),
    6: (ipaddress.ip_address("2001:db8::1"), ipaddress.ip_address("2001:db8::2")),
}


@dataclass(slots=True)
class _Receiver:
    cookie_len: int
    l2spec: bool
    source: str
    cookie_from: str
    expected_cookie: bytes | None
    tunnel: TunnelConfig | None  # None: the packet is not for this tunnel / sent by us
    sessions: list[SessionConfig]
    mtus: dict[int, int | None]
    role: str  # options | receive | sent | foreign | elsewhere
    seq: SeqMode = SeqMode.NONE  # the receiver's seq option (options only)


def _receiver(
    encap: Encap,
    endpoints: tuple[IPAddress, int, IPAddress, int],
    sid: int | None,
    settings: Settings,
    daemon: DaemonView | None,
) -> _Receiver:
    src, sport, dst, dport = endpoints
    if daemon is None:
        cookie_len, l2spec, source = settings.resolved()
        fam = src.version
        local, remote = _DOC_ADDRESSES[fam]
        udp = encap is Encap.UDP
        tunnel = TunnelConfig(1, 1, local, remote, encap,
                              udp_sport=1701 if udp else None,
                              udp_dport=1702 if udp else None)  # fmt: skip
        return _Receiver(cookie_len, l2spec, source,
                         "length from " + ("--cookie" if settings.cookie is not None
                                           else "--cookie-len" if settings.cookie_len
                                           is not None else "the default"),
                         settings.cookie, tunnel, [], {}, "options", settings.seq)  # fmt: skip
    t = daemon.tunnel
    name = f"l2tpv3d tunnel {t.tunnel_id}"
    udp = t.encap is Encap.UDP
    if t.encap is not encap:
        # Another tunnel's kind of packet (a capture holds all sorts): its socket never
        # sees it; read it with the options.
        packet = "UDP" if encap is Encap.UDP else "IP protocol 115"
        return _fallback(settings, name, "elsewhere", f"encap {t.encap.value}, not {packet}")
    sent = src == t.local and dst == t.remote and (not udp or (sport, dport) ==
                                                   (t.udp_sport, t.udp_dport))  # fmt: skip
    if sent:
        mine = [s for s in daemon.sessions if s.peer_session_id == sid]
        if mine:
            s = mine[0]
            return _Receiver(len(s.cookie), s.l2spec_type is L2SpecType.DEFAULT,
                             f"{name} session {s.session_id} (sent by it: its cookie, "
                             "l2spec_type)", "its cookie", s.cookie, None, [], {},
                             "sent")  # fmt: skip
        return _fallback(settings, name, "sent", f"no session sends session ID {sid}")
    mine = [s for s in daemon.sessions if s.session_id == sid]
    to_us = (dst == t.local or t.local.is_unspecified) and (not udp or dport == t.udp_sport)
    from_peer = src == t.remote and (not udp or sport == t.udp_dport)
    role = "receive" if to_us and from_peer else "foreign" if to_us else "elsewhere"
    if mine:
        s = mine[0]
        return _Receiver(len(s.peer_cookie), s.l2spec_type is L2SpecType.DEFAULT,
                         f"{name} session {s.session_id} (its peer_cookie, l2spec_type)",
                         "its peer_cookie", s.peer_cookie, t, list(daemon.sessions),
                         dict(daemon.mtus), role)  # fmt: skip
    rx = _fallback(settings, name, role, f"tunnel {t.tunnel_id} has no session {sid}")
    rx.tunnel, rx.sessions, rx.mtus = t, list(daemon.sessions), dict(daemon.mtus)
    return rx


def _fallback(settings: Settings, name: str, role: str, why: str) -> _Receiver:
    cookie_len, l2spec, source = settings.resolved()
    return _Receiver(cookie_len, l2spec, f"{source} ({name}: {why})", "length from the options",
                     None, None, [], {}, role)  # fmt: skip


# What each counter the receive path moved means, for the verdict.
_COUNTER_MEANING = {
    "tunnel.drops.too_short": "too short for the L2TP header (UDP 8 bytes, IP 4)",
    "tunnel.drops.bad_version": "the version field is not 3 (RFC 3931 §4.1.2.1)",
    "tunnel.drops.control_message": "a control message: unmanaged tunnels have no control "
    "connection (RFC 3931 §4.1.2.1 T bit, §4.1.1.2 session ID 0)",
    "tunnel.drops.unknown_session": "no session with this session ID in the tunnel",
    "tunnel.drops.wrong_source": "not from the tunnel's remote address (and udp_dport)",
    "session.rx_cookie_discards": "the cookie differs from the session's peer_cookie "
    "(RFC 3931 §4.1: MUST be discarded)",
    "session.rx_seq_discards": "the sequencing rules refuse it (seq recv or LAC mode, "
    "RFC 3931 §4.6.1; docs/protocol.md §6)",
    "session.rx_errors": "shorter than the session's header (session ID, cookie, sublayer)",
    "session.drops.frame_too_short": "the frame is shorter than an Ethernet header",
    "session.drops.frame_too_long": "the frame is longer than the device's MTU + 18",
}


def _judge(
    rx: _Receiver,
    encap: Encap,
    endpoints: tuple[IPAddress, int, IPAddress, int],
    payload: bytes,
    sid: int | None,
) -> dict[str, Any]:
    src = endpoints[0]
    if rx.role == "sent":
        return {
            "action": "sent",
            "reason": "sent by this tunnel (source is its local "
            "address): not run through the receive path",
            "counters": {},
        }
    if rx.role == "elsewhere" or rx.tunnel is None:
        return {"action": "not-for-tunnel", "reason": "addressed to another address or port "
                "than this tunnel's local/udp_sport: its socket never sees it",
                "counters": {}}  # fmt: skip
    tunnel = Tunnel(rx.tunnel)
    sessions: dict[int, Session] = {}
    if rx.role == "options":
        if sid:
            cookie = rx.expected_cookie
            if cookie is None:
                got = payload[(8 if encap is Encap.UDP else 4) :][: rx.cookie_len]
                cookie = got.ljust(rx.cookie_len, b"\0") if rx.cookie_len else b""
            cfg = SessionConfig(1, sid, 1, peer_cookie=cookie,
                                l2spec_type=L2SpecType.DEFAULT if rx.l2spec else
                                L2SpecType.NONE,
                                seq=rx.seq)  # fmt: skip
            sessions[sid] = Session(rx.tunnel, cfg)
    else:
        for cfg in rx.sessions:
            sess = Session(rx.tunnel, cfg)
            mtu = rx.mtus.get(cfg.session_id)
            if mtu:
                sess.set_mtu(mtu)
            sessions[cfg.session_id] = sess
    for sess in sessions.values():
        tunnel.add(sess)
    target = sessions.get(sid or 0)
    before = _snapshot(tunnel, target)
    frames: list[Any] = []
    if rx.role == "foreign":
        tunnel.receive_foreign(payload, str(src))
    else:
        _, frames = tunnel.receive(payload, 0.0)
    after = _snapshot(tunnel, target)
    moved = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    if frames:
        n = len(bytes(frames[0]))
        return {"action": "deliver", "reason": f"a {n}-byte frame goes to the session's "
                "l2tpethN device", "counters": moved}  # fmt: skip
    if target is not None and target.held:
        return {"action": "hold", "reason": "held in the reorder queue, waiting for an "
                "earlier sequence number", "counters": moved}  # fmt: skip
    named = [k for k in moved if "drops." in k] or [
        k for k in ("session.rx_cookie_discards", "session.rx_seq_discards",
                    "session.rx_errors") if k in moved
    ]  # fmt: skip
    if not named:
        return {"action": "drop", "reason": "dropped", "counters": moved}
    key = named[0]
    why = _COUNTER_MEANING.get(key, "")
    # Long enough, right cookie: the sequencing refused it without a count of its own, as
    # the kernel's l2tp_seq_check_rx_window does.
    if (
        key == "session.rx_errors"
        and target is not None
        and len(payload) >= target.layout.rx_header_len
    ):
        why = ("the sequence number is outside the receive window (kernel "
                   "l2tp_seq_check_rx_window; docs/protocol.md §6)")  # fmt: skip
    return {"action": "drop", "reason": key.rsplit(".", 1)[1], "counter": key, "why": why,
            "counters": moved}  # fmt: skip


def _snapshot(tunnel: Tunnel, session: Session | None) -> dict[str, int]:
    snap = {f"tunnel.{k}": v for k, v in tunnel.counters.as_dict().items()}
    snap.update({f"tunnel.drops.{k}": v for k, v in tunnel.drops.items()})
    if session is not None:
        snap.update({f"session.{k}": v for k, v in session.counters.as_dict().items()})
        snap.update({f"session.drops.{k}": v for k, v in session.drops.items()})
    return snap


# -- text output ----------------------------------------------------------------------------


def _shown(data: bytes) -> str:
    text = " ".join(f"{b:02x}" for b in data[:10])
    return text + " .." if len(data) > 10 else text


_LINKS = {"ipv4": "an IPv4 packet", "ipv6": "an IPv6 packet", "ether": "an Ethernet frame"}


def render(ex: Explanation) -> str:
    lines = [f"packet {ex.index}: {ex.length} bytes, {_LINKS.get(ex.link, ex.link)}"]
    if ex.assumed is not None:
        a = ex.assumed
        sub = "Default L2-Specific Sublayer" if a["l2spec"] == "default" else "no sublayer"
        lines.append(
            f"read with: cookie {a['cookie_len']} bytes, {sub} (from {a['from']}); "
            "the bytes cannot say these"
        )
    lines.append(f"{'offset':>6}  {'bytes':<30} {'field':<44} meaning  [defined in]")
    for f in ex.fields:
        name = f"{f.layer} {f.name}"
        lines.append(f"{f.offset:>6}  {_shown(f.data):<30} {name:<44} {f.meaning}  [{f.ref}]")
    for note in ex.notes:
        lines.append(f"note: {note}")
    v = ex.verdict
    if v:
        lines.append(_verdict_line(v))
    return "\n".join(lines) + "\n"


def _verdict_line(v: dict[str, Any]) -> str:
    moved = v.get("counters") or {}
    counted = ", ".join(f"{k} +{n}" for k, n in moved.items())
    counted = f" (counted: {counted})" if counted else ""
    action = v.get("action")
    if action == "deliver":
        return f"receiver: accepts it: {v['reason']}{counted}"
    if action == "hold":
        return f"receiver: {v['reason']}{counted}"
    if action == "drop":
        why = f": {v['why']}" if v.get("why") else ""
        return f"receiver: DROPS it, reason {v['reason']}{why}{counted}"
    if action == "not-l2tp":
        return f"receiver: not L2TPv3 ({v['reason']}): no tunnel socket receives it"
    return f"receiver: {v.get('reason', action)}"


# -- the command ----------------------------------------------------------------------------

USAGE = """\
Usage: l2tpv3 [ -j ] explain [ --cookie-len { 0 | 4 | 8 } | --cookie HEXSTR ]
                 [ --l2spec { none | default } ] [ --seq { none | send | recv | both } ]
                 [ --link { ether | ip } ] [ -j ]
                 { HEX... | - | -r FILE } [ tunnel_id ID ]
       l2tpv3 [ -j ] explain --overhead [ encap { udp | ip } ] [ ipv4 | ipv6 ]
                 [ local ADDR remote ADDR ] [ cookie HEXSTR | cookie_len { 0 | 4 | 8 } ]
                 [ l2spec_type { none | default } ] [ seq MODE ] [ mtu PATH_MTU ]
                 [ esp ALG [ espinudp ] ] [ tunnel_id ID [ session_id ID ] ]

Explains one packet (hex: an IP packet from its IPv4/IPv6 header, or an Ethernet
frame; - reads the hex from stdin) or every packet of a pcap/pcapng FILE: each field
with its offset, bytes, meaning and RFC section, and what l2tpv3d's receive path does
with it. The cookie length and sublayer come from the options (defaults: no cookie,
default sublayer), or with tunnel_id ID from that tunnel's sessions in the running
l2tpv3d. --overhead prints the encapsulation arithmetic (MTU, MSS, overhead).
ALG := { rfc4106(gcm(aes)) | rfc7539esp(chacha20,poly1305) | cbc(aes)+hmac(sha256) |
         cbc(aes)+hmac(sha1) | aes-gcm | chacha20poly1305 | aes128-sha1 | ... }
See docs/usage.md, "Explaining packets".
"""

EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE = 0, 1, 2


class _Help(Exception):
    """Print the usage: status 0 when asked for, 2 when the command is incomplete."""

    def __init__(self, explicit: bool = True) -> None:
        self.explicit = explicit
        super().__init__()


def _error(message: object) -> None:
    text = " ".join(str(message).split()) or "unknown error"
    print(f"Error: {text}", file=sys.stderr)


def run(argv: Sequence[str], socket_path: str, as_json: bool = False) -> int:
    """``l2tpv3 explain ...``; returns the exit status. Errors are one line, never a
    traceback: 2 for bad input, 1 when l2tpv3d cannot be reached."""
    args = list(argv)
    try:
        if "--overhead" in args:
            args.remove("--overhead")
            return _run_overhead(args, socket_path, as_json)
        return _run_explain(args, socket_path, as_json)
    except _Help as help_:
        sys.stderr.write(USAGE)
        return EXIT_OK if help_.explicit else EXIT_USAGE
    except ControlError as exc:
        _error(exc)
        return EXIT_UNREACHABLE
    except (L2TPError, ValueError) as exc:
        _error(exc)
        return EXIT_USAGE


def _take(args: list[str], i: int, opt: str) -> str:
    if i + 1 >= len(args):
        raise ExplainError(f'option "{opt}" needs a value')
    return args[i + 1]


def _id(name: str, text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise ConfigError(name, text, "not a valid ID") from None
    if not 1 <= value <= 0xFFFFFFFF:
        raise ConfigError(name, text, "not a valid ID (1..4294967295)")
    return value


def _cookie_len(text: str) -> int:
    if text not in {str(n) for n in COOKIE_LENGTHS}:
        raise ConfigError("cookie-len", text, "must be 0, 4 or 8")
    return int(text)


def _run_explain(args: list[str], socket_path: str, as_json: bool) -> int:
    cookie_len: int | None = None
    cookie: bytes | None = None
    l2spec: L2SpecType | None = None
    seq = SeqMode.NONE
    link: str | None = None
    files: list[str] = []
    hexwords: list[str] = []
    tunnel_id: int | None = None
    i = 0
    while i < len(args):
        a = args[i]
        key, eq, inline = a.partition("=")
        if a in ("-h", "--help", "help"):
            raise _Help
        if a in ("-j", "--json", "-json"):
            as_json = True
        elif key in ("--cookie-len", "--cookie", "--l2spec", "--seq", "--link", "-r"):
            value = inline if eq and key != "-r" else _take(args, i, a)
            if not (eq and key != "-r"):
                i += 1
            if key == "--cookie-len":
                cookie_len = _cookie_len(value)
            elif key == "--cookie":
                cookie = parse_cookie("cookie", value)
            elif key == "--l2spec":
                l2spec = check_enum("l2spec", value.lower(), L2SpecType)
            elif key == "--seq":
                seq = check_enum("seq", value.lower(), SeqMode)
            elif key == "--link":
                if value not in ("ether", "ip"):
                    raise ConfigError("link", value, "must be ether or ip")
                link = value
            else:
                files.append(value)
        elif a in ("tunnel_id", "tid"):
            tunnel_id = _id("tunnel_id", _take(args, i, a))
            i += 1
        elif a.startswith("-") and a != "-":
            raise ExplainError(f'unknown option "{a}", try "l2tpv3 explain help"')
        else:
            hexwords.append(a)
        i += 1
    if cookie is not None and cookie_len is not None and cookie_len != len(cookie):
        raise ExplainError(f"--cookie is {len(cookie)} bytes, --cookie-len says {cookie_len}")
    if files and hexwords:
        raise ExplainError("give hex or -r FILE, not both")
    if len(files) > 1:
        raise ExplainError("one -r FILE at a time")
    if not files and not hexwords:
        raise _Help(explicit=False)
    settings = Settings(cookie_len, l2spec, cookie, seq)
    if files:
        packets = read_capture(files[0])
        if not packets:
            raise ExplainError(f"{files[0]}: no packets")
    else:
        text = sys.stdin.read() if hexwords == ["-"] else " ".join(hexwords)
        packets = [(parse_hex(text), link)]
    view = daemon_view(socket_path, tunnel_id) if tunnel_id is not None else None
    results: list[Explanation] = []
    for n, (data, kind) in enumerate(packets, 1):
        try:
            results.append(explain(data, settings, view, link or kind, index=n))
        except ExplainError as exc:
            if len(packets) == 1:
                raise
            raise ExplainError(f"{files[0]}: packet {n}: {exc}") from None
    if as_json:
        sys.stdout.write(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(render(r) for r in results))
    sys.stdout.flush()
    return EXIT_OK


def _run_overhead(args: list[str], socket_path: str, as_json: bool) -> int:
    from l2tpv3.tools import overhead as oh

    family: int | None = None
    encap = Encap.UDP
    local = remote = None
    cookie_len = 0
    l2spec = L2SpecType.DEFAULT
    seq = SeqMode.NONE
    mtu = 1500
    esp: oh.EspAlg | None = None
    espinudp = False
    tunnel_id: int | None = None
    session_id: int | None = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-h", "--help", "help"):
            raise _Help
        if a in ("-j", "--json", "-json"):
            as_json = True
        elif a in ("ipv4", "-4"):
            family = 4
        elif a in ("ipv6", "-6"):
            family = 6
        elif a == "espinudp":
            espinudp = True
        elif a in ("encap", "local", "remote", "cookie", "cookie_len", "l2spec_type", "seq",
                   "mtu", "esp", "tunnel_id", "tid", "session_id", "sid"):  # fmt: skip
            value = _take(args, i, a)
            i += 1
            if a == "encap":
                encap = check_enum("encap", value.lower(), Encap)
            elif a in ("local", "remote"):
                try:
                    addr = ipaddress.ip_address(value)
                except ValueError:
                    raise ConfigError(a, value, "not an IPv4 or IPv6 address") from None
                local, remote = (addr, remote) if a == "local" else (local, addr)
            elif a == "cookie":
                cookie_len = len(parse_cookie("cookie", value))
            elif a == "cookie_len":
                cookie_len = _cookie_len(value)
            elif a == "l2spec_type":
                l2spec = check_enum("l2spec_type", value.lower(), L2SpecType)
            elif a == "seq":
                seq = check_enum("seq", value.lower(), SeqMode)
            elif a == "mtu":
                if not value.isdigit() or not 68 <= int(value) <= 65535:
                    raise ConfigError("mtu", value, "must be 68..65535")
                mtu = int(value)
            elif a == "esp":
                if value.lower() not in oh.ESP_ALGS:
                    raise ConfigError("esp", value, "unknown algorithm, see l2tpv3 explain help")
                esp = oh.ESP_ALGS[value.lower()]
            elif a in ("tunnel_id", "tid"):
                tunnel_id = _id("tunnel_id", value)
            else:
                session_id = _id("session_id", value)
        else:
            raise ExplainError(f'unknown option "{a}", try "l2tpv3 explain help"')
        i += 1
    if espinudp and esp is None:
        raise ExplainError("espinudp needs esp ALG")
    cases: list[tuple[str, TunnelConfig, SessionConfig]] = []
    if tunnel_id is not None:
        view = daemon_view(socket_path, tunnel_id)
        if esp is None:
            # ESP as configured: the tunnel's outbound SA, when it has one.
            found = daemon_out_sa(socket_path, tunnel_id)
            if found is not None:
                esp, espinudp = found
        for s in view.sessions:
            if session_id is None or s.session_id == session_id:
                cases.append((f"tunnel {tunnel_id} session {s.session_id}", view.tunnel, s))
        if not cases:
            raise ExplainError(f"tunnel {tunnel_id} has no session {session_id or ''}".strip())
    else:
        fam = family or (local.version if local else remote.version if remote else 4)
        for given in (local, remote):
            if given is not None and given.version != fam:
                raise ConfigError("local" if given is local else "remote", given,
                                  f"not an IPv{fam} address")  # fmt: skip
        tunnel, session = oh.session_for(
            fam, encap, cookie_len, l2spec is L2SpecType.DEFAULT,
            str(local) if local else None, str(remote) if remote else None,
        )  # fmt: skip
        session = _replace_seq(session, seq)
        cases.append(("", tunnel, session))
    results = [(name, oh.compute(t, s, mtu, esp, espinudp)) for name, t, s in cases]
    if as_json:
        out = [{"name": name or None, **r.to_json()} for name, r in results]
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        chunks = [(f"# {name}\n" if name else "") + oh.render(r) for name, r in results]
        sys.stdout.write("\n".join(chunks))
    sys.stdout.flush()
    return EXIT_OK


def _replace_seq(session: SessionConfig, seq: SeqMode) -> SessionConfig:
    if seq is SeqMode.NONE:
        return session
    if session.l2spec_type is L2SpecType.NONE:
        raise ConfigError("seq", seq.value, "sequencing needs l2spec_type default")
    return SessionConfig(session.tunnel_id, session.session_id, session.peer_session_id,
                         cookie=session.cookie, l2spec_type=session.l2spec_type,
                         seq=seq)  # fmt: skip
