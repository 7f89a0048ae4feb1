"""ESP (issue 9) against the Linux kernel's xfrm, in the QEMU guest (interop/).

Our daemon runs the tunnel, its session and two SAs (added with ``l2tpv3 add sa``); the
kernel is configured only from ``l2tpv3 peer-config --for linux --config FILE``, where
FILE holds the same tunnel, session and SAs with their keys (the daemon never tells a
key): ``ip l2tp`` lines, then ``ip xfrm state`` and ``ip xfrm policy`` lines. Per case:
ping both ways, a TCP transfer each way with SHA-256 equal, and the kernel's
``ip -s xfrm state`` packet counters equal to ours (10 MB each way by default,
``L2TPV3_INTEROP_MB`` to change it; about 15 s per case on an idle machine).

Also per case: both l2tpeth0 MTUs leave room for ESP (ours lowered by ``add sa``, the
kernel's by peer-config's ``ip link set`` line) and a full-size frame crosses each way
without an outer fragment (FragCreates on both sides); the kernel's AEAD IVs follow
seqiv; and a replay, a flipped bit, a wrong key and a plaintext datagram sent to the
kernel are each dropped and counted there (/proc/net/xfrm_stat and the state's
``stats:`` line; ours are in tests/netns/test_esp.py). With
``L2TPV3_WRITE_ESP_VECTORS=FILE`` the kernel's packets are written as known-answer
vectors (tests/data/esp_kernel_vectors.json).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from interop.build import BuildError, build
from interop.cases import (
    KERNEL_SID,
    KERNEL_TID,
    OUR_DPORT,
    OUR_SID,
    OUR_SPORT,
    OUR_TID,
    Case,
    configure_ours,
    reset,
)
from interop.lab import (
    GUEST4,
    GUEST6,
    HOST4,
    HOST6,
    INNER_GUEST4,
    INNER_GUEST6,
    INNER_HOST4,
    INNER_HOST6,
    KernelPeer,
    kernel_peer,
)
from interop.traffic import guest_to_host, host_to_guest
from tests.support.netns import Daemon, require_root, wait_until, workdir

pytestmark = [pytest.mark.root, pytest.mark.interop]

# Issue 9 asks 10 MB each way per ESP case; L2TPV3_INTEROP_MB overrides it (CI time).
TRANSFER = int(float(os.environ.get("L2TPV3_INTEROP_MB", "10")) * 1024 * 1024)
SPI_OUT, SPI_IN = 0x3000, 0x4000
# Anti-replay on both ends' SAs (peer-config mirrors it as replay-window), so that a
# replay sent to the kernel is dropped and counted there.
REPLAY_WINDOW = 32
# Set to a path to write the kernel's ESP packets as known-answer vectors
# (tests/data/esp_kernel_vectors.json; tests/unit/test_esp_kernel_vectors.py reads it).
VECTORS_OUT = os.environ.get("L2TPV3_WRITE_ESP_VECTORS")

# (case, algorithm): the key pairs are fixed test keys, one per direction.
ESP_CASES = [
    (Case("udp", 4, 0, "default", "none"), "rfc4106(gcm(aes))"),
    (Case("ip", 6, 0, "default", "none"), "rfc7539esp(chacha20,poly1305)"),
    (Case("udp", 6, 0, "default", "none"), "hmac(sha256)"),
    (Case("ip", 4, 0, "default", "none"), "hmac(sha1)"),
    (Case("ip", 4, 0, "default", "none"), "rfc4106(gcm(aes))-256"),
    # ESP in UDP (RFC 3948, `encap espinudp`): the guest holds a UDP_ENCAP_ESPINUDP
    # socket on the port (interop/tools/espinudp.c), as an IKE daemon would.
    (Case("udp", 4, 0, "default", "none"), "rfc4106(gcm(aes))+espinudp"),
    (Case("ip", 6, 0, "default", "none"), "hmac(sha256)+espinudp"),
]
NATT_PORT = 4500
ESPINUDP = "+espinudp"


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
    wd: Path


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root()
    require_interop()
    try:
        art = build()
    except BuildError as exc:
        pytest.fail(f"interop build: {exc}")
    with workdir() as wd, kernel_peer(artifacts=art, workdir=wd) as peer:
        cmd = [_script("l2tpv3d"), "--state-dir", str(wd / "state")]
        # The implementation the environment selects (the compiled one unless
        # L2TPV3_NO_EXTENSIONS is set); the test checks the tunnel stays on it.
        daemon = Daemon(peer.ns, wd, command=cmd)
        try:
            yield Lab(peer, daemon, wd)
        finally:
            log = daemon.stop()
            assert "Traceback" not in log, log


def _script(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


def _sa_fields(alg: str, n: int) -> dict[str, Any]:
    """Keys for SA number n (fixed test values)."""
    alg = alg.removesuffix(ESPINUDP)
    b = f"{n + 1:x}" * 2
    if alg == "rfc4106(gcm(aes))":
        return {"aead": alg, "key": "0x" + b * 20}
    if alg == "rfc4106(gcm(aes))-256":
        return {"aead": "rfc4106(gcm(aes))", "key": "0x" + b * 36}
    if alg.startswith("rfc7539esp"):
        return {"aead": alg, "key": "0x" + b * 36}
    alen = 32 if alg == "hmac(sha256)" else 20
    return {"enc": "cbc(aes)", "key": "0x" + b * 16, "auth": alg, "auth_key": "0x" + b[::-1] * alen}


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(v)


def _table(name: str, entries: dict[str, Any]) -> str:
    body = "".join(f"{k} = {_toml_value(v)}\n" for k, v in entries.items() if v is not None)
    return f"[[{name}]]\n{body}\n"


def _kernel_counts(peer: KernelPeer) -> dict[int, int]:
    """SPI -> packets, from ``ip -s xfrm state``."""
    text = peer.sh("ip -s xfrm state")
    out: dict[int, int] = {}
    spi = None
    for line in text.splitlines():
        m = re.search(r"spi (0x[0-9a-f]+)", line)
        if m:
            spi = int(m.group(1), 16)
        # "lifetime current:" is followed by "N(bytes), M(packets)"; the limits above
        # it read "(INF)(bytes)" and do not match.
        m = re.search(r"(\d+)\(bytes\), (\d+)\(packets\)", line)
        if m and spi is not None and spi not in out:
            out[spi] = int(m.group(2))
    return out


@pytest.mark.parametrize(("case", "alg"), ESP_CASES, ids=[f"{c.id}-{a}" for c, a in ESP_CASES])
def test_esp_with_the_kernel(lab: Lab, case: Case, alg: str) -> None:
    peer, daemon, wd = lab.peer, lab.daemon, lab.wd
    reset(peer, daemon)
    peer.sh("ip xfrm state flush; ip xfrm policy flush")
    configure_ours(peer, daemon, case)
    sas = []
    for n, (direction, spi) in enumerate((("out", SPI_OUT), ("in", SPI_IN))):
        fields = {"tunnel_id": OUR_TID, "dir": direction, "spi": spi, **_sa_fields(alg, n),
                  "replay_window": REPLAY_WINDOW}  # fmt: skip
        sas.append(fields)
        words = ["add", "sa", "tunnel_id", str(OUR_TID), "dir", direction, "spi", str(spi),
                 "replay_window", str(REPLAY_WINDOW)]  # fmt: skip
        if alg.endswith(ESPINUDP):
            fields.update(encap_sport=NATT_PORT, encap_dport=NATT_PORT)
            words += ["encap", "espinudp", str(NATT_PORT), str(NATT_PORT)]
        for key in ("aead", "enc", "auth"):
            if key in fields:
                words += [key, fields[key]]
                if key != "auth":
                    kf = wd / f"key-{direction}"
                    kf.write_text(fields["key"])
                    kf.chmod(0o600)
                    words += ["key", f"@{kf}"]
        if "auth_key" in fields:
            kf = wd / f"auth-{direction}"
            kf.write_text(fields["auth_key"])
            kf.chmod(0o600)
            words += ["auth_key", f"@{kf}"]
        daemon.cli(*words)
    # The same configuration, keys included, as a private TOML file for peer-config.
    local, remote = (HOST4, GUEST4) if case.family == 4 else (HOST6, GUEST6)
    tunnel: dict[str, Any] = {"tunnel_id": OUR_TID, "peer_tunnel_id": KERNEL_TID,
                              "encap": case.encap, "local": local, "remote": remote}  # fmt: skip
    if case.encap == "udp":
        tunnel.update(udp_sport=OUR_SPORT, udp_dport=OUR_DPORT)
    text = _table("tunnel", tunnel)
    # Named: peer-config then gives the kernel's l2tpeth0 the MTU that leaves room for
    # ESP (`ip link set dev l2tpeth0 mtu N`; l2tp_eth itself ignores xfrm).
    text += _table("session", {"tunnel_id": OUR_TID, "session_id": OUR_SID,
                               "peer_session_id": KERNEL_SID, "name": "l2tpeth0"})  # fmt: skip
    for fields in sas:
        text += _table("sa", fields)
    cfg = wd / "ours.toml"
    cfg.write_text(text)
    cfg.chmod(0o600)
    out = daemon.cli("peer-config", "--for", "linux", "--config", str(cfg)).stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert any(ln.startswith("ip xfrm state add") for ln in lines), out
    assert any("dir in" in ln for ln in lines) and any("dir out" in ln for ln in lines), out
    holder = None
    if alg.endswith(ESPINUDP):
        assert f"encap espinudp {NATT_PORT} {NATT_PORT} 0.0.0.0" in out, out
        holder = peer.sh(f"espinudp {NATT_PORT}").split()[-1]
    try:
        _with_the_kernel(peer, daemon, wd, case, alg, sas, out, lines)
    finally:
        if holder is not None:
            peer.sh(f"kill {holder}")


def _with_the_kernel(peer: KernelPeer, daemon: Daemon, wd: Path, case: Case, alg: str,
                     sas: list[dict[str, Any]], out: str, lines: list[str]) -> None:  # fmt: skip
    peer.configure(lines)

    def ours() -> dict[tuple[str, int], dict[str, int]]:
        states = json.loads(daemon.cli("-j", "-s", "show", "sa").stdout)
        return {(s["dir"], s["spi"]): s["stats"] for s in states}

    if not wait_until(lambda: _ping_guest(peer, INNER_HOST4), timeout=20):
        diag = peer.sh("cat /proc/net/xfrm_stat; ip -s xfrm state; ip xfrm policy; "
                       "ip -s l2tp show session; ip -s link")  # fmt: skip
        pytest.fail(f"no path\nours: {daemon.cli('-j', '-s', 'show', 'sa').stdout}\n"
                    f"{daemon.cli('-s', 'show', 'tunnel').stdout}\n"
                    f"{daemon.cli('-s', 'show', 'session').stdout}\n"
                    f"kernel:\n{diag}\nlog:\n{daemon.log_text()[-3000:]}")  # fmt: skip
    assert _ping_guest(peer, INNER_HOST6)
    for addr in (INNER_GUEST4, INNER_GUEST6):
        peer.ns.run("ping", "-c", "2", "-i", "0.2", "-W", "2", addr, timeout=30)
    assert "ip link set dev l2tpeth0 mtu" in out, out
    _full_size_frames_cross(peer, case, wd, alg, sas)

    # Counters from here on: packets sent before the kernel had its states (our
    # l2tpeth0 came up first) are the kernel's XfrmInNoStates, not a disagreement.
    # Taken when nothing is in flight: two reads half a second apart agree.
    def snapshot() -> tuple[dict[int, int], dict[tuple[str, int], dict[str, int]]]:
        return _kernel_counts(peer), ours()

    k0, o0 = snapshot()
    for _ in range(20):
        time.sleep(0.5)
        again = snapshot()
        if again == (k0, o0):
            break
        k0, o0 = again
    inner = INNER_GUEST4 if case.family == 4 else INNER_GUEST6
    back = INNER_HOST4 if case.family == 4 else INNER_HOST6
    down = host_to_guest(peer, inner, TRANSFER)
    assert down.ok, down
    up = guest_to_host(peer, back, TRANSFER)
    assert up.ok, up

    def agree() -> bool:
        k, o = _kernel_counts(peer), ours()
        return (
            k[SPI_OUT] - k0[SPI_OUT]
            == o[("out", SPI_OUT)]["tx_packets"] - o0[("out", SPI_OUT)]["tx_packets"]
            and k[SPI_IN] - k0[SPI_IN]
            == o[("in", SPI_IN)]["rx_packets"] - o0[("in", SPI_IN)]["rx_packets"]
        )

    if not wait_until(agree, timeout=10):
        diag = peer.sh("cat /proc/net/xfrm_stat; ip -s xfrm state | grep -A1 stats")
        taps = peer.ns.run("ip", "-s", "link", "show", "tap0").stdout
        pytest.fail(f"counters differ: kernel {k0} -> {_kernel_counts(peer)}, ours {o0} -> "
                    f"{ours()}\n{diag}\n{taps}")  # fmt: skip
    assert ours()[("out", SPI_OUT)]["tx_packets"] - o0[("out", SPI_OUT)]["tx_packets"] > (
        TRANSFER // 1500
    )
    drops = json.loads(daemon.cli("-j", "-s", "show", "sa").stdout)
    for s in drops:
        assert all(v == 0 for v in s["drops"].values()), s
    # On the compiled data path the engine's threads ran the ESP (issue 9): the
    # tunnel was never moved to the Python ports.
    if "cython data path" in daemon.log_text():
        assert "ESP runs on the Python path" not in daemon.log_text()
    _kernel_drops(peer, case, alg, wd)
    peer.sh("ip xfrm state flush; ip xfrm policy flush")


def _ping_guest(peer: KernelPeer, addr: str) -> bool:
    opt = "-6 " if ":" in addr else ""
    return peer.vm.run(f"ping {opt}-A -c 2 -W 2 {addr}", timeout=30).status == 0


# -- full-size frames, the kernel's ESP packets, drops on the kernel's side --------------


def _frag_creates(text: str) -> int:
    """FragCreates (IPv4) + Ip6FragCreates from /proc/net/snmp and /proc/net/snmp6."""
    lines = text.splitlines()
    ip = [ln.split() for ln in lines if ln.startswith("Ip:")]
    total = int(ip[1][ip[0].index("FragCreates")])
    for ln in lines:
        if ln.startswith("Ip6FragCreates"):
            total += int(ln.split()[1])
    return total


def _frags(peer: KernelPeer) -> tuple[int, int]:
    host = peer.ns.run("cat", "/proc/net/snmp", "/proc/net/snmp6").stdout
    return _frag_creates(host), _frag_creates(peer.sh("cat /proc/net/snmp /proc/net/snmp6"))


@dataclass
class EspPacket:
    src: str
    dst: str
    outer_len: int  # the IP packet's length on the wire
    esp: bytes  # from the SPI on
    udp: bool = False  # ESP in UDP (RFC 3948)

    @property
    def spi(self) -> int:
        return int.from_bytes(self.esp[:4], "big")

    @property
    def seq(self) -> int:
        return int.from_bytes(self.esp[4:8], "big")


def _esp_packets(pcap: Path) -> list[EspPacket]:
    """The ESP packets of a pcap (Ethernet; IPv4 or IPv6 without extension headers)."""
    import ipaddress
    import struct

    data = pcap.read_bytes()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out, off = [], 24
    while off + 16 <= len(data):
        caplen = struct.unpack_from(endian + "I", data, off + 8)[0]
        pkt = data[off + 16 : off + 16 + caplen]
        off += 16 + caplen
        ethertype, ip = pkt[12:14], pkt[14:]
        if ethertype == b"\x08\x00":
            proto, hl, total = ip[9], (ip[0] & 15) * 4, int.from_bytes(ip[2:4], "big")
            src, dst = ipaddress.ip_address(ip[12:16]), ipaddress.ip_address(ip[16:20])
        elif ethertype == b"\x86\xdd":
            proto, hl, total = ip[6], 40, 40 + int.from_bytes(ip[4:6], "big")
            src, dst = ipaddress.ip_address(ip[8:24]), ipaddress.ip_address(ip[24:40])
        else:
            continue
        body = ip[hl:total]
        if proto == 17 and NATT_PORT in struct.unpack_from("!HH", body):
            # RFC 3948 §2.2: a zero "SPI" is IKE, a lone 0xff a keepalive; not ESP.
            body = body[8:]
            if len(body) < 8 or body[:4] == bytes(4):
                continue
        elif proto != 50:
            continue
        out.append(EspPacket(str(src), str(dst), total, body, proto == 17))
    return out


def _open_independently(fields: dict[str, Any], esp: bytes) -> tuple[bytes, int]:
    """(payload, next header) of ``esp`` opened with ``cryptography`` alone, RFC 4303 §2
    written out here (not through l2tpv3.proto.esp), for the known-answer vectors."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    key = bytes.fromhex(fields["key"][2:])
    if "aead" in fields:
        aad, iv, body = esp[:8], esp[8:16], esp[16:]
        aead = AESGCM(key[:-4]) if "gcm" in fields["aead"] else ChaCha20Poly1305(key[:-4])
        plain = aead.decrypt(key[-4:] + iv, body, aad)  # RFC 4106 §4 / RFC 7634 §2
    else:
        digest = hashlib.sha256 if fields["auth"] == "hmac(sha256)" else hashlib.sha1
        icv = 16 if fields["auth"] == "hmac(sha256)" else 12
        akey = bytes.fromhex(fields["auth_key"][2:])
        assert hmac.compare_digest(hmac.new(akey, esp[:-icv], digest).digest()[:icv], esp[-icv:])
        dec = Cipher(algorithms.AES(key), modes.CBC(esp[8:24])).decryptor()
        plain = dec.update(esp[24:-icv]) + dec.finalize()
    padlen, nh = plain[-2], plain[-1]
    assert plain[-2 - padlen : -2] == bytes(range(1, padlen + 1))  # RFC 4303 §2.4
    return plain[: -2 - padlen], nh


def _full_size_frames_cross(peer: KernelPeer, case: Case, wd: Path, alg: str,
                            sas: list[dict[str, Any]]) -> None:  # fmt: skip
    """Both l2tpeth0s have the MTU that leaves room for ESP (ours lowered by add sa, the
    kernel's by peer-config's line), and a full-size frame crosses each way without an
    outer fragment on either side. The kernel's ESP packets are captured on the way:
    opened here without our code, and written as known-answer vectors on request."""
    from l2tpv3.config import Encap
    from l2tpv3.proto.esp import EspShape
    from l2tpv3.proto.layout import session_mtu
    from l2tpv3.tools.overhead import session_for

    ours = json.loads(peer.ns.run("ip", "-j", "link", "show", "l2tpeth0").stdout)[0]["mtu"]
    theirs = int(peer.sh("cat /sys/class/net/l2tpeth0/mtu").split()[-1])
    t, s = session_for(case.family, Encap(case.encap), 0, True)
    out_sa = sas[0]
    shape = EspShape.of(out_sa.get("aead") or out_sa["enc"], out_sa.get("auth"),
                        "encap_dport" in out_sa)  # fmt: skip
    assert ours == theirs == session_mtu(t, s, None, shape) < session_mtu(t, s, None)
    pcap = wd / "full-size.pcap"
    filt = f"ip proto 50 or ip6 proto 50 or udp port {NATT_PORT}"
    cap = subprocess.Popen(["ip", "netns", "exec", peer.ns.name, "tcpdump", "-i", "tap0", "-U",
                            "-n", "-s", "0", "-w", str(pcap), filt],
                           stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(1)
        before = _frags(peer)
        peer.ns.run("ping", "-M", "do", "-c", "3", "-i", "0.2", "-W", "2", "-s", str(ours - 28),
                    INNER_GUEST4, timeout=30)  # fmt: skip
        # busybox ping sets no DF; the frame is exactly full-size, so the inner packet
        # is not fragmented either (FragCreates counts both).
        assert peer.vm.run(f"ping -c 3 -s {theirs - 28} {INNER_HOST4}", timeout=30).status == 0
        time.sleep(0.5)
        assert _frags(peer) == before
    finally:
        cap.send_signal(signal.SIGINT)
        cap.wait(timeout=10)
    packets = _esp_packets(pcap)
    path_mtu = 1500
    assert packets and all(p.outer_len <= path_mtu for p in packets)
    # Both ways in UDP exactly when the SAs say encap espinudp.
    assert {p.udp for p in packets} == {"encap_dport" in out_sa}
    kernel = [p for p in packets if p.spi == SPI_IN]
    full = [p for p in kernel if p.outer_len > path_mtu - shape.worst]
    assert len(full) >= 3, [p.outer_len for p in kernel]
    in_sa = sas[1]
    if "aead" in in_sa:
        # The kernel's AEAD IV is seqiv's: the 64-bit sequence number XOR a random salt
        # drawn when the state was made, so IV ^ seq is one constant per SA.
        xors = {int.from_bytes(p.esp[8:16], "big") ^ p.seq for p in kernel}
        assert len(xors) == 1, xors
    if VECTORS_OUT:
        small = [p for p in kernel if p not in full]
        _write_vectors(peer, case, alg, in_sa, small[:1] + full[:1])


def _write_vectors(peer: KernelPeer, case: Case, alg: str, in_sa: dict[str, Any],
                   packets: list[EspPacket]) -> None:  # fmt: skip
    assert VECTORS_OUT is not None
    path = Path(VECTORS_OUT)
    doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"vectors": []}
    kernel = peer.sh("uname -r").split()[-1]
    states = [ln for ln in peer.sh("ip xfrm state").splitlines()]
    doc["provenance"] = (
        "ESP packets the Linux kernel sent (interop guest, Debian linux-image "
        f"{kernel}, esp4/esp6 + xfrm, states made by `ip xfrm state add` as in each "
        "vector's ip_xfrm_state), captured on the host's tap0 by tcpdump during a "
        "full-size ping, by: L2TPV3_WRITE_ESP_VECTORS=tests/data/esp_kernel_vectors.json "
        "pytest tests/interop/test_interop_esp.py. payload and next_header were opened "
        "with `cryptography` alone (RFC 4303 §2 written out in the test), not l2tpv3's "
        "code. The AEAD IVs are the kernel's seqiv: the 64-bit sequence number XOR a "
        "random salt per state, so iv ^ seq is one constant per state; CBC IVs are "
        "echainiv's. Keys are fixed test keys."
    )
    doc["vectors"] = [v for v in doc["vectors"] if v["case"] != f"{case.id}-{alg}"]
    for p in packets:
        payload, nh = _open_independently(in_sa, p.esp)
        doc["vectors"].append({
            "case": f"{case.id}-{alg}", "kernel": kernel,
            "sa": {k: v for k, v in in_sa.items() if k not in ("tunnel_id", "dir")},
            "src": p.src, "dst": p.dst, "seq": p.seq,
            "iv": p.esp[8:16 if "aead" in in_sa else 24].hex(),
            "esp": p.esp.hex(), "next_header": nh, "payload": payload.hex(),
            "ip_xfrm_state": states,
        })  # fmt: skip
    path.write_text(json.dumps(doc, indent=1) + "\n")


INJECT = r"""
import socket, sys
dst, proto = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
if proto == 4500:  # ESP in UDP to the guest's NAT-T port
    socket.socket(fam, socket.SOCK_DGRAM).sendto(bytes.fromhex(sys.argv[3]), (dst, 4500))
    sys.exit(0)
s = socket.socket(fam, socket.SOCK_RAW, proto)
if fam == socket.AF_INET6 and proto == 17:
    s.setsockopt(socket.IPPROTO_IPV6, 7, 6)  # IPV6_CHECKSUM at the UDP checksum field
s.sendto(bytes.fromhex(sys.argv[3]), (dst, 0))
"""


def _xfrm_stat(peer: KernelPeer) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in peer.sh("cat /proc/net/xfrm_stat").splitlines():
        words = line.split()
        if len(words) == 2 and words[1].isdigit():
            out[words[0]] = int(words[1])
    return out


def _state_stats(peer: KernelPeer, spi: int) -> tuple[int, int]:
    """(replayed, integrity failed) of the kernel's state ``spi``, from the
    ``stats: replay-window N replay N failed N`` line of ``ip -s xfrm state``: a
    sequence number left of the window and one seen inside it both count as replayed."""
    text = peer.sh("ip -s xfrm state")
    blocks = re.split(r"^src ", text, flags=re.M)
    mine = next(b for b in blocks if f"spi {spi:#010x}" in b)
    m = re.search(r"stats:\s+replay-window (\d+) replay (\d+) failed (\d+)", mine)
    assert m, mine
    return int(m.group(1)) + int(m.group(2)), int(m.group(3))


def _kernel_drops(peer: KernelPeer, case: Case, alg: str, wd: Path) -> None:
    """A replay, a flipped bit, a wrong key and a plaintext datagram sent TO the kernel:
    each dropped, and counted in /proc/net/xfrm_stat and the state's stats."""
    from l2tpv3.proto.esp import EspSA

    guest = GUEST4 if case.family == 4 else GUEST6
    esp_proto = NATT_PORT if alg.endswith(ESPINUDP) else 50
    ours = [p for p in _esp_packets(wd / "full-size.pcap") if p.spi == SPI_OUT]
    assert ours

    def inject(proto: int, data: bytes) -> dict[str, int]:
        before = _xfrm_stat(peer)
        peer.ns.run(sys.executable, "-c", INJECT, guest, str(proto), data.hex())
        time.sleep(0.3)
        after = _xfrm_stat(peer)
        return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}

    rx0 = _state_stats(peer, SPI_OUT)
    # A replay: a packet the kernel has taken already (its sequence number is behind).
    assert inject(esp_proto, ours[0].esp) == {"XfrmInStateSeqError": 1}
    rx1 = _state_stats(peer, SPI_OUT)
    assert rx1 == (rx0[0] + 1, rx0[1])
    # A flipped bit, and a wrong key: sealed with sequence numbers far ahead (the replay
    # check comes first), so only the ICV can tell.
    fields = _sa_fields(alg, 0)
    good = bytes.fromhex(fields["key"][2:])
    auth_key = bytes.fromhex(fields["auth_key"][2:]) if "auth_key" in fields else None
    name = fields.get("aead") or fields["enc"]
    payload, nh = _open_independently(fields, ours[0].esp)
    wrong_auth = None if auth_key is None else bytes(len(auth_key))
    for key, akey, flip in ((good, auth_key, True), (bytes(len(good)), wrong_auth, False)):
        sa = EspSA(SPI_OUT, name, key, akey, fields.get("auth"))
        sa.grant_ivs(1 << 62, (1 << 62) + 10)  # far from anything the daemon uses
        sa.seq = 1_000_000 + flip
        sealed = sa.seal(payload, nh)
        assert sealed is not None
        if flip:
            sealed = sealed[:30] + bytes([sealed[30] ^ 0x01]) + sealed[31:]
        assert inject(esp_proto, sealed) == {"XfrmInStateProtoError": 1}
    assert _state_stats(peer, SPI_OUT) == (rx1[0], rx1[1] + 2)
    # Plaintext: the same L2TPv3 datagram, in clear, where the policy requires ESP.
    proto = 17 if case.encap == "udp" else 115
    got = inject(proto, payload)
    assert sum(got.values()) == 1 and set(got) <= {"XfrmInTmplMismatch", "XfrmInNoPols"}, got
