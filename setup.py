"""C extensions. Metadata lives in pyproject.toml; this file only lists extensions.

Each helper owns one clearly separated entry of EXTENSIONS so branches merge trivially.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

C_FLAGS = ["-O2", "-std=gnu99"]

EXTENSIONS = [
    # offload: test-only wrapper around l2tpv3/offload.c (TSO segmentation, checksum, GRO)
    Extension(
        "l2tpv3._offload",
        sources=["l2tpv3/_offload.pyx", "l2tpv3/offload.c"],
        include_dirs=["l2tpv3"],
        depends=["l2tpv3/offload.h"],
        extra_compile_args=C_FLAGS,
    ),
    # fastpath: the per-packet engine (fp_core.c) with the offloads compiled in
    Extension(
        "l2tpv3._fastpath",
        sources=["l2tpv3/_fastpath.pyx", "l2tpv3/fp_core.c", "l2tpv3/offload.c"],
        include_dirs=["l2tpv3"],
        depends=["l2tpv3/fp_core.h", "l2tpv3/offload.h"],
        extra_compile_args=[*C_FLAGS, "-Wall"],
        libraries=["m"],
    ),
]

setup(ext_modules=cythonize(EXTENSIONS, language_level=3))
