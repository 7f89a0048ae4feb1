"""Userspace L2TPv3 Ethernet pseudowire (RFC 3931, RFC 4719), driven like ``ip l2tp``.

The public API: the configuration records and their enums, the errors, each session's
header layout and MTU, the counters, the protocols both data-path implementations
satisfy, and the chooser (:func:`choose`, returning an :class:`Implementation`).
``import l2tpv3`` stays light: the chooser, which needs the TAP and socket modules, is
imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

from l2tpv3.config import (
    Encap,
    IPAddress,
    L2SpecType,
    LivenessMode,
    SeqMode,
    SeqPolicy,
    SessionConfig,
    TunnelConfig,
)
from l2tpv3.errors import (
    ConfigError,
    ControlError,
    L2TPError,
    MissingArgument,
    RefusedError,
    StateError,
)
from l2tpv3.proto.api import IpOwnershipAPI, SessionAPI, TunnelAPI
from l2tpv3.proto.counters import Counters
from l2tpv3.proto.layout import HeaderLayout, session_mtu
from l2tpv3.proto.liveness import Liveness

if TYPE_CHECKING:
    from l2tpv3.io.datapath import Implementation, ImplementationUnavailable, choose

__all__ = [
    "ConfigError",
    "ControlError",
    "Counters",
    "Encap",
    "HeaderLayout",
    "IPAddress",
    "Implementation",
    "ImplementationUnavailable",
    "IpOwnershipAPI",
    "L2SpecType",
    "L2TPError",
    "Liveness",
    "LivenessMode",
    "MissingArgument",
    "RefusedError",
    "SeqMode",
    "SeqPolicy",
    "SessionAPI",
    "SessionConfig",
    "StateError",
    "TunnelAPI",
    "TunnelConfig",
    "__version__",
    "choose",
    "session_mtu",
]

# Names imported on first use (the chooser pulls in pytun and the sockets).
_LAZY = {
    "Implementation": "l2tpv3.io.datapath",
    "ImplementationUnavailable": "l2tpv3.io.datapath",
    "choose": "l2tpv3.io.datapath",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'l2tpv3' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
