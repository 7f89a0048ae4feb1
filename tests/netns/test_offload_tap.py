"""The kernel agrees with offload.c: real TSO super-frames read from a vnet-header TAP are
segmented into valid frames, and super-frames built by l2o_gro are accepted by the kernel's
TCP stack when written to another TAP.

Two namespaces, each holding one TAP opened here with IFF_VNET_HDR and TSO offloads; this
process relays between them like the data path would: TAP read -> segment (or complete the
checksum) -> the "wire" -> GRO -> TAP write. A TCP transfer across must arrive intact.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import select
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tests.support import offload_ext
from tests.support.netns import PREFIX, Netns, require_root, sh, tcp_transfer
from tests.support.progs import prog

if TYPE_CHECKING:
    from tests.c._offload import Coalescer

try:
    off = offload_ext.load()  # test-only, built on first use (not part of the package)
except ImportError as exc:  # pragma: no cover - no Cython or C compiler here
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"the test-only _offload extension cannot be built: {exc}", allow_module_level=True)

pytestmark = pytest.mark.root

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
GSO_NONE, GSO_TCPV4, GSO_TCPV6 = 0, 1, 4
F_NEEDS_CSUM = 1
VNET_LEN = 12  # with num_buffers, as a virtio-net mergeable-rx-buffers guest would use
MTU = 1500
MAX_FRAME = MTU + 14
SCAPY_CHECKS = 300  # segments re-verified with scapy; GRO verifies every one of them anyway


def open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        ifr = struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
        fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_LEN))
        fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    except OSError:
        os.close(fd)
        raise
    return fd


@dataclass
class Direction:
    src: int
    dst: int
    use_gro: bool = True  # False: every segment is written to the TAP on its own
    gro: Coalescer = field(default_factory=lambda: off.Coalescer(VNET_LEN))
    superframes: int = 0  # TSO super-frames read
    completed: int = 0  # NEEDS_CSUM checksums finished by l2o_complete_csum
    max_read: int = 0  # longest frame read
    gso_types: set[int] = field(default_factory=set)
    segments: int = 0
    checked: int = 0
    errors: list[str] = field(default_factory=list)


def check_segment(frame: bytes, d: Direction) -> None:
    """Re-verify a segment with scapy: checksums recomputed from scratch must match."""
    pkt = Ether(frame)
    fresh = Ether(frame)
    if IP in fresh:
        del fresh[IP].chksum
    del fresh[TCP].chksum
    rebuilt = Ether(bytes(fresh))
    if IP in pkt and rebuilt[IP].chksum != pkt[IP].chksum:
        d.errors.append(f"IPv4 checksum {pkt.summary()}")
    if rebuilt[TCP].chksum != pkt[TCP].chksum:
        d.errors.append(f"TCP checksum {pkt.summary()}")
    if len(frame) > MAX_FRAME:
        d.errors.append(f"segment of {len(frame)} bytes")
    d.checked += 1


def pump(d: Direction) -> None:
    """One batch: read everything pending, segment, coalesce, write, flush."""
    out: list[bytes] = []
    while True:
        try:
            buf = os.read(d.src, 65536 + 128)
        except BlockingIOError:
            break
        h = buf[:10]
        flags, gso_type = h[0], h[1]
        frame = buf[VNET_LEN:]
        d.max_read = max(d.max_read, len(frame))
        if gso_type != GSO_NONE:
            d.superframes += 1
            d.gso_types.add(gso_type)
            try:
                frames = off.segment(h, frame, MAX_FRAME)
            except (ValueError, OverflowError) as e:
                d.errors.append(f"segment: {e}")
                continue
            d.segments += len(frames)
            for f in frames:
                if d.checked < SCAPY_CHECKS:
                    check_segment(f, d)
        else:
            if flags & F_NEEDS_CSUM:
                frame = off.complete_csum(h, frame)
                d.completed += 1
            frames = [frame]
        for f in frames:
            out += d.gro.add(f) if d.use_gro else [bytes(VNET_LEN) + f]
    out += d.gro.flush()
    for b in out:
        try:
            os.write(d.dst, b)
        except OSError as e:  # EINVAL here would mean the kernel refused our vnet header
            d.errors.append(f"write: {e}")


@contextlib.contextmanager
def relay(fd_a: int, fd_b: int, use_gro: bool) -> Iterator[tuple[Direction, Direction]]:
    ab, ba = Direction(fd_a, fd_b, use_gro), Direction(fd_b, fd_a, use_gro)
    stop_r, stop_w = os.pipe()

    def run() -> None:
        while True:
            ready, _, _ = select.select([fd_a, fd_b, stop_r], [], [])
            if stop_r in ready:
                return
            for d in (ab, ba):
                if d.src in ready:
                    try:
                        pump(d)
                    except Exception as e:  # reported by the test, not lost with the thread
                        d.errors.append(f"relay: {e!r}")
                        return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield ab, ba
    finally:
        os.write(stop_w, b"x")
        t.join(10)
        os.close(stop_r)
        os.close(stop_w)


UDP_SIZES = [0, 1, 2, 3, 100, 1001, 1400, 3000]


def udp_exchange(client: Netns, server: Netns, addr: str) -> None:
    """UDP datagrams (checksum completed by l2o_complete_csum in the relay) all arrive."""
    srv = server.popen(*prog("udp_sink"), addr, str(len(UDP_SIZES)))
    try:
        assert srv.stdout is not None
        assert srv.stdout.readline().strip() == "ready"
        client.run(*prog("udp_send"), addr, *map(str, UDP_SIZES))
        out, err = srv.communicate(timeout=15)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    assert sorted(map(int, out.split())) == sorted(UDP_SIZES), err


def nstat(ns: Netns, name: str) -> int:
    out = ns.run("nstat", "-az", name).stdout.split()
    return int(out[out.index(name) + 1]) if name in out else 0


@pytest.mark.parametrize("use_gro", [True, False], ids=["gro", "segments"])
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_kernel_super_frames_segmented_and_coalesced(family: str, use_gro: bool) -> None:
    """With GRO the kernel receives our super-frames; without, it checks every segment."""
    require_root()
    v6 = family == "ipv6"
    tag = ("v6" if v6 else "v4") + ("g" if use_gro else "s")
    na, nb = Netns(f"off{tag}a"), Netns(f"off{tag}b")
    fds: list[int] = []
    try:
        addrs = ("fd00:9::1", "fd00:9::2") if v6 else ("10.99.0.1", "10.99.0.2")
        plen = 64 if v6 else 24
        for i, (ns, addr) in enumerate(((na, addrs[0]), (nb, addrs[1]))):
            name = f"{PREFIX}t{i}"
            fds.append(open_tap(name))
            sh("ip", "link", "set", "dev", name, "netns", ns.name)
            ns.ip("link", "set", name, "name", "tap0")
            ns.ip("link", "set", "tap0", "address", f"02:00:00:00:99:0{i + 1}", "mtu", str(MTU))
            ns.ip("addr", "add", f"{addr}/{plen}", "dev", "tap0", *(["nodad"] if v6 else []))
            ns.ip("link", "set", "tap0", "up")
        for ns in (na, nb):
            ns.run("nstat", "-n")
        with relay(fds[0], fds[1], use_gro) as (ab, ba):
            tcp_transfer(nb, na, addrs[1], 24 << 20, seed=4)
            udp_exchange(na, nb, addrs[1])
        for d in (ab, ba):
            assert d.errors == [], d.errors[:5]
        # (a) the kernel handed over real TSO super-frames, and every segment was valid: GRO
        # verified each TCP checksum (and IPv4 header checksum) before merging, or, without
        # GRO, the receiving kernel checked each one itself (no checksum errors below).
        assert ab.gso_types == {GSO_TCPV6 if v6 else GSO_TCPV4}
        assert ab.superframes > 10 and ab.max_read > 4 * MTU, (ab.superframes, ab.max_read)
        assert ab.checked == SCAPY_CHECKS
        assert ab.gro.stats["bad_csum"] == 0 and ba.gro.stats["bad_csum"] == 0
        # (b) the super-frames we built were accepted: the data arrived (SHA-256 checked in
        # tcp_transfer), nothing was dropped at the TAP, no checksum errors in either stack.
        if use_gro:
            assert ab.gro.stats["superframes"] > 10, ab.gro.stats
            assert ab.gro.stats["merged"] > 10 * ab.gro.stats["superframes"] / 2
        else:
            assert nstat(nb, "TcpInSegs") >= ab.segments
        assert nb.link_stat("tap0", "rx_dropped") == 0
        for ns in (na, nb):
            assert nstat(ns, "TcpInCsumErrors") == 0
        # UDP and pure ACKs left the TAP as CHECKSUM_PARTIAL and were finished here
        assert ab.completed > 0 and ba.completed > 0
        assert nstat(nb, "UdpInCsumErrors" if not v6 else "Udp6InCsumErrors") == 0
        print(
            f"\n{family} gro={use_gro}: read {ab.superframes} super-frames "
            f"(max {ab.max_read} B) -> {ab.segments} segments; GRO {ab.gro.stats}"
        )
    finally:
        for fd in fds:
            os.close(fd)
        na.delete()
        nb.delete()


def test_gro_super_frame_reaches_a_listening_socket() -> None:
    """Sanity of the header alone: a super-frame written once, no retransmission can help."""
    require_root()
    ns = Netns("offsyn")
    fd = -1
    try:
        name = f"{PREFIX}ts"
        fd = open_tap(name)
        sh("ip", "link", "set", "dev", name, "netns", ns.name)
        ns.ip("link", "set", name, "name", "tap0")
        ns.ip("link", "set", "tap0", "address", "02:00:00:00:98:01", "up")
        ns.ip("addr", "add", "10.98.0.1/24", "dev", "tap0")
        ns.ip("neigh", "add", "10.98.0.2", "lladdr", "02:00:00:00:98:02", "dev", "tap0")
        srv = ns.popen(*prog("tcp_hash_listener"), "10.98.0.1", "7000", "20000")
        assert srv.stdout is not None
        assert srv.stdout.readline().strip() == "ready"
        peer = Ether(src="02:00:00:00:98:02", dst="02:00:00:00:98:01") / IP(
            src="10.98.0.2", dst="10.98.0.1", flags="DF"
        )
        syn = peer / TCP(sport=33333, dport=7000, seq=1000, flags="S", window=65535)
        os.write(fd, bytes(VNET_LEN) + bytes(syn))
        synack = None
        for _ in range(50):
            select.select([fd], [], [], 0.1)
            try:
                buf = os.read(fd, 65536)
            except BlockingIOError:
                continue
            pkt = Ether(buf[VNET_LEN:])
            if TCP in pkt and pkt[TCP].flags == "SA":
                synack = pkt
                break
        assert synack is not None, "no SYN-ACK from the namespace"
        ack = synack[TCP].seq + 1
        data = os.urandom(20000)
        segs = [
            bytes(
                peer
                / TCP(sport=33333, dport=7000, seq=1001 + i, ack=ack, flags="A")
                / data[i : i + 1000]
            )
            for i in range(0, len(data), 1000)
        ]
        g = off.Coalescer(VNET_LEN)
        out = [b for s in segs for b in g.add(s)] + g.flush()
        assert len(out) == 1 and out[0][1] == GSO_TCPV4
        os.write(fd, out[0])
        got, _ = srv.communicate(timeout=15)
        assert got.strip() == hashlib.sha256(data).hexdigest()
    finally:
        if fd >= 0:
            os.close(fd)
        ns.delete()
