"""A demo pseudowire between two network namespaces, narrated command by command.

    sudo python3 -m l2tpv3.tools.demo [--encap udp|ip]

Creates namespaces ``l2tpv3-demo-a`` and ``l2tpv3-demo-b`` joined by a veth pair
(10.99.0.1 <-> 10.99.0.2), starts ``l2tpv3d`` in each, configures a tunnel and a
session in each with the ``l2tpv3`` client exactly as ``ip l2tp`` would be used,
addresses the two ``l2tpeth0`` devices (10.42.0.1 and 10.42.0.2), pings across, shows
the counters, and removes everything it made. All traffic stays inside the namespaces.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time

NS_A, NS_B = "l2tpv3-demo-a", "l2tpv3-demo-b"
UNDER_A, UNDER_B = "10.99.0.1", "10.99.0.2"
INNER_A, INNER_B = "10.42.0.1", "10.42.0.2"
CLIENT = [sys.executable, "-m", "l2tpv3.cli"]
DAEMON = [sys.executable, "-m", "l2tpv3.daemon"]


def step(cmd: list[str], show: str | None = None, check: bool = True) -> str:
    print(f"$ {show or shlex.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).rstrip()
    if out:
        print(out, flush=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: failed: {shlex.join(cmd)}")
    return proc.stdout


def client(sock: str, site: str, *args: str) -> str:
    return step([*CLIENT, "-S", sock, *args], show=f"[{site}] l2tpv3 {shlex.join(args)}")


def in_ns(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m l2tpv3.tools.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--encap", choices=("udp", "ip"), default="udp")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("demo: needs root (namespaces and TAP devices): run it with sudo", file=sys.stderr)
        return 2
    for ns in (NS_A, NS_B):
        if subprocess.run(["ip", "netns", "pids", ns], capture_output=True).returncode == 0:
            print(f"demo: namespace {ns} already exists; remove it with `ip netns del {ns}`",
                  file=sys.stderr)  # fmt: skip
            return 2
    daemons: list[subprocess.Popen[bytes]] = []
    made: list[str] = []
    with tempfile.TemporaryDirectory(prefix="l2tpv3-demo-") as tmp:
        socks = {NS_A: f"{tmp}/a.sock", NS_B: f"{tmp}/b.sock"}
        try:
            print("# Two hosts joined by a cable: namespaces and a veth pair")
            for ns in (NS_A, NS_B):
                step(["ip", "netns", "add", ns])
                made.append(ns)
                step(["ip", "-n", ns, "link", "set", "lo", "up"])
            step(["ip", "link", "add", "dmo-a", "netns", NS_A, "type", "veth", "peer", "name",
                  "dmo-b", "netns", NS_B])  # fmt: skip
            for ns, dev, addr in ((NS_A, "dmo-a", UNDER_A), (NS_B, "dmo-b", UNDER_B)):
                step(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
                step(["ip", "-n", ns, "link", "set", dev, "up"])

            print("\n# One l2tpv3d per host (where the kernel would use l2tp_eth)")
            for ns in (NS_A, NS_B):
                print(f"$ ip netns exec {ns} l2tpv3d -S {socks[ns]} &", flush=True)
                daemons.append(subprocess.Popen(in_ns(ns, *DAEMON, "-S", socks[ns]),
                                                stderr=subprocess.DEVNULL))  # fmt: skip
            deadline = time.monotonic() + 15
            while not all(os.path.exists(s) for s in socks.values()):
                if time.monotonic() > deadline or any(d.poll() is not None for d in daemons):
                    raise SystemExit("demo: l2tpv3d did not start")
                time.sleep(0.05)

            print("\n# The man page's example, with `ip l2tp` replaced by `l2tpv3`")
            udp = ["udp_sport", "5000", "udp_dport", "6000"]
            udp_b = ["udp_sport", "6000", "udp_dport", "5000"]
            client(socks[NS_A], "A", "add", "tunnel", "tunnel_id", "3000", "peer_tunnel_id",
                   "4000", "encap", args.encap, "local", UNDER_A, "remote", UNDER_B,
                   *(udp if args.encap == "udp" else []))  # fmt: skip
            client(socks[NS_B], "B", "add", "tunnel", "tunnel_id", "4000", "peer_tunnel_id",
                   "3000", "encap", args.encap, "local", UNDER_B, "remote", UNDER_A,
                   *(udp_b if args.encap == "udp" else []))  # fmt: skip
            client(socks[NS_A], "A", "add", "session", "tunnel_id", "3000", "session_id", "1000",
                   "peer_session_id", "2000")  # fmt: skip
            client(socks[NS_B], "B", "add", "session", "tunnel_id", "4000", "session_id", "2000",
                   "peer_session_id", "1000")  # fmt: skip
            client(socks[NS_A], "A", "show", "tunnel")
            client(socks[NS_A], "A", "show", "session")

            print("\n# Address the pseudowire and bring it up")
            for ns, addr, peer in ((NS_A, INNER_A, INNER_B), (NS_B, INNER_B, INNER_A)):
                step(["ip", "-n", ns, "addr", "add", addr, "peer", peer, "dev", "l2tpeth0"])
                step(["ip", "-n", ns, "link", "set", "l2tpeth0", "up"])
            step(["ip", "-n", NS_A, "link", "show", "l2tpeth0"])

            print("\n# Ping across the pseudowire")
            step(in_ns(NS_A, "ping", "-c", "4", "-i", "0.2", INNER_B))

            print("\n# The kernel's per-session counters (ip l2tp parses them, we print them)")
            client(socks[NS_A], "A", "-s", "show", "session")
            client(socks[NS_B], "B", "-s", "show", "session")
        finally:
            print("\n# Clean-up: everything the demo made")
            for proc in daemons:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            for ns in made:
                step(["ip", "netns", "del", ns], check=False)
    print("\ndemo: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
