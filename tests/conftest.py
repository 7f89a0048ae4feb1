"""``impl``: run a data-path test against the daemon's Cython engine and its pure-Python
loops. Daemons started with ``Daemon(..., impl=impl)`` must log which one they run."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from l2tpv3.io.datapath import NAMES, Implementation, ImplementationUnavailable, choose

IMPLS = ("cython", "python")


@pytest.fixture(scope="module", params=IMPLS)
def impl(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "cython":
        if os.environ.get("L2TPV3_NO_EXTENSIONS"):
            pytest.skip("L2TPV3_NO_EXTENSIONS is set: pure Python only")
        if importlib.util.find_spec("l2tpv3.fast._fastpath") is None:
            if os.environ.get("CI") == "true":
                pytest.fail("the Cython extension is not built")
            pytest.skip("the Cython extension is not built")
    return name


def implementation_classes(name: str) -> tuple[type, type]:
    """(Session, Tunnel) of one implementation, for sans-I/O tests run against both."""
    if name == "python":
        from l2tpv3.proto.session import Session
        from l2tpv3.proto.tunnel import Tunnel

        return Session, Tunnel
    try:
        from l2tpv3.fast import _fastpath
    except ImportError:
        if os.environ.get("CI") == "true" and not os.environ.get("L2TPV3_NO_EXTENSIONS"):
            pytest.fail("the Cython extension is not built")
        pytest.skip("the Cython extension is not built")
    return _fastpath.Session, _fastpath.Tunnel


@pytest.fixture(scope="module", params=IMPLS)
def sansio_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Autouse it in a module: rebinds the module's ``Session``/``Tunnel`` names.

    Deprecated: the imported class is not the one that runs. Kept only until the last
    modules using it (tests/unit/test_session.py, test_tunnel.py, test_layout.py) move
    to ``sansio``; then remove it with :func:`implementation_classes`."""
    session_cls, tunnel_cls = implementation_classes(request.param)
    module = request.module
    saved = {k: getattr(module, k) for k in ("Session", "Tunnel") if hasattr(module, k)}
    for name, cls in (("Session", session_cls), ("Tunnel", tunnel_cls)):
        if name in saved:
            setattr(module, name, cls)
    try:
        yield request.param
    finally:
        for k, v in saved.items():
            setattr(module, k, v)


@pytest.fixture(scope="module", params=NAMES)
def sansio(request: pytest.FixtureRequest) -> Implementation:
    """The implementation record (classes, not names) for sans-I/O tests run both ways:
    ``sansio.session(tunnel_cfg, session_cfg)``, ``sansio.tunnel(tunnel_cfg, ownership)``."""
    try:
        return choose(request.param)
    except ImplementationUnavailable as exc:
        if os.environ.get("CI") == "true" and not os.environ.get("L2TPV3_NO_EXTENSIONS"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
