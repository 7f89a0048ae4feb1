"""The interop harness's own parts that need no VM: the initramfs writer, module
ordering, the guest-side parsers (debugfs, l2tpstats), the pcap reader, and the TCP
programs and stale-namespace names of the namespace toolkit."""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import struct
import subprocess
from pathlib import Path

import pytest

from interop.build import BuildError, _Cpio, module_order
from interop.capture import read_pcap, read_pcap_times
from interop.kstats import parse_debugfs, parse_l2tpstats
from interop.netns import STALE_NAMESPACE, prog

# Verbatim from the 6.1 guest (cat /sys/kernel/debug/l2tp/tunnels) after traffic.
DEBUGFS = """TUNNEL ID, peer ID from IP to IP
 L2TPv2/L2TPv3, UDP/IP
 sessions session-count, refcnt refcnt/sk->refcnt
 debug tx-pkts/bytes/errs rx-pkts/bytes/errs
  SESSION ID, peer ID, PWTYPE
   refcnt cnt
   offset OFFSET l2specific TYPE/LEN
   [ cookie ]
   [ peer cookie ]
   config mtu/mru/rcvseq/sendseq/dataseq/lns debug reorderto
   nr/ns tx-pkts/bytes/errs rx-pkts/bytes/errs

TUNNEL 1 peer 2 from 192.0.2.2 to 192.0.2.1
 source port 1701, dest port 1701
 L2TPv3, UDP
 1 sessions, refcnt 3/3
 00000000 rx 11211/12409018/0 rx 13857/12615302/0
  SESSION 3, peer 4, ETH
   refcnt 2
   config 0/0/R/S/-/LAC 00000000 0
   offset 0 l2specific 1/4
   17/42 tx 11211/12409018/0 rx 13857/12615302/0
   interface l2tpeth0
"""


def newc_entries(data: bytes) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, data) from a newc archive (the kernel's initramfs format)."""
    out: dict[str, tuple[int, bytes]] = {}
    off = 0
    while True:
        assert data[off : off + 6] == b"070701"
        fields = [int(data[off + 6 + 8 * i : off + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_at = off + 110
        name = data[name_at : name_at + namesize - 1].decode()
        body_at = name_at + namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, data[body_at : body_at + size])
        off = body_at + size + (-size % 4)


def test_cpio_writer_round_trip() -> None:
    cpio = _Cpio()
    cpio.file("bin/busybox", b"\x7fELF...", 0o755)
    cpio.file("lib/modules/a.ko", b"x" * 5)
    cpio.symlink("sbin/sh", "/bin/busybox")
    entries = newc_entries(cpio.finish())
    assert entries["bin/busybox"] == (0o100755, b"\x7fELF...")
    assert entries["lib/modules/a.ko"] == (0o100644, b"xxxxx")
    assert entries["sbin/sh"] == (0o120777, b"/bin/busybox")
    # Parent directories come first, once each.
    assert entries["bin"][0] == entries["lib/modules"][0] == 0o040755
    assert list(entries).index("lib") < list(entries).index("lib/modules/a.ko")
    assert gzip.decompress(gzip.compress(cpio.buf.getvalue())) == cpio.buf.getvalue()


def _ko(path: Path, depends: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF\0\0license=GPL\0depends=" + depends.encode() + b"\0name=x\0")


def test_module_order_puts_dependencies_first(tmp_path: Path) -> None:
    moddir = tmp_path / "6.1.0" / "kernel"
    _ko(moddir / "net/l2tp/l2tp_eth.ko", "l2tp_netlink,l2tp_core")
    _ko(moddir / "net/l2tp/l2tp_netlink.ko", "l2tp_core")
    _ko(moddir / "net/l2tp/l2tp_core.ko", "udp_tunnel,ip6_udp_tunnel")
    _ko(moddir / "net/ipv4/udp_tunnel.ko", "")
    _ko(moddir / "net/ipv6/ip6_udp_tunnel.ko", "")
    (tmp_path / "6.1.0" / "modules.builtin").write_text("kernel/net/ipv6/ipv6.ko\n")
    order = [p.name for p in module_order(moddir, ("l2tp_eth", "ipv6"))]
    assert order == ["udp_tunnel.ko", "ip6_udp_tunnel.ko", "l2tp_core.ko",
                     "l2tp_netlink.ko", "l2tp_eth.ko"]  # fmt: skip
    with pytest.raises(BuildError, match="l2tp_ppp"):
        module_order(moddir, ("l2tp_ppp",))


def test_parse_debugfs() -> None:
    s = parse_debugfs(DEBUGFS)
    assert s == {3: {"peer_session_id": 4, "recv_seq": 1, "send_seq": 1, "lns_mode": 0,
                     "nr": 17, "ns": 42, "tx_packets": 11211, "tx_bytes": 12409018,
                     "tx_errors": 0, "rx_packets": 13857, "rx_bytes": 12615302,
                     "rx_errors": 0}}  # fmt: skip


def test_parse_l2tpstats() -> None:
    text = (
        "session 10 tunnel 1000 peer_session 20 tx_packets 5 tx_bytes 500 tx_errors 0"
        " rx_packets 0 rx_bytes 0 rx_seq_discards 7 rx_oos_packets 0 rx_errors 7"
        " rx_cookie_discards 0 rx_invalid 0\n"
        "l2tpstats: something odd\n"
    )
    got = parse_l2tpstats(text)
    assert list(got) == [10]
    assert got[10]["rx_seq_discards"] == 7 and got[10]["tunnel"] == 1000
    assert got[10]["peer_session"] == 20 and got[10]["tx_bytes"] == 500


@pytest.mark.parametrize("endian,magic,scale", [("<", 0xA1B2C3D4, 1e6), (">", 0xA1B23C4D, 1e9)])
def test_read_pcap(endian: str, magic: int, scale: float) -> None:
    frames = [b"\x02" * 60, b"\xff" * 42]
    data = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    for i, f in enumerate(frames):
        data += struct.pack(endian + "IIII", 100 + i, int(0.5 * scale), len(f), len(f)) + f
    assert read_pcap(data) == frames
    assert [t for t, _ in read_pcap_times(data)] == [100.5, 101.5]
    with pytest.raises(ValueError, match="not a pcap"):
        read_pcap(b"\0" * 24)
    linux_sll = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 113)
    with pytest.raises(ValueError, match="link type 113"):
        read_pcap(linux_sll)


def test_tcp_programs_agree_over_loopback() -> None:
    """interop/progs: the seeded sender's bytes are random.Random(seed).randbytes(size),
    made 1 MiB at a time, and the sink's count and digest match what was sent."""
    size, seed = (1 << 20) * 2 + 12345, 7
    sink = subprocess.Popen([*prog("tcp_sink"), "127.0.0.1", "0"], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        assert sink.stdout is not None
        assert sink.stdout.readline().strip() == "ready"
        port = _listening_port(sink.pid)
        sent = subprocess.run([*prog("tcp_send"), "127.0.0.1", str(port), str(size), str(seed)],
                              capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
        got, _ = sink.communicate(timeout=60)
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    expected = hashlib.sha256(random.Random(seed).randbytes(size)).hexdigest()
    assert sent.stdout.split() == got.split() == [str(size), expected]


def _listening_port(pid: int) -> int:
    """The TCP port a process listens on (from /proc/PID/net/tcp and its socket inodes)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    with open(f"/proc/{pid}/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                return int(fields[1].split(":")[1], 16)
    raise AssertionError(f"process {pid} listens on no TCP port")


def test_stale_namespace_names() -> None:
    """Namespaces of earlier runs, this toolkit's prefix and the older bench/interop ones."""
    for name in ("l2t123-a", "l2b77-kvm", "l2i5-qd"):
        assert STALE_NAMESPACE.match(name), name
    for name in ("l2tpv3-demo-a", "other-1"):
        assert not STALE_NAMESPACE.match(name), name
