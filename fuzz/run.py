"""Build and run the fuzz targets (docs/fuzzing.md).

    python3 fuzz/run.py --target all --time 20        # every target, 20 s each
    python3 fuzz/run.py --target c-rx --runs 5000000   # one target, a number of inputs
    python3 fuzz/run.py --list

Targets: ``rx-python``, ``rx-diff``, ``control`` (atheris, fuzz/python/atheris_main.py)
and ``c-rx``, ``c-tso``, ``c-gro`` (libFuzzer, fuzz/c/, built here with clang and
``-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all``).

Each target reads its committed seeds (fuzz/corpus/<corpus>/) and keeps what it learns in
build/fuzz/work/<target>/ (not committed); a crash, hang, leak or sanitizer report is
saved in build/fuzz/artifacts/<target>/ and makes this script exit 1. The last line per
target is a summary: inputs run, seconds, inputs per second.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAST = REPO / "l2tpv3" / "fast"
BUILD = REPO / "build" / "fuzz"
SANITIZE = ["-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all"]


@dataclass(frozen=True)
class Target:
    name: str
    corpus: str
    c_source: str | None = None  # fuzz/c/<file> for libFuzzer targets
    max_len: int = 4096


TARGETS = {
    t.name: t
    for t in (
        Target("rx-python", "rx"),
        Target("rx-diff", "rx"),
        Target("control", "control"),
        Target("c-rx", "rx", "fuzz_rx.c"),
        Target("c-tso", "tso", "fuzz_tso.c", max_len=16384),
        Target("c-gro", "gro", "fuzz_gro.c", max_len=16384),
    )
}


def c_sources() -> list[Path]:
    """Every C file of the fast path but Cython's output (which needs Python.h): a split
    of fp_core.c into more files is picked up without a change here."""
    out = []
    for p in sorted(FAST.glob("*.c")):
        if p.name.startswith("_") or re.search(r"#\s*include\s*[<\"]Python\.h", p.read_text()):
            continue
        out.append(p)
    return out


def generated() -> Path:
    """fp_shared.h, generated from the Python by cgen.py (not committed) into build/fuzz/gen."""
    gen = BUILD / "gen"
    gen.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(FAST / "cgen.py"), str(gen)], check=True,
                   capture_output=True)  # fmt: skip
    return gen


def build(target: Target) -> Path:
    assert target.c_source is not None
    cc = os.environ.get("CC") or shutil.which("clang")
    if cc is None:
        raise SystemExit("fuzz/run.py: clang is needed for the C targets (apt-get install clang)")
    exe = BUILD / "bin" / target.name
    src = REPO / "fuzz" / "c" / target.c_source
    deps = [
        src,
        *c_sources(),
        *FAST.glob("*.h"),
        *(REPO / "fuzz" / "c").glob("*.h"),
        FAST / "cgen.py",
        REPO / "l2tpv3" / "constants.py",
        REPO / "l2tpv3" / "proto" / "counters.py",
    ]
    if exe.exists() and all(d.stat().st_mtime <= exe.stat().st_mtime for d in deps):
        return exe
    exe.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        cc,
        "-g",
        "-O1",
        "-std=gnu11",
        *SANITIZE,
        "-I",
        str(FAST),
        "-I",
        str(src.parent),
        str(src),
        *map(str, c_sources()),
        "-lm",
        "-lpthread",
        "-o",
        str(exe),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"fuzz/run.py: building {target.name} failed")
    return exe


def command(target: Target, args: argparse.Namespace) -> list[str]:
    work = BUILD / "work" / target.name
    artifacts = BUILD / "artifacts" / target.name
    work.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    if target.c_source is not None:
        head = [str(build(target))]
    else:
        head = [sys.executable, "-m", "fuzz.python.atheris_main", target.name]
    opts = [
        f"-artifact_prefix={artifacts}/",
        f"-max_len={args.max_len or target.max_len}",
        f"-timeout={args.timeout}",
        "-rss_limit_mb=4096",
        "-print_final_stats=1",
    ]
    if args.runs is not None:
        opts.append(f"-runs={args.runs}")
    if args.time is not None:
        opts.append(f"-max_total_time={args.time}")
    if args.seed is not None:
        opts.append(f"-seed={args.seed}")
    seeds = REPO / "fuzz" / "corpus" / target.corpus
    return [*head, *opts, *args.extra, str(work), str(seeds)]


def run(target: Target, args: argparse.Namespace) -> tuple[bool, int, float]:
    cmd = command(target, args)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    log_path = BUILD / "logs" / f"{target.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    text = log_path.read_text(errors="replace")
    runs = 0
    m = re.findall(r"^#(\d+)\s+DONE", text, re.M) or re.findall(r"^#(\d+)\s", text, re.M)
    if m:
        runs = int(m[-1])
    m2 = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    if m2:
        runs = int(m2[-1])
    ok = proc.returncode == 0
    rate = runs / seconds if seconds else 0.0
    status = "ok" if ok else f"FAILED (exit {proc.returncode})"
    print(
        f"fuzz {target.name}: {runs} inputs in {seconds:.1f} s ({rate:,.0f}/s): {status}",
        flush=True,
    )
    if not ok:
        tail = "\n".join(text.splitlines()[-60:])
        print(f"--- last lines of {log_path}\n{tail}", file=sys.stderr)
        for p in sorted((BUILD / "artifacts" / target.name).iterdir()):
            print(f"artifact: {p}", file=sys.stderr)
    return ok, runs, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--target", default="all", help="a target name, a comma list, or all")
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--runs", type=int, help="inputs to run per target")
    how.add_argument("--time", type=int, help="seconds per target")
    ap.add_argument("--max-len", type=int, default=0, help="longest input (default: per target)")
    ap.add_argument("--timeout", type=int, default=30, help="seconds one input may take")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--build-only", action="store_true", help="build the C targets and stop")
    ap.add_argument("extra", nargs="*", help="more libFuzzer options (after --)")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(TARGETS))
        return 0
    names = list(TARGETS) if args.target == "all" else args.target.split(",")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {', '.join(unknown)}; one of {', '.join(TARGETS)}")
    if args.build_only:
        for n in names:
            if TARGETS[n].c_source:
                print(build(TARGETS[n]))
        return 0
    if args.runs is None and args.time is None:
        args.time = 10
    failed = []
    total = 0
    for n in names:
        ok, runs, _ = run(TARGETS[n], args)
        total += runs
        if not ok:
            failed.append(n)
    print(
        f"fuzz: {total} inputs over {len(names)} target(s); "
        f"{'failed: ' + ', '.join(failed) if failed else 'no crash'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
