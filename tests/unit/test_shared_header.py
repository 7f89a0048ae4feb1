"""The C engine's shared numbers come from the Python source only: fp_shared.h is
generated from constants.py and proto/counters.py (l2tpv3/fast/cgen.py), and an
extension built from other values refuses to import."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from l2tpv3 import constants
from l2tpv3.fast import cgen
from l2tpv3.proto import counters

ROOT = Path(__file__).resolve().parents[2]


def _fastpath_fingerprint() -> str:
    try:
        from l2tpv3.fast import _fastpath
    except ImportError as exc:
        if os.environ.get("CI") == "true" and not os.environ.get("L2TPV3_NO_EXTENSIONS"):
            pytest.fail(f"the Cython extension is not built: {exc}")
        pytest.skip(f"the Cython extension is not built: {exc}")
    return _fastpath.FINGERPRINT


def test_header_regenerated_from_python_is_the_one_built_from() -> None:
    entries = cgen.table(*cgen.load_sources())
    built = _fastpath_fingerprint()
    assert built == cgen.fingerprint(entries)
    # Built in place (the development checkout): the generated files sit in the package.
    header, pxd = cgen.HERE / cgen.HEADER, cgen.HERE / cgen.PXD
    if header.exists():
        assert header.read_text() == cgen.render_header(entries)
        assert pxd.read_text() == cgen.render_pxd(entries)


def test_table_follows_the_python_names_and_values() -> None:
    entries = {e.name: e.value for e in cgen.table(constants, counters)}
    assert entries["FP_HEADROOM"] == constants.HEADROOM
    assert entries["FP_L2SPEC_S_BIT"] == constants.L2SPEC_S_BIT
    for i, name in enumerate(counters.COUNTER_NAMES):
        assert entries[f"FP_{name.upper()}"] == i
    assert entries["FP_NCOUNTERS"] == len(counters.COUNTER_NAMES)
    assert entries["FP_DROP_WRONG_SOURCE"] == counters.DROP_REASONS.index("wrong_source")
    assert entries["FP_TAP_WRITE_FAILED"] == counters.SESSION_DROP_REASONS.index("tap_write_failed")
    # Counters is the one definition of the names.
    assert tuple(f.name for f in dataclasses.fields(counters.Counters)) == counters.COUNTER_NAMES


@pytest.mark.parametrize("victim", ["FP_HEADROOM", "FP_RX_INVALID", "FP_DROP_TOO_SHORT"])
def test_a_tampered_value_raises_import_error(victim: str) -> None:
    built = _fastpath_fingerprint()
    entries = cgen.table(constants, counters)
    cgen.check(built, entries)  # as built: fine
    tampered = [dataclasses.replace(e, value=e.value + 1) if e.name == victim else e
                for e in entries]  # fmt: skip
    with pytest.raises(ImportError, match="rebuild"):
        cgen.check(built, tampered)


def test_a_renamed_counter_raises_import_error() -> None:
    built = _fastpath_fingerprint()
    entries = [dataclasses.replace(e, name="FP_TX_PKTS") if e.name == "FP_TX_PACKETS" else e
               for e in cgen.table(constants, counters)]  # fmt: skip
    with pytest.raises(ImportError):
        cgen.check(built, entries)


def test_generator_runs_without_the_package(tmp_path: Path) -> None:
    # As setup.py runs it in an isolated build environment: loaded from its file, it
    # must not import l2tpv3 (nor pytun or uvloop through it).
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('g', {str(cgen.HERE / 'cgen.py')!r})\n"
        "g = importlib.util.module_from_spec(spec)\n"
        "sys.modules['g'] = g\n"
        "spec.loader.exec_module(g)\n"
        f"g.write(__import__('pathlib').Path({str(tmp_path)!r}))\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('l2tpv3', 'pytun', 'uvloop')]\n"
        "print(bad)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"
    entries = cgen.table(constants, counters)
    assert (tmp_path / cgen.HEADER).read_text() == cgen.render_header(entries)
