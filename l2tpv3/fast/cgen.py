"""Generate the C side of every number and name the engine shares with Python.

Python is the one source: protocol numbers, buffer sizes and socket options in
``l2tpv3/constants.py``; counter names and drop reasons in ``l2tpv3/proto/counters.py``.
This module turns them into ``fp_shared.h`` (``#define FP_<NAME>`` for the numbers,
enums for the counter and drop indexes, in the order of the Python tuples) and
``fp_shared.pxd`` (the same names for the ``.pyx`` files to cimport).

Generated at build time, not committed: ``setup.py`` runs :func:`write` before it
cythonizes, so a changed number cannot be forgotten in a committed copy, and nothing
generated sits in the repository to drift or to be hand-edited (both files are in
.gitignore). Because a stale build could still be imported, the header carries a
fingerprint of the values it was made from; ``_fastpath`` recomputes it from the
Python modules at import and raises ImportError on a mismatch (:func:`check`).

setup.py may run in an isolated build environment (only setuptools and Cython), so
this module imports nothing from ``l2tpv3``: it loads its two sources from their files
(:func:`load_sources`); both import only the standard library.

    python3 l2tpv3/fast/cgen.py [DIR]    # write fp_shared.h and fp_shared.pxd to DIR
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
HEADER = "fp_shared.h"
PXD = "fp_shared.pxd"

# The numbers of constants.py the C code uses, each as FP_<NAME>.
CONSTANTS = (
    "UDP_FLAG_T",
    "UDP_VERSION_MASK",
    "L2TP_VERSION_3",
    "L2SPEC_DEFAULT_LEN",
    "L2SPEC_S_BIT",
    "SEQ_MASK",
    "SEQ_MODULUS",
    "KERNEL_NR_WINDOW",
    "NR_OOS_COUNT_MAX",
    "DEFAULT_REORDER_HOLD",
    "RFC_SEQ_HALF",
    "ETH_HLEN",
    "IPV4_HLEN",
    "MAX_MTU",
    "RX_FRAME_SLACK",
    "MAX_DATAGRAM",
    "HEADROOM",
    "VNET_HDR_LEN",
    "MAX_SEGS",
    "SO_NO_CHECK",
    "SO_RCVBUFFORCE",
    "SO_SNDBUFFORCE",
    "UDP_NO_CHECK6_TX",
    "UDP_NO_CHECK6_RX",
    "UDP_SEGMENT",
    "UDP_GRO",
    "IP_MTU_DISCOVER",
    "IPV6_MTU_DISCOVER",
    "MSS_IPV4_OVERHEAD",
    "MSS_IPV6_OVERHEAD",
    "TCP_MIN_MSS",
    "ETH_P_ARP",
    "TPID_8021Q",
    "TPID_8021AD",
    "VLAN_HLEN",
    "VLAN_VID_MASK",
    "MAX_TRUNKS",
    "ARPOP_REPLY",
    "CONTROL_QUEUE_SLOTS",
    "CONTROL_MAX_LEN",
    "ESP_IV_LOW_WATER",
    "CAPTURE_HALF_BYTES",
    "CAPTURE_HDR_LEN",
    "CAPTURE_IN",
    "CAPTURE_OUT",
)

# Index enums: (Python tuple in counters.py, prefix of each C name, C name of the count).
ENUMS = (
    ("COUNTER_NAMES", "FP_", "FP_NCOUNTERS"),
    ("DROP_REASONS", "FP_DROP_", "FP_NTDROPS"),
    ("SESSION_DROP_REASONS", "FP_", "FP_NSDROPS"),
    # ESP (issue 9, fp_esp.c): per-SA counters and drop reasons
    ("ESP_COUNTER_NAMES", "FP_ESP_", "FP_NESPCOUNTERS"),
    ("ESP_DROP_REASONS", "FP_ESP_DROP_", "FP_NESPDROPS"),
    ("SESSION_FEATURE_COUNTERS", "FP_", "FP_NFEATURES"),
    # l2tpv3 capture: the drop reason code of a record is its index + 1
    ("CAPTURE_DROP_REASONS", "FP_CAP_", "FP_NCAPDROPS"),
    ("CAPTURE_COUNTERS", "FP_", "FP_NCAPCOUNTERS"),
    # per-VLAN sessions (proto/vlan.py, fp_vlan.c): a trunk's drops
    ("TRUNK_DROP_REASONS", "FP_", "FP_NTRUNKDROPS"),
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One shared value: its C name, its value and where it comes from."""

    name: str
    value: int | float
    source: str
    enum: bool = False


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is made.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def load_sources(package: Path = PACKAGE) -> tuple[ModuleType, ModuleType]:
    """constants.py and proto/counters.py, loaded from their files (no l2tpv3 import)."""
    return (
        _load(package / "constants.py", "_l2tpv3_cgen_constants"),
        _load(package / "proto" / "counters.py", "_l2tpv3_cgen_counters"),
    )


def table(constants: ModuleType, counters: ModuleType) -> list[Entry]:
    """Every shared value, in header order."""
    out = []
    for name in CONSTANTS:
        value = getattr(constants, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"constants.{name} is not a number: {value!r}")
        out.append(Entry(f"FP_{name}", value, "constants.py"))
    for tuple_name, prefix, count in ENUMS:
        names = getattr(counters, tuple_name)
        src = f"proto/counters.py {tuple_name}"
        out += [Entry(prefix + n.upper(), i, src, enum=True) for i, n in enumerate(names)]
        out.append(Entry(count, len(names), src, enum=True))
    return out


def fingerprint(entries: Sequence[Entry]) -> str:
    text = "\n".join(f"{e.name}={e.value!r}" for e in entries)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _c_value(value: int | float) -> str:
    if isinstance(value, float):
        return repr(value)
    text = f"{value:#x}" if value >= 0x1000 else str(value)
    return f"{text}u" if value > 0x7FFFFFFF else text


def render_header(entries: Sequence[Entry]) -> str:
    lines = [
        "/* Generated by l2tpv3/fast/cgen.py from l2tpv3/constants.py and",
        " * l2tpv3/proto/counters.py at build time: do not edit, change the Python. */",
        "#ifndef L2TPV3_FP_SHARED_H",
        "#define L2TPV3_FP_SHARED_H",
        "",
        f'#define FP_SHARED_FINGERPRINT "{fingerprint(entries)}"',
    ]
    source = None
    enum: list[str] = []
    for e in [*entries, None]:
        if enum and (e is None or not e.enum or e.source != source):
            lines.append("enum {\n" + ",\n".join(enum) + "\n};")
            enum = []
        if e is None:
            break
        if e.source != source:
            source = e.source
            lines += ["", f"/* {source} */"]
        if e.enum:
            enum.append(f"    {e.name} = {e.value}")
        else:
            lines.append(f"#define {e.name} {_c_value(e.value)}")
    return "\n".join([*lines, "", "#endif", ""])


def render_pxd(entries: Sequence[Entry]) -> str:
    lines = [
        "# Generated by l2tpv3/fast/cgen.py at build time: do not edit (see fp_shared.h).",
        "",
        'cdef extern from "fp_shared.h":',
        "    const char *FP_SHARED_FINGERPRINT",
    ]
    floats = [e for e in entries if isinstance(e.value, float)]
    lines += [f"    const double {e.name}" for e in floats]
    lines.append("    enum:")
    lines += [f"        {e.name}" for e in entries if not isinstance(e.value, float)]
    return "\n".join([*lines, ""])


def write(directory: Path = HERE, package: Path = PACKAGE) -> list[Path]:
    """Write fp_shared.h and fp_shared.pxd to ``directory`` where they changed."""
    entries = table(*load_sources(package))
    written = []
    for name, text in ((HEADER, render_header(entries)), (PXD, render_pxd(entries))):
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


def check(built: str, entries: Sequence[Entry] | None = None) -> None:
    """Raise ImportError unless ``built`` (the fingerprint an extension was compiled
    with) matches the values of the Python modules (as imported, by default)."""
    if entries is None:
        from l2tpv3 import constants
        from l2tpv3.proto import counters

        entries = table(constants, counters)
    expected = fingerprint(entries)
    if built != expected:
        raise ImportError(
            f"l2tpv3.fast was built from other shared values (fingerprint {built}, the "
            f"Python source gives {expected}): rebuild it "
            "(python3 setup.py build_ext --inplace)"
        )


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(f"wrote {path}")
