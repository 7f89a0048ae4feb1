"""Command line: ``python3 -m interop build`` and ``python3 -m interop kernel-peer``."""

from __future__ import annotations

import argparse
import sys
import time

from interop.build import BuildError, build
from interop.lab import INNER_GUEST4, INNER_HOST4, kernel_peer


def _split_lines(words: list[str]) -> list[str]:
    """`ip l2tp` lines given as arguments: each starts with `ip l2tp`, or use ';'."""
    text = " ".join(words).replace(";", "\n")
    lines: list[str] = []
    for part in text.replace(" ip l2tp ", "\nip l2tp ").splitlines():
        if part.strip():
            lines.append(part.strip())
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m interop")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="fetch the kernel and build the initramfs (cached)")
    cp = sub.add_parser("capture", help="capture kernel packets into a vectors module")
    cp.add_argument("-o", "--output", default="tests/data/kernel_captures.py")
    kp = sub.add_parser("kernel-peer", help="boot the kernel VM and configure ip l2tp in it")
    kp.add_argument("--ping", action="store_true",
                    help=f"ping {INNER_HOST4} from the VM and exit instead of a shell")  # fmt: skip
    kp.add_argument("--lines-from", metavar="FILE",
                    help="read the ip l2tp lines from FILE ('-' for stdin)")  # fmt: skip
    kp.add_argument("lines", nargs="*", help="ip l2tp lines (after --)")
    args = ap.parse_args(argv)
    try:
        t0 = time.monotonic()
        art = build(verbose=True)
        print(f"built in {time.monotonic() - t0:.1f}s: {art.package}", file=sys.stderr)
    except BuildError as exc:
        print(f"interop build: {exc}", file=sys.stderr)
        return 1
    if args.cmd == "build":
        return 0
    if args.cmd == "capture":
        from pathlib import Path

        from interop.capture import capture_all

        capture_all(Path(args.output), f"python3 -m interop capture -o {args.output}")
        print(f"wrote {args.output}", file=sys.stderr)
        return 0
    lines = _split_lines(args.lines)
    if args.lines_from:
        src = sys.stdin if args.lines_from == "-" else open(args.lines_from)  # noqa: SIM115
        lines += [ln.strip() for ln in src if ln.strip()]
    with kernel_peer() as peer:
        ns = peer.ns.name
        print(f"booted in {peer.vm.boot_seconds:.1f}s; namespace {ns}, "
              f"run the daemon there: ip netns exec {ns} l2tpv3d", file=sys.stderr)  # fmt: skip
        if lines:
            peer.configure(lines)
            print(peer.sh("ip l2tp show tunnel; ip l2tp show session; ip addr show l2tpeth0"))
        if args.ping:
            res = peer.vm.run(f"ping -c 3 -W 2 {INNER_HOST4}", timeout=30)
            print(res.output, end="")
            return res.status
        print(f"guest shell (one line per command, EOF to stop); from the host namespace: "
              f"ping {INNER_GUEST4}", file=sys.stderr)  # fmt: skip
        for line in sys.stdin:
            if line.strip():
                res = peer.vm.run(line, timeout=300)
                print(res.output, end="")
                print(f"[exit {res.status}]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
