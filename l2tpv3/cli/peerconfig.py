"""What the far end of our pseudowires must be configured with (``l2tpv3 peer-config``).

Pure functions: our :class:`TunnelConfig`/:class:`SessionConfig` in, text out. Three
far ends are known:

- ``linux``: ``ip l2tp add tunnel|session`` lines (and ``#`` comments), runnable by a
  shell as they stand;
- ``qemu``: one ``-netdev l2tpv3,...`` argument per session;
- ``cisco``: an IOS manual xconnect (pseudowire-class plus the interface's xconnect).

``tshark`` is not a far end: it prints the tshark command lines that decode our
sessions' packets in a capture (:mod:`l2tpv3.wireshark`).

Everything that travels in one direction is swapped: IDs (their ``session_id`` is our
``peer_session_id``), cookies (they send the cookie we expect, ``peer_cookie``, and
expect the one we send), UDP ports and addresses. The sublayer must be the same at both
ends (RFC 4719 §3 has no negotiation without a control channel).

Sequencing is mirrored for ``ip l2tp`` sessions being in "LAC mode" (protocol-notes.md):
a received S=1 packet switches sending on, and a received S=0 packet that ``recv`` does
not discard switches it off. The far end must never be talked out of sending when we
asked for sequence numbers:

- ``none`` -> ``none``, ``both`` -> ``both``, ``send`` -> ``send`` (both ends always
  send S=1, so neither is ever switched off). Mirroring ``send`` to ``recv`` would
  deadlock when the far end speaks first: its S=0 packets switch our sending off, and
  it then drops everything we send;
- ``recv`` -> ``both``: we demand sequence numbers but send none until we hear one;
  a far end with ``send`` would be switched off by our first S=0 packet. With ``both``
  it keeps sending S=1, which switches ours on; until its first packet reaches us it
  drops ours, so the far end has to speak first (``recv`` on our side is fragile by
  nature against a LAC-mode peer).

Mirroring twice gives back the original except ``recv``, which comes back as ``both``.

Configurations a far end cannot mirror raise :class:`PeerConfigError` with the reason.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from enum import StrEnum

from l2tpv3.cli import grammar, wireshark
from l2tpv3.config import (
    Encap,
    L2SpecType,
    LivenessMode,
    SeqMode,
    SeqPolicy,
    SessionConfig,
    TunnelConfig,
)
from l2tpv3.constants import IFNAMSIZ
from l2tpv3.errors import L2TPError
from l2tpv3.proto import mss
from l2tpv3.proto.esp import EspShape
from l2tpv3.proto.layout import session_mtu

__all__ = [
    "PeerConfigError",
    "Target",
    "cisco",
    "linux",
    "mirror_seq",
    "mirror_session",
    "mirror_tunnel",
    "qemu",
    "render",
]


class Target(StrEnum):
    LINUX = "linux"
    QEMU = "qemu"
    CISCO = "cisco"
    TSHARK = "tshark"  # not a peer: how to read captures of our sessions


class PeerConfigError(L2TPError):
    """The far end cannot be configured to match ours; the message says why."""


# -- mirroring ----------------------------------------------------------------------------


def mirror_seq(seq: SeqMode) -> SeqMode:
    """Their ``seq`` for our ``seq`` (see the module docstring for why)."""
    if seq is SeqMode.RECV:
        return SeqMode.BOTH
    return seq


def mirror_tunnel(t: TunnelConfig) -> TunnelConfig:
    """The far end's tunnel: IDs, addresses and ports swapped.

    IPv6 UDP checksums are swapped too: the checksums we send (``udp6_csum_tx``) are
    what they must be ready to receive, and what we insist on receiving is what they
    must send.
    """
    udp = t.encap is Encap.UDP
    return TunnelConfig(
        tunnel_id=t.peer_tunnel_id,
        peer_tunnel_id=t.tunnel_id,
        local=t.remote,
        remote=t.local,
        encap=t.encap,
        udp_sport=t.udp_dport if udp else None,
        udp_dport=t.udp_sport if udp else None,
        udp_csum=t.udp_csum,
        udp6_csum_tx=t.udp6_csum_rx,
        udp6_csum_rx=t.udp6_csum_tx,
    )


def mirror_session(t: TunnelConfig, s: SessionConfig) -> SessionConfig:
    """The far end's session in the far end's tunnel (``t`` is OUR tunnel of ``s``)."""
    return SessionConfig(
        tunnel_id=t.peer_tunnel_id,
        session_id=s.peer_session_id,
        peer_session_id=s.session_id,
        name=s.name,
        cookie=s.peer_cookie,
        peer_cookie=s.cookie,
        l2spec_type=s.l2spec_type,
        seq=mirror_seq(s.seq),
        reorder_timeout=s.reorder_timeout,
        seq_policy=s.seq_policy,
    )


def _check_addresses(t: TunnelConfig) -> None:
    for field, addr in (("local", t.local), ("remote", t.remote)):
        if addr.is_unspecified:
            raise PeerConfigError(
                f"tunnel {t.tunnel_id}: our {field} address is {addr}, the wildcard; the far "
                f"end needs the real address (set {field} on our tunnel)"
            )


# (tunnel_id, "in" | "out") -> the ESP overhead of our SAs in that direction.
EspShapes = Mapping[tuple[int, str], EspShape]


def _mtu_note(t: TunnelConfig, s: SessionConfig, far_t: TunnelConfig, far_s: SessionConfig,
              esp: EspShapes | None = None) -> str:  # fmt: skip
    esp = esp or {}
    # The far end sends with the mirror of our inbound SA, we with our outbound one.
    ours = session_mtu(t, s, None, esp.get((t.tunnel_id, "out")))
    theirs = session_mtu(far_t, far_s, None, esp.get((t.tunnel_id, "in")))
    text = f"MTU with a 1500-byte path: far end {theirs}, ours {ours}"
    if ours != theirs:
        text += f"; set both to {min(ours, theirs)} (frames over MTU+18 are dropped)"
    return text


def _esp_mtu_lines(t: TunnelConfig, far_t: TunnelConfig, far_s: SessionConfig,
                   esp: EspShapes | None) -> list[str]:  # fmt: skip
    """The kernel's l2tp_eth ignores xfrm: its l2tpethN MTU leaves no room for ESP, so a
    full-size frame would make an outer packet above the path MTU. Lower it by hand."""
    shape = (esp or {}).get((t.tunnel_id, "in"))
    if shape is None:
        return []
    mtu = session_mtu(far_t, far_s, None, shape)
    plain = session_mtu(far_t, far_s, None)
    why = (
        f"# ESP adds up to {shape.worst} bytes (header, IV, padding, trailer, ICV"
        + (", UDP 4500" if shape.espinudp else "")
        + f"): the kernel leaves the MTU at {plain}, lower it so full-size frames fit"
    )
    if far_s.name is None:
        # The kernel names the device (l2tpeth%d): a line naming a guess would fail.
        return [why, f"# ip link set dev L2TPETH_DEVICE mtu {mtu}"]
    return [why, f"ip link set dev {far_s.name} mtu {mtu}"]


def _frame_limit_note(t: TunnelConfig, s: SessionConfig, what: str) -> str:
    # A peer without an l2tpeth MTU of its own forwards whatever its side hands it; we
    # drop frames longer than our MTU + 18 (kernel: MTU + Ethernet header + VLAN tag).
    ours = session_mtu(t, s, None)
    return (
        f"our MTU with a 1500-byte path is {ours}: keep {what} at most {ours}, "
        f"we drop frames over {ours + 18} bytes"
    )


def _sessions_of(t: TunnelConfig, sessions: Iterable[SessionConfig]) -> list[SessionConfig]:
    return [s for s in sessions if s.tunnel_id == t.tunnel_id]


# -- linux --------------------------------------------------------------------------------


def _ip_line(config: TunnelConfig | SessionConfig) -> str:
    return shlex.join(["ip", "l2tp", *grammar.argv_for(config)])


def linux(tunnels: Sequence[TunnelConfig], sessions: Sequence[SessionConfig],
          esp: EspShapes | None = None) -> str:  # fmt: skip
    """``ip l2tp add`` lines for the far end of ``tunnels`` and their ``sessions``."""
    out: list[str] = []
    for t in tunnels:
        _check_addresses(t)
        far_t = mirror_tunnel(t)
        out.append(f"# far end of our tunnel {t.tunnel_id} ({t.encap.value} over IPv{t.family})")
        out.append(_ip_line(far_t))
        for s in _sessions_of(t, sessions):
            far_s = mirror_session(t, s)
            notes = [
                f"far end of our session {s.session_id}",
                _mtu_note(t, s, far_t, far_s, esp),
            ]
            if s.seq is SeqMode.RECV:
                notes.append(
                    "we require sequence numbers but send ours only after hearing the far "
                    "end's: it must send first"
                )
            notes += _liveness_notes(s)
            if s.reorder_timeout or s.seq_policy is not SeqPolicy.KERNEL:
                # `ip l2tp` has no words for these (reorder_timeout is netlink-only).
                notes.append(
                    f"our reorder_timeout {s.reorder_timeout} / seq_policy "
                    f"{s.seq_policy.value} are receive-side choices, not mirrored"
                )
                far_s = replace(far_s, reorder_timeout=0, seq_policy=SeqPolicy.KERNEL)
            if s.trunk is not None and far_s.name is None:
                # The VLAN device and bridge lines below name the far end's l2tpeth.
                far_s = replace(far_s, name=f"l2tp{far_s.session_id}")
            out += [f"# {n}" for n in notes]
            out.append(_ip_line(far_s))
            out += _esp_mtu_lines(t, far_t, far_s, esp)
            out += _vlan_lines(s, far_s)
            out += _mss_rules(t, s, esp)
    return "\n".join(out) + "\n"


def _vlan_lines(s: SessionConfig, far_s: SessionConfig) -> list[str]:
    """A trunk session's far end (docs/usage.md "Per-VLAN sessions"): without ``pop``
    the frames travel tagged, as ip-l2tp(8)'s VLAN example (``l2tpeth0.5`` bridged with
    ``eth1.5``) sends them, so the far end needs that VLAN device; with ``pop`` they
    travel untagged and its l2tpeth goes straight into a bridge."""
    if s.trunk is None or s.vlan is None or far_s.name is None:
        return []
    dev, vid = far_s.name, s.vlan
    bridge = f"brvlan{vid}"
    if s.vlan_pop:
        return [
            f"# our session {s.session_id} is VLAN {vid} of our trunk {s.trunk} with pop: "
            f"frames travel untagged; bridge {dev} with this end's port on that segment",
            f"ip link add {bridge} type bridge",
            f"ip link set {dev} master {bridge}",
            f"ip link set {dev} up",
            f"ip link set {bridge} up",
        ]
    vdev = f"{dev}.{vid}" if len(f"{dev}.{vid}") < IFNAMSIZ else f"l2tpv{vid}"
    return [
        f"# our session {s.session_id} is VLAN {vid} of our trunk {s.trunk}: frames travel "
        f"tagged {vid} (ip-l2tp(8)'s VLAN example); this end needs the VLAN device (8021q) "
        f"bridged with its own VLAN {vid} port (e.g. eth1.{vid})",
        f"ip link add link {dev} name {vdev} type vlan id {vid}",
        f"ip link add {bridge} type bridge",
        f"ip link set {vdev} master {bridge}",
        f"ip link set {dev} up",
        f"ip link set {vdev} up",
        f"ip link set {bridge} up",
    ]


def _mss_rules(t: TunnelConfig, s: SessionConfig, esp: EspShapes | None = None) -> list[str]:
    """The seed's iptables TCPMSS rule, for a kernel peer (which has no mss_clamp) when
    we clamp: our clamping already covers both directions of the pseudowire; the rule
    makes the far end clamp too, e.g. for SYNs its host sends another way."""
    if s.mss_clamp in (mss.OFF, "65535"):
        return []
    ours = session_mtu(t, s, None, (esp or {}).get((t.tunnel_id, "out")))
    v4, v6 = mss.limits(s.mss_clamp, ours)
    return [
        f"# we clamp TCP MSS on session {s.session_id} (mss_clamp {s.mss_clamp}: {v4} IPv4, "
        f"{v6} IPv6 with a 1500-byte path) in both directions; the kernel's equivalent "
        "(bridged frames reach FORWARD with br_netfilter loaded):",
        f"iptables -A FORWARD -p tcp --tcp-flags SYN,RST SYN -m tcpmss --mss {v4 + 1}:65535 "
        f"-j TCPMSS --set-mss {v4}",
        f"ip6tables -A FORWARD -p tcp --tcp-flags SYN,RST SYN -m tcpmss --mss {v6 + 1}:65535 "
        f"-j TCPMSS --set-mss {v6}",
    ]


def _liveness_notes(s: SessionConfig) -> list[str]:
    mode = s.liveness
    if mode is LivenessMode.HELLO:
        # ip-l2tp(8) INTEROPERABILITY: unmanaged kernel tunnels have no control
        # connection; HELLOs would sit unread in the kernel tunnel socket.
        raise PeerConfigError(
            f"session {s.session_id}: liveness hello needs a peer that answers RFC 3931 "
            "HELLO; the Linux kernel cannot (ip-l2tp(8) INTEROPERABILITY): use "
            "liveness arp ADDR or idle"
        )
    if mode is LivenessMode.ARP:
        return [
            f"our liveness arp {s.liveness_addr}: nothing to set up here; a host with "
            f"{s.liveness_addr} on this end's bridged segment answers our ARP probes"
        ]
    if mode is LivenessMode.IDLE:
        return ["our liveness idle: this end must send regularly (e.g. STP BPDUs)"]
    return []


# -- qemu ---------------------------------------------------------------------------------


def _qemu_refuse(s: SessionConfig, reason: str) -> PeerConfigError:
    return PeerConfigError(f"session {s.session_id}: QEMU cannot mirror this: {reason}")


def qemu_netdev(t: TunnelConfig, s: SessionConfig, netdev_id: str) -> str:
    """One ``-netdev l2tpv3,...`` argument (without the ``-netdev`` word).

    QEMU's net/l2tpv3.c: one cookie length for both directions (``cookie64``), and
    either both cookies or none; ``counter=on`` is a 4-byte sublayer after the cookie
    that QEMU never checks on receive; ``pincounter=on`` writes it as zero, which is
    exactly the RFC 4719 default sublayer of a peer that does not sequence (without
    it QEMU writes 1, 2, 3, ... with no S bit). No sequencing of its own.
    """
    _check_addresses(t)
    if bool(s.cookie) != bool(s.peer_cookie):
        raise _qemu_refuse(
            s, "QEMU takes both txcookie and rxcookie or neither; set both cookie and "
            "peer_cookie on our session, or neither",
        )  # fmt: skip
    if len(s.cookie) != len(s.peer_cookie):
        raise _qemu_refuse(
            s, "QEMU uses one cookie length (cookie64) for both directions; our cookie "
            f"is {len(s.cookie)} bytes and peer_cookie {len(s.peer_cookie)}",
        )  # fmt: skip
    if s.seq.recv:
        raise _qemu_refuse(
            s, f"our seq {s.seq.value} drops packets without sequence numbers and QEMU "
            "never sends any; use seq none or send",
        )  # fmt: skip
    if s.liveness is LivenessMode.HELLO:
        raise _qemu_refuse(
            s, "QEMU does not answer RFC 3931 HELLO (it has no control connection); use "
            "liveness arp ADDR (the guest answers ARP) or idle",
        )  # fmt: skip
    if t.encap is Encap.UDP and t.family == 6 and not t.udp6_csum_tx:
        raise _qemu_refuse(
            s, "QEMU's IPv6 UDP socket drops the zero-checksum datagrams we send with "
            "udp6_csum_tx off",
        )  # fmt: skip
    opts = [f"l2tpv3,id={netdev_id}", f"src={t.remote}", f"dst={t.local}"]
    if t.encap is Encap.UDP:
        opts += ["udp=on", f"srcport={t.udp_dport}", f"dstport={t.udp_sport}"]
    if t.family == 6:
        opts.append("ipv6=on")
    # QEMU sends the session ID we receive and accepts the one we send.
    opts += [f"txsession={s.session_id}", f"rxsession={s.peer_session_id}"]
    if s.cookie:
        # QEMU reads cookie64 as on whenever the option is present, even "=off".
        if len(s.cookie) == 8:
            opts.append("cookie64=on")
        opts += [f"txcookie=0x{s.peer_cookie.hex()}", f"rxcookie=0x{s.cookie.hex()}"]
    if s.l2spec_type is L2SpecType.DEFAULT:
        # pincounter alone does not make room for the counter: counter=on is needed too.
        opts += ["counter=on", "pincounter=on"]
    else:
        opts.append("counter=off")
    return ",".join(opts)


def qemu(tunnels: Sequence[TunnelConfig], sessions: Sequence[SessionConfig],
         netdev_id: str = "l2tpv3") -> tuple[str, list[str]]:  # fmt: skip
    """``-netdev`` lines (one per session; QEMU has one session per netdev) and notes.

    With more than one session the IDs are ``NETDEV_ID-0``, ``NETDEV_ID-1``, ...
    """
    pairs = [(t, s) for t in tunnels for s in _sessions_of(t, sessions)]
    if not pairs:
        raise PeerConfigError("no session to mirror: QEMU needs one session per -netdev")
    lines: list[str] = []
    notes: list[str] = []
    for i, (t, s) in enumerate(pairs):
        nid = netdev_id if len(pairs) == 1 else f"{netdev_id}-{i}"
        lines.append(f"-netdev {qemu_netdev(t, s, nid)}")
        mtu = _frame_limit_note(t, s, "the guest's MTU")
        notes.append(f"{nid}: far end of our session {s.session_id}; {mtu}")
        if s.seq.send:
            notes.append(f"{nid}: QEMU ignores our sequence numbers and sends none")
        if t.encap is Encap.IP:
            notes.append(f"{nid}: IP encap needs CAP_NET_RAW for QEMU")
        if s.trunk is not None:
            notes.append(f"{nid}: {_trunk_note(s, 'the guest')}")
    return "\n".join(lines) + "\n", notes


def _trunk_note(s: SessionConfig, who: str) -> str:
    if s.vlan_pop:
        return (
            f"our session {s.session_id} is VLAN {s.vlan} of our trunk {s.trunk} with pop: "
            f"{who} sends and receives untagged frames"
        )
    return (
        f"our session {s.session_id} is VLAN {s.vlan} of our trunk {s.trunk}: frames "
        f"travel tagged {s.vlan}, {who} must send them tagged {s.vlan} (others are our "
        "vlan_mismatch drops)"
    )


# -- cisco --------------------------------------------------------------------------------


def _cisco_cookie(which: str, cookie: bytes) -> str:
    # IOS takes the cookie as 32-bit decimal words, low word first: for 8 bytes the
    # first four on the wire are the high word.
    words = [int.from_bytes(cookie[i : i + 4], "big") for i in range(0, len(cookie), 4)]
    words.reverse()
    return f"  l2tp cookie {which} {len(cookie)} " + " ".join(str(w) for w in words)


def cisco(tunnels: Sequence[TunnelConfig], sessions: Sequence[SessionConfig],
          interfaces: str = "GigabitEthernet0/{n}") -> str:  # fmt: skip
    """An IOS manual xconnect per session: a pseudowire-class and an interface."""
    out: list[str] = []
    n = 0
    for t in tunnels:
        _check_addresses(t)
        if t.encap is Encap.UDP:
            raise PeerConfigError(
                f"tunnel {t.tunnel_id}: Cisco IOS manual L2TPv3 xconnects run over IP "
                "protocol 115 only; use encap ip on our tunnel"
            )
        for s in _sessions_of(t, sessions):
            if s.l2spec_type is L2SpecType.DEFAULT and s.seq is SeqMode.NONE:
                raise PeerConfigError(
                    f"session {s.session_id}: IOS sends the default L2-specific sublayer "
                    "only when sequencing, and expects none otherwise; use l2spec_type none "
                    "(or a seq mode) on our session"
                )
            pw = f"L2TPV3-{s.session_id}"
            out += [
                f"! far end of our tunnel {t.tunnel_id} session {s.session_id}",
                f"! {_frame_limit_note(t, s, 'the attachment circuit MTU')}",
                *([f"! {_trunk_note(s, 'the attachment circuit')}"] if s.trunk else []),
                f"! Loopback0 must carry {t.remote}; no l2tp-class, so no hello: Linux has"
                " no control channel",
                *(
                    ["! IPv6 underlay: needs an IOS XE release with L2TPv3 over IPv6"]
                    if t.family == 6
                    else []
                ),
                f"pseudowire-class {pw}",
                " encapsulation l2tpv3",
                " protocol none",
                " ip local interface Loopback0",
            ]
            if s.seq is not SeqMode.NONE:
                # IOS puts the default sublayer (RFC 4719) in front only when sequencing.
                out.append(" sequencing both")
            out += [
                "!",
                f"interface {interfaces.format(n=n)}",
                " no ip address",
                f" xconnect {t.local} {s.peer_session_id} encapsulation l2tpv3 manual "
                f"pw-class {pw}",
                f"  l2tp id {s.peer_session_id} {s.session_id}",
            ]
            if s.cookie:
                out.append(_cisco_cookie("local", s.cookie))
            if s.peer_cookie:
                out.append(_cisco_cookie("remote", s.peer_cookie))
            out.append("!")
            n += 1
    if n == 0:
        raise PeerConfigError("no session to mirror")
    return "\n".join(out) + "\n"


def render(target: Target, tunnels: Sequence[TunnelConfig], sessions: Sequence[SessionConfig],
           esp: EspShapes | None = None) -> tuple[str, list[str]]:  # fmt: skip
    """The text for ``target`` and the notes that are not part of it (QEMU only)."""
    if not tunnels:
        raise PeerConfigError("no tunnel to mirror")
    if target is Target.LINUX:
        return linux(tunnels, sessions, esp), []
    if target is Target.QEMU:
        return qemu(tunnels, sessions)
    if target is Target.TSHARK:
        return wireshark.tshark_commands(tunnels, sessions), []
    return cisco(tunnels, sessions), []
