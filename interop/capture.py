"""Capture what the kernel peer sends, and write it out as test vectors.

``python3 -m interop capture -o tests/data/kernel_captures.py`` boots the kernel VM, runs
l2tpv3d in its namespace and, for each configuration in :data:`CAPTURE_CASES`,
configures both ends (the kernel from ``peer_lines``), starts tcpdump on the TAP,
pings from the guest (the kernel speaks first, which `seq recv` on our side needs) and
keeps every L2TP packet the guest sent: outer IP header onwards, as on the wire.
"""

from __future__ import annotations

import datetime
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from interop import cases
from interop.build import Artifacts
from interop.cases import Case
from interop.lab import GUEST4, GUEST6, INNER_GUEST4, INNER_HOST4, TAP, KernelPeer

CAPTURE_CASES = (
    Case("udp", 4, 0, "default", "none"),
    Case("udp", 4, 4, "default", "both"),
    Case("ip", 4, 8, "none", "none"),
    Case("ip", 4, 0, "default", "recv"),
    Case("udp", 6, 8, "default", "send"),
    Case("ip", 6, 4, "default", "both"),
    Case("udp", 6, 0, "none", "none"),
)
PINGS = 3


@dataclass(frozen=True)
class Captured:
    case: Case
    lines: list[str]  # the ip l2tp lines the kernel was configured with
    packets: list[bytes]  # outer IP header onwards


def read_pcap(data: bytes) -> list[bytes]:
    """Ethernet frames from a classic pcap file (microsecond or nanosecond, either order)."""
    return [frame for _, frame in read_pcap_times(data)]


def read_pcap_times(data: bytes) -> list[tuple[float, bytes]]:
    """(capture time in seconds, Ethernet frame) for each packet of a classic pcap file."""
    magic = data[:4]
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError("not a pcap file")
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    if linktype != 1:
        raise ValueError(f"link type {linktype}, not Ethernet")
    frames, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from(endian + "IIII", data, off)
        frames.append((sec + frac / (1e9 if nano else 1e6), data[off + 16 : off + 16 + incl]))
        off += 16 + incl
    return frames


def capture_case(peer: KernelPeer, daemon: cases.Daemon, case: Case, workdir: Path) -> Captured:
    cases.reset(peer, daemon)
    cases.configure_ours(peer, daemon, case, ipv6=False)
    lines = cases.kernel_lines(daemon, case)
    peer.configure(lines, inner=False)
    peer.sh(
        "echo 1 > /proc/sys/net/ipv6/conf/l2tpeth0/disable_ipv6\n"
        f"ip addr add {INNER_GUEST4}/24 dev l2tpeth0 && ip link set l2tpeth0 up"
    )
    guest = GUEST4 if case.family == 4 else GUEST6
    proto = (
        "udp" if case.encap == "udp" else ("ip proto 115" if case.family == 4 else "ip6 proto 115")
    )
    # pcap on stdout: tcpdump drops privileges before writing, and may not own workdir.
    dump = subprocess.Popen(
        ["ip", "netns", "exec", peer.ns.name, "tcpdump", "-i", TAP, "--immediate-mode",
         "-U", "-n", "-s", "0", "-w", "-", f"src host {guest} and {proto}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert dump.stderr is not None
        line = dump.stderr.readline().decode(errors="replace")
        if "listening" not in line:
            raise RuntimeError(f"tcpdump: {line}{dump.stderr.read().decode(errors='replace')}")
        peer.sh(f"ping -A -c {PINGS} -W 2 {INNER_HOST4}", timeout=30)
        time.sleep(0.5)
    finally:
        dump.terminate()
    data, err = dump.communicate(timeout=10)
    if not data:
        raise RuntimeError(f"tcpdump wrote nothing: {err.decode(errors='replace')}")
    packets = [frame[14:] for frame in read_pcap(data)]
    return Captured(case, lines, packets)


def _hex_lines(data: bytes, indent: str) -> str:
    h = data.hex()
    return "\n".join(f'{indent}"{h[i : i + 64]}"' for i in range(0, len(h), 64))


def render(caps: list[Captured], art: Artifacts, uname: str, argv: str) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# ruff: noqa: E501 - generated, one hex string per 32 bytes",
        '"""Packets a real Linux kernel sent, captured by the interop harness (generated).',
        "",
        f"Kernel: {uname} from Debian package {art.package} (apt-get download + dpkg -x,",
        "booted under qemu-system-x86_64 -accel tcg with a busybox initramfs: interop/).",
        f"Captured: {when}, by `{argv}` (interop/capture.py):",
        "tcpdump -i tap0 -w - 'src host <guest> and <udp|ip proto 115|ip6 proto 115>' in",
        "the harness's namespace while the guest pinged our l2tpv3d through l2tpeth0.",
        "The kernel was configured with the `lines` shown (from peer_lines, i.e. l2tpv3",
        "peer-config --for linux); our end with interop.cases.ours_args(case). Each packet",
        "is the outer IP header onwards, in the order the kernel sent it.",
        "Do not edit: regenerate with the command above.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from dataclasses import dataclass",
        "",
        "KERNEL_RELEASE = " + repr(uname),
        "KERNEL_PACKAGE = " + repr(art.package),
        "",
        "",
        "@dataclass(frozen=True)",
        "class KernelCapture:",
        "    encap: str  # udp | ip",
        "    family: int  # 4 | 6",
        "    cookie: str  # what OUR session sends (hex); the kernel expects it",
        "    peer_cookie: str  # what our session expects (hex); the kernel sends it",
        "    l2spec: str  # none | default, both ends",
        "    our_seq: str  # our seq; the kernel's is in `lines`",
        "    our_session_id: int",
        "    kernel_session_id: int",
        "    udp_ports: tuple[int, int]  # (ours, the kernel's); (0, 0) for ip encap",
        "    lines: tuple[str, ...]",
        "    packets: tuple[bytes, ...]",
        "",
        "",
        "KERNEL_CAPTURES: dict[str, KernelCapture] = {",
    ]
    for cap in caps:
        c = cap.case
        cookie, peer_cookie = c.cookies
        ports = (cases.OUR_SPORT, cases.OUR_DPORT) if c.encap == "udp" else (0, 0)
        out.append(f'    "{c.id}": KernelCapture(')
        out.append(f'        encap="{c.encap}", family={c.family}, cookie="{cookie}",')
        out.append(f'        peer_cookie="{peer_cookie}", l2spec="{c.l2spec}", our_seq="{c.seq}",')
        out.append(f"        our_session_id={cases.OUR_SID}, kernel_session_id={cases.KERNEL_SID},")
        out.append(f"        udp_ports={ports},")
        out.append("        lines=(")
        out.extend(f"            {ln!r}," for ln in cap.lines)
        out.append("        ),")
        out.append("        packets=(")
        for pkt in cap.packets:
            out.append("            bytes.fromhex(")
            out.append(_hex_lines(pkt, "                "))
            out.append("            ),")
        out.append("        ),")
        out.append("    ),")
    out.append("}")
    return "\n".join(out) + "\n"


def capture_all(output: Path, argv: str) -> None:
    from interop.build import build
    from interop.lab import kernel_peer
    from interop.netns import Daemon

    art = build()
    with (
        tempfile.TemporaryDirectory(prefix="l2i-cap-") as d,
        kernel_peer(artifacts=art, workdir=Path(d)) as peer,
    ):
        daemon = Daemon(peer.ns, Path(d))
        try:
            uname = peer.sh("uname -r").strip()
            caps = [capture_case(peer, daemon, c, Path(d)) for c in CAPTURE_CASES]
        finally:
            daemon.stop()
    for cap in caps:
        if len(cap.packets) < PINGS:
            raise RuntimeError(f"{cap.case.id}: only {len(cap.packets)} packets captured")
    output.write_text(render(caps, art, uname, argv))
    if shutil.which("ruff"):
        # Keep the generated module in the project's format (CI runs ruff format --check).
        subprocess.run(["ruff", "format", "-q", str(output)], check=False)
