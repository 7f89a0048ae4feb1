"""The test-only ``_offload`` extension (tests/c/_offload.pyx): a thin wrapper around
l2tpv3/fast/offload.c for the offload tests and bench/offload_micro.py.

It is not part of the l2tpv3 package, so setup.py does not build it: :func:`load` builds it
on first use with Cython and the C compiler, with the package's flags (-Wall -Werror), into
``build/test-ext/<hash of its sources>/`` (reused while the sources are unchanged), and
imports it from there. Raises ImportError when it cannot be built (no Cython or compiler).

What it exports is typed by tests/c/_offload.pyi; :class:`OffloadModule` is that stub as a
protocol, the type :func:`load` returns (mypy checks that the stub satisfies it).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from l2tpv3.fast import cgen

if TYPE_CHECKING:
    from tests.c import _offload

ROOT = Path(__file__).resolve().parents[2]
PYX = ROOT / "tests" / "c" / "_offload.pyx"
FAST = ROOT / "l2tpv3" / "fast"
SOURCES = (PYX, FAST / "offload.c", FAST / "offload.h", FAST / "cgen.py")
NAME = "_offload"


class OffloadModule(Protocol):
    """The module's members, as typed in tests/c/_offload.pyi."""

    VNET_HDR_LEN: int
    MAX_SEGS: int
    Coalescer: type[_offload.Coalescer]

    def complete_csum(self, vnet_hdr: bytes, frame: bytes) -> bytes: ...
    def segment(
        self, vnet_hdr: bytes, frame: bytes, max_frame: int, max_segs: int = ...
    ) -> list[bytes]: ...
    def coalesce(self, frames: list[bytes], vnet_hdr_len: int = ...) -> list[bytes]: ...
    def gro_context_size(self) -> int: ...
    def bench_segment(
        self, vnet_hdr: bytes, frame: bytes, max_frame: int, iterations: int
    ) -> int: ...
    def bench_gro(
        self, frames: list[bytes], iterations: int, vnet_hdr_len: int = ...
    ) -> tuple[int, int]: ...


if TYPE_CHECKING:
    _stub_satisfies_protocol: OffloadModule = _offload

_module: OffloadModule | None = None


def _key() -> str:
    h = hashlib.sha256()
    for path in SOURCES:
        h.update(path.read_bytes())
    h.update(cgen.render_header(cgen.table(*cgen.load_sources())).encode())
    h.update(sys.version.encode())
    return h.hexdigest()[:16]


def _build(out: Path) -> None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise ImportError("no C compiler to build the test-only _offload extension")
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")  # processes may build at once
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cgen.write(tmp)  # fp_shared.h and .pxd, as setup.py generates them for the package
    c_file = tmp / f"{NAME}.c"
    steps = [
        [sys.executable, "-m", "cython", "-3", "-I", str(tmp), str(PYX), "-o", str(c_file)],
        [cc, "-shared", "-fPIC", "-O2", "-std=gnu99", "-Wall", "-Werror", "-Wsign-compare",
         "-I", str(tmp), "-I", str(FAST), "-I", sysconfig.get_paths()["include"],
         str(c_file), str(FAST / "offload.c"),
         "-o", str(tmp / f"{NAME}{sysconfig.get_config_var('EXT_SUFFIX')}")],
    ]  # fmt: skip
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImportError(f"cannot build {NAME}: {' '.join(cmd[:3])}...\n{proc.stderr[-3000:]}")
    try:
        tmp.rename(out)
    except OSError:  # another process got there first: use its build
        shutil.rmtree(tmp, ignore_errors=True)


def load() -> OffloadModule:
    """The built extension, importing (and first building) it once per process."""
    global _module
    if _module is not None:
        return _module
    out = ROOT / "build" / "test-ext" / _key()
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    path = out / f"{NAME}{suffix}"
    if not path.exists():
        _build(out)
    spec = importlib.util.spec_from_file_location(NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _module = cast(OffloadModule, module)  # a ModuleType to mypy; typed by the stub
    return _module
