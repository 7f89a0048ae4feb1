#!/usr/bin/env python3
"""Integrity: 512 MiB each way through an l2tpv3 pseudowire, SHA-256 compared at both ends,
for IPv4 and IPv6 inner traffic over udp and ip encapsulation.

    sudo python3 bench/integrity.py [--impl default|python|compiled] [--mib 512]
                                    [--encap udp,ip] [--inner 4,6]

Two namespaces joined by veth, one l2tpv3d in each with one tunnel per encapsulation.
Prints one line per transfer and exits non-zero if any digest differs or a transfer
fails. Writes bench/results/integrity-latest.{json,md} (the .md goes into
docs/performance.md on the next bench/run.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cases import UNDERLAY_A, UNDERLAY_B
from bench.host import REPO, implementation, need_tools
from interop.netns import Daemon, Lab, Netns, impl_env, prog, veth

INNER_MTU = 1446
PORT = 5301


def config(encaps: list[str], host: int) -> str:
    """Both sides' tunnels: one per encapsulation, one session each (l2tpeth1, l2tpeth2)."""
    local, remote = (UNDERLAY_A, UNDERLAY_B) if host == 1 else (UNDERLAY_B, UNDERLAY_A)
    out = []
    for i, encap in enumerate(encaps, start=1):
        ports = f"udp_sport = {1800 + i}\nudp_dport = {1800 + i}\n" if encap == "udp" else ""
        out.append(
            f'[[tunnel]]\ntunnel_id = {i}\npeer_tunnel_id = {i}\nencap = "{encap}"\n'
            f'local = "{local}"\nremote = "{remote}"\n{ports}'
            f'[[tunnel.session]]\nsession_id = {i}\npeer_session_id = {i}\nname = "l2tpeth{i}"\n'
        )
    return "\n".join(out)


def inner(i: int, host: int, family: int) -> str:
    return f"10.110.{i}.{host}" if family == 4 else f"fd00:110:{i}::{host}"


def transfer(lab: Lab, src: Netns, dst: Netns, addr: str, size: int, seed: int
             ) -> dict[str, Any]:  # fmt: skip
    """Seeded pseudo-random bytes (interop/progs/tcp_send.py, made 1 MiB at a time, so
    512 MiB never sits in memory) to a SHA-256 sink (tcp_sink.py) in ``dst``."""
    srv = lab.spawn_pipe(dst, *prog("tcp_sink"), addr, str(PORT))
    try:
        assert srv.stdout is not None
        if srv.stdout.readline().strip() != "ready":
            return {"ok": False, "error": "receiver did not start"}
        t0 = time.monotonic()
        sent = lab.run(src, *prog("tcp_send"), addr, str(PORT), str(size), str(seed),
                       check=False, timeout=1800)  # fmt: skip
        got, _ = srv.communicate(timeout=120)
        wall = time.monotonic() - t0
    finally:
        lab.stop(srv)
    s, r = sent.stdout.split(), got.split()
    if len(s) != 2 or len(r) != 2:
        return {"ok": False, "error": f"sender: {sent.stderr.strip()[-200:]} receiver: {r}"}
    return {
        "ok": s[:2] == r and int(r[0]) == size,
        "sent_bytes": int(s[0]),
        "received_bytes": int(r[0]),
        "sha256_sent": s[1],
        "sha256_received": r[1],
        "seconds": round(wall, 2),
        "gbit_s": round(size * 8 / wall / 1e9, 3),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--impl", choices=["default", "python", "compiled"], default="default")
    p.add_argument("--mib", type=int, default=512, help="MiB sent each way per case")
    p.add_argument("--encap", default="udp,ip")
    p.add_argument("--inner", default="4,6")
    args = p.parse_args()
    need_tools(["ip"])
    encaps = args.encap.split(",")
    families = [int(f) for f in args.inner.split(",")]
    if any(e not in ("udp", "ip") for e in encaps) or any(f not in (4, 6) for f in families):
        sys.exit("integrity: --encap takes udp,ip and --inner takes 4,6")
    compiled, why = implementation(no_extensions=args.impl == "python")
    if args.impl == "compiled" and not compiled:
        sys.exit(f"integrity: compiled fast path not available: {why}")
    impl = why if compiled else "pure Python"
    print(f"implementation: {impl}", flush=True)
    env = impl_env(args.impl)
    size = args.mib << 20
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="l2tpv3-integrity-") as wd,
        Lab(Path(wd), cwd="/") as lab,
    ):
        try:
            a, b = lab.netns("a"), lab.netns("b")
            veth(a, "veth0", b, "veth0")
            a.add_addrs("veth0", f"{UNDERLAY_A}/24")
            b.add_addrs("veth0", f"{UNDERLAY_B}/24")
            daemons: dict[int, Daemon] = {}
            for ns, host in ((a, 1), (b, 2)):
                daemons[host] = lab.daemon(ns, f"l2tpv3d-{host}", env, config(encaps, host))
                for i in range(1, len(encaps) + 1):
                    dev = f"l2tpeth{i}"
                    lab.run(ns, "ip", "link", "set", dev, "mtu", str(INNER_MTU), "up")
                    lab.run(ns, "ip", "addr", "add", f"{inner(i, host, 4)}/24", "dev", dev)
                    lab.run(ns, "ip", "addr", "add", f"{inner(i, host, 6)}/64", "dev", dev,
                            "nodad")  # fmt: skip
            for i, encap in enumerate(encaps, start=1):
                for fam in families:
                    lab.run(a, "ping", "-c", "3", "-i", "0.2", "-W", "2", inner(i, 2, fam),
                            check=False)  # fmt: skip
                    for direction, src, dst, host in (("A→B", a, b, 2), ("B→A", b, a, 1)):
                        r = transfer(lab, src, dst, inner(i, host, fam), size, seed=i * 10 + fam)
                        r.update(encap=encap, inner=f"IPv{fam}", direction=direction)
                        results.append(r)
                        verdict = "OK  " if r["ok"] else "FAIL"
                        detail = (f"{r['received_bytes'] >> 20} MiB in {r['seconds']} s "
                                  f"({r['gbit_s']} Gbit/s) sha256 {r['sha256_received'][:16]}…"
                                  if "seconds" in r else r.get("error", ""))  # fmt: skip
                        print(f"{verdict} encap {encap:3s} IPv{fam} {direction}: {detail}",
                              flush=True)  # fmt: skip
            stats = {}
            for h in (1, 2):
                shown = daemons[h].cli("-j", "-s", "show", "session", env=env)
                stats[h] = json.loads(shown.stdout)
        except KeyboardInterrupt:
            print("integrity: interrupted; cleaning up", file=sys.stderr)
            return 130
    errors = {
        f"{'AB'[h - 1]} session {s['session_id']}": {
            k: v
            for k, v in [*s.get("stats", {}).items(), *s.get("drops", {}).items()]
            if ("err" in k or "discard" in k or k in s.get("drops", {})) and v
        }
        for h, sessions in stats.items()
        for s in sessions
    }
    ok = bool(results) and all(r["ok"] for r in results)
    print(f"{'PASS' if ok else 'FAIL'}: {sum(r['ok'] for r in results)}/{len(results)} transfers "
          f"of {args.mib} MiB with equal SHA-256 ({impl})")  # fmt: skip
    print(f"non-zero session error and drop counters: {errors}")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (out / "integrity-latest.json").write_text(
        json.dumps({"when": stamp, "implementation": impl, "mib": args.mib,
                    "results": results, "session_errors": errors}, indent=1) + "\n"
    )  # fmt: skip
    lines = [
        f"`sudo python3 bench/integrity.py` ({stamp}, {impl}): "
        f"{'all' if ok else 'NOT all'} transfers of {args.mib} MiB arrived with equal SHA-256.",
        "",
        "| encap | inner | direction | result | Gbit/s (wall clock, with data generation) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['encap']} | {r['inner']} | {r['direction']} | "
              f"{'SHA-256 equal' if r['ok'] else 'FAILED'} | {r.get('gbit_s', '—')} |"
              for r in results]  # fmt: skip
    (out / "integrity-latest.md").write_text("\n".join(lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
