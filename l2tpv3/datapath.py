"""Chooses the per-packet implementation: the Cython fast path when it is built, else
the pure-Python reference. ``L2TPV3_NO_EXTENSIONS=1`` forces pure Python (as yarl and
aiohttp do); a missing or broken build falls back to it silently."""

from __future__ import annotations

import os

from .session import Session as PySession
from .tunnel import Tunnel as PyTunnel

Session: type[PySession]
Tunnel: type[PyTunnel]
IMPLEMENTATION: str

if os.environ.get("L2TPV3_NO_EXTENSIONS"):
    Session, Tunnel, IMPLEMENTATION = PySession, PyTunnel, "python"
else:
    try:
        from ._fastpath import Session, Tunnel  # type: ignore[assignment]

        IMPLEMENTATION = "cython"
    except ImportError:
        Session, Tunnel, IMPLEMENTATION = PySession, PyTunnel, "python"
