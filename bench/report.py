"""Table, targets, JSON, chart and docs/performance.md for one benchmark run."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.host import REPO

# The targets: (name, case, measure, versus, minimum ratio).
RATIO_TARGETS = [
    ("Cython TCP vs OpenVPN tap", "l2tpv3_cy", "tcp", "openvpn", 8.0),
    ("Cython TCP vs kernel VXLAN without offloads", "l2tpv3_cy", "tcp", "vxlan_nooff", 1.5),
    ("Cython (udp_csum on) TCP vs OpenVPN tap", "l2tpv3_cy_csum", "tcp", "openvpn", 8.0),
    (
        "Cython (udp_csum on) TCP vs kernel VXLAN without offloads",
        "l2tpv3_cy_csum",
        "tcp",
        "vxlan_nooff",
        1.5,
    ),
    ("Cython 64-byte packets/s vs OpenVPN tap", "l2tpv3_cy", "udp64_pps", "openvpn", 3.0),
    ("pure-Python TCP vs OpenVPN tap", "l2tpv3_py", "tcp", "openvpn", 0.8),
]
# Issue 9's targets for the encrypted links (run.py --esp); reported when any of their
# cases ran.
ESP_TARGETS = [
    ("Cython + ESP TCP vs OpenVPN AES-256-GCM", "l2tpv3_cy_esp", "tcp", "openvpn_gcm", 3.0),
    ("Cython + ESP TCP vs VXLAN over wireguard-go", "l2tpv3_cy_esp", "tcp", "vxlan_wg", 1.0),
    ("pure-Python + ESP TCP vs OpenVPN AES-256-GCM", "l2tpv3_py_esp", "tcp", "openvpn_gcm", 0.8),
]
ESP_CASES = ("openvpn_gcm", "vxlan_wg", "l2tpv3_py_esp", "l2tpv3_cy_esp")
MAX_ADDED_PING_MS = 0.3


def _tcp(c: dict[str, Any]) -> float | None:
    """A case's TCP figure: the mean of the two directions' medians."""
    v = [c.get("tcp_ab"), c.get("tcp_ba")]
    return sum(v) / 2 if None not in v and c.get("available") else None  # type: ignore[arg-type]


def _value(c: dict[str, Any], what: str) -> float | None:
    if not c.get("available"):
        return None
    return _tcp(c) if what == "tcp" else c.get(what)


def _ratio(x: float | None, y: float | None) -> float | None:
    return x / y if x is not None and y else None


def _added_ping(cases: dict[str, Any], key: str) -> float | None:
    c, base = cases.get(key, {}), cases.get("veth", {})
    x, y = _value(c, "ping_avg_ms"), _value(base, "ping_avg_ms")
    return x - y if x is not None and y is not None else None


def _miss_notes(cases: dict[str, Any], key: str, what: str, versus: str, got: float,
                minimum: float) -> list[str]:  # fmt: skip
    """Why a ratio was missed, as far as the run itself can tell."""
    notes = [f"{(1 - got / minimum) * 100:.0f}% short"]
    # A ratio the raw underlay itself cannot reach in this run is bounded by the load
    # generator and the machine, not by the tunnel: say so next to a miss.
    ceiling = _ratio(_value(cases.get("veth", {}), what), _value(cases.get(versus, {}), what))
    if ceiling is not None and ceiling < 2 * minimum:
        notes.append(f"raw veth itself reaches only {ceiling:.2f}x in this run")
    if cases.get(key, {}).get("datapath") == "python":
        notes.append(
            "this case's ESP ran on the pure-Python path (the extension was built without"
            " libcrypto, so add sa moved the tunnel there): it measures Python ESP"
        )
    return notes


def targets(cases: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    wanted = list(RATIO_TARGETS)
    if any(k in cases for k in ESP_CASES):
        wanted += ESP_TARGETS
    for name, key, what, versus, minimum in wanted:
        got = _ratio(_value(cases.get(key, {}), what), _value(cases.get(versus, {}), what))
        entry = {"target": name, "measured": got, "required": f">= {minimum}x",
                 "pass": None if got is None else got >= minimum}  # fmt: skip
        if got is not None and got < minimum:
            entry["note"] = "; ".join(_miss_notes(cases, key, what, versus, got, minimum))
        out.append(entry)
    added = _added_ping(cases, "l2tpv3_cy")
    out.append({"target": "Cython added ping latency vs raw veth (ms)", "measured": added,
                "required": f"<= {MAX_ADDED_PING_MS} ms",
                "pass": None if added is None else added <= MAX_ADDED_PING_MS})  # fmt: skip
    return out


def target_lines(tgts: list[dict[str, Any]]) -> list[str]:
    lines = []
    for t in tgts:
        m = t["measured"]
        if m is None:
            lines.append(
                f"N/A   {t['target']}: not measured (a case it needs was not run or not available)"
            )
            continue
        unit = " ms" if "ms" in t["required"] else "x"
        verdict = "PASS " if t["pass"] else "MISS "
        note = f"; {t['note']}" if t.get("note") else ""
        lines.append(f"{verdict} {t['target']}: {m:.2f}{unit} (target {t['required']}{note})")
    return lines


def _f(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


# Ratio columns of the table: (heading, reference case, measure).
REFERENCES = [
    ("TCP vs OpenVPN", "openvpn", "tcp"),
    ("TCP vs VXLAN no-off", "vxlan_nooff", "tcp"),
    ("pps vs OpenVPN", "openvpn", "udp64_pps"),
]
ESP_REFERENCES = [
    ("TCP vs OpenVPN-GCM", "openvpn_gcm", "tcp"),
    ("TCP vs VXLAN/wireguard-go", "vxlan_wg", "tcp"),
    ("pps vs OpenVPN-GCM", "openvpn_gcm", "udp64_pps"),
]


def rows(
    results: dict[str, Any], refs: list[tuple[str, str, str]] | None = None
) -> tuple[list[str], list[list[str]]]:
    cases = results["cases"]
    refs = REFERENCES if refs is None else refs
    head = ["case", "TCP A→B Gbit/s", "TCP B→A Gbit/s", "retrans", "64 B kpps", "(sent)",
            "ping avg ms", "ping p99 ms", "+ping vs veth ms", "CPU % (TCP)",
            *(r[0] for r in refs)]  # fmt: skip
    body = []
    for key, c in cases.items():
        if not c["available"]:
            body.append([c["label"], f"not available: {c['reason']}"] + [""] * (len(head) - 2))
            continue
        cpu = [c.get("tcp_ab_cpu"), c.get("tcp_ba_cpu")]
        cpu_s = "—" if None in cpu else f"{(cpu[0] + cpu[1]) / 2:.0f}"
        retr = [c.get("tcp_ab_retrans"), c.get("tcp_ba_retrans")]
        pps = c.get("udp64_pps")
        body.append([
            c["label"], _f(c.get("tcp_ab"), ".2f"), _f(c.get("tcp_ba"), ".2f"),
            "/".join(_f(r, ".0f") for r in retr), _f(pps and pps / 1000, ".0f"),
            _f((c.get("udp64_sent_pps") or 0) / 1000 or None, ".0f"),
            _f(c.get("ping_avg_ms"), ".3f"), _f(c.get("ping_p99_ms"), ".3f"),
            _f(_added_ping(cases, key), "+.3f"), cpu_s,
            *(_f(_ratio(_value(c, what), _value(cases.get(ref, {}), what)), ".2f")
              for _, ref, what in refs),
        ])  # fmt: skip
    return head, body


def present_references(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The ratio columns whose reference case is in the run (all of REFERENCES if none)."""
    refs = [r for r in REFERENCES + ESP_REFERENCES if r[1] in results["cases"]]
    return refs or REFERENCES


def table(results: dict[str, Any], refs: list[tuple[str, str, str]] | None = None) -> str:
    head, body = rows(results, refs)
    widths = [max(len(r[i]) for r in [head, *body] if len(r[i]) < 40) for i in range(len(head))]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in
                       enumerate(zip(head, widths, strict=True)))]  # fmt: skip
    for r in body:
        if r[1].startswith("not available"):
            lines.append(f"{r[0].ljust(widths[0])}  {r[1]}")
            continue
        lines.append("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in
                               enumerate(zip(r, widths, strict=True))))  # fmt: skip
    return "\n".join(lines)


def markdown_table(results: dict[str, Any], refs: list[tuple[str, str, str]] | None = None) -> str:
    head, body = rows(results, refs)
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(out)


def meta(args: argparse.Namespace, started: float, prefix: str) -> dict[str, Any]:
    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except OSError:
            return "?"
        return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "?"

    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "python": platform.python_version(),
        "iperf3": version(["iperf3", "--version"]),
        "openvpn": version(["openvpn", "--version"]),
        "wireguard_go": version(["wireguard-go", "--version"]),
        "note": getattr(args, "note", ""),
        "reps": args.reps,
        "tcp_seconds": args.time,
        "udp_seconds": args.udp_time,
        "pings": args.pings,
        "prefix": prefix,
    }


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = {k: c for k, c in results["cases"].items() if c["available"]}
    labels = [c["label"].replace(", ", ",\n").replace(" tap", "\ntap") for c in cases.values()]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    x = range(len(labels))
    ab = [c.get("tcp_ab") or 0 for c in cases.values()]
    ba = [c.get("tcp_ba") or 0 for c in cases.values()]
    axes[0].bar([i - 0.2 for i in x], ab, 0.4, label="A→B")
    axes[0].bar([i + 0.2 for i in x], ba, 0.4, label="B→A")
    axes[0].set_yscale("log")
    axes[0].set_title("iperf3 TCP, Gbit/s (median, log scale)")
    axes[0].legend()
    axes[1].bar(x, [(c.get("udp64_pps") or 0) / 1000 for c in cases.values()], color="C2")
    axes[1].set_title("64-byte UDP received, kpackets/s")
    axes[2].bar([i - 0.2 for i in x], [c.get("ping_avg_ms") or 0 for c in cases.values()],
                0.4, label="average")  # fmt: skip
    axes[2].bar([i + 0.2 for i in x], [c.get("ping_p99_ms") or 0 for c in cases.values()],
                0.4, label="p99")  # fmt: skip
    axes[2].set_title("ping round trip, ms")
    axes[2].legend()
    for ax in axes:
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, fontsize=7, rotation=30, ha="right")
    m = results["meta"]
    title = f"l2tpv3 bench {m['started']}, kernel {m['kernel']}, {m['cpus']} CPUs"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(results: dict[str, Any], directory: Path, latest: bool = True) -> list[Path]:
    """``<stamp>.json`` and ``.png``; also copied to ``latest.*`` unless ``latest`` is
    false (a partial run must not replace the full run the docs table is made from)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = results["meta"]["started"].replace(":", "").replace("-", "")
    js = directory / f"{stamp}.json"
    png: Path | None = directory / f"{stamp}.png"
    js.write_text(json.dumps(results, indent=1) + "\n")
    try:
        chart(results, directory / f"{stamp}.png")
    except ImportError:
        # The chart is the bench extra's (matplotlib); the figures stand without it.
        print("no chart: matplotlib is missing (pip install -e '.[bench]')", file=sys.stderr)
        png = None
    written = [js] if png is None else [js, png]
    if not latest:
        return written
    shutil.copyfile(js, directory / "latest.json")
    written.append(directory / "latest.json")
    if png is not None:
        shutil.copyfile(png, directory / "latest.png")
        written.append(directory / "latest.png")
    return written


def write_esp(results: dict[str, Any], directory: Path) -> list[Path]:
    """``esp-latest.json`` (the whole run) and ``esp-latest.md`` (its encrypted part)."""
    directory.mkdir(parents=True, exist_ok=True)
    js, md = directory / "esp-latest.json", directory / "esp-latest.md"
    js.write_text(json.dumps(results, indent=1) + "\n")
    md.write_text(esp_markdown(results))
    return [js, md]


def write_docs(results: dict[str, Any], path: Path) -> Path:
    template = (REPO / "bench" / "performance.md.in").read_text()
    m = results["meta"]
    text = template.format(
        table=markdown_table(results),
        targets="\n".join(f"- {line}" for line in target_lines(results["targets"])),
        started=m["started"],
        kernel=m["kernel"],
        cpus=m["cpus"],
        load=", ".join(f"{x:.2f}" for x in m["loadavg_at_end"]),
        reps=m["reps"],
        tcp_seconds=m["tcp_seconds"],
        udp_seconds=m["udp_seconds"],
        pings=m["pings"],
        iperf3=m["iperf3"],
        openvpn=m["openvpn"],
        integrity=_extra(
            path.parent.parent / "bench" / "results" / "integrity-latest.md",
            "Not run yet: `sudo python3 bench/integrity.py`.",
        ),
        esp=_extra(
            path.parent.parent / "bench" / "results" / "esp-latest.md",
            "Not run yet: `sudo python3 bench/run.py --esp`.",
        ),
        scale=_extra(
            path.parent.parent / "bench" / "results" / "scale-latest.md",
            "Not run yet: `sudo python3 bench/scale.py`.",
        ),
    )
    path.write_text(text)
    return path


def evidence_lines(cases: dict[str, Any]) -> list[str]:
    """One line per case with counters proving its traffic took the encrypted path."""
    out = []
    for c in cases.values():
        ev = c.get("evidence") or {}
        if not ev:
            continue
        parts = []
        for end, v in sorted(ev.items()):
            if isinstance(v, str):  # OpenVPN's log line
                parts.append(f"{end} {v}")
            elif isinstance(v, list):  # l2tpv3 SAs
                for sa in v:
                    n = sa["tx_packets"] if sa["dir"] == "out" else sa["rx_packets"]
                    drops = ", ".join(f"{k} {d}" for k, d in sa.get("drops", {}).items())
                    parts.append(f"{end} SA {sa['dir']} spi {sa['spi']:#x}: {n} packets"
                                 + (f" (dropped: {drops})" if drops else ""))  # fmt: skip
            else:  # WireGuard
                parts.append(f"{end} WireGuard rx {v['rx_bytes']} B, tx {v['tx_bytes']} B")
        out.append(f"{c['label']}: {'; '.join(parts)}")
    return out


def esp_markdown(results: dict[str, Any]) -> str:
    """The encrypted links' part of a run (run.py --esp), for docs/performance.md."""
    m = results["meta"]
    keep = {k: c for k, c in results["cases"].items() if k in ESP_CASES or k == "veth"}
    sub = {**results, "cases": keep}
    load = ", ".join(f"{x:.2f}" for x in m["loadavg_at_end"])
    lines = [
        f"Run {m['started']} (`{m.get('command', 'bench/run.py --esp')}`), kernel {m['kernel']},"
        f" {m['cpus']} CPUs, load average at the end {load}; {m['reps']} repetitions,"
        f" TCP runs of {m['tcp_seconds']} s, 64-byte UDP runs of {m['udp_seconds']} s,"
        f" {m['pings']} pings; {m.get('wireguard_go', 'wireguard-go ?')};"
        f" {m['openvpn']}.",
    ]
    if m.get("note"):
        lines += ["", f"**{m['note']}**"]
    lines += ["", markdown_table(sub, ESP_REFERENCES), ""]
    esp = [t for t in results["targets"] if t["target"] in {e[0] for e in ESP_TARGETS}]
    lines += [f"- {line}" for line in target_lines(esp)]
    ev = evidence_lines(keep)
    if ev:
        lines += ["", "What carried the traffic, read after the run:", ""]
        lines += [f"- {line}" for line in ev]
    return "\n".join(lines) + "\n"


def _extra(path: Path, missing: str) -> str:
    """The Markdown summary another bench script left behind, if any."""
    try:
        return path.read_text().strip()
    except OSError:
        return missing
