"""``impl``: run a data-path test against the daemon's Cython engine and its pure-Python
loops. Daemons started with ``Daemon(..., impl=impl)`` must log which one they run."""

from __future__ import annotations

import os

import pytest

from l2tpv3.io.datapath import NAMES, Implementation, ImplementationUnavailable, Name, choose


def _available(name: Name) -> Implementation:
    """The implementation, or a skip (a failure under CI=true, where both must be built)."""
    try:
        return choose(name)
    except ImplementationUnavailable as exc:
        if os.environ.get("CI") == "true" and not os.environ.get("L2TPV3_NO_EXTENSIONS"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module", params=NAMES)
def impl(request: pytest.FixtureRequest) -> str:
    """The implementation a daemon of a namespace test runs (``Daemon(..., impl=impl)``)."""
    name: Name = request.param
    if name == "cython" and os.environ.get("L2TPV3_NO_EXTENSIONS"):
        pytest.skip("L2TPV3_NO_EXTENSIONS is set: pure Python only")
    return _available(name).name


@pytest.fixture(scope="module", params=NAMES)
def sansio(request: pytest.FixtureRequest) -> Implementation:
    """The implementation record (classes, not names) for sans-I/O tests run both ways:
    ``sansio.session(tunnel_cfg, session_cfg)``, ``sansio.tunnel(tunnel_cfg, ownership)``."""
    return _available(request.param)
