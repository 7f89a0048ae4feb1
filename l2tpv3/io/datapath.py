"""The one chooser: which implementation of the data path this process runs.

The Cython fast path when it is built, else the pure-Python reference;
``L2TPV3_NO_EXTENSIONS=1`` forces pure Python (as yarl and aiohttp do). :func:`choose`
returns one typed record, so the daemon and the tests never test names or import
either implementation themselves. For mypy the record always holds the protocols of
:mod:`l2tpv3.proto.api` (the ``TYPE_CHECKING`` pattern of yarl and multidict).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.proto.api import IpOwnershipAPI, SessionAPI, TunnelAPI
from l2tpv3.proto.ownership import IpOwnership
from l2tpv3.proto.session import Session
from l2tpv3.proto.tunnel import Tunnel

Name = Literal["python", "cython"]
NAMES: tuple[Name, ...] = ("cython", "python")


class ImplementationUnavailable(ImportError):
    """The requested implementation is not built (or is switched off)."""


@dataclass(frozen=True, slots=True)
class Implementation:
    name: Name
    session: Callable[[TunnelConfig, SessionConfig], SessionAPI]
    tunnel: Callable[[TunnelConfig, IpOwnershipAPI | None], TunnelAPI]
    ownership: Callable[[], IpOwnershipAPI]


PYTHON = Implementation("python", Session, Tunnel, IpOwnership)


def _cython() -> Implementation:
    try:
        from l2tpv3.fast import _fastpath
    except ImportError as exc:
        raise ImplementationUnavailable(f"the Cython fast path is not built: {exc}") from None
    return Implementation("cython", _fastpath.Session, _fastpath.Tunnel, _fastpath.IpOwnership)


def choose(name: Name | None = None) -> Implementation:
    """``name`` None: the fast path if built and not switched off, else pure Python."""
    if name == "python":
        return PYTHON
    if name == "cython":
        return _cython()
    if os.environ.get("L2TPV3_NO_EXTENSIONS"):
        return PYTHON
    try:
        return _cython()
    except ImplementationUnavailable:
        return PYTHON
