"""TCP throughput through an encrypted pseudowire: two l2tpv3d in two network
namespaces joined by a veth pair, one session, ESP ``rfc4106(gcm(aes))`` 128 both
ways, iperf3 over the session's interfaces; once with the compiled data path (the
engine's threads seal and open, issue 9) and once with the pure-Python one.

    sudo python3 bench/esp_tunnel.py [seconds] [udp|ip]

Prints Gbit/s (iperf3's receiver figure) and the daemons' CPU seconds per GB for each
path; figures only, no verdict. On a shared machine they follow the load: say so
wherever they are quoted. Everything it makes (namespaces, veths, daemons) is removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interop.netns import Daemon, Netns, daemon_cmd, veth

UNDERLAY = ("10.231.0.1", "10.231.0.2")
INNER = ("10.232.0.1", "10.232.0.2")
KEYS = ("0x" + "11" * 20, "0x" + "22" * 20)  # AES-128 + 4-byte salt, test values only


def _cpu(pid: int) -> float:
    """User + system seconds of a process and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(impl: str, seconds: int, encap: str, wd: Path) -> tuple[float, float]:
    na, nb = Netns(f"espt-a-{impl}"), Netns(f"espt-b-{impl}")
    daemons: list[Daemon] = []
    try:
        veth(na, "veth0", nb, "veth0")
        na.add_addrs("veth0", f"{UNDERLAY[0]}/24")
        nb.add_addrs("veth0", f"{UNDERLAY[1]}/24")
        for ns, tag in ((na, "a"), (nb, "b")):
            cmd = [*daemon_cmd(), "--state-dir", str(wd / f"state-{impl}-{tag}")]
            daemons.append(Daemon(ns, wd, impl=impl, command=cmd, tag=f"{impl}-{tag}"))
        a, b = daemons
        for d, (local, remote), (sid, psid) in ((a, UNDERLAY, (1, 2)), (b, UNDERLAY[::-1], (2, 1))):
            words = ["add", "tunnel", "tunnel_id", "1", "peer_tunnel_id", "1", "encap", encap,
                     "local", local, "remote", remote]  # fmt: skip
            if encap == "udp":
                words += ["udp_sport", "1701", "udp_dport", "1701"]
            d.cli(*words)
            d.cli("add", "session", "tunnel_id", "1", "session_id", str(sid),
                  "peer_session_id", str(psid), "name", "l2tpeth0")  # fmt: skip
        for d, (kout, kin), tag in ((a, KEYS, "a"), (b, KEYS[::-1], "b")):
            for direction, spi, key in (("out", 0x1000 if tag == "a" else 0x2000, kout),
                                        ("in", 0x2000 if tag == "a" else 0x1000, kin)):  # fmt: skip
                kf = wd / f"key-{impl}-{tag}-{direction}"
                kf.write_text(key + "\n")
                kf.chmod(0o600)
                d.cli("add", "sa", "tunnel_id", "1", "dir", direction, "spi", hex(spi),
                      "aead", "rfc4106(gcm(aes))", "key", f"@{kf}")  # fmt: skip
        for d, addr in ((a, INNER[0]), (b, INNER[1])):
            d.ns.ip("addr", "add", f"{addr}/24", "dev", "l2tpeth0")
            d.ns.ip("link", "set", "l2tpeth0", "up")
        a.ns.run("ping", "-c", "3", "-i", "0.3", "-W", "2", INNER[1], timeout=30)
        if "ESP runs on the Python path" in a.log_text() and impl == "cython":
            print("  (note: this build moved the ESP tunnel to the Python path)")
        srv = b.ns.popen("iperf3", "-s", "-1", "-B", INNER[1])
        time.sleep(1)  # listening before the client connects
        try:
            cpu0 = sum(_cpu(d.proc.pid) for d in daemons)
            out = a.ns.run("iperf3", "-c", INNER[1], "-t", str(seconds), "-J",
                           timeout=seconds + 60).stdout  # fmt: skip
            cpu1 = sum(_cpu(d.proc.pid) for d in daemons)
        finally:
            try:
                srv.wait(timeout=10)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()
        end = json.loads(out)["end"]["sum_received"]
        gbit = end["bits_per_second"] / 1e9
        gb = end["bytes"] / 1e9
        return gbit, (cpu1 - cpu0) / gb if gb else float("nan")
    finally:
        for d in daemons:
            d.stop()
        na.delete()
        nb.delete()


def main() -> None:
    import tempfile

    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    encap = sys.argv[2] if len(sys.argv) > 2 else "udp"
    print(f"TCP through an ESP pseudowire (rfc4106(gcm(aes)) 128, encap {encap}, IPv4 "
          f"underlay over veth, iperf3 {seconds} s, one stream)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="l2tpv3-bench-") as d:
        for impl in ("cython", "python"):
            gbit, cpu = run(impl, seconds, encap, Path(d))
            print(f"  {impl:7s}: {gbit:6.2f} Gbit/s, {cpu:6.2f} daemon CPU-s per GB")
    print(f"  load average now: {os.getloadavg()[0]:.1f} (shared machine: figures vary)")


if __name__ == "__main__":
    main()
