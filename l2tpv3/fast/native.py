"""The compiled fast path's public face: what the layers above may use of it.

``_fastpath`` is the Cython extension (private, like yarl's ``_quoting_c``); importing
this module raises ImportError when it is not built, which the chooser
(:func:`l2tpv3.io.datapath.choose`) turns into a fallback to pure Python.
"""

from __future__ import annotations

from l2tpv3.fast._fastpath import (
    HAVE_ESP,
    EspSA,
    EspTunnel,
    IpOwnership,
    Session,
    Trunk,
    Tunnel,
    bench_esp,
)

# HAVE_ESP: built with libcrypto (EspSA works); False when its headers were missing.
__all__ = [
    "HAVE_ESP",
    "EspSA",
    "EspTunnel",
    "IpOwnership",
    "Session",
    "Trunk",
    "Tunnel",
    "bench_esp",
]
