"""The receive-path fuzz input: a tunnel set-up and a stream of datagrams, as bytes.

One format for every receive-path target, so one seed corpus serves them all: the
atheris targets here (``rx-python``, ``rx-diff``) and the libFuzzer target
``fuzz/c/fuzz_rx.c``, which parses it the same way (keep the two in step).

Header::

    b0        bit 0: encap ip (else udp)   bit 1: IPv6 (only chooses the addresses)
              bits 2-3: sessions - 1 (1..4)
              bit 4: three tunnels instead of one. Over IP, tunnels 1 and 2 share a
                     listener (same family and local address, different peers) and
                     tunnel 3 has another local address; over UDP each has its socket.
    per session, 5 bytes and the peer cookie:
      flags   bits 0-1: peer cookie 0, 4, 8, 8 bytes   bit 2: l2spec default (else none)
              bits 3-4: seq none/send/recv/both (none without l2spec)
              bits 5-6: reorder_timeout 0, 0 in LNS mode, 50, 300 ms
              bit 7: seq_policy rfc3931
      session ID (u32 big endian; 0 is taken as 1)
      peer cookie (0, 4 or 8 bytes: what a received packet must carry)

Session ``i`` belongs to tunnel ``i % tunnels``; one whose ID is taken already (in its
tunnel, or over IP on any tunnel: IP-encap session IDs are unique per host) is left out.

Then records until the end: a control byte, a u16 big-endian length, that many bytes
(the last record takes what is left)::

    ctl  bit 7 clear: a datagram, the record's bytes being the UDP payload, or for IP the
         L2TP part after the IP header. It goes to tunnel ``bits 0-1 % tunnels`` and, over
         IP, to every other tunnel on the same listener (each raw socket gets a copy).
         bit 6 clear: it comes from that tunnel's peer; set: from the peer of tunnel
         ``(first + 2) % 3`` when there are three tunnels and bits 0-1 are not 3 (over
         IP: tunnel 3's peer to tunnels 1 and 2, tunnel 1's peer to tunnel 2's listener
         as a copy for both, tunnel 2's peer to tunnel 3), else from a stranger (no
         tunnel's peer). Each tunnel takes it as from its peer (``Tunnel.receive``) or
         not (``Tunnel.receive_foreign``).
         bit 7 set: bit 6 clear toggles session ``data[0] % sessions`` (deleted if
         present, else made anew); bit 6 set sets every session's MTU to
         ``68 + (data[0] << 8 | data[1]) % 9000``.
         bits 2-4: time passes first: 0, 1 ms, 10 ms, 50 ms, 200 ms, 500 ms, 2 s, 60 s.
         bit 5: every session is polled after the record.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import ip_address

from l2tpv3.config import Encap, L2SpecType, SeqMode, SeqPolicy, SessionConfig, TunnelConfig

TIME_STEPS = (0.0, 0.001, 0.01, 0.05, 0.2, 0.5, 2.0, 60.0)
COOKIE_LENGTHS = (0, 4, 8, 8)
SEQ_MODES = (SeqMode.NONE, SeqMode.SEND, SeqMode.RECV, SeqMode.BOTH)
REORDER_MS = (0, 0, 50, 300)
LNS_CODE = 1  # reorder code 1: 0 ms, and the session is in LNS mode
START = 1000.0

# ctl bits
DATAGRAM_MASK = 0x80
CTL_MTU = 0x40
CTL_POLL = 0x20
CTL_FOREIGN = 0x40  # datagrams only
STRANGER = -1


@dataclass(frozen=True, slots=True)
class Record:
    ctl: int
    data: bytes

    @property
    def is_datagram(self) -> bool:
        return not self.ctl & DATAGRAM_MASK

    @property
    def target(self) -> int:
        return self.ctl & 3

    @property
    def advance(self) -> float:
        return TIME_STEPS[(self.ctl >> 2) & 7]

    @property
    def poll(self) -> bool:
        return bool(self.ctl & CTL_POLL)


@dataclass(frozen=True, slots=True)
class Scenario:
    tunnels: tuple[TunnelConfig, ...]
    # (index of the tunnel in `tunnels`, config): the sessions that were accepted
    sessions: tuple[tuple[int, SessionConfig], ...]
    records: tuple[Record, ...]
    # session IDs whose sessions are in LNS mode (the peer cannot switch our sequencing)
    lns: frozenset[int] = frozenset()

    @property
    def ip(self) -> bool:
        return self.tunnels[0].encap is Encap.IP

    def listener(self, index: int) -> tuple[int, str] | None:
        """(family, local) of an IP-encap tunnel; None over UDP (a socket each)."""
        t = self.tunnels[index]
        return (t.family, str(t.local)) if t.encap is Encap.IP else None

    def source(self, rec: Record) -> int:
        """The index of the tunnel whose peer sent a datagram, or STRANGER."""
        first = rec.target % len(self.tunnels)
        if not rec.ctl & CTL_FOREIGN:
            return first
        if len(self.tunnels) == 3 and rec.target != 3:
            return (first + 2) % 3
        return STRANGER

    def host(self, source: int) -> str:
        """The address a datagram from ``source`` (a tunnel index or STRANGER) has."""
        if source != STRANGER:
            return str(self.tunnels[source].remote)
        return "fd00::99" if self.tunnels[0].family == 6 else "10.0.0.99"

    def recipients(self, target: int) -> list[int]:
        """The tunnels that get a copy of a datagram sent to tunnel ``target``."""
        first = target % len(self.tunnels)
        lst = self.listener(first)
        if lst is None:
            return [first]
        return [i for i in range(len(self.tunnels)) if self.listener(i) == lst]


def _addresses(v6: bool, index: int) -> tuple[str, str]:
    """(local, remote) of tunnel ``index``: tunnels 0 and 1 share the local address."""
    local_host = 1 if index < 2 else 3
    remote_host = 100 + index
    if v6:
        return f"fd00::{local_host}", f"fd00::{remote_host:x}"
    return f"10.0.0.{local_host}", f"10.0.0.{remote_host}"


def parse(data: bytes) -> Scenario:
    """Any bytes make a scenario (missing header bytes read as zero)."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        chunk = data[pos : pos + n]
        pos += n
        return chunk.ljust(n, b"\0")

    b0 = take(1)[0]
    encap = Encap.IP if b0 & 1 else Encap.UDP
    v6 = bool(b0 & 2)
    nsessions = ((b0 >> 2) & 3) + 1
    ntunnels = 3 if b0 & 0x10 else 1
    tunnels = []
    for i in range(ntunnels):
        local, remote = _addresses(v6, i)
        udp = {"udp_sport": 1701 + i, "udp_dport": 1701} if encap is Encap.UDP else {}
        tunnels.append(
            TunnelConfig(
                tunnel_id=i + 1,
                peer_tunnel_id=i + 1,
                local=ip_address(local),
                remote=ip_address(remote),
                encap=encap,
                **udp,  # type: ignore[arg-type]
            )
        )
    sessions: list[tuple[int, SessionConfig]] = []
    lns: set[int] = set()
    taken: set[tuple[int, int]] = set()
    for i in range(nsessions):
        flags = take(1)[0]
        (sid,) = struct.unpack("!I", take(4))
        sid = sid or 1
        peer_cookie = take(COOKIE_LENGTHS[flags & 3])
        l2spec = L2SpecType.DEFAULT if flags & 4 else L2SpecType.NONE
        seq = SEQ_MODES[(flags >> 3) & 3] if l2spec is L2SpecType.DEFAULT else SeqMode.NONE
        tindex = i % ntunnels
        key = (0 if encap is Encap.IP else tindex, sid)
        if key in taken:
            continue
        taken.add(key)
        if (flags >> 5) & 3 == LNS_CODE:
            lns.add(sid)
        sessions.append(
            (
                tindex,
                SessionConfig(
                    tunnel_id=tindex + 1,
                    session_id=sid,
                    peer_session_id=sid,
                    cookie=b"",
                    peer_cookie=peer_cookie,
                    l2spec_type=l2spec,
                    seq=seq,
                    reorder_timeout=REORDER_MS[(flags >> 5) & 3],
                    seq_policy=SeqPolicy.RFC3931 if flags & 0x80 else SeqPolicy.KERNEL,
                ),
            )
        )
    records = []
    while pos < len(data):
        ctl = data[pos]
        (length,) = struct.unpack("!H", data[pos + 1 : pos + 3].ljust(2, b"\0"))
        pos += 3
        records.append(Record(ctl, data[pos : pos + length]))
        pos += length
    return Scenario(tuple(tunnels), tuple(sessions), tuple(records), frozenset(lns))


def encode_session(cfg: SessionConfig, reorder_code: int | None = None) -> bytes:
    """The header bytes of one session (the inverse of :func:`parse` for it)."""
    cookie_code = {0: 0, 4: 1, 8: 2}[len(cfg.peer_cookie)]
    if reorder_code is None:
        reorder_code = {0: 0, 50: 2, 300: 3}.get(cfg.reorder_timeout, 3)
    flags = cookie_code
    flags |= 4 if cfg.l2spec_type is L2SpecType.DEFAULT else 0
    flags |= SEQ_MODES.index(cfg.seq) << 3
    flags |= reorder_code << 5
    flags |= 0x80 if cfg.seq_policy is SeqPolicy.RFC3931 else 0
    return bytes([flags]) + struct.pack("!I", cfg.session_id) + cfg.peer_cookie


def encode_header(ip: bool, v6: bool, sessions: list[bytes], three: bool = False) -> bytes:
    assert 1 <= len(sessions) <= 4
    b0 = (1 if ip else 0) | (2 if v6 else 0) | ((len(sessions) - 1) << 2) | (0x10 if three else 0)
    return bytes([b0]) + b"".join(sessions)


def encode_record(data: bytes, ctl: int = 0) -> bytes:
    return bytes([ctl]) + struct.pack("!H", len(data)) + data
