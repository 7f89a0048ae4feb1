#!/usr/bin/env python3
"""Capture cost: a bulk TCP transfer (iperf3, 10 s) through a namespace pseudowire with
no capture running, and with `l2tpv3 capture` running behind a slow reader.

    sudo python3 bench/capture.py [--time 10] [--reps 2] [--impl default|python|compiled]
                                  [--read-rate BYTES_PER_S]

The runs alternate (without, with, without, with, ...) so that load from elsewhere on
the machine hits both alike. The slow reader is this process: it asks A's l2tpv3d for a
capture of the tunnel over the control socket (the request `l2tpv3 capture` sends) and
reads at most --read-rate bytes per second (default 1 MB/s, far below what a bulk
transfer records), so the daemon's capture buffer stays full and packets are lost; the
daemon logs how many (capture_lost) when the capture ends. Prints both throughputs, the
ratio (target: the capture costs at most 10 %, ratio >= 0.9) and the packets lost;
writes bench/results/capture-latest.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import measure
from bench.cases import UNDERLAY_A, UNDERLAY_B
from bench.host import REPO, implementation, need_tools
from interop.netns import Lab, impl_env, veth
from l2tpv3.control.protocol import CAPTURE_OP

TARGET = 0.9
INNER = ("10.121.0.1", "10.121.0.2")


def config(host: int) -> str:
    local, remote = (UNDERLAY_A, UNDERLAY_B) if host == 1 else (UNDERLAY_B, UNDERLAY_A)
    return (
        f'[[tunnel]]\ntunnel_id = 1\npeer_tunnel_id = 1\nencap = "udp"\n'
        f'local = "{local}"\nremote = "{remote}"\nudp_sport = 1901\nudp_dport = 1901\n'
        f"udp_csum = true\n\n[[tunnel.session]]\nsession_id = 1\npeer_session_id = 1\n"
        f'name = "pw0"\n'
    )


class SlowReader(threading.Thread):
    """A capture client that reads at most ``rate`` bytes per second."""

    def __init__(self, path: str, rate: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.sendall(json.dumps({"op": CAPTURE_OP, "tunnel_id": 1}).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            answer += self.sock.recv(1)
        if not json.loads(answer).get("ok"):
            raise RuntimeError(f"capture refused: {answer!r}")
        self.rate = rate
        self.read = 0
        self.stop = threading.Event()

    def run(self) -> None:
        chunk = max(1, self.rate // 10)
        while not self.stop.is_set():
            try:
                data = self.sock.recv(chunk)
            except OSError:
                return
            if not data:
                return
            self.read += len(data)
            time.sleep(0.1)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--time", type=float, default=10, help="seconds per TCP run")
    p.add_argument("--reps", type=int, default=2, help="runs of each kind")
    p.add_argument("--impl", choices=["default", "python", "compiled"], default="default")
    p.add_argument("--read-rate", type=int, default=1_000_000)
    args = p.parse_args()
    need_tools(["ip", "iperf3"])
    compiled, why = implementation(no_extensions=args.impl == "python")
    if args.impl == "compiled" and not compiled:
        sys.exit(f"capture: compiled fast path not available: {why}")
    impl = why if compiled else "pure Python"
    print(f"implementation: {impl}", flush=True)
    env = impl_env(args.impl)
    runs: dict[str, list[float | None]] = {"without": [], "with": []}
    lost: list[int] = []
    read: list[int] = []
    lost_re = re.compile(r"capture of tunnel 1: ended \(.*\), capture_lost (\d+)")
    with (
        tempfile.TemporaryDirectory(prefix="l2tpv3-capbench-") as wd,
        Lab(Path(wd), cwd="/") as lab,
    ):
        try:
            a, b = lab.netns("a"), lab.netns("b")
            veth(a, "veth0", b, "veth0")
            a.add_addrs("veth0", f"{UNDERLAY_A}/24")
            b.add_addrs("veth0", f"{UNDERLAY_B}/24")
            daemons = []
            for ns, host in ((a, 1), (b, 2)):
                d = lab.daemon(ns, f"l2tpv3d-{host}", env, config(host))
                daemons.append(d)
                lab.run(ns, "ip", "link", "set", "pw0", "up")
                lab.run(ns, "ip", "addr", "add", f"{INNER[host - 1]}/24", "dev", "pw0")
            pids = [d.proc.pid for d in daemons]
            lab.spawn(b, "iperf3-server", "iperf3", "-s", "-p", str(measure.IPERF_PORT))
            time.sleep(0.5)
            lab.run(a, "ping", "-c", "3", "-i", "0.2", "-W", "2", INNER[1], check=False)
            for rep in range(args.reps):
                for kind in ("without", "with") if rep % 2 == 0 else ("with", "without"):
                    time.sleep(0.5)
                    reader = None
                    if kind == "with":
                        ended = len(lost_re.findall(daemons[0].log_text()))
                        reader = SlowReader(daemons[0].socket, args.read_rate)
                        reader.start()
                    s = measure.tcp(lab, a, INNER[1], args.time, False, pids)
                    runs[kind].append(s.value)
                    extra = ""
                    if reader is not None:
                        reader.close()
                        reader.join(5)
                        deadline = time.monotonic() + 10
                        while len(lost_re.findall(daemons[0].log_text())) <= ended:
                            if time.monotonic() > deadline:
                                raise RuntimeError("the daemon did not log the capture's end")
                            time.sleep(0.1)
                        lost.append(int(lost_re.findall(daemons[0].log_text())[-1]))
                        read.append(reader.read)
                        extra = f", capture_lost {lost[-1]}, reader took {reader.read} bytes"
                    shown = "failed: " + (s.error or "") if s.value is None else f"{s.value:.3f}"
                    print(f"rep {rep + 1}: {kind:7s} capture: TCP {shown} Gbit/s, daemons' "
                          f"CPU {s.cpu or 0:.0f}%{extra}", flush=True)  # fmt: skip
        except KeyboardInterrupt:
            print("capture: interrupted; cleaning up", file=sys.stderr)
            return 130
    med = {
        k: statistics.median([v for v in vals if v is not None] or [0.0])
        for k, vals in runs.items()
    }
    ratio = med["with"] / med["without"] if med["without"] else None
    print()
    print(f"TCP without capture: {med['without']:.3f} Gbit/s (median of {args.reps})")
    print(f"TCP with a capture and a slow reader ({args.read_rate} B/s): "
          f"{med['with']:.3f} Gbit/s (median of {args.reps})")  # fmt: skip
    print(f"packets the capture lost (capture_lost) per run: {lost}")
    if ratio is None:
        print("N/A   ratio: not measured")
    else:
        verdict = "PASS " if ratio >= TARGET else "MISS "
        print(f"{verdict} with / without: {ratio:.2f}x (target >= {TARGET}x)")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    doc: dict[str, Any] = {"when": stamp, "implementation": impl, "seconds": args.time,
                           "read_rate": args.read_rate, "gbps_runs": runs, "gbps_median": med,
                           "ratio": ratio, "capture_lost": lost, "reader_bytes": read}  # fmt: skip
    (out / "capture-latest.json").write_text(json.dumps(doc, indent=1) + "\n")
    text = (
        f"`sudo python3 bench/capture.py` ({stamp}, {impl}): a {args.time:g} s iperf3 TCP "
        f"transfer through the pseudowire ran at {med['without']:.3f} Gbit/s without a "
        f"capture and {med['with']:.3f} Gbit/s with `l2tpv3 capture` running behind a "
        f"reader taking {args.read_rate} B/s (medians of {args.reps}): "
        + ("not measured" if ratio is None else
           f"{ratio:.2f}x (target >= {TARGET}x: {'PASS' if ratio >= TARGET else 'MISS'})")
        + f"; the capture lost {lost} packets (capture_lost, per run)."
    )  # fmt: skip
    (out / "capture-latest.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
