"""The fuzzing seed corpus (fuzz/corpus/) exists, is what fuzz/make_corpus.py writes, and
replays cleanly through every target: the Python receive path with its accounting rules,
the Cython one against it, the control handler, and the C targets under gcc's
AddressSanitizer and UBSan (fuzz/c/replay.c stands in for libFuzzer, so clang is not
needed here). Inputs saved from findings (tests/fuzz/findings/<target>/) replay too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fuzz import make_corpus
from fuzz.python import rxcheck
from fuzz.python.control import Control
from fuzz.python.scenario import parse
from fuzz.run import c_sources, generated
from l2tpv3.io.datapath import ImplementationUnavailable, choose

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"
FINDINGS = Path(__file__).resolve().parent / "findings"


def inputs(corpus: str, findings: tuple[str, ...] = ()) -> list[Path]:
    paths = sorted((CORPUS / corpus).iterdir())
    for name in findings:
        d = FINDINGS / name
        if d.is_dir():
            paths += sorted(p for p in d.iterdir() if not p.name.startswith("."))
    return paths


def _need_cython() -> None:
    try:
        choose("cython")
    except ImplementationUnavailable as exc:
        if os.environ.get("CI") == "true" and not os.environ.get("L2TPV3_NO_EXTENSIONS"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.mark.parametrize("target", make_corpus.TARGETS)
def test_corpus_is_committed(target: str) -> None:
    assert len(list((CORPUS / target).iterdir())) >= 10


def test_corpus_is_what_make_corpus_writes() -> None:
    pytest.importorskip("scapy")
    import hashlib

    for target, seeds in (
        ("rx", make_corpus.rx_seeds()),
        ("tso", make_corpus.tso_seeds()),
        ("gro", make_corpus.gro_seeds()),
        ("control", make_corpus.control_seeds()),
    ):
        want = {hashlib.sha1(s).hexdigest() for s in seeds}
        have = {p.name for p in (CORPUS / target).iterdir()}
        assert want == have, f"fuzz/corpus/{target} is stale: run python3 -m fuzz.make_corpus"


def test_rx_corpus_reaches_sessions() -> None:
    """The seeds are worth having: kernel packets reach their sessions and are delivered,
    some are another tunnel's copy, some are dropped for each reason."""
    delivered = other = 0
    drops: set[str] = set()
    for path in inputs("rx"):
        runner = rxcheck.Runner(choose("python"), parse(path.read_bytes()))
        trace = runner.run()
        other += trace.other_copies
        for t in runner.tunnels:
            delivered += t.totals().rx_packets
            drops |= {k for k, v in t.drops.items() if v}
    assert delivered > 50 and other > 5
    assert {"too_short", "bad_version", "control_message", "unknown_session"} <= drops


def test_rx_corpus_python() -> None:
    for path in inputs("rx", ("rx-python", "rx")):
        rxcheck.run(path.read_bytes(), "python")


def test_rx_corpus_cython_agrees_with_python() -> None:
    _need_cython()
    for path in inputs("rx", ("rx-diff", "rx")):
        rxcheck.compare(path.read_bytes())


def test_control_corpus() -> None:
    ctl = Control()
    try:
        for path in inputs("control", ("control",)):
            ctl.feed(path.read_bytes())
    finally:
        ctl.close()


@pytest.mark.parametrize(("target", "corpus"), [("rx", "rx"), ("tso", "tso"), ("gro", "gro")])
def test_c_target_replays_under_sanitizers(tmp_path: Path, target: str, corpus: str) -> None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no C compiler")
        pytest.skip("no C compiler")
    exe = tmp_path / f"replay_{target}"
    fuzz_c = ROOT / "fuzz" / "c"
    subprocess.run(
        [cc, "-std=gnu11", "-g", "-O1", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-iquote", str(generated()),
         "-I", str(ROOT / "l2tpv3" / "fast"), "-I", str(fuzz_c),
         str(fuzz_c / f"fuzz_{target}.c"), str(fuzz_c / "replay.c"),
         *map(str, c_sources()), "-lm", "-lpthread", "-o", str(exe)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    paths = inputs(corpus, (f"c-{target}",))
    proc = subprocess.run(
        [str(exe), *map(str, paths)], capture_output=True, text=True, timeout=240,
        env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == f"replayed {len(paths)} inputs"
