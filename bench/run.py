#!/usr/bin/env python3
"""Benchmark: raw veth, kernel VXLAN (offloads on/off), OpenVPN tap and l2tpv3 (pure
Python and Cython) between two namespaces, cases interleaved round-robin.

    sudo python3 bench/run.py [--reps 3] [--time 8] [--only veth,l2tpv3_py] [--esp]

Prints a table with ratios and the issue's targets, writes bench/results/<stamp>.json
and .png (and latest.*), and rewrites docs/performance.md. Needs root, iperf3, openvpn
and ethtool; everything it creates is removed afterwards, also on Ctrl-C.

--esp adds the encrypted links of issue 9 to the same interleaved run: OpenVPN tap in
TLS mode with AES-256-GCM (a throwaway CA made at run time), kernel VXLAN over
wireguard-go, and l2tpv3 (pure Python and Cython) with an rfc4106(gcm(aes)) SA pair.
They also need wireguard-go and wg (apt-get install wireguard-go wireguard-tools).
Their part of the results goes to bench/results/esp-latest.{json,md} and into
docs/performance.md. A run limited by --only (a partial run) leaves latest.* and the
main table alone and rewrites only the sections it measured:

    sudo python3 bench/run.py --esp --only veth,openvpn_gcm,vxlan_wg,l2tpv3_py_esp,l2tpv3_cy_esp
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import measure, report
from bench.cases import UNDERLAY_A, UNDERLAY_B, Case, all_cases, baseline_cases, esp_cases
from bench.host import REPO, need_tools, package_location
from interop.netns import PREFIX, Lab, Netns, veth

SETTLE = 0.5  # seconds of quiet before each test


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=3, help="repetitions of every test (median)")
    p.add_argument("--time", type=float, default=8, help="seconds per iperf3 TCP run")
    p.add_argument("--udp-time", type=float, default=3, help="seconds per 64-byte UDP run")
    p.add_argument("--pings", type=int, default=200, help="pings per repetition (10 ms apart)")
    p.add_argument("--only", help="comma-separated case keys (default: all)")
    p.add_argument(
        "--esp",
        action="store_true",
        help="add the encrypted cases: " + ", ".join(c.key for c in esp_cases()),
    )
    p.add_argument("--note", default="", help="a remark kept with the results (e.g. load)")
    p.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    p.add_argument(
        "--docs-only",
        action="store_true",
        help="only rewrite docs/performance.md from the latest results (no root)",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also run the l2tpv3 cases from another checkout (extensions built in place),"
        " interleaved, as *_base",
    )
    p.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    return p.parse_args()


def run_one(lab: Lab, case: Case, a: Netns, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """One repetition of every test of one case; each result appended to ``out``."""
    r = out.setdefault(case.key, {})
    # Ping first, on an idle link: after a 64-byte flood the socket and TAP queues
    # take a while to drain, which would show up as latency that is not the link's.
    time.sleep(SETTLE)
    avg, p99 = measure.ping(lab, a, case.server, args.pings, 0.01)
    r.setdefault("ping_avg_ms", []).append(avg.value)
    r.setdefault("ping_p99_ms", []).append(p99.value)
    if avg.error:
        r.setdefault("errors", []).append(f"ping: {avg.error}")
    for name, reverse in (("tcp_ab", False), ("tcp_ba", True)):
        time.sleep(SETTLE)
        s = measure.tcp(lab, a, case.server, args.time, reverse, case.pids)
        r.setdefault(name, []).append(s.value)
        r.setdefault(name + "_cpu", []).append(s.cpu)
        r.setdefault(name + "_retrans", []).append(s.retransmits)
        if s.error:
            r.setdefault("errors", []).append(f"{name}: {s.error}")
    time.sleep(SETTLE)
    s = measure.udp64(lab, a, case.server, args.udp_time, case.pids)
    r.setdefault("udp64_pps", []).append(s.value)
    r.setdefault("udp64_cpu", []).append(s.cpu)
    r.setdefault("udp64_sent_pps", []).append(s.sent)
    if s.error:
        r.setdefault("errors", []).append(f"udp64: {s.error}")


def command_line(argv: list[str]) -> str:
    """How the run was started, without the --note text (kept on its own)."""
    out, skip = ["bench/run.py"], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--note":
            skip = True
        elif not word.startswith("--note="):
            out.append(word)
    return " ".join(out)


def median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def main() -> int:
    args = parse_args()
    if args.docs_only:
        esp = args.results / "esp-latest.json"
        if esp.exists():  # its Markdown again, from the figures (the report may have changed)
            (args.results / "esp-latest.md").write_text(
                report.esp_markdown(json.loads(esp.read_text()))
            )
        latest = json.loads((args.results / "latest.json").read_text())
        print(f"wrote {report.write_docs(latest, REPO / 'docs' / 'performance.md')}")
        return 0
    need_tools(["ip", "ping", "iperf3", "openvpn", "ethtool",
                *(["wg", "wireguard-go"] if args.esp else [])])  # fmt: skip
    location = package_location()
    print(f"l2tpv3 from {location}", flush=True)
    cases = all_cases()
    if args.esp:
        cases += esp_cases()
    if args.baseline is not None:
        cases += baseline_cases(str(args.baseline.resolve()))
    if args.only:
        keys = set(args.only.split(","))
        unknown = keys - {c.key for c in cases}
        if unknown:
            sys.exit(f"bench: unknown case {', '.join(sorted(unknown))}")
        cases = [c for c in cases if c.key in keys]
    started = time.time()
    raw: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="l2tpv3-bench-") as wd, Lab(Path(wd), cwd="/") as lab:
        try:
            a = lab.netns("a")
            b = lab.netns("b")
            veth(a, "veth0", b, "veth0")
            a.add_addrs("veth0", f"{UNDERLAY_A}/24")
            b.add_addrs("veth0", f"{UNDERLAY_B}/24")
            for case in cases:
                try:
                    case.setup(lab, a, b)
                except Exception as exc:
                    case.available, case.reason = False, f"setup failed: {exc}"
                state = "ok" if case.available else "NOT AVAILABLE"
                print(f"setup {case.key:12s} {state} {case.reason}", flush=True)
            lab.spawn(b, "iperf3-server", "iperf3", "-s", "-p", str(measure.IPERF_PORT))
            time.sleep(0.5)
            live = [c for c in cases if c.available]
            for c in live:  # ARP/ND and first-packet paths warmed up before timing
                lab.run(a, "ping", "-c", "3", "-i", "0.1", "-W", "2", c.server, check=False)
            for rep in range(args.reps):
                # Round-robin, and a different case first each time, so drift over the
                # run (other load, thermal) hits every case alike.
                order = live[rep % len(live) :] + live[: rep % len(live)] if live else []
                for case in order:
                    print(f"rep {rep + 1}/{args.reps}: {case.key}", flush=True)
                    run_one(lab, case, a, args, raw)
            for case in live:
                try:
                    raw.setdefault(case.key, {})["evidence"] = case.evidence(lab)
                except Exception as exc:  # the figures stand; say what could not be read
                    raw.setdefault(case.key, {}).setdefault("errors", []).append(f"evidence: {exc}")
        except KeyboardInterrupt:
            print("bench: interrupted; cleaning up", file=sys.stderr)
            return 130
    results: dict[str, Any] = {
        "meta": {
            **report.meta(args, started, PREFIX),
            "package": location,
            "command": command_line(sys.argv[1:]),
        },
        "cases": {},
    }
    for case in cases:
        r = raw.get(case.key, {})
        entry: dict[str, Any] = {"label": case.label, "available": case.available,
                                 "reason": case.reason, "datapath": case.datapath,
                                 "runs": r}  # fmt: skip
        for k, v in r.items():
            if k not in ("errors", "evidence") and isinstance(v, list):
                entry[k] = median(v)
        if r.get("evidence"):
            entry["evidence"] = r["evidence"]
        results["cases"][case.key] = entry
    results["targets"] = report.targets(results["cases"])
    for key, entry in results["cases"].items():
        for err in entry["runs"].get("errors", []):
            print(f"error: {key}: {err}", file=sys.stderr)
    print()
    print(report.table(results, report.present_references(results)))
    print()
    for line in report.target_lines(results["targets"]):
        print(line)
    for line in report.evidence_lines(results["cases"]):
        print(line)
    # A partial run (--only) does not replace the full run's latest.* and main table.
    partial = bool(args.only)
    paths = report.write(results, args.results, latest=not partial)
    if any(k in results["cases"] for k in report.ESP_CASES):
        paths += report.write_esp(results, args.results)
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    if not args.no_docs:
        latest_path = args.results / "latest.json"
        full = json.loads(latest_path.read_text()) if partial else results
        doc = report.write_docs(full, REPO / "docs" / "performance.md")
        print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
