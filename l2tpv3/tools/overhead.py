"""``l2tpv3 explain --overhead``: what a session's encapsulation costs, byte by byte.

The L2TP arithmetic is the project's own: the L2TP header length is
:class:`l2tpv3.proto.layout.HeaderLayout`'s ``tx_header_len`` and the l2tpethN MTU is
:func:`l2tpv3.proto.layout.session_mtu` (the kernel's ``l2tp_eth_adjust_mtu``), called
with the same configuration records the daemon uses. The seed's bridging line
(docs: shared/seeds/linux-l2tp-ethernet-pseudowires.md) is the default case:

    1500 = 20 IP + 8 UDP + 12 L2TP + 14 Ethernet + 20 IP + 20 TCP + 1406

ESP (RFC 4303 §2) is transport mode on the tunnel's own datagrams, as issue 9's
``add sa`` applies it (and the kernel's ``ip xfrm`` with a policy selecting them):
IP | ESP | UDP | L2TPv3 | frame, optionally inside UDP 4500 (RFC 3948). Its cost
depends on the packet: 8 bytes of SPI and sequence number, the IV, padding so that
payload + 2 trailer bytes fill whole cipher blocks (4 bytes for the AEADs, 16 for
AES-CBC; RFC 4303 §2.4), the pad length and next header bytes, and the ICV.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from l2tpv3.config import Encap, L2SpecType, SessionConfig, TunnelConfig
from l2tpv3.constants import ETH_HLEN, IPV4_HLEN, IPV6_HLEN, MAX_MTU, MIN_MTU, UDP_HLEN
from l2tpv3.proto import esp as _esp
from l2tpv3.proto.esp import ESP_HLEN, ESP_TRAILER, EspShape
from l2tpv3.proto.layout import HeaderLayout, session_mtu

__all__ = ["ESP_ALGS", "EspAlg", "Overhead", "compute", "render", "session_for"]

TCP_HLEN = 20  # RFC 9293 §3.1, no options
INNER_IPV4, INNER_IPV6 = 20, 40


@dataclass(frozen=True, slots=True)
class EspAlg:
    """An ESP transform as ``ip xfrm state`` names it: IV, block and ICV sizes."""

    name: str
    iv: int
    block: int  # padding aligns payload + trailer to this (RFC 4303 §2.4)
    icv: int
    ref: str

    def shape(self, espinudp: bool = False) -> EspShape:
        return EspShape(self.iv, self.block, self.icv, espinudp)


def _alg(name: str, alg: str, auth: str | None, ref: str) -> EspAlg:
    # The sizes come from proto/esp.py, the arithmetic the daemon's MTU uses too.
    s = EspShape.of(alg, auth)
    return EspAlg(name, s.iv, s.block, s.icv, ref)


# ip xfrm names (issue 9); short aliases as strongSwan/OpenWrt write them.
_ALGS = (
    _alg("rfc4106(gcm(aes))", _esp.AEAD_GCM, None, "RFC 4106 §3-§5"),
    _alg("rfc7539esp(chacha20,poly1305)", _esp.AEAD_CHACHA, None, "RFC 7634 §2-§3"),
    _alg("cbc(aes)+hmac(sha256)", _esp.ENC_CBC, _esp.AUTH_SHA256, "RFC 3602 §3, RFC 4868 §2"),
    _alg("cbc(aes)+hmac(sha1)", _esp.ENC_CBC, _esp.AUTH_SHA1, "RFC 3602 §3, RFC 2404 §2"),
)
ESP_ALGS: dict[str, EspAlg] = {a.name: a for a in _ALGS}
ESP_ALGS.update(
    {
        "aes-gcm": ESP_ALGS["rfc4106(gcm(aes))"],
        "aes128gcm16": ESP_ALGS["rfc4106(gcm(aes))"],
        "aes256gcm16": ESP_ALGS["rfc4106(gcm(aes))"],
        "chacha20poly1305": ESP_ALGS["rfc7539esp(chacha20,poly1305)"],
        "aes-cbc-sha256": ESP_ALGS["cbc(aes)+hmac(sha256)"],
        "aes128-sha256": ESP_ALGS["cbc(aes)+hmac(sha256)"],
        "aes256-sha256": ESP_ALGS["cbc(aes)+hmac(sha256)"],
        "aes-cbc-sha1": ESP_ALGS["cbc(aes)+hmac(sha1)"],
        "aes128-sha1": ESP_ALGS["cbc(aes)+hmac(sha1)"],
        "aes256-sha1": ESP_ALGS["cbc(aes)+hmac(sha1)"],
    }
)


@dataclass(frozen=True, slots=True)
class Overhead:
    """One configuration's arithmetic for a full-size packet on a ``path_mtu`` path."""

    path_mtu: int
    mtu: int  # the l2tpethN MTU (largest inner Ethernet payload)
    mss4: int  # TCP MSS for inner IPv4 (no options)
    mss6: int
    overhead: int  # bytes added to each inner frame's payload, Ethernet header included
    wire: int  # the full-size outer packet: overhead + MTU (<= path_mtu)
    stack: tuple[tuple[str, int, str], ...]  # (header, bytes, defined in), outermost first
    family: int
    encap: Encap
    esp: EspAlg | None
    notes: tuple[str, ...]

    @property
    def percent(self) -> float:
        """Encapsulation overhead as a share of the full-size outer packet."""
        return 100.0 * self.overhead / self.wire

    @property
    def goodput(self) -> float:
        """Share of the outer packet that is TCP payload (inner IPv4, no TCP options)."""
        return 100.0 * self.mss4 / self.wire

    def to_json(self) -> dict[str, object]:
        return {
            "path_mtu": self.path_mtu,
            "mtu": self.mtu,
            "mss": self.mss4,
            "mss_ipv6": self.mss6,
            "overhead": self.overhead,
            "overhead_percent": round(self.percent, 2),
            "tcp_payload_percent": round(self.goodput, 2),
            "family": self.family,
            "encap": self.encap.value,
            "esp": self.esp.name if self.esp else None,
            "stack": [{"header": h, "bytes": n, "ref": r} for h, n, r in self.stack],
            "notes": list(self.notes),
        }


def compute(
    tunnel: TunnelConfig,
    session: SessionConfig,
    path_mtu: int = 1500,
    esp: EspAlg | None = None,
    espinudp: bool = False,
) -> Overhead:
    """The arithmetic for ``session`` over ``tunnel`` on a path of ``path_mtu`` bytes.

    ValueError when the path is too small to carry anything.
    """
    ip_hlen = IPV4_HLEN if tunnel.family == 4 else IPV6_HLEN
    udp = tunnel.encap is Encap.UDP
    l2tp_len = HeaderLayout.for_session(tunnel, session).tx_header_len
    notes: list[str] = []
    # What the tunnel hands to IP (or to ESP): UDP + L2TP + Ethernet header + frame payload.
    inner_fixed = (UDP_HLEN if udp else 0) + l2tp_len + ETH_HLEN
    if esp is None:
        if path_mtu - ip_hlen - inner_fixed < MIN_MTU or path_mtu > MAX_MTU + 100:
            raise ValueError(f"a path MTU of {path_mtu} cannot carry this session")
        mtu = session_mtu(tunnel, session, path_mtu)
        esp_rows: list[tuple[str, int, str]] = []
    else:
        # Largest ESP payload P with IP + [UDP 8] + 8 + IV + roundup(P + 2, block) + ICV
        # <= path MTU (EspShape.max_payload), as the daemon's session_mtu computes it.
        shape = esp.shape(espinudp)
        payload_max = shape.max_payload(path_mtu - ip_hlen)
        if payload_max - inner_fixed < MIN_MTU:
            raise ValueError(f"a path MTU of {path_mtu} cannot carry this session with ESP")
        mtu = session_mtu(tunnel, session, path_mtu, shape)
        pad = shape.padding(inner_fixed + mtu)
        esp_rows = []
        if espinudp:
            esp_rows.append(("UDP 4500 (ESP in UDP)", UDP_HLEN, "RFC 3948 §2.1"))
        esp_rows += [
            ("ESP SPI + sequence", ESP_HLEN, "RFC 4303 §2.1-§2.2"),
            ("ESP IV", esp.iv, esp.ref),
        ]
        notes.append(
            f"ESP {esp.name}: the padding depends on the frame's length; a full-size frame "
            f"needs {pad}, the worst case {esp.block - 1} (RFC 4303 §2.4)"
        )
    stack: list[tuple[str, int, str]] = [
        (f"IPv{tunnel.family}", ip_hlen, "RFC 791 §3.1" if tunnel.family == 4 else "RFC 8200 §3"),
        *esp_rows,
    ]
    if udp:
        stack.append(("UDP", UDP_HLEN, "RFC 768; RFC 3931 §4.1.2"))
    stack.append((f"L2TPv3 {_l2tp_parts(tunnel, session)}", l2tp_len, "RFC 3931 §4.1, §4.6"))
    stack.append(("Ethernet", ETH_HLEN, "RFC 4719 §3"))
    tail: list[tuple[str, int, str]] = []
    if esp is not None:
        pad = esp.shape().padding(inner_fixed + mtu)
        tail = [
            ("ESP padding", pad, "RFC 4303 §2.4"),
            ("ESP pad length + next header", ESP_TRAILER, "RFC 4303 §2.5-§2.6"),
            ("ESP ICV", esp.icv, "RFC 4303 §2.8"),
        ]
    overhead = sum(n for _, n, _ in stack) + sum(n for _, n, _ in tail)
    mss4 = mtu - INNER_IPV4 - TCP_HLEN
    mss6 = mtu - INNER_IPV6 - TCP_HLEN
    full = (
        *stack,
        ("inner IPv4", INNER_IPV4, "RFC 791"),
        ("inner TCP", TCP_HLEN, "RFC 9293 §3.1"),
        ("inner TCP payload (MSS)", mss4, "RFC 9293 §3.7.1"),
        *tail,
    )
    if session.seq.send:
        notes.append("seq costs nothing extra: the sublayer is there with or without it")
    return Overhead(path_mtu, mtu, mss4, mss6, overhead, overhead + mtu, full, tunnel.family,
                    tunnel.encap, esp, tuple(notes))  # fmt: skip


def _l2tp_parts(tunnel: TunnelConfig, session: SessionConfig) -> str:
    parts = ["flags 4"] if tunnel.encap is Encap.UDP else []
    parts.append("session 4")
    if session.cookie:
        parts.append(f"cookie {len(session.cookie)}")
    if HeaderLayout.for_session(tunnel, session).tx_l2spec:
        parts.append("sublayer 4")
    return "(" + " + ".join(parts) + ")"


def render(o: Overhead) -> str:
    """The arithmetic line, the figures, and an ASCII diagram of the header stack."""
    short = [_short(h) for h, _, _ in o.stack]
    sizes = [str(n) for _, n, _ in o.stack]
    widths = [max(len(a), len(b)) + 2 for a, b in zip(short, sizes, strict=True)]
    border = "+" + "+".join("-" * w for w in widths) + "+"
    row1 = "|" + "|".join(a.center(w) for a, w in zip(short, widths, strict=True)) + "|"
    row2 = "|" + "|".join(b.center(w) for b, w in zip(sizes, widths, strict=True)) + "|"
    total = sum(n for _, n, _ in o.stack)
    terms = " + ".join(f"{n} {_short(h)}" for h, n, _ in o.stack)
    lines = [
        f"{total} = {terms}"
        + ("" if total == o.path_mtu else f"  ({o.path_mtu - total} of the path MTU unused)"),
        "",
        f"underlay path MTU       {o.path_mtu}",
        f"l2tpethN MTU            {o.mtu}   (ip link set l2tpethN mtu {o.mtu})",
        f"TCP MSS, inner IPv4     {o.mss4}   (MTU - 20 IP - 20 TCP)",
        f"TCP MSS, inner IPv6     {o.mss6}   (MTU - 40 IP - 20 TCP)",
        f"overhead per packet     {o.overhead} bytes, {o.percent:.1f}% of a full-size "
        f"{o.wire}-byte packet",
        f"TCP payload per packet  {o.mss4} of {o.wire} bytes, {o.goodput:.1f}%",
        "",
        border,
        row1,
        row2,
        border,
        "",
        "header                                      bytes  defined in",
    ]
    lines += [f"{h:<43} {n:>5}  {r}" for h, n, r in o.stack]
    lines += [f"note: {n}" for n in o.notes]
    return "\n".join(lines) + "\n"


def _short(header: str) -> str:
    table = {
        "ESP SPI + sequence": "ESP",
        "ESP IV": "IV",
        "UDP 4500 (ESP in UDP)": "UDP4500",
        "inner IPv4": "IP",
        "inner TCP": "TCP",
        "inner TCP payload (MSS)": "payload",
        "ESP padding": "pad",
        "ESP pad length + next header": "trailer",
        "ESP ICV": "ICV",
        "Ethernet": "Ethernet",
    }
    if header in table:
        return table[header]
    if header.startswith("L2TPv3"):
        return "L2TP"
    if header.startswith("IPv"):
        return "IP" if header == "IPv4" else "IPv6"
    return header


def session_for(
    family: int,
    encap: Encap,
    cookie_len: int,
    l2spec_default: bool,
    local: str | None = None,
    remote: str | None = None,
) -> tuple[TunnelConfig, SessionConfig]:
    """Records for the arithmetic when only the shape is known (documentation addresses)."""
    if local is None or remote is None:
        pair = ("192.0.2.1", "192.0.2.2") if family == 4 else ("2001:db8::1", "2001:db8::2")
        local, remote = local or pair[0], remote or pair[1]
    udp = encap is Encap.UDP
    port = 1701 if udp else None
    tunnel = TunnelConfig(
        1, 1, ipaddress.ip_address(local), ipaddress.ip_address(remote), encap,
        udp_sport=port, udp_dport=port,
    )  # fmt: skip
    session = SessionConfig(
        1, 1, 1, cookie=bytes(cookie_len),
        l2spec_type=L2SpecType.DEFAULT if l2spec_default else L2SpecType.NONE,
    )  # fmt: skip
    return tunnel, session
