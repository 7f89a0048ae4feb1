#!/usr/bin/env python3
"""Soak and leak: a long run of traffic, session churn and malformed packets, with the
daemons' resident memory, open fds, threads and TAP devices sampled throughout.

    sudo python3 bench/soak.py [--impl default|python|compiled|both] [--minutes 30]
                               [--sample 30] [--warmup 60] [--flood-pps 20000]
                               [--inject-rate 1000]

Two namespaces A and B joined by veth, one l2tpv3d in each, two UDP tunnels between
them. Tunnel 1 has one session (with cookies both ways) carrying bidirectional TCP
(iperf3 --bidir) and a 64-byte UDP flood A→B (iperf3 -u -l 64, 20,000 packets/s by
default: unthrottled, it takes the pseudowire from TCP, with the pure-Python path).
On tunnel 2 a session is added at both ends and deleted again every second through the
`l2tpv3` client. Malformed datagrams (random bytes, truncated headers, wrong session IDs,
wrong cookies) arrive at each daemon's tunnel ports at --inject-rate per second, half
from the peer's address and port, half from a stranger's address on the peer's side.

Every --sample seconds: VmRSS, open fds (/proc/PID/fd), threads (/proc/PID/task) of each
daemon and the TAP devices in each namespace (`ip -d link show type tun`), taken between
two churn cycles (when no churned session exists). The first sample is taken before the
load starts; growth is measured from the first sample at or after --warmup seconds to
the last. Flat means RSS grew less than 2 MiB and fds, threads and TAPs are exactly
equal. Prints the table and the verdicts, exits non-zero if anything grew or a daemon
died, and writes bench/results/soak-latest.{json,md,png} (no PNG without matplotlib).
Everything is created in namespaces of its own and removed afterwards, also on Ctrl-C.

Internally, `soak.py inject ...` is the malformed-packet sender run inside a namespace.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cases import UNDERLAY_A, UNDERLAY_B
from bench.host import REPO, implementation, need_tools, vm_rss_kib
from interop.netns import CommandFailed, Daemon, Lab, Netns, impl_env, veth

INNER_MTU = 1446
STRANGER = "10.99.0.3"  # an extra address on B's veth: not the peer of anything
PORTS = {1: 1801, 2: 1802}  # tunnel ID -> UDP port (source and destination, both ends)
COOKIES = {1: "a1a2a3a4a5a6a7a8", 2: "b1b2b3b4b5b6b7b8"}  # what host 1 / host 2 sends
IPERF_TCP, IPERF_UDP = 5201, 5202
RSS_TOLERANCE_KIB = 2048
METRICS = ("rss_kib", "fds", "threads", "taps")
HOSTS = ("A", "B")


# ---------------------------------------------------------------- malformed packets


def malformed(rng: random.Random, n: int, ports: dict[int, int], session_id: int
              ) -> tuple[int, bytes]:  # fmt: skip
    """The ``n``-th malformed datagram: (destination port, UDP payload), the four kinds
    in turn. None can be mistaken for a good packet: the real session needs its cookie."""
    frame = bytes.fromhex("ffffffffffff02990000000208060001") + rng.randbytes(28)
    kind = n % 4
    if kind == 0:  # random bytes, 0 to 200 of them
        return ports[1], rng.randbytes(rng.randrange(201))
    if kind == 1:  # a good header cut short (flags word, session ID, cookie, sublayer)
        whole = struct.pack("!HHI", 0x0003, 0, session_id) + rng.randbytes(12)
        return ports[1], whole[: rng.randrange(len(whole))]
    if kind == 2:  # a session ID nobody has (on tunnel 2 it may be a churned one)
        sid = rng.choice([rng.randrange(2, 1 << 32), 1000 + rng.randrange(2000)])
        tunnel = 1 + (n // 8) % 2
        return ports[tunnel], struct.pack("!HHI", 0x0003, 0, sid) + rng.randbytes(8) + frame
    # the real session with a wrong cookie
    return ports[1], struct.pack("!HHI", 0x0003, 0, session_id) + rng.randbytes(8) + frame


def inject(argv: list[str]) -> int:
    """``inject DST PEER STRANGER RATE``: malformed datagrams to DST's tunnel ports at
    RATE per second until SIGTERM, alternately from PEER (with the tunnel's port as
    source port, as the real peer sends) and from STRANGER (random ports); prints the
    number sent when it stops."""
    dst, peer, stranger, rate = argv[0], argv[1], argv[2], float(argv[3])
    socks = {}
    for src in (peer, stranger):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
        s.bind((src, 0))
        socks[src] = s
    stop = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    rng = random.Random(1)
    sent = errors = 0
    t0 = time.monotonic()
    batch = max(1, int(rate // 100))  # 100 batches a second
    while not stop:
        for _ in range(batch):
            dport, payload = malformed(rng, sent, PORTS, 1)
            src = peer if (sent // 4) % 2 == 0 else stranger  # every kind from both
            sport = dport if src == peer else rng.randrange(1024, 65536)
            udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
            try:
                socks[src].sendto(udp, (dst, 0))
            except OSError:
                errors += 1
            sent += 1
        delay = t0 + sent / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(json.dumps({"sent": sent, "errors": errors, "seconds": time.monotonic() - t0}),
          flush=True)  # fmt: skip
    return 0


# ---------------------------------------------------------------- set-up and load


def config(host: int) -> str:
    """Tunnel 1 with session 1 (cookies both ways); tunnel 2 empty, for the churn."""
    local, remote = (UNDERLAY_A, UNDERLAY_B) if host == 1 else (UNDERLAY_B, UNDERLAY_A)
    mine, theirs = (COOKIES[1], COOKIES[2]) if host == 1 else (COOKIES[2], COOKIES[1])
    out = []
    # TOML attaches [[tunnel.session]] to the [[tunnel]] before it: tunnel 2 comes first.
    for tid in (2, 1):
        port = PORTS[tid]
        out.append(
            f'[[tunnel]]\ntunnel_id = {tid}\npeer_tunnel_id = {tid}\nencap = "udp"\n'
            f'local = "{local}"\nremote = "{remote}"\nudp_sport = {port}\nudp_dport = {port}\n'
        )
    out.append(
        f'[[tunnel.session]]\nsession_id = 1\npeer_session_id = 1\nname = "l2tpeth1"\n'
        f'cookie = "{mine}"\npeer_cookie = "{theirs}"\n'
    )
    return "\n".join(out)


class Churn(threading.Thread):
    """Every ``period`` seconds: add a session on tunnel 2 at both ends, then delete it
    at both ends. Holds ``lock`` for a whole cycle, so a sampler holding it sees no
    churned session."""

    def __init__(self, daemons: list[Daemon], env: dict[str, str], period: float = 1.0
                 ) -> None:  # fmt: skip
        super().__init__(name="churn", daemon=True)
        self.daemons, self.env, self.period = daemons, env, period
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.cycles = 0
        self.errors: list[str] = []
        self.seconds_per_cycle: list[float] = []

    def _cli(self, d: Daemon, *args: str) -> None:
        try:
            d.cli(*args, env=self.env)
        except (CommandFailed, OSError, TimeoutError) as e:
            if len(self.errors) < 20:
                self.errors.append(str(e).strip()[:200])
            else:
                self.errors[-1] = f"... and more ({len(self.errors)})"

    def run(self) -> None:
        sid = 1000
        next_at = time.monotonic()
        while not self.stopping.is_set():
            with self.lock:
                t0 = time.monotonic()
                for d in self.daemons:
                    self._cli(d, "add", "session", "name", f"ch{sid}", "tunnel_id", "2",
                              "session_id", str(sid), "peer_session_id", str(sid))  # fmt: skip
                for d in self.daemons:
                    self._cli(d, "del", "session", "tunnel_id", "2", "session_id", str(sid))
                self.seconds_per_cycle.append(time.monotonic() - t0)
                self.cycles += 1
            sid = 1000 + (sid - 999) % 2000  # IDs 1000..2999, reused
            next_at = max(next_at + self.period, time.monotonic())
            self.stopping.wait(max(0.0, next_at - time.monotonic()))


def count_taps(ns: Netns) -> int:
    out = ns.run("ip", "-d", "-o", "link", "show", "type", "tun").stdout
    return sum(1 for line in out.splitlines() if line.strip())


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def sample(t: float, daemons: list[Daemon], nss: list[Netns]) -> dict[str, Any]:
    row: dict[str, Any] = {"t": round(t, 1)}
    for h, d, ns in zip(HOSTS, daemons, nss, strict=True):
        pid = d.proc.pid
        row[h] = {"rss_kib": vm_rss_kib(pid), "fds": fds(pid), "threads": threads(pid),
                  "taps": count_taps(ns)}  # fmt: skip
    return row


def iperf_summary(text: str, udp: bool) -> dict[str, Any]:
    """What an iperf3 -J client reported: TCP goodput each way, or 64-byte datagrams per
    second sent and received (the receiver's byte count over the datagram size)."""
    try:
        doc = json.loads(text[text.index("{") :])
    except ValueError:
        return {"error": (text.strip() or "no output")[-200:]}
    if "error" in doc:
        return {"error": str(doc["error"])[:200]}
    end = doc.get("end", {})
    try:
        got = end["sum_received"]
        if udp:
            put = end["sum_sent"]
            return {
                "sent_pps": round(int(put["bytes"]) // 64 / (float(put["seconds"]) or 1)),
                "received_pps": round(int(got["bytes"]) // 64 / (float(got["seconds"]) or 1)),
            }
        rev = end["sum_received_bidir_reverse"]
        return {"a_to_b_mbit_s": round(got["bits_per_second"] / 1e6, 1),
                "b_to_a_mbit_s": round(rev["bits_per_second"] / 1e6, 1)}  # fmt: skip
    except (KeyError, TypeError, ValueError) as e:
        return {"error": f"unexpected iperf3 output: {e!r}"}


def soak_one(impl_arg: str, args: argparse.Namespace) -> dict[str, Any]:
    compiled, why = implementation(no_extensions=impl_arg == "python")
    if impl_arg == "compiled" and not compiled:
        sys.exit(f"soak: compiled fast path not available: {why}")
    impl = why if compiled else "pure Python"
    print(f"implementation: {impl}", flush=True)
    env = impl_env(impl_arg)
    duration = args.minutes * 60
    warmup = min(args.warmup, duration / 2)
    rows: list[dict[str, Any]] = []
    run: dict[str, Any] = {"impl": impl_arg, "implementation": impl, "samples": rows}
    churn: Churn | None = None
    with tempfile.TemporaryDirectory(prefix="l2tpv3-soak-") as wd, Lab(Path(wd), cwd="/") as lab:
        try:
            a, b = lab.netns("a"), lab.netns("b")
            veth(a, "veth0", b, "veth0")
            a.add_addrs("veth0", f"{UNDERLAY_A}/24")
            b.add_addrs("veth0", f"{UNDERLAY_B}/24", f"{STRANGER}/24")
            a.add_addrs("veth0", "10.99.0.4/24")  # A's stranger, towards B
            daemons: list[Daemon] = []
            for ns, host in ((a, 1), (b, 2)):
                d = lab.daemon(ns, f"l2tpv3d-{host}", env, config(host))
                daemons.append(d)
                lab.run(ns, "ip", "link", "set", "l2tpeth1", "mtu", str(INNER_MTU), "up")
                lab.run(ns, "ip", "addr", "add", f"10.130.1.{host}/24", "dev", "l2tpeth1")
            run["pids"] = [d.proc.pid for d in daemons]
            lab.run(a, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.130.1.2", check=False)
            t0 = time.monotonic()
            rows.append(sample(0, daemons, [a, b]))
            print(f"t=0 (before the load): {rows[-1]}", flush=True)
            secs = str(int(duration + 5))
            lab.spawn(b, "iperf3-tcp-server", "iperf3", "-s", "-p", str(IPERF_TCP))
            lab.spawn(b, "iperf3-udp-server", "iperf3", "-s", "-p", str(IPERF_UDP))
            time.sleep(0.5)
            tcp = lab.spawn(a, "iperf3-tcp", "iperf3", "-c", "10.130.1.2", "-p", str(IPERF_TCP),
                            "--bidir", "-t", secs, "-i", "0", "-J")  # fmt: skip
            udp = lab.spawn(a, "iperf3-udp", "iperf3", "-c", "10.130.1.2", "-p", str(IPERF_UDP),
                            "-u", "-l", "64", "-b", str(args.flood_pps * 64 * 8), "-t", secs,
                            "-i", "0", "-J")  # fmt: skip
            me = str(Path(__file__).resolve())
            rate = str(args.inject_rate)
            inj_a = [UNDERLAY_A, UNDERLAY_B, STRANGER, rate]
            inj_b = [UNDERLAY_B, UNDERLAY_A, "10.99.0.4", rate]
            injectors = [
                lab.spawn(b, "inject-to-a", sys.executable, me, "inject", *inj_a),
                lab.spawn(a, "inject-to-b", sys.executable, me, "inject", *inj_b),
            ]
            churn = Churn(daemons, env)
            churn.start()
            n = 1
            while n * args.sample <= duration + 0.01:
                time.sleep(max(0.0, t0 + n * args.sample - time.monotonic()))
                for d in daemons:
                    if d.proc.poll() is not None:
                        raise CommandFailed(f"l2tpv3d exited: {d.log_text()[-2000:]}")
                with churn.lock:
                    time.sleep(0.3)  # the client's last connection closed at the daemon
                    rows.append(sample(time.monotonic() - t0, daemons, [a, b]))
                r = rows[-1]
                print(f"t={r['t']:6.0f}s  " + "  ".join(
                    f"{h}: rss {r[h]['rss_kib']} KiB fds {r[h]['fds']} threads "
                    f"{r[h]['threads']} taps {r[h]['taps']}" for h in HOSTS)
                    + f"  churn cycles {churn.cycles}", flush=True)  # fmt: skip
                n += 1
            churn.stopping.set()
            churn.join(timeout=60)
            for p in injectors:
                lab.stop(p)
            for p in (tcp, udp):
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    lab.stop(p)
            run["alive"] = all(d.proc.poll() is None for d in daemons)
            run["traffic"] = {
                "tcp_bidir": iperf_summary(lab.log_text("iperf3-tcp"), udp=False),
                "udp64_flood": iperf_summary(lab.log_text("iperf3-udp"), udp=True),
            }
            inj = {}
            for tag in ("inject-to-a", "inject-to-b"):
                try:
                    inj[tag] = json.loads(lab.log_text(tag).strip().splitlines()[-1])
                except (ValueError, IndexError):
                    inj[tag] = {"error": lab.log_text(tag)[-200:]}
            run["malformed"] = inj
            run["churn"] = {
                "cycles": churn.cycles,
                "errors": churn.errors,
                "max_cycle_s": round(max(churn.seconds_per_cycle, default=0), 2),
            }
            counters = {}
            for h, d in zip(HOSTS, daemons, strict=True):
                s = d.cli("-j", "-s", "show", "session", env=env).stdout
                t = d.cli("-j", "-s", "show", "tunnel", env=env).stdout
                counters[h] = {"sessions": json.loads(s), "tunnels": json.loads(t)}
            run["counters"] = counters
        except KeyboardInterrupt:
            print("soak: interrupted; cleaning up", file=sys.stderr)
            if churn is not None:
                churn.stopping.set()
                churn.join(timeout=60)
            raise
        finally:
            if churn is not None:
                churn.stopping.set()
    run.update(analyse(rows, warmup))
    return run


# ---------------------------------------------------------------- analysis and output


def analyse(rows: list[dict[str, Any]], warmup: float) -> dict[str, Any]:
    base = next((r for r in rows if r["t"] >= warmup), rows[-1])
    last = rows[-1]
    growth: dict[str, dict[str, int]] = {}
    flat: dict[str, dict[str, bool]] = {}
    for h in HOSTS:
        growth[h] = {m: last[h][m] - base[h][m] for m in METRICS}
        flat[h] = {
            m: growth[h][m] < RSS_TOLERANCE_KIB if m == "rss_kib" else growth[h][m] == 0
            for m in METRICS
        }
    return {"warmup_s": warmup, "baseline_t": base["t"], "growth": growth, "flat": flat}


def table(run: dict[str, Any]) -> list[str]:
    head = ["t s"] + [f"{h} {m}" for h in HOSTS for m in ("rss KiB", "fds", "threads", "taps")]
    body = [[f"{r['t']:.0f}"] + [str(r[h][m]) for h in HOSTS for m in METRICS]
            for r in run["samples"]]  # fmt: skip
    w = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    return ["  ".join(v.rjust(w[i]) for i, v in enumerate(x)) for x in [head, *body]]


def verdict_lines(run: dict[str, Any]) -> list[str]:
    out = []
    for h in HOSTS:
        parts = []
        for m in METRICS:
            g = run["growth"][h][m]
            word = "flat" if run["flat"][h][m] else "GREW"
            parts.append(f"{m} {g:+d} {word}")
        out.append(f"daemon {h}: " + ", ".join(parts))
    return out


def ok(run: dict[str, Any]) -> bool:
    return bool(run.get("alive")) and all(all(v.values()) for v in run["flat"].values())


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"`sudo python3 bench/soak.py --impl {doc['impl']} --minutes {doc['minutes']:g} "
        f"--sample {doc['sample']:g}` "
        f"({doc['when']}, kernel {doc['kernel']}, {doc['cpus']} CPUs): bidirectional TCP "
        f"and a 64-byte UDP flood ({doc['flood_pps'] or 'unthrottled'} packets/s offered) "
        f"through one session, a session added and deleted every "
        f"second on a second tunnel, malformed datagrams at {doc['inject_rate']:g}/s at each "
        f"daemon. Flat: RSS growth < {RSS_TOLERANCE_KIB // 1024} MiB, fds, threads and TAP "
        f"devices exactly equal, from the first sample at or after {doc['warmup']:g} s to the "
        "last.",
        "",
    ]
    for run in doc["runs"]:
        tr, ch = run.get("traffic", {}), run.get("churn", {})
        tcp, udp = tr.get("tcp_bidir", {}), tr.get("udp64_flood", {})
        sent = sum(int(v.get("sent", 0)) for v in run.get("malformed", {}).values())
        lines += [
            f"**{run['implementation']}**: {'FLAT' if ok(run) else 'NOT FLAT'}"
            f"{'' if run.get('alive') else ' (a daemon died)'}. "
            f"TCP {tcp.get('a_to_b_mbit_s', '?')} / {tcp.get('b_to_a_mbit_s', '?')} Mbit/s "
            f"(A→B / B→A, averaged over the run), 64-byte flood {udp.get('sent_pps', '?')} "
            f"packets/s sent, {udp.get('received_pps', '?')} received, "
            f"{ch.get('cycles', '?')} churn cycles "
            f"({len(ch.get('errors', []))} errors), {sent} malformed datagrams sent.",
            "",
            "| t (s) | " + " | ".join(f"{h} RSS KiB | {h} fds | {h} threads | {h} TAPs"
                                     for h in HOSTS) + " |",
            "|---" * (1 + 4 * len(HOSTS)) + "|",
        ]  # fmt: skip
        lines += [f"| {r['t']:.0f} | " + " | ".join(str(r[h][m]) for h in HOSTS for m in METRICS)
                  + " |" for r in run["samples"]]  # fmt: skip
        last = run["samples"][-1]["t"]
        lines += ["", f"Growth from t={run['baseline_t']:.0f} s to t={last:.0f} s:", ""]
        lines += [*(f"- {v}" for v in verdict_lines(run)), ""]
    lines.append("![soak plot](soak-latest.png)")
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], path: Path) -> str | None:
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed: no plot (pip install matplotlib)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    titles = {"rss_kib": "VmRSS, MiB", "fds": "open fds", "threads": "threads",
              "taps": "TAP devices in the namespace"}  # fmt: skip
    for i, m in enumerate(METRICS):
        ax = axes[i]
        for j, run in enumerate(doc["runs"]):
            label = "python" if run["implementation"] == "pure Python" else "compiled"
            t = [r["t"] / 60 for r in run["samples"]]
            for k, h in enumerate(HOSTS):
                ys = [r[h][m] / 1024 if m == "rss_kib" else r[h][m] for r in run["samples"]]
                ax.plot(t, ys, marker="o", markersize=3, color=f"C{2 * j + k}",
                        linestyle="-" if k == 0 else "--", label=f"{label} {h}")  # fmt: skip
            ax.axvline(run["baseline_t"] / 60, color="grey", linewidth=0.5)
        ax.set_title(titles[m], fontsize=10)
        ax.set_xlabel("minutes")
        if m != "rss_kib":
            ax.set_ylim(bottom=0, top=max(1.0, ax.get_ylim()[1]) * 1.15)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"l2tpv3 soak {doc['when']}: traffic, churn 1/s, malformed "
                 f"{doc['inject_rate']:g}/s (grey: start of the growth window)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def main(argv: list[str]) -> int:
    if argv[:1] == ["inject"]:
        return inject(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--impl", choices=["default", "python", "compiled", "both"], default="default",
                   help="both: python, then compiled")  # fmt: skip
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--sample", type=float, default=30, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=60,
                   help="seconds before the growth window (at most half the run)")  # fmt: skip
    p.add_argument("--flood-pps", type=int, default=20000,
                   help="64-byte datagrams per second offered (0: unthrottled)")  # fmt: skip
    p.add_argument("--inject-rate", type=float, default=1000,
                   help="malformed datagrams per second at each daemon")  # fmt: skip
    args = p.parse_args(argv)
    if args.sample <= 0 or args.minutes * 60 < args.sample:
        sys.exit("soak: --sample must be positive and at most the run's length")
    need_tools(["ip", "iperf3"])
    impls = ["python", "compiled"] if args.impl == "both" else [args.impl]
    runs = []
    try:
        for impl in impls:
            run = soak_one(impl, args)
            runs.append(run)
            print()
            print(f"{run['implementation']}:")
            print("\n".join(table(run)))
            print(f"growth from t={run['baseline_t']:.0f}s to the last sample:")
            print("\n".join(verdict_lines(run)))
            print(f"traffic: {run.get('traffic')}; churn: {run.get('churn')}; "
                  f"malformed: {run.get('malformed')}")  # fmt: skip
            print(("FLAT" if ok(run) else "NOT FLAT") + f" ({run['implementation']})"
                  + ("" if run.get("alive") else ": a daemon died"), flush=True)  # fmt: skip
    except KeyboardInterrupt:
        return 130
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "impl": args.impl,
        "minutes": args.minutes,
        "sample": args.sample,
        "warmup": min(args.warmup, args.minutes * 30),
        "inject_rate": args.inject_rate,
        "flood_pps": args.flood_pps,
        "rss_tolerance_kib": RSS_TOLERANCE_KIB,
        "runs": runs,
    }
    (out / "soak-latest.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "soak-latest.md").write_text(markdown(doc))
    why = plot(doc, out / "soak-latest.png")
    print(why or f"wrote {out / 'soak-latest.png'}")
    print(f"wrote {out / 'soak-latest.json'} and {out / 'soak-latest.md'}")
    return 0 if all(ok(r) for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
