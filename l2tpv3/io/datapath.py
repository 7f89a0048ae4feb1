"""The one chooser: which implementation of the data path this process runs.

The Cython fast path when it is built, else the pure-Python reference;
``L2TPV3_NO_EXTENSIONS=1`` forces pure Python (as yarl and aiohttp do). :func:`choose`
returns one typed record, so the daemon and the tests never test names or import
either implementation themselves. For mypy the record always holds the protocols of
:mod:`l2tpv3.proto.api` and :mod:`l2tpv3.io.api` (the ``TYPE_CHECKING`` pattern of
yarl and multidict).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.io.api import Offloads, TunnelPortFactory
from l2tpv3.io.ports import TunnelPort
from l2tpv3.proto.api import IpOwnershipAPI, SessionAPI, TrunkAPI, TunnelAPI
from l2tpv3.proto.ownership import IpOwnership
from l2tpv3.proto.session import Session
from l2tpv3.proto.tunnel import Tunnel
from l2tpv3.proto.vlan import Trunk

__all__ = ["NAMES", "PYTHON", "Implementation", "ImplementationUnavailable", "Name", "choose"]

Name = Literal["python", "cython"]
NAMES: tuple[Name, ...] = ("cython", "python")


class ImplementationUnavailable(ImportError):
    """The requested implementation is not built (or is switched off)."""


@dataclass(frozen=True, slots=True)
class Implementation:
    """One implementation of the data path: its sans-I/O classes, the IP-encap
    ownership registry its tunnels share, the port that runs a tunnel (and makes its
    sessions' ports), and what it can offload."""

    name: Name
    session: Callable[[TunnelConfig, SessionConfig], SessionAPI]
    tunnel: Callable[[TunnelConfig, IpOwnershipAPI | None], TunnelAPI]
    ownership: Callable[[], IpOwnershipAPI]
    tunnel_port: TunnelPortFactory
    offloads: Offloads
    # A trunk's VID-to-session map (proto/vlan.py), which this implementation's port reads.
    trunk: Callable[[str], TrunkAPI]
    # Why tunnels with ESP SAs run on the Python path under this implementation (the
    # daemon logs it once), or None when its ports carry ESP themselves (issue 9).
    esp_fallback: str | None = None


PYTHON = Implementation(
    "python",
    Session,
    Tunnel,
    IpOwnership,
    TunnelPort,
    Offloads(tap_vnet_hdr=False, udp_gso=False, udp_gro=False),
    Trunk,
)


def _cython() -> Implementation:
    try:
        from l2tpv3.fast import native
    except ImportError as exc:
        raise ImplementationUnavailable(f"the Cython fast path is not built: {exc}") from None
    from l2tpv3.io.engine import CythonTunnelPort

    return Implementation(
        "cython",
        native.Session,
        native.Tunnel,
        native.IpOwnership,
        CythonTunnelPort,
        Offloads(tap_vnet_hdr=True, udp_gso=True, udp_gro=True),
        native.Trunk,
        esp_fallback=(
            None
            if native.HAVE_ESP
            else "the fast path was built without OpenSSL's libcrypto (install libssl-dev "
            "and rebuild)"
        ),
    )


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
