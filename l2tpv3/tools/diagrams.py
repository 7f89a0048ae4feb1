"""The tutorial's pictures, drawn from the project's own data (docs/tutorial.md).

    python3 -m l2tpv3.tools.diagrams docs [DIR]
    python3 -m l2tpv3.tools.diagrams timeline -r FILE [--reorder-timeout MS] [-o OUT.svg]

``docs`` writes ``header-stack.svg`` (the header stack of several configurations, from
:func:`l2tpv3.tools.overhead.compute`, the arithmetic ``explain --overhead`` prints) and
``reorder-timeline.svg`` (a sequence/reorder timeline of the real run recorded in
``reorder-run.json``) into DIR (default ``docs/tutorial``); a test regenerates them and
fails when the committed files are stale.

``timeline`` reads a capture of one direction of a sequenced session (``tcpdump -w``),
takes each packet's arrival time and sequence number (dissected by ``l2tpv3 explain``),
replays the arrivals through the project's own receive sequencer
(:class:`l2tpv3.proto.sequence.RxSequencer`, the code the daemon runs) with the given
``reorder_timeout``, and prints and draws what happened to each packet: delivered at
once, held and released, or dropped, with the counters the replay moved.

The SVG is written by hand (no plotting library), so the same data always gives the same
bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from l2tpv3.config import Encap
from l2tpv3.proto.counters import Counters
from l2tpv3.proto.sequence import RxSequencer
from l2tpv3.tools import overhead as oh
from l2tpv3.tools.explain import ExplainError, Settings, explain, read_capture

__all__ = [
    "Arrival",
    "Fate",
    "header_stack_svg",
    "main",
    "read_arrivals",
    "replay",
    "timeline_svg",
]

FONT = 'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace"'

# -- the header stack ----------------------------------------------------------------------

# Each configuration drawn, as `explain --overhead` options would give it.
STACKS: tuple[tuple[str, int, Encap, int, str | None], ...] = (
    ("encap udp (the default, as ip l2tp)", 4, Encap.UDP, 0, None),
    ("encap udp, cookie 8 bytes", 4, Encap.UDP, 8, None),
    ("encap ip (protocol 115)", 4, Encap.IP, 0, None),
    ("encap udp over IPv6", 6, Encap.UDP, 0, None),
    ("encap udp, esp rfc4106(gcm(aes))", 4, Encap.UDP, 0, "rfc4106(gcm(aes))"),
)

_COLOURS = {
    "outer": "#c6dbef",
    "esp": "#fcae91",
    "l2tp": "#fdd0a2",
    "eth": "#c7e9c0",
    "inner": "#f0f0f0",
    "payload": "#ffffff",
}


def _kind(header: str) -> str:
    if header.startswith("ESP") or header.startswith("UDP 4500"):
        return "esp"
    if header.startswith("L2TPv3"):
        return "l2tp"
    if header == "Ethernet":
        return "eth"
    if header.startswith("inner TCP payload"):
        return "payload"
    if header.startswith("inner"):
        return "inner"
    return "outer"


def _short(header: str) -> str:
    names = {
        "ESP SPI + sequence": "ESP",
        "ESP IV": "IV",
        "ESP padding": "pad",
        "ESP pad length + next header": "trl",
        "ESP ICV": "ICV",
        "inner IPv4": "IP",
        "inner TCP": "TCP",
        "inner TCP payload (MSS)": "payload",
        "Ethernet": "Eth",
    }
    if header in names:
        return names[header]
    if header.startswith("L2TPv3"):
        return "L2TPv3"
    return header


def header_stack_svg() -> str:
    """One row of boxes per configuration of :data:`STACKS`: each header's width is its
    size (4 px a byte), the TCP payload a fixed box labelled with the MSS."""
    px, payload_w, left, row_h, gap = 4, 150, 300, 34, 22
    rows: list[tuple[str, oh.Overhead]] = []
    for title, family, encap, cookie, esp in STACKS:
        tunnel, session = oh.session_for(family, encap, cookie, True)
        alg = oh.ESP_ALGS[esp] if esp else None
        rows.append((title, oh.compute(tunnel, session, 1500, alg)))
    widths = []
    for _, o in rows:
        widths.append(sum(payload_w if _kind(h) == "payload" else max(n, 5) * px
                          for h, n, _ in o.stack))  # fmt: skip
    width = left + max(widths) + 20
    height = 60 + len(rows) * (row_h + gap) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="10" y="22" font-size="15" font-weight="bold">A full-size TCP packet on a '
        "1500-byte path: the header stack (l2tpv3 explain --overhead)</text>",
        '<text x="10" y="42" fill="#555">box width = header size (4 px a byte); '
        "figures in bytes; MTU is the l2tpethN MTU</text>",
    ]
    y = 60
    for title, o in rows:
        out.append(f'<text x="10" y="{y + 15}">{escape(title)}</text>')
        out.append(
            f'<text x="10" y="{y + 30}" fill="#555">MTU {o.mtu}, MSS {o.mss4}, '
            f"overhead {o.overhead} ({o.percent:.1f}%)</text>"
        )
        x = left
        for header, size, _ in o.stack:
            kind = _kind(header)
            w = payload_w if kind == "payload" else max(size, 5) * px
            out.append(
                f'<rect x="{x}" y="{y}" width="{w}" height="{row_h}" '
                f'fill="{_COLOURS[kind]}" stroke="#333"/>'
            )
            label = _short(header)
            # The label fits at about 7 px a character; small boxes show only the size.
            if len(label) * 7 <= w - 2:
                out.append(f'<text x="{x + w / 2:g}" y="{y + 14}" text-anchor="middle">'
                           f"{escape(label)}</text>")  # fmt: skip
            out.append(f'<text x="{x + w / 2:g}" y="{y + 28}" text-anchor="middle" '
                       f'fill="#333">{size}</text>')  # fmt: skip
            x += w
        y += row_h + gap
    legend = [("outer IP / UDP", "outer"), ("ESP", "esp"), ("L2TPv3 header", "l2tp"),
              ("Ethernet (RFC 4719)", "eth"), ("inner IP / TCP", "inner")]  # fmt: skip
    x = 10
    for name, kind in legend:
        out.append(f'<rect x="{x}" y="{y}" width="14" height="14" fill="{_COLOURS[kind]}" '
                   'stroke="#333"/>')  # fmt: skip
        out.append(f'<text x="{x + 20}" y="{y + 12}">{escape(name)}</text>')
        x += 30 + len(name) * 7 + 20
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- the reorder timeline ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """One captured packet of a sequenced session: when it arrived (ms) and its number."""

    ms: float
    seq: int


@dataclass(frozen=True, slots=True)
class Fate:
    """What the receive sequencer did with one arrival: ``at`` is the release time (ms),
    or None when it was dropped."""

    arrival: Arrival
    at: float | None


def read_arrivals(path: str) -> list[Arrival]:
    """The sequenced L2TPv3 data packets of a capture, in arrival order (``seq`` from
    ``explain``: no cookie and the default sublayer unless the bytes say otherwise)."""
    from scapy.utils import PcapReader  # timestamps; read_capture gives the bytes

    packets = read_capture(path)  # first: its errors are the clear one-line kind
    with PcapReader(path) as reader:
        times = [float(p.time) for p in reader]
    if len(times) != len(packets):
        raise ExplainError(f"{path}: read {len(packets)} packets but {len(times)} timestamps")
    out: list[Arrival] = []
    for n, ((data, kind), t) in enumerate(zip(packets, times, strict=True), 1):
        ex = explain(data, Settings(), None, kind, index=n)
        seq = ex.summary.get("seq")
        if isinstance(seq, int):
            out.append(Arrival(t, seq))
    if not out:
        raise ExplainError(f"{path}: no L2TPv3 packet with a sequence number")
    start = out[0].ms
    return [Arrival(round((a.ms - start) * 1000.0, 3), a.seq) for a in out]


def replay(arrivals: Sequence[Arrival], reorder_timeout_ms: int) -> tuple[list[Fate], Counters]:
    """Feed the arrivals to :class:`RxSequencer` (policy ``kernel``) at their own times."""
    counters = Counters()
    seqr: RxSequencer[Arrival] = RxSequencer(counters, reorder_timeout=reorder_timeout_ms / 1000)
    released: dict[int, float] = {}

    def take(items: list[Arrival], now: float) -> None:
        for item in items:
            released[id(item)] = now * 1000.0

    for a in arrivals:
        now = a.ms / 1000.0
        deadline = seqr.next_deadline()
        while deadline is not None and deadline <= now:
            take(seqr.poll(deadline), deadline)
            deadline = seqr.next_deadline()
        take(seqr.push(a, a.seq, now), now)
    deadline = seqr.next_deadline()
    while deadline is not None:
        take(seqr.poll(deadline), deadline)
        deadline = seqr.next_deadline()
    counters.rx_packets = len(released)
    return [Fate(a, released.get(id(a))) for a in arrivals], counters


def timeline_svg(runs: Sequence[tuple[str, Sequence[Fate]]]) -> str:
    """One panel per run: x arrival time, y sequence number; a dot per arrival (red when
    it arrived after a higher number), a line to its release when it was held, a cross
    when it was dropped."""
    pw, ph, ml, mt, gap = 520, 300, 60, 70, 40
    width = ml + len(runs) * (pw + gap) + 10
    height = mt + ph + 90
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="10" y="22" font-size="15" font-weight="bold">Sequence numbers as they '
        "arrived at B (a real run), and what the receiver did with each</text>",
        '<text x="10" y="42" fill="#555">dot: arrival (red: overtaken, arrived after a '
        "higher number); line: held until released; cross: dropped</text>",
    ]
    for i, (title, fates) in enumerate(runs):
        x0 = ml + i * (pw + gap)
        t_end = max(max(f.arrival.ms, f.at or 0.0) for f in fates)
        t_max = max(50.0, float(int(t_end / 50.0) + 1) * 50.0)
        seqs = [f.arrival.seq for f in fates]
        s_min, s_max = min(seqs), max(seqs)
        span = max(1, s_max - s_min)

        def sx(ms: float, x0: int = x0, t_max: float = t_max) -> float:
            return x0 + 10 + (pw - 20) * ms / t_max

        def sy(seq: int, s_min: int = s_min, span: int = span) -> float:
            return mt + ph - 10 - (ph - 20) * (seq - s_min) / span

        out.append(f'<rect x="{x0}" y="{mt}" width="{pw}" height="{ph}" fill="none" '
                   'stroke="#999"/>')  # fmt: skip
        out.append(f'<text x="{x0}" y="{mt - 8}" font-weight="bold">{escape(title)}</text>')
        for tick in range(0, int(t_max) + 1, 50 if t_max <= 400 else 100):
            out.append(f'<text x="{sx(tick):.1f}" y="{mt + ph + 16}" text-anchor="middle" '
                       f'fill="#555">{tick}</text>')  # fmt: skip
        out.append(f'<text x="{x0 + pw / 2:g}" y="{mt + ph + 34}" text-anchor="middle" '
                   'fill="#555">ms after the first packet</text>')  # fmt: skip
        for seq in range(s_min, s_max + 1, max(1, span // 10)):
            out.append(f'<text x="{x0 - 6}" y="{sy(seq) + 4:.1f}" text-anchor="end" '
                       f'fill="#555">{seq}</text>')  # fmt: skip
        highest = -1
        for f in fates:
            a = f.arrival
            late = a.seq < highest
            highest = max(highest, a.seq)
            x, y = sx(a.ms), sy(a.seq)
            if f.at is not None and f.at > a.ms + 0.5:
                out.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{sx(f.at):.1f}" y2="{y:.1f}" '
                           'stroke="#2171b5" stroke-width="2"/>')  # fmt: skip
            if f.at is None:
                out.append(f'<path d="M{x - 5:.1f},{y - 5:.1f} l10,10 m0,-10 l-10,10" '
                           'stroke="#cb181d" stroke-width="2"/>')  # fmt: skip
            else:
                colour = "#cb181d" if late else "#238b45"
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')
        held = sum(1 for f in fates if f.at is not None and f.at > f.arrival.ms + 0.5)
        dropped = sum(1 for f in fates if f.at is None)
        out.append(f'<text x="{x0}" y="{mt + ph + 56}">{len(fates)} packets: '
                   f"{len(fates) - held - dropped} at once, {held} held, {dropped} dropped"
                   "</text>")  # fmt: skip
    out.append(f'<text x="14" y="{mt + ph / 2:g}" transform="rotate(-90 14 {mt + ph / 2:g})" '
               'text-anchor="middle" fill="#555">sequence number</text>')  # fmt: skip
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _fates_text(fates: Sequence[Fate], counters: Counters) -> str:
    order = " ".join(str(f.arrival.seq) for f in fates)
    highest, overtaken = -1, []
    for f in fates:
        if f.arrival.seq < highest:
            overtaken.append(f.arrival.seq)
        highest = max(highest, f.arrival.seq)
    lines = [
        f"arrived: {order}",
        f"overtaken (arrived after a higher number): {len(overtaken)}"
        + (f" ({' '.join(map(str, overtaken))})" if overtaken else ""),
    ]
    held = [f for f in fates if f.at is not None and f.at > f.arrival.ms + 0.5]
    dropped = [f.arrival.seq for f in fates if f.at is None]
    lines.append(f"held, then released in order: {len(held)}")
    lines.append(f"dropped: {len(dropped)}" + (f" ({' '.join(map(str, dropped))})" if dropped
                                               else ""))  # fmt: skip
    c = counters
    lines.append(
        f"replayed counters: rx_packets {c.rx_packets} rx_errors {c.rx_errors} "
        f"rx_seq_discards {c.rx_seq_discards} rx_oos_packets {c.rx_oos_packets}"
    )
    return "\n".join(lines) + "\n"


# -- the command ------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tutorial"
RUN_FILE = "reorder-run.json"


def render_docs(directory: Path, run_file: Path | None = None) -> dict[str, str]:
    """The committed pictures: name -> content (the run from ``reorder-run.json``)."""
    run = json.loads((run_file or DOCS / RUN_FILE).read_text())
    panels = []
    for part in run["runs"]:
        arrivals = [Arrival(float(ms), int(seq)) for ms, seq in part["arrivals"]]
        fates, _ = replay(arrivals, int(part["reorder_timeout"]))
        panels.append((part["title"], fates))
    return {"header-stack.svg": header_stack_svg(), "reorder-timeline.svg": timeline_svg(panels)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m l2tpv3.tools.diagrams",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    sub = parser.add_subparsers(dest="cmd", required=True)
    docs = sub.add_parser("docs", help="write the tutorial's pictures")
    docs.add_argument("dir", nargs="?", default=str(DOCS))
    tl = sub.add_parser("timeline", help="a reorder timeline from a capture")
    tl.add_argument("-r", dest="file", required=True, help="pcap/pcapng of one direction")
    tl.add_argument("--reorder-timeout", type=int, default=0, metavar="MS")
    tl.add_argument("-o", dest="out", help="write the timeline as SVG")
    tl.add_argument("--json", dest="json_out", help="write the arrivals as JSON")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "docs":
            directory = Path(args.dir)
            directory.mkdir(parents=True, exist_ok=True)
            for name, text in render_docs(directory).items():
                (directory / name).write_text(text)
                print(f"wrote {directory / name}")
            return 0
        arrivals = read_arrivals(args.file)
        fates, counters = replay(arrivals, args.reorder_timeout)
        sys.stdout.write(_fates_text(fates, counters))
        title = f"reorder_timeout {args.reorder_timeout}"
        if args.out:
            Path(args.out).write_text(timeline_svg([(title, fates)]))
            print(f"wrote {args.out}")
        if args.json_out:
            data = {"title": title, "reorder_timeout": args.reorder_timeout,
                    "arrivals": [[a.ms, a.seq] for a in arrivals]}  # fmt: skip
            Path(args.json_out).write_text(json.dumps(data) + "\n")
            print(f"wrote {args.json_out}")
    except (ExplainError, OSError, ValueError, KeyError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
