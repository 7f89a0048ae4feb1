"""C extensions. Metadata lives in pyproject.toml; this file only lists extensions."""

import importlib.util
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Every C file we compile, ours and Cython's output alike, is warning-free under -Wall
# (plus the -Wsign-compare of Python's own CFLAGS); -Werror keeps it so. The generated
# _fastpath.c and _offload.c need no -Wno-... today (Cython 3, gcc 12); should a Cython
# release need one, scope it to those two files, never to our sources. A build that
# fails falls back to pure Python (OptionalBuildExt): CI fails on that
# (tests/differential/test_fastpath.py::test_extension_loaded_when_expected).
# A user's newer compiler may warn where ours does not: outside CI (CI=true) and
# without L2TPV3_WERROR=1, such a build is retried without -Werror rather than losing
# the fast path over a warning.
C_FLAGS = ["-O2", "-std=gnu99", "-Wall", "-Werror"]
STRICT = os.environ.get("CI") == "true" or os.environ.get("L2TPV3_WERROR") == "1"


def generate_shared() -> None:
    """Write l2tpv3/fast/fp_shared.h and .pxd from the Python source (see cgen.py).

    Loaded from its file: an isolated build environment has setuptools and Cython
    only, and importing the l2tpv3 package would need its runtime dependencies."""
    path = Path(__file__).resolve().parent / "l2tpv3" / "fast" / "cgen.py"
    spec = importlib.util.spec_from_file_location("_l2tpv3_cgen", path)
    assert spec is not None and spec.loader is not None
    cgen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = cgen  # dataclasses look the module up while it loads
    spec.loader.exec_module(cgen)
    cgen.write()


generate_shared()


def have_libcrypto() -> bool:
    """OpenSSL >= 3.0 headers and libcrypto to link (Debian: libssl-dev).

    Without them the fast path is built without ESP (FP_HAVE_ESP undefined,
    _fastpath.HAVE_ESP False) and encrypted tunnels run on the Python path (issue 9).
    L2TPV3_NO_LIBCRYPTO=1 builds that way on purpose (the CI checks the fallback)."""
    if os.environ.get("L2TPV3_NO_LIBCRYPTO") == "1":
        return False
    probe = (
        "#include <openssl/evp.h>\n#include <openssl/core_names.h>\n"
        "#if OPENSSL_VERSION_NUMBER < 0x30000000L\n#error OpenSSL 3 needed (EVP_MAC)\n#endif\n"
        'int main(void) { EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL); '
        "EVP_MAC_free(m); return 0; }\n"
    )
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(probe)
        cmd = [*cc, str(src), "-o", str(Path(tmp) / "probe"), "-lcrypto"]
        try:
            done = subprocess.run(cmd, capture_output=True, check=False)
        except OSError:
            return False
    return done.returncode == 0


LIBCRYPTO = have_libcrypto()
if not LIBCRYPTO:
    print("l2tpv3: OpenSSL headers (libssl-dev) not found: the fast path is built without "
          "ESP; encrypted tunnels use the Python path", file=sys.stderr)  # fmt: skip

EXTENSIONS = [
    # fastpath: the per-packet engine, one C file per job, with the offloads compiled in
    Extension(
        "l2tpv3.fast._fastpath",
        sources=[
            "l2tpv3/fast/_fastpath.pyx",
            "l2tpv3/fast/fp_session.c",
            "l2tpv3/fast/fp_tunnel.c",
            "l2tpv3/fast/fp_ownership.c",
            "l2tpv3/fast/fp_engine.c",
            "l2tpv3/fast/fp_capture.c",
            "l2tpv3/fast/fp_netio.c",
            "l2tpv3/fast/offload.c",
            "l2tpv3/fast/fp_esp.c",
            "l2tpv3/fast/fp_mss.c",
            "l2tpv3/fast/fp_vlan.c",
        ],
        include_dirs=["l2tpv3/fast"],
        depends=[
            "l2tpv3/fast/fp_session.h",
            "l2tpv3/fast/fp_tunnel.h",
            "l2tpv3/fast/fp_ownership.h",
            "l2tpv3/fast/fp_engine.h",
            "l2tpv3/fast/fp_capture.h",
            "l2tpv3/fast/fp_netio.h",
            "l2tpv3/fast/fp_shared.h",
            "l2tpv3/fast/offload.h",
            "l2tpv3/fast/fp_esp.h",
            "l2tpv3/fast/fp_vlan.h",
            "l2tpv3/fast/_esp.pxi",
        ],
        extra_compile_args=C_FLAGS,
        # ESP (fp_esp.c) with OpenSSL's libcrypto when its headers are there.
        define_macros=[("FP_HAVE_ESP", "1")] if LIBCRYPTO else [],
        libraries=["m", "crypto"] if LIBCRYPTO else ["m"],
    ),
]


class OptionalBuildExt(build_ext):
    """Like yarl and multidict: a machine without a C compiler still gets a working
    package on the pure-Python reference path. Tests catch a silent fallback under CI
    (tests/differential/test_fastpath.py::test_extension_loaded_when_expected)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            print(f"l2tpv3: C extensions not built ({exc}); using pure Python", file=sys.stderr)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
            return
        except Exception as exc:
            if STRICT or "-Werror" not in ext.extra_compile_args:
                print(f"l2tpv3: {ext.name} not built ({exc}); using pure Python", file=sys.stderr)
                return
            print(f"l2tpv3: {ext.name}: warnings under -Werror ({exc}); building without it",
                  file=sys.stderr)  # fmt: skip
        ext.extra_compile_args = [f for f in ext.extra_compile_args if f != "-Werror"]
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"l2tpv3: {ext.name} not built ({exc}); using pure Python", file=sys.stderr)


# The manual pages and bash completion scripts, generated from what --help prints
# (l2tpv3/tools/manpage.py, completion.py) and committed, since an isolated build cannot
# import the package. Under a venv's prefix, man finds share/man beside the bin/ on PATH.
DATA_FILES = [
    ("share/man/man8", ["contrib/man/l2tpv3.8", "contrib/man/l2tpv3d.8"]),
    (
        "share/bash-completion/completions",
        ["contrib/bash-completion/l2tpv3", "contrib/bash-completion/l2tpv3d"],
    ),
]

# L2TPV3_NO_EXTENSIONS=1 at build time gives a pure-Python package, as YARL_NO_EXTENSIONS
# does for yarl (the same variable forces pure Python at run time).
NO_EXTENSIONS = bool(os.environ.get("L2TPV3_NO_EXTENSIONS"))

setup(
    ext_modules=[] if NO_EXTENSIONS else cythonize(EXTENSIONS, language_level=3),
    cmdclass={"build_ext": OptionalBuildExt},
    data_files=DATA_FILES,
)
