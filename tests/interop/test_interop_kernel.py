"""l2tpv3d against the Linux kernel's l2tp_eth, in a QEMU guest (interop/).

One VM per module; each case deletes every tunnel on both sides and configures a fresh
pair: ours with the l2tpv3 client, the kernel with the `ip l2tp` lines `peer_lines`
prints (l2tpv3 peer-config --for linux). Then ping both ways, a TCP transfer each way
with SHA-256 checked where the bytes were made and where they arrived, MTU checks, and
the kernel's counters (debugfs) against ours.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import pytest

from interop import cases
from interop.build import BuildError, build
from interop.capture import read_pcap_times
from interop.cases import KERNEL_SID, OUR_SID, Case
from interop.kstats import kernel_sessions
from interop.lab import (
    GUEST4,
    HOST4,
    INNER_GUEST4,
    INNER_GUEST6,
    INNER_HOST4,
    INNER_HOST6,
    KernelPeer,
    kernel_peer,
)  # fmt: skip
from interop.peerlines import uses_cli
from interop.traffic import guest_to_host, host_to_guest
from interop.vm import GuestHang
from l2tpv3.config import SeqMode, SessionConfig, TunnelConfig
from l2tpv3.proto.session import Session
from tests.support.netns import Daemon, require_root, wait_until, workdir

pytestmark = [pytest.mark.root, pytest.mark.interop]

# 10 MB each way for every case fits the 15-minute budget (see docs/interop.md);
# L2TPV3_INTEROP_MB overrides it for quick local runs.
TRANSFER = int(float(os.environ.get("L2TPV3_INTEROP_MB", "10")) * 1024 * 1024)
TIMINGS: list[tuple[str, float]] = []
LOSSES: list[tuple[str, tuple[int, int]]] = []


CASES = [
    Case(encap, family, cookie, l2spec, seq)
    for encap in ("udp", "ip")
    for family in (4, 6)
    for cookie in (0, 4, 8)
    for l2spec, seq in (
        ("none", "none"),
        ("default", "none"),
        ("default", "send"),
        ("default", "recv"),
        ("default", "both"),
    )
]


def require_interop() -> None:
    missing = [t for t in ("qemu-system-x86_64", "apt-get", "dpkg") if shutil.which(t) is None]
    if missing:
        msg = "interop tests need " + ", ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


@dataclass
class Lab:
    peer: KernelPeer
    daemon: Daemon


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root()
    require_interop()
    t0 = time.monotonic()
    try:
        art = build()
    except BuildError as exc:
        pytest.fail(f"interop build: {exc}")
    TIMINGS.append(("build", time.monotonic() - t0))
    with workdir() as wd, kernel_peer(artifacts=art, workdir=wd) as peer:
        TIMINGS.append(("boot", peer.vm.boot_seconds))
        daemon = Daemon(peer.ns, wd)
        try:
            # The kernel is configured from what users run: l2tpv3 peer-config.
            assert uses_cli(daemon), "l2tpv3 peer-config --for linux is missing"
            yield Lab(peer, daemon)
        finally:
            log = daemon.stop()
            assert "Traceback" not in log, log
    report = "\n".join(f"  {name}: {secs:.1f}s" for name, secs in TIMINGS)
    lossy = [f"{name} {lost}" for name, lost in LOSSES if lost != (0, 0)]
    report += f"\n  underlay drops (to guest, to us): {', '.join(lossy) or 'none'}"
    out = Path(__file__).resolve().parents[2] / "build" / "interop" / "kernel-timings.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report + "\n")
    print(f"\nkernel interop timings:\n{report}")


def configure(lab: Lab, case: Case) -> list[str]:
    return cases.configure(lab.peer, lab.daemon, case)


def our_stats(lab: Lab) -> dict[str, int]:
    return dict(lab.daemon.session(OUR_SID)["stats"])


def kernel_stats(lab: Lab) -> dict[str, int]:
    return kernel_sessions(lab.peer)[KERNEL_SID]


def mtus(lab: Lab) -> tuple[int, int]:
    ours = int(lab.peer.ns.run("cat", "/sys/class/net/l2tpeth0/mtu").stdout)
    theirs = int(lab.peer.sh("cat /sys/class/net/l2tpeth0/mtu"))
    return ours, theirs


def ping_host(lab: Lab, addr: str, size: int = 56, count: int = 2, df: bool = False) -> bool:
    args = ["ping", "-c", str(count), "-i", "0.2", "-W", "2", "-s", str(size)]
    if df:
        args += ["-M", "do"]
    return lab.peer.ns.run(*args, addr, check=False, timeout=30).returncode == 0


def ping_guest(lab: Lab, addr: str, size: int = 56, count: int = 2, df: bool = False) -> bool:
    # busybox ping cannot set DF; at exactly the MTU nothing is fragmented anyway.
    opt = "-6 " if ":" in addr else ""
    res = lab.peer.vm.run(f"ping {opt}-A -c {count} -W 2 -s {size} {addr}", timeout=30)
    return res.status == 0


def _socket_drops(table: str) -> int:
    """Sum of the per-socket ``drops`` column of /proc/net/{udp,udp6,raw,raw6}."""
    total = 0
    for line in table.splitlines():
        fields = line.split()
        if fields and fields[0].endswith(":") and fields[0][:-1].isdigit():
            total += int(fields[-1])
    return total


def underlay_losses(lab: Lab) -> tuple[int, int]:
    """Packets the underlay itself dropped so far: (towards the guest, towards us).

    Towards the guest: the TAP's queue overflowing while QEMU (TCG) is busy
    (tap0 tx_dropped) and the guest NIC dropping. Towards us: the guest NIC, the TAP, and
    our UDP/raw socket buffers (the drops column of /proc/net/*).
    """
    host = lab.peer.ns.run(
        "sh", "-c", "cd /sys/class/net/tap0/statistics && cat tx_dropped rx_dropped"
        " /proc/net/udp /proc/net/udp6 /proc/net/raw /proc/net/raw6",
    ).stdout.split("\n", 2)  # fmt: skip
    tap = {"tx_dropped": host[0], "rx_dropped": host[1]}
    guest = lab.peer.sh(
        "cd /sys/class/net/eth0/statistics && cat rx_dropped rx_missed_errors rx_fifo_errors"
        " tx_dropped"
    ).split()
    to_guest = int(tap["tx_dropped"]) + sum(int(x) for x in guest[:3])
    to_host = int(tap["rx_dropped"]) + int(guest[3]) + _socket_drops(host[2])
    return to_guest, to_host


def quiet_snapshot(lab: Lab) -> tuple[dict[str, int], dict[str, int], tuple[int, int]]:
    """Both ends' counters and the underlay's drops at a moment when nothing is in flight:
    two readings 0.3 s apart that are identical (stray IPv6 solicitations, late ACKs)."""
    last = None
    for _ in range(30):
        now = (our_stats(lab), kernel_stats(lab), underlay_losses(lab))
        if now == last:
            return now
        last = now
        time.sleep(0.3)
    raise AssertionError("the pseudowire never went quiet")


def settle(
    lab: Lab, ours0: dict[str, int], kern0: dict[str, int], loss0: tuple[int, int]
) -> tuple[dict[str, int], dict[str, int], tuple[int, int]]:
    """Counter deltas since the snapshots, once every packet one end counted as sent is
    counted by the other or by an underlay drop counter (packets may be in flight)."""
    result: list[dict[str, int]] = []
    loss = [(0, 0)]

    def agree() -> bool:
        o, k = our_stats(lab), kernel_stats(lab)
        lg, lh = underlay_losses(lab)
        do = {n: o[n] - ours0[n] for n in o}
        dk = {n: k[n] - kern0[n] for n in k}
        result[:] = [do, dk]
        loss[0] = (lg - loss0[0], lh - loss0[1])
        return (do["tx_packets"] - dk["rx_packets"], dk["tx_packets"] - do["rx_packets"]) == loss[0]

    wait_until(agree, timeout=8)
    return result[0], result[1], loss[0]


def check_counters(d_ours: dict[str, int], d_kern: dict[str, int], loss: tuple[int, int]) -> None:
    """What one end sent, the other received, packet for packet and byte for byte; a packet
    the underlay dropped (and counted) is the only excuse."""
    to_guest, to_host = loss
    assert d_ours["tx_packets"] - d_kern["rx_packets"] == to_guest, (d_ours, d_kern, loss)
    assert d_kern["tx_packets"] - d_ours["rx_packets"] == to_host, (d_ours, d_kern, loss)
    for sent, got, lost in ((d_ours["tx_bytes"], d_kern["rx_bytes"], to_guest),
                            (d_kern["tx_bytes"], d_ours["rx_bytes"], to_host)):  # fmt: skip
        if lost == 0:
            assert sent == got, (d_ours, d_kern)
        else:
            assert 0 < sent - got <= lost * 1600, (d_ours, d_kern, loss)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kernel_matrix(lab: Lab, case: Case) -> None:
    t0 = time.monotonic()
    configure(lab, case)
    ours_mtu, kernel_mtu = mtus(lab)
    assert ours_mtu == kernel_mtu, f"our l2tpeth0 MTU {ours_mtu}, kernel's {kernel_mtu}"
    # The kernel speaks first: with our `seq recv` its sequenced packets are what switch
    # our sending on (LAC mode); until then it would drop ours.
    assert wait_until(lambda: ping_guest(lab, INNER_HOST4, count=1), timeout=15), "no path"
    ours0, kern0, loss0 = quiet_snapshot(lab)
    assert ping_guest(lab, INNER_HOST4) and ping_guest(lab, INNER_HOST6)
    assert ping_host(lab, INNER_GUEST4) and ping_host(lab, INNER_GUEST6)
    # A frame of exactly the MTU crosses both ways, DF set.
    assert ping_host(lab, INNER_GUEST4, size=ours_mtu - 28, df=True)
    assert ping_guest(lab, INNER_HOST4, size=kernel_mtu - 28)
    inner = INNER_GUEST4 if case.family == 4 else INNER_GUEST6
    back = INNER_HOST4 if case.family == 4 else INNER_HOST6
    down = host_to_guest(lab.peer, inner, TRANSFER)
    assert down.ok, down
    up = guest_to_host(lab.peer, back, TRANSFER)
    assert up.ok, up
    d_ours, d_kern, loss = settle(lab, ours0, kern0, loss0)
    check_counters(d_ours, d_kern, loss)
    LOSSES.append((case.id, loss))
    assert d_ours["tx_packets"] > TRANSFER // 1500 and d_ours["rx_packets"] > TRANSFER // 1500
    for name in ("rx_errors", "rx_seq_discards", "rx_oos_packets", "rx_cookie_discards",
                 "rx_invalid"):  # fmt: skip
        assert d_ours[name] == 0, (name, d_ours)
    for name in ("rx_errors", "rx_seq_discards", "rx_oos_packets", "rx_cookie_discards",
                 "rx_invalid", "tx_errors"):  # fmt: skip
        assert d_kern[name] == 0, (name, d_kern)
    k = kernel_stats(lab)
    if case.seq != "none":
        # The kernel numbered what it sent, and our sequencer took every number in order.
        assert k["send_seq"] == 1 and k["ns"] > 0
    else:
        assert k["send_seq"] == 0 and k["recv_seq"] == 0
    TIMINGS.append((case.id, time.monotonic() - t0))


OVERSIZE_CASES = [Case("udp", 4, 0, "default", "none"), Case("ip", 6, 8, "none", "none")]


@pytest.mark.parametrize("case", OVERSIZE_CASES, ids=[c.id for c in OVERSIZE_CASES])
def test_kernel_oversize_frames(lab: Lab, case: Case) -> None:
    """Frames longer than the receiver's MTU: both ends accept up to MTU + 18 (Ethernet
    header plus a VLAN tag, the kernel's is_skb_forwardable) and drop anything longer.

    The sender's MTU is raised so it emits such frames; IPv4 pings with DF set carry an
    IP packet of MTU + extra bytes, a frame of MTU + extra + 14.
    """
    configure(lab, case)
    mtu, kernel_mtu = mtus(lab)
    assert mtu == kernel_mtu
    ns = lab.peer.ns
    assert wait_until(lambda: ping_host(lab, INNER_GUEST4, count=1), timeout=15)
    # Only the sender's MTU is raised: the receiver keeps the MTU it checks against, and
    # fragments its (DF-less) echo replies.
    ns.ip("link", "set", "l2tpeth0", "mtu", str(mtu + 8))
    try:
        received = []
        for extra in (1, 4, 5):
            k0 = kernel_stats(lab)["rx_packets"]
            ok = ping_host(lab, INNER_GUEST4, size=mtu + extra - 28, count=1, df=True)
            received.append((extra, ok, kernel_stats(lab)["rx_packets"] > k0))
    finally:
        ns.ip("link", "set", "l2tpeth0", "mtu", str(mtu))
    # l2tpv3d follows `ip link set ... mtu` through the RTM_NEWLINK event, queued to it
    # before the command returns, so its receive limit is the restored MTU at once (no
    # wait), as the kernel reads the live MTU per packet.
    # The kernel takes frames up to MTU + 18 (is_skb_forwardable: MTU + 14 + VLAN tag).
    assert [(e, ok) for e, ok, _ in received] == [(1, True), (4, True), (5, False)], received
    assert all(counted for _, _, counted in received), received  # l2tp counted it anyway
    lab.peer.sh(f"ip link set l2tpeth0 mtu {mtu + 8}")
    try:
        sent = []
        for extra in (1, 4, 5):
            d0 = lab.daemon.session(OUR_SID)["drops"]["frame_too_long"]
            ok = ping_guest(lab, INNER_HOST4, size=mtu + extra - 28, count=1)
            sent.append((extra, ok, lab.daemon.session(OUR_SID)["drops"]["frame_too_long"] - d0))
    finally:
        lab.peer.sh(f"ip link set l2tpeth0 mtu {mtu}")
    # We do the same, and count the drop.
    assert sent == [(1, True, 0), (4, True, 0), (5, False, 1)], sent


def _ipv4_only(lab: Lab, case: Case, edit: dict[str, str], session_suffix: str = "") -> list[str]:
    """Both ends of ``case`` without IPv6 on the inner interfaces, so neither end says
    anything unprompted; the kernel's lines edited by ``edit``."""
    cases.reset(lab.peer, lab.daemon)
    cases.configure_ours(lab.peer, lab.daemon, case, ipv6=False)
    lines = cases.kernel_lines(lab.daemon, case, edit)
    lines = [ln + session_suffix if " add session " in ln else ln for ln in lines]
    lab.peer.configure(lines, inner=False)
    lab.peer.sh(
        "echo 1 > /proc/sys/net/ipv6/conf/l2tpeth0/disable_ipv6\n"
        f"ip addr add {INNER_GUEST4}/24 dev l2tpeth0 && ip link set l2tpeth0 up"
    )
    return lines


def test_kernel_lac_mode_starts_sequencing(lab: Lab) -> None:
    """A kernel session with `seq none` that receives our S=1 packets starts sending
    sequence numbers itself (LAC mode, docs/protocol-notes.md)."""
    lines = _ipv4_only(lab, Case("udp", 4, 0, "default", "send"), {" seq send": ""})
    assert not any(" seq " in ln for ln in lines), lines
    k = kernel_stats(lab)
    assert (k["send_seq"], k["recv_seq"], k["ns"]) == (0, 0, 0), k
    assert wait_until(lambda: ping_host(lab, INNER_GUEST4, count=1), timeout=15)
    k = kernel_stats(lab)
    assert k["send_seq"] == 1 and k["ns"] > 0, k
    assert k["nr"] > 0, k  # it tracked the numbers we sent
    ours = our_stats(lab)
    assert ours["rx_packets"] == k["tx_packets"] and ours["rx_seq_discards"] == 0


def test_kernel_seq_both_drops_our_unsequenced(lab: Lab) -> None:
    """With `seq both` on the kernel, our S=0 packets are dropped there, until the
    kernel's own S=1 packets switch our sending on (our LAC mode)."""
    lines = _ipv4_only(lab, Case("udp", 4, 0, "default", "none"), {}, " seq both")
    assert any(" seq both" in ln for ln in lines), lines
    k0, ours0 = kernel_stats(lab), our_stats(lab)
    assert (k0["recv_seq"], k0["send_seq"]) == (1, 1)
    assert not ping_host(lab, INNER_GUEST4, count=2)
    k1, ours1 = kernel_stats(lab), our_stats(lab)
    sent = ours1["tx_packets"] - ours0["tx_packets"]
    assert sent > 0
    # Every one of them dropped by the kernel and counted as a sequence discard (netlink
    # stats); nothing delivered, and the kernel never answered.
    assert k1["rx_seq_discards"] - k0["rx_seq_discards"] == sent, (k0, k1, sent)
    assert k1["rx_errors"] - k0["rx_errors"] == sent
    assert k1["rx_packets"] == k0["rx_packets"] and k1["tx_packets"] == k0["tx_packets"]
    # The kernel speaks first: its S=1 packets switch our sending on; then both ways work.
    assert ping_guest(lab, INNER_HOST4, count=2)
    assert ping_host(lab, INNER_GUEST4, count=2)
    k2 = kernel_stats(lab)
    assert k2["rx_packets"] > k1["rx_packets"] and k2["nr"] > 0
    assert our_stats(lab)["rx_seq_discards"] == 0


@pytest.mark.parametrize("reorder_timeout", [0, 500])
def test_we_sequence_what_the_kernel_sends(lab: Lab, reorder_timeout: int) -> None:
    """netem in the guest reorders the kernel's sequenced packets; our daemon must do
    exactly what our sans-I/O sequencer (the kernel's semantics, docs/protocol-notes.md)
    does with the same packets in the same arrival order, read off the TAP with tcpdump:
    with reorder_timeout 0 drop what is out of order, with a timeout put it back in order.
    """
    case = Case("udp", 4, 0, "default", "both")
    cases.reset(lab.peer, lab.daemon)
    extra = ("reorder_timeout", str(reorder_timeout)) if reorder_timeout else ()
    cases.configure_ours(lab.peer, lab.daemon, case, ipv6=False, extra=extra)
    ns = lab.peer.ns
    dump = subprocess.Popen(
        ["ip", "netns", "exec", ns.name, "tcpdump", "-i", "tap0", "--immediate-mode", "-U",
         "-n", "-s", "0", "-w", "-", f"src host {GUEST4} and udp"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert dump.stderr is not None
        assert b"listening" in dump.stderr.readline()
        lines = cases.kernel_lines(lab.daemon, case)
        lab.peer.configure(lines, inner=False)
        lab.peer.sh(
            "echo 1 > /proc/sys/net/ipv6/conf/l2tpeth0/disable_ipv6\n"
            f"ip addr add {INNER_GUEST4}/24 dev l2tpeth0 && ip link set l2tpeth0 up\n"
            f"ping -A -c 2 -W 2 {INNER_HOST4}\n"
            # Half the packets wait 20 ms: with one every 5 ms, they overtake each other.
            "tc qdisc add dev eth0 root netem delay 20ms reorder 50%\n"
            f"ping -q -c 60 -i 0.005 -W 1 {INNER_HOST4} >/dev/null; "
            "tc qdisc del dev eth0 root; sleep 1",
            timeout=60,
        )
    finally:
        dump.terminate()
    pcap, _ = dump.communicate(timeout=10)
    arrivals = [(t, frame[14 + 20 + 8 :]) for t, frame in read_pcap_times(pcap)]
    # L2TP over UDP: flags word, session ID, then the sublayer (no cookie here).
    numbers = [int.from_bytes(p[8:12], "big") & 0xFFFFFF for _, p in arrivals]
    assert numbers != sorted(numbers), "netem did not reorder anything: the test proves nothing"

    # The reference: the same configuration, the same packets, the same arrival times.
    ours_t = TunnelConfig(tunnel_id=cases.OUR_TID, peer_tunnel_id=cases.KERNEL_TID,
                          local=ip_address(HOST4), remote=ip_address(GUEST4),
                          udp_sport=cases.OUR_SPORT, udp_dport=cases.OUR_DPORT)  # fmt: skip
    ours_s = SessionConfig(tunnel_id=cases.OUR_TID, session_id=OUR_SID,
                           peer_session_id=KERNEL_SID, seq=SeqMode.BOTH,
                           reorder_timeout=reorder_timeout)  # fmt: skip
    ref = Session(ours_t, ours_s)
    ref.set_mtu(int(ns.run("cat", "/sys/class/net/l2tpeth0/mtu").stdout))
    t0 = arrivals[0][0]
    for t, payload in arrivals:
        ref.poll(t - t0)
        ref.receive(payload, t - t0)
    ref.poll(arrivals[-1][0] - t0 + 10)
    names = ("rx_packets", "rx_bytes", "rx_seq_discards", "rx_oos_packets", "rx_errors")
    expected = {n: getattr(ref.counters, n) for n in names}
    assert wait_until(lambda: {n: our_stats(lab)[n] for n in expected} == expected, 5), (
        our_stats(lab), expected, numbers)  # fmt: skip
    if reorder_timeout:
        # Everything was put back in order, nothing lost.
        assert expected["rx_packets"] == len(arrivals) and expected["rx_oos_packets"] > 0
    else:
        assert expected["rx_seq_discards"] > 0 and expected["rx_packets"] < len(arrivals)
    print(f"\nreorder_timeout {reorder_timeout}: {len(arrivals)} kernel packets, arrival order "
          f"{numbers}, counters {expected}")  # fmt: skip


def test_cookie_mismatch_counted_alike(lab: Lab) -> None:
    """A cookie that does not match is dropped and counted the same way at both ends:
    every packet one end sends shows up in the other's rx_cookie_discards."""
    case = Case("ip", 4, 4, "default", "none")
    cookie, peer_cookie = case.cookies
    # The kernel expects a cookie we do not send, and sends one we do not expect.
    edit = {f"peer_cookie {cookie}": "peer_cookie 0a0b0c0e",
            f"cookie {peer_cookie}": "cookie 11223345"}  # fmt: skip
    lines = _ipv4_only(lab, case, edit)
    assert any("peer_cookie 0a0b0c0e" in ln for ln in lines), lines
    o0, k0, _ = quiet_snapshot(lab)
    assert not ping_host(lab, INNER_GUEST4, count=2)
    assert not ping_guest(lab, INNER_HOST4, count=2)
    o1, k1, _ = quiet_snapshot(lab)
    assert o1["tx_packets"] > o0["tx_packets"] and k1["tx_packets"] > k0["tx_packets"]
    assert (
        k1["rx_cookie_discards"] - k0["rx_cookie_discards"] == o1["tx_packets"] - o0["tx_packets"]
    )
    assert (
        o1["rx_cookie_discards"] - o0["rx_cookie_discards"] == k1["tx_packets"] - k0["tx_packets"]
    )
    assert k1["rx_packets"] == k0["rx_packets"] and o1["rx_packets"] == o0["rx_packets"]


def _syn_capture(ns_name: str, dev: str, port: int, direction: str, decap: int | None = None
                 ) -> subprocess.Popen[str]:  # fmt: skip
    from tests.support.progs import prog as test_prog

    args = [*test_prog("mss_probe"), "capture", dev, str(port), direction]
    if decap is not None:
        args.append(str(decap))
    proc = subprocess.Popen(["ip", "netns", "exec", ns_name, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def _syns_seen(proc: subprocess.Popen[str]) -> list[str]:
    import signal

    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return [ln for ln in out.splitlines() if ln.startswith("syn")]


def test_mss_clamp_on_syns_the_kernel_receives(lab: Lab) -> None:
    """`mss_clamp 1200` at our end only: the SYN and the SYN-ACK the kernel receives
    (read off the VM's NIC, inside the L2TP datagrams) carry MSS 1200 with a valid
    checksum, and so do those the kernel sends once we have passed them to our side;
    transfers both ways complete. The kernel itself is given only the `ip l2tp` lines
    (its busybox has no iptables)."""
    from interop.traffic import PORT

    case = Case("udp", 4, 0, "default", "none")
    cases.reset(lab.peer, lab.daemon)
    cases.configure_ours(lab.peer, lab.daemon, case, extra=("mss_clamp", "1200"))
    lines = cases.kernel_lines(lab.daemon, case)
    assert any("TCPMSS --set-mss 1200" in ln for ln in lines), lines
    lab.peer.configure([ln for ln in lines if ln.startswith(("ip l2tp", "#"))])
    assert wait_until(lambda: ping_guest(lab, INNER_HOST4, count=1), timeout=15), "no path"
    before = lab.daemon.session(OUR_SID)["features"]["mss_clamped"]
    # UDP encap, no cookie, default sublayer: 4 + 4 + 4 bytes of L2TP header.
    to_kernel = _syn_capture(lab.peer.ns.name, "tap0", PORT, "out", 12)
    to_us = _syn_capture(lab.peer.ns.name, "l2tpeth0", PORT, "in")
    try:
        down = host_to_guest(lab.peer, INNER_GUEST4, 1024 * 1024)
        up = guest_to_host(lab.peer, INNER_HOST4, 1024 * 1024)
    finally:
        kernel_saw, we_saw = _syns_seen(to_kernel), _syns_seen(to_us)
    assert down.ok and up.ok, (down, up)
    # host -> guest: our SYN (1406 from our l2tpeth0's MTU) clamped on its way out; the
    # kernel's SYN-ACK (1406) clamped on its way in. guest -> host: the other way round.
    tx = [ln for ln in kernel_saw if ln.split()[0] in ("syn", "synack")]
    assert sorted(tx) == ["syn 1200 csum-ok", "synack 1200 csum-ok"], kernel_saw
    assert sorted(we_saw) == ["syn 1200 csum-ok", "synack 1200 csum-ok"], we_saw
    assert lab.daemon.session(OUR_SID)["features"]["mss_clamped"] - before == 4


def test_a_lost_guest_is_booted_again_and_the_next_case_runs(lab: Lab) -> None:
    """The harness's answers to a guest that stops (tests/interop/conftest.py): a shell
    that stops answering is a GuestHang with the console's tail; a failure while the
    guest's NIC carries nothing becomes one (KernelPeer.lost), a failure with a working
    underlay does not; either way the VM is stopped, and the next test's reset boots a
    fresh guest on the same TAP that carries a pseudowire again."""
    case = Case("udp", 4, 0, "default", "none")
    assert lab.peer.lost(AssertionError("no path")) is None  # the underlay works
    old = lab.peer.vm
    with pytest.raises(
        GuestHang, match=r"timed out after 1s \((started|never started)\)[\s\S]*console:"
    ):
        old.run("echo begun; sleep 30", timeout=1)
    assert not old.alive
    configure(lab, case)  # interop.cases.reset revives the guest first
    assert lab.peer.vm is not old and lab.peer.vm.alive
    assert wait_until(lambda: ping_guest(lab, INNER_HOST4, count=1), timeout=15), "no path"
    # The guest's NIC goes quiet (as a stalled virtio queue would): the failure that
    # follows is the VM's, and says so.
    old = lab.peer.vm
    old.sh("ip link set eth0 down")
    hang = lab.peer.lost(AssertionError("no path"))
    assert hang is not None and "NIC stopped" in str(hang) and "no path" in str(hang)
    assert re.search(r"tap0 to the guest -?\d+ pkt/s, from the guest -?\d+ pkt/s", str(hang))
    assert not old.alive
    configure(lab, case)
    assert lab.peer.vm is not old
    assert wait_until(lambda: ping_guest(lab, INNER_HOST4, count=1), timeout=15), "no path"
    assert ping_host(lab, INNER_GUEST4)
