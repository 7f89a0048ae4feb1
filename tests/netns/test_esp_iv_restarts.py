"""No AEAD IV repeats under one static key across 100 daemon crashes (issue 9).

The real l2tpv3d, started from the same TOML file (tunnel, session, an outbound
``rfc4106(gcm(aes))`` SA with a fixed key) and the same ``--state-dir``, sends a few
frames and is killed with SIGKILL, 100 times, a varying number of packets into its
life. A capture in the peer's namespace reads every ESP packet's IV off the wire:
all distinct, and each life's IVs above the previous life's (the reservation on disk,
docs/security.md "Nonce safety"). tests/unit/test_ivstate.py checks the same scheme
without the daemon.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.netns import Daemon, Netns, daemon_cmd, require_root, veth, wait_until, workdir

LOCAL, REMOTE = "10.9.7.1", "10.9.7.2"
INNER_NET = "10.99.7"
KEY = "0x" + "5c" * 20  # AES-128 + salt: one key for all 100 lives
SPI = 0x7777
RESTARTS = 100

CONFIG = f"""
[[tunnel]]
tunnel_id = 7
peer_tunnel_id = 7
encap = "ip"
local = "{LOCAL}"
remote = "{REMOTE}"

  [[tunnel.session]]
  session_id = 1
  peer_session_id = 1
  name = "l2tpeth0"

[[sa]]
tunnel_id = 7
dir = "out"
spi = {SPI}
aead = "rfc4106(gcm(aes))"
key = "{KEY}"
"""

# Frames into the tunnel: UDP broadcasts on the session's subnet (no reply needed).
SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"l2tpeth0")
for i in range(int(sys.argv[2])):
    s.sendto(b"iv%d" % i, (sys.argv[1], 9))
"""


def _esp_ivs(pcap: Path) -> list[tuple[int, int]]:
    """(sequence number, IV) of each ESP packet in a pcap (Ethernet, IPv4)."""
    data = pcap.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    out, off = [], 24
    while off + 16 <= len(data):
        caplen = struct.unpack_from(endian + "I", data, off + 8)[0]
        pkt = data[off + 16 : off + 16 + caplen]
        off += 16 + caplen
        if len(pkt) < 14 + 20 or pkt[12:14] != b"\x08\x00":
            continue
        ip = pkt[14:]
        if ip[9] != 50:
            continue
        esp = ip[(ip[0] & 15) * 4 :]
        spi, seq = struct.unpack_from("!II", esp)
        if spi == SPI:
            out.append((seq, int.from_bytes(esp[8:16], "big")))
    return out


@pytest.mark.root
def test_no_iv_repeats_across_100_daemon_crashes() -> None:
    require_root()
    with workdir() as wd:
        na, nb = Netns("ivr-a"), Netns("ivr-b")
        cap: subprocess.Popen[bytes] | None = None
        current: Daemon | None = None
        logs: list[str] = []
        try:
            veth(na, "veth0", nb, "veth0")
            na.ip("addr", "add", f"{LOCAL}/24", "dev", "veth0")
            nb.ip("addr", "add", f"{REMOTE}/24", "dev", "veth0")
            # No IPv6 on the new interfaces: only the frames sent below cross the tunnel.
            na.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
            cfg = wd / "site.toml"
            cfg.write_text(CONFIG)
            cfg.chmod(0o600)
            pcap = wd / "esp.pcap"
            cap = subprocess.Popen(["ip", "netns", "exec", nb.name, "tcpdump", "-i", "veth0",
                                    "-U", "-n", "-s", "64", "-w", str(pcap), "ip proto 50"],
                                   stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(1)
            command = [*daemon_cmd(), "--state-dir", str(wd / "state"), "--config", str(cfg)]
            sent = 0
            started = time.monotonic()
            for life in range(RESTARTS):
                current = Daemon(na, wd, command=command, tag=f"life{life}")
                assert wait_until(lambda: na.run("ip", "link", "show", "l2tpeth0",
                                                 check=False).returncode == 0)  # fmt: skip
                na.ip("addr", "add", f"{INNER_NET}.1/24", "dev", "l2tpeth0")
                na.ip("link", "set", "l2tpeth0", "up")
                n = 1 + life % 7
                na.run(sys.executable, "-c", SEND, f"{INNER_NET}.255", str(n))
                sent += n
                # Killed a varying way into its life: right after sending, or a moment on.
                time.sleep(0.05 * (life % 3))
                os.kill(current.proc.pid, signal.SIGKILL)
                current.proc.wait()
                logs.append(current.stop())
                current = None
            took = time.monotonic() - started
            time.sleep(0.5)
        finally:
            if current is not None:
                logs.append(current.stop())
            if cap is not None:
                cap.send_signal(signal.SIGINT)
                cap.wait(timeout=10)
            na.delete()
            nb.delete()
        for text in logs:
            assert "Traceback" not in text, text
        seen = _esp_ivs(pcap)
        ivs = [iv for _, iv in seen]
        # Every life sends under the one key from sequence number 1 (a re-added SA, as
        # the kernel's): the sequence numbers repeat, the IVs must not.
        lives = sum(1 for seq, _ in seen if seq == 1)
        print(
            f"{RESTARTS} SIGKILLed lives in {took:.1f} s: {len(seen)} ESP packets captured "
            f"({sent} frames sent), {lives} lives seen, {len(set(ivs))} distinct IVs, "
            f"highest IV {max(ivs):#x}"
        )
        # A frame still queued when SIGKILL lands is lost (a few are): a life that sends
        # one frame and is killed at once may send none (the engine's thread had not
        # read it yet), so nearly every life, not every one, shows.
        assert lives >= RESTARTS * 9 // 10
        assert len(seen) > sent * 0.9
        assert len(set(ivs)) == len(ivs)
        # Each life starts above everything before it (the reservation on disk).
        assert ivs == sorted(ivs)
