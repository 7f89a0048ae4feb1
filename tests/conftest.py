"""``impl``: run a data-path test against the daemon's Cython engine and its pure-Python
loops. Daemons started with ``Daemon(..., impl=impl)`` must log which one they run."""

from __future__ import annotations

import importlib.util
import os

import pytest

IMPLS = ("cython", "python")


@pytest.fixture(scope="module", params=IMPLS)
def impl(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "cython":
        if os.environ.get("L2TPV3_NO_EXTENSIONS"):
            pytest.skip("L2TPV3_NO_EXTENSIONS is set: pure Python only")
        if importlib.util.find_spec("l2tpv3._fastpath") is None:
            if os.environ.get("CI") == "true":
                pytest.fail("the Cython extension is not built")
            pytest.skip("the Cython extension is not built")
    return name
