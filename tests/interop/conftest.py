"""The interop tests' one allowance for the emulator.

Under TCG the kernel guest has stopped answering its command port a few times in full CI
runs (about once in three; never reproduced in isolation; the console tail is in the
error). That is the VM, not the pseudowire: a stalled transfer or a lost packet fails
differently (``guest nc failed``, ``no path``, a counter). So a test that ends in
:class:`interop.vm.GuestHang` alone runs once more on a freshly booted guest
(``KernelPeer.revive``, called by ``interop.cases.reset``); a second hang fails it.
"""

from __future__ import annotations

import pytest

# pytest-rerunfailures matches this against the error's type and message.
GUEST_HANG = r"GuestHang"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("interop") is not None:
            item.add_marker(pytest.mark.flaky(reruns=1, only_rerun=[GUEST_HANG]))
