"""Builds the Cython fast path; everything else is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension(
                "l2tpv3._fastpath",
                sources=["l2tpv3/_fastpath.pyx", "l2tpv3/fp_core.c"],
                depends=["l2tpv3/fp_core.h"],
                extra_compile_args=["-O2", "-std=gnu11", "-Wall"],
                libraries=["m"],
            )
        ],
        compiler_directives={"language_level": "3"},
    )
)
