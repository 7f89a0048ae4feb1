"""Chooses the per-packet implementation: the Cython fast path when it is built, else
the pure-Python reference. ``L2TPV3_NO_EXTENSIONS=1`` forces pure Python (as yarl and
aiohttp do); a missing or broken build falls back to it silently."""

from __future__ import annotations

import os
from typing import Any

from l2tpv3.proto import session, tunnel

# The two implementations share an interface, not a base class.
Session: Any = session.Session
Tunnel: Any = tunnel.Tunnel
IMPLEMENTATION = "python"

if not os.environ.get("L2TPV3_NO_EXTENSIONS"):
    try:
        from l2tpv3.fast import _fastpath
    except ImportError:
        pass
    else:
        Session, Tunnel, IMPLEMENTATION = _fastpath.Session, _fastpath.Tunnel, "cython"
