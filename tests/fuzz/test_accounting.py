"""Every datagram lands in exactly one counter: a large random corpus (valid, corrupted
and random datagrams; UDP and IP encapsulation, IPv4 and IPv6; right and wrong sources;
session IDs of this tunnel, of another tunnel on the same listener, of a tunnel on
another local address, and of nobody) is sent at a running l2tpv3d, per implementation,
and ``l2tpv3 -s -j show`` must account for each one:

    sent == sum over tunnels of (rx_invalid + sum over sessions of rx_packets + rx_errors)

``rx_invalid`` is the sum of the tunnel's drop reasons; a session counts a packet in
``rx_packets`` (delivered, or dropped on the device as frame_too_short/long) or in
``rx_errors`` (cookie, sequence, short header). No session here holds packets
(reorder_timeout 0). The kernel's own socket drops are read from /proc in the daemon's
namespace and must be zero, so that every datagram sent was received.

The tunnels (A is the daemon under test, the B addresses send)::

    1  udp  A:5000  <- B:6000    sessions 10 (cookie, l2spec), 11 (l2spec none)
    3  ip   A       <- B         sessions 30 (8-byte cookie, seq both), 31 (l2spec none)
    4  ip   A       <- B2        session 40          (same listener as 3, another peer)
    5  ip   A2      <- B         session 50          (another local address: issue 11 #5)
    6  ip   A6      <- B6        session 60          (IPv6)
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.netns import Daemon, Netns, two_hosts, wait_until

pytestmark = pytest.mark.root

A, A2, A6 = "10.7.1.1", "10.7.1.11", "fd07::1"
B, B2, B9, B6 = "10.7.1.2", "10.7.1.12", "10.7.1.19", "fd07::2"
COOKIE10, COOKIE30 = bytes.fromhex("cafef00d"), bytes.fromhex("0102030405060708")
N = 20_000

# (tunnel, local, remote, encap, udp ports)
TUNNELS = [
    (1, A, B, "udp", ("5000", "6000")),
    (3, A, B, "ip", None),
    (4, A, B2, "ip", None),
    (5, A2, B, "ip", None),
    (6, A6, B6, "ip", None),
]
# session -> (tunnel, peer cookie, l2spec, seq)
SESSIONS = {
    10: (1, COOKIE10, "default", "none"),
    11: (1, b"", "none", "none"),
    30: (3, COOKIE30, "default", "both"),
    31: (3, b"", "none", "none"),
    40: (4, b"", "default", "none"),
    50: (5, b"", "default", "none"),
    60: (6, b"", "default", "none"),
}
UDP_SIDS = (10, 11)
IP_SIDS = (30, 31, 40, 50, 60)

# Sends [source, destination, "ip" or a UDP source port, hex payload] items from a JSON
# file with raw sockets (any source address and port), paced so that no socket buffer of
# the daemon overflows.
SENDER = r"""
import json, socket, struct, sys, time
items = json.load(open(sys.argv[1]))
socks = {}
def sock(family, proto, src):
    key = (family, proto, src)
    if key not in socks:
        s = socket.socket(family, socket.SOCK_RAW, proto)
        s.bind((src, 0))
        socks[key] = s
    return socks[key]
for n, (src, dst, kind, payload) in enumerate(items):
    data = bytes.fromhex(payload)
    if kind == "ip":
        fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
        sock(fam, 115, src).sendto(data, (dst, 0))
    else:
        udp = struct.pack("!HHHH", int(kind), 5000, 8 + len(data), 0)
        sock(socket.AF_INET, socket.IPPROTO_UDP, src).sendto(udp + data, (dst, 0))
    if n % 20 == 19:
        time.sleep(0.002)
print(len(items))
"""


@dataclass(frozen=True)
class Datagram:
    src: str
    dst: str
    kind: str  # "ip" or the UDP source port
    payload: bytes
    what: str  # the class, for the report on failure


def _frame(rnd: random.Random) -> bytes:
    # To a unicast MAC that is nobody's, an unassigned EtherType: the stack drops it.
    size = rnd.choice([14, 20, 60, 200, 1000])
    return bytes.fromhex("02aa0000000102bb0000000288b5") + rnd.randbytes(size - 14)


class Corpus:
    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.ns = dict.fromkeys(SESSIONS, 0)

    def valid(self, sid: int, udp: bool) -> bytes:
        _, cookie, l2spec, seq = SESSIONS.get(sid, (0, b"", "default", "none"))
        word = b""
        if l2spec == "default":
            if seq == "both":
                word = (0x40000000 | self.ns[sid]).to_bytes(4, "big")
                self.ns[sid] = (self.ns[sid] + 1) & 0xFFFFFF
            else:
                word = bytes(4)
        head = b"\x00\x03\x00\x00" if udp else b""
        return head + sid.to_bytes(4, "big") + cookie + word + _frame(self.rnd)

    def corrupt(self, data: bytes) -> bytes:
        rnd = self.rnd
        kind = rnd.randrange(4)
        if kind == 0 and data:
            return data[: rnd.randrange(len(data))]
        out = bytearray(data)
        for _ in range(rnd.randint(1, 3)):
            if out:
                out[rnd.randrange(min(len(out), 28))] ^= 1 << rnd.randrange(8)
        return bytes(out)

    def payload(self, sids: tuple[int, ...], udp: bool) -> tuple[bytes, str]:
        rnd = self.rnd
        r = rnd.random()
        if r < 0.1:
            return rnd.randbytes(rnd.randrange(0, 64)), "random"
        sid = rnd.choice([*sids, *sids, 999, 0, *(IP_SIDS if udp else UDP_SIDS)])
        data = self.valid(sid, udp)
        if r < 0.45:
            return self.corrupt(data), f"corrupt:{sid}"
        return data, f"valid:{sid}"

    def make(self, n: int) -> list[Datagram]:
        rnd = self.rnd
        out = []
        routes = [
            (0.30, B, A, "6000"),  # UDP from the peer
            (0.03, B, A, "6001"),  # UDP, wrong source port
            (0.02, B9, A, "6000"),  # UDP, wrong source address
            (0.25, B, A, "ip"),  # IP from tunnel 3's peer
            (0.12, B2, A, "ip"),  # IP from tunnel 4's peer, same listener
            (0.13, B, A2, "ip"),  # IP to another local address (tunnel 5)
            (0.15, B6, A6, "ip"),  # IPv6 (tunnel 6)
        ]
        weights = [w for w, *_ in routes]
        for _ in range(n):
            _, src, dst, kind = rnd.choices(routes, weights)[0]
            udp = kind != "ip"
            payload, what = self.payload(UDP_SIDS if udp else IP_SIDS, udp)
            out.append(Datagram(src, dst, kind, payload, f"{src}>{dst}/{kind}/{what}"))
        return out


def _kernel_drops(ns: Netns) -> int:
    """Datagrams the kernel dropped at our sockets (buffer full, bad checksum)."""
    snmp = ns.run("cat", "/proc/net/snmp").stdout.splitlines()
    udp = [line.split() for line in snmp if line.startswith("Udp:")]
    names, values = udp[0], udp[1]
    drops = sum(int(values[names.index(k)]) for k in ("RcvbufErrors", "InCsumErrors"))
    for table in ("/proc/net/raw", "/proc/net/raw6"):
        for line in ns.run("cat", table).stdout.splitlines()[1:]:
            drops += int(line.split()[-1])
    return drops


def _accounted(d: Daemon) -> tuple[int, dict[int, dict[str, int]]]:
    total = 0
    per: dict[int, dict[str, int]] = {}
    for t in d.tunnels():
        stats = t["stats"]
        assert sum(t["drops"].values()) == stats["rx_invalid"], t
        per[t["tunnel_id"]] = {"rx_invalid": stats["rx_invalid"], **t["drops"]}
        total += stats["rx_invalid"]
    for s in d.sessions():
        st = s["stats"]
        per[s["tunnel_id"]][f"session {s['session_id']}"] = st["rx_packets"] + st["rx_errors"]
        total += st["rx_packets"] + st["rx_errors"]
    return total, per


@pytest.fixture(scope="module")
def daemon(impl: str) -> Iterator[tuple[Daemon, Daemon]]:
    with two_hosts("acct", [f"{A}/24", f"{A2}/24", f"{A6}/64"],
                   [f"{B}/24", f"{B2}/24", f"{B9}/24", f"{B6}/64"], impl) as (da, db):  # fmt: skip
        for tid, local, remote, encap, ports in TUNNELS:
            args = ["add", "tunnel", "tunnel_id", str(tid), "peer_tunnel_id", str(tid),
                    "local", local, "remote", remote, "encap", encap]  # fmt: skip
            if ports:
                args += ["udp_sport", ports[0], "udp_dport", ports[1]]
            da.cli(*args)
        for sid, (tid, cookie, l2spec, seq) in SESSIONS.items():
            args = ["add", "session", "name", f"acct{sid}", "tunnel_id", str(tid),
                    "session_id", str(sid), "peer_session_id", str(sid),
                    "l2spec_type", l2spec, "seq", seq]  # fmt: skip
            if cookie:
                args += ["peer_cookie", cookie.hex()]
            da.cli(*args)
            da.ns.sysctl(f"net.ipv6.conf.acct{sid}.disable_ipv6", "1")
            da.ns.ip("link", "set", f"acct{sid}", "up")
        yield da, db


@dataclass(frozen=True)
class Sent:
    corpus: list[Datagram]
    counted: dict[int, int]  # tunnel -> datagrams it counted (drops + its sessions')
    per: dict[int, dict[str, int]]  # tunnel -> counters after, for messages


def _by_tunnel(per: dict[int, dict[str, int]]) -> dict[int, int]:
    return {tid: c["rx_invalid"] + sum(v for k, v in c.items() if k.startswith("session"))
            for tid, c in per.items()}  # fmt: skip


@pytest.fixture(scope="module")
def sent(daemon: tuple[Daemon, Daemon], tmp_path_factory: pytest.TempPathFactory) -> Sent:
    a, b = daemon
    corpus = Corpus(seed=11).make(N)
    path = tmp_path_factory.mktemp("acct") / "corpus.json"
    path.write_text(json.dumps([[d.src, d.dst, d.kind, d.payload.hex()] for d in corpus]))
    _, per0 = _accounted(a)
    kernel_before = _kernel_drops(a.ns)
    out = b.ns.run(sys.executable, "-c", SENDER, str(path), timeout=300)
    assert out.stdout.split() == [str(N)]
    last = [-1]

    def settled() -> bool:  # the counters stop moving once the daemon drained its sockets
        now, _ = _accounted(a)
        done = now == last[0]
        last[0] = now
        return done

    wait_until(settled, timeout=30)
    time.sleep(0.5)
    _, per = _accounted(a)
    assert _kernel_drops(a.ns) == kernel_before, "the kernel dropped datagrams: pace the sender"
    before, after = _by_tunnel(per0), _by_tunnel(per)
    return Sent(corpus, {tid: after[tid] - before.get(tid, 0) for tid in after}, per)


def _to(corpus: list[Datagram], dst: str, udp: bool) -> list[Datagram]:
    return [d for d in corpus if d.dst == dst and (d.kind != "ip") == udp]


def test_single_tunnel_listeners_count_every_datagram(sent: Sent) -> None:
    """UDP, and IP-encap tunnels alone on their local address (tunnel 5 shares its
    peer with tunnel 3, tunnel 6 is IPv6): each datagram in exactly one counter."""
    for tid, dst, udp in ((1, A, True), (5, A2, False), (6, A6, False)):
        n = len(_to(sent.corpus, dst, udp))
        assert sent.counted[tid] == n, (
            f"tunnel {tid}: {n} datagrams sent to it, {sent.counted[tid]} counted: {sent.per[tid]}"
        )


def _cross(corpus: list[Datagram]) -> int:
    """Datagrams to A over IP from one tunnel's peer with the other's session ID."""
    mine = {B: (30, 31), B2: (40,)}
    return sum(
        1
        for d in _to(corpus, A, udp=False)
        if len(d.payload) >= 4
        and (sid := int.from_bytes(d.payload[:4], "big")) in (30, 31, 40)
        and sid not in mine[d.src]
    )


def test_shared_ip_listener_counts_every_datagram(sent: Sent) -> None:
    """Tunnels 3 (<- B) and 4 (<- B2) share A: each datagram is counted once, by the
    rule of proto/api.py IpOwnershipAPI, cross traffic (B with tunnel 4's session ID)
    included, by the session ID's owner as wrong_source."""
    n = len(_to(sent.corpus, A, udp=False))
    got = sent.counted[3] + sent.counted[4]
    assert got == n, (
        f"{n} datagrams sent to {A} over IP, {got} counted by tunnels 3 and 4; "
        f"{_cross(sent.corpus)} of them came from one tunnel's peer with the other's "
        f"session ID; {sent.per[3]} {sent.per[4]}"
    )


def test_every_datagram_is_counted_once(sent: Sent) -> None:
    total = sum(sent.counted.values())
    assert total == N, f"{N} datagrams sent, {total} counted: {sent.per}"


def test_shared_ip_listener_counts_by_the_rule(sent: Sent) -> None:
    """Which of tunnels 3 and 4 counts each datagram: the owner of its session ID on A,
    else the tunnel whose peer sent it (proto/api.py IpOwnershipAPI)."""
    owner = {30: 3, 31: 3, 40: 4}
    by_peer = {B: 3, B2: 4}
    want = {3: 0, 4: 0}
    for d in _to(sent.corpus, A, udp=False):
        sid = int.from_bytes(d.payload[:4], "big") if len(d.payload) >= 4 else 0
        want[owner.get(sid, by_peer[d.src])] += 1
    assert {3: sent.counted[3], 4: sent.counted[4]} == want, (sent.per[3], sent.per[4])
