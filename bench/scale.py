#!/usr/bin/env python3
"""Scale: one l2tpv3d with 1,000 sessions in one tunnel — resident memory, and 64-byte
packets/s on one session with 1,000 configured against one with a single session.

    sudo python3 bench/scale.py [--sessions 1000] [--reps 5] [--time 4]
                                [--impl default|python|compiled]

Two daemon pairs run side by side in the same two namespaces: "many" (one tunnel with
N sessions at both ends) and "one" (one tunnel with one session), and the 64-byte UDP
runs alternate between them so load on the machine hits both alike. The measured
session of "many" is the last one configured. Prints the figures and the ratio
(target >= 0.9x), writes bench/results/scale-latest.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import measure
from bench.cases import UNDERLAY_A, UNDERLAY_B
from bench.host import REPO, implementation, need_tools, vm_rss_kib
from interop.netns import Lab, impl_env, veth

INNER_MTU = 1446
TARGET = 0.9


def config(tunnel_id: int, n: int, host: int, name: str) -> str:
    local, remote = (UNDERLAY_A, UNDERLAY_B) if host == 1 else (UNDERLAY_B, UNDERLAY_A)
    port = 1900 + tunnel_id
    out = [
        f'[[tunnel]]\ntunnel_id = {tunnel_id}\npeer_tunnel_id = {tunnel_id}\nencap = "udp"\n'
        f'local = "{local}"\nremote = "{remote}"\nudp_sport = {port}\nudp_dport = {port}\n'
    ]
    for sid in range(1, n + 1):
        out.append(
            f"[[tunnel.session]]\nsession_id = {sid}\npeer_session_id = {sid}\n"
            f'name = "{name}{sid}"\n'
        )
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--time", type=float, default=4, help="seconds per 64-byte UDP run")
    p.add_argument("--impl", choices=["default", "python", "compiled"], default="default")
    args = p.parse_args()
    need_tools(["ip", "iperf3"])
    compiled, why = implementation(no_extensions=args.impl == "python")
    if args.impl == "compiled" and not compiled:
        sys.exit(f"scale: compiled fast path not available: {why}")
    impl = why if compiled else "pure Python"
    print(f"implementation: {impl}", flush=True)
    env = impl_env(args.impl)
    n = args.sessions
    pairs = {"many": (1, n, "m", 1), "one": (2, 1, "o", 2)}  # tunnel, sessions, prefix, net
    info: dict[str, dict[str, Any]] = {k: {} for k in pairs}
    pps: dict[str, list[float | None]] = {k: [] for k in pairs}
    with tempfile.TemporaryDirectory(prefix="l2tpv3-scale-") as wd, Lab(Path(wd), cwd="/") as lab:
        try:
            a, b = lab.netns("a"), lab.netns("b")
            veth(a, "veth0", b, "veth0")
            a.add_addrs("veth0", f"{UNDERLAY_A}/24")
            b.add_addrs("veth0", f"{UNDERLAY_B}/24")
            for key, (tid, count, prefix, net) in pairs.items():
                pids = []
                t0 = time.monotonic()
                for ns, host in ((a, 1), (b, 2)):
                    d = lab.daemon(ns, f"l2tpv3d-{key}-{host}", env,
                                   config(tid, count, host, prefix))  # fmt: skip
                    pids.append(d.proc.pid)
                    dev = f"{prefix}{count}"
                    lab.run(ns, "ip", "link", "set", dev, "mtu", str(INNER_MTU), "up")
                    lab.run(ns, "ip", "addr", "add", f"10.120.{net}.{host}/24", "dev", dev)
                links = lab.run(a, "ip", "-o", "link", "show").stdout.splitlines()
                taps = sum(1 for line in links if line.split(": ")[1].startswith(prefix))
                if taps != count:
                    raise RuntimeError(f"{key}: {taps} interfaces instead of {count}")
                info[key].update(
                    sessions=count,
                    startup_s=round(time.monotonic() - t0, 2),
                    pids=pids,
                    server=f"10.120.{net}.2",
                )
                print(f"{key}: {count} sessions up in {info[key]['startup_s']} s", flush=True)
            lab.spawn(b, "iperf3-server", "iperf3", "-s", "-p", str(measure.IPERF_PORT))
            time.sleep(0.5)
            for key in pairs:
                lab.run(a, "ping", "-c", "3", "-i", "0.1", "-W", "2", info[key]["server"],
                        check=False)  # fmt: skip
                info[key]["rss_kib_idle"] = vm_rss_kib(info[key]["pids"][0])
            for rep in range(args.reps):
                for key in list(pairs) if rep % 2 == 0 else list(pairs)[::-1]:
                    time.sleep(0.5)
                    s = measure.udp64(lab, a, info[key]["server"], args.time, info[key]["pids"])
                    pps[key].append(s.value)
                    shown = "failed: " + (s.error or "") if s.value is None else f"{s.value:.0f}"
                    print(f"rep {rep + 1}: {key:4s} 64-byte packets/s received {shown}",
                          flush=True)  # fmt: skip
            for key in pairs:
                info[key]["rss_kib_after"] = vm_rss_kib(info[key]["pids"][0])
        except KeyboardInterrupt:
            print("scale: interrupted; cleaning up", file=sys.stderr)
            return 130
    med = {k: statistics.median([v for v in pps[k] if v is not None] or [0.0]) for k in pairs}
    ratio = med["many"] / med["one"] if med["one"] else None
    per_session = (info["many"]["rss_kib_idle"] - info["one"]["rss_kib_idle"]) / max(1, n - 1)
    print()
    for key in pairs:
        i = info[key]
        print(f"{key:4s}: {i['sessions']:5d} sessions, VmRSS {i['rss_kib_idle'] / 1024:.1f} MiB "
              f"idle, {i['rss_kib_after'] / 1024:.1f} MiB after traffic, "
              f"64-byte {med[key]:.0f} packets/s (median of {args.reps})")  # fmt: skip
    print(f"memory per extra session: {per_session:.1f} KiB")
    if ratio is None:
        print("N/A   packets/s with many sessions vs one: not measured")
    else:
        verdict = "PASS " if ratio >= TARGET else "MISS "
        print(f"{verdict} packets/s on one session with {n} configured vs 1: {ratio:.2f}x "
              f"(target >= {TARGET}x)")  # fmt: skip
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for i in info.values():
        i.pop("pids", None)
    doc = {"when": stamp, "implementation": impl, "info": info, "pps_runs": pps,
           "pps_median": med, "ratio": ratio, "kib_per_session": per_session}  # fmt: skip
    (out / "scale-latest.json").write_text(json.dumps(doc, indent=1) + "\n")
    many, one = info["many"], info["one"]
    lines = [
        f"`sudo python3 bench/scale.py` ({stamp}, {impl}): one daemon with {n} sessions in "
        f"one tunnel uses {many['rss_kib_idle'] / 1024:.1f} MiB resident (VmRSS) against "
        f"{one['rss_kib_idle'] / 1024:.1f} MiB with one session, "
        f"{per_session:.1f} KiB per extra session; it came up in {many['startup_s']} s "
        f"(both ends). 64-byte packets/s on one session: {med['many']:.0f} with {n} "
        f"configured, {med['one']:.0f} with one: "
        + ("not measured." if ratio is None else
           f"{ratio:.2f}x (target >= {TARGET}x: {'PASS' if ratio >= TARGET else 'MISS'})."),
    ]  # fmt: skip
    (out / "scale-latest.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
