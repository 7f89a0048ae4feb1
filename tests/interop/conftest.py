"""The interop tests' one allowance for the emulator.

Under TCG the kernel guest's NIC has stopped in full CI runs (a transfer stalls, then
nothing crosses either way, while the guest's shell still answers on its serial port;
never reproduced in a module run alone). That is the VM, not the pseudowire, and it is
told apart by a ping over the underlay itself (tap0 <-> the guest's eth0), which no
daemon under test takes part in: when a test fails and that ping fails too, the failure
becomes :class:`interop.vm.GuestHang` (``KernelPeer.lost``), as does a guest that stops
answering commands. A test that ends in GuestHang alone runs once more on a freshly
booted guest (``KernelPeer.revive``, called by ``interop.cases.reset``); a second one
fails it, and so does any failure with a working underlay.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from interop.lab import KernelPeer
from interop.vm import GuestHang

# pytest-rerunfailures matches this against the error's type and message.
GUEST_HANG = r"GuestHang"
# What each GuestHang said, for the terminal summary (a rerun that passes shows no error).
HANGS = pytest.StashKey[list[str]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("interop") is not None:
            item.add_marker(pytest.mark.flaky(reruns=1, only_rerun=[GUEST_HANG]))


def _peer(item: pytest.Item) -> KernelPeer | None:
    lab = getattr(item, "funcargs", {}).get("lab")
    peer = getattr(lab, "peer", None)
    return peer if isinstance(peer, KernelPeer) else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    hangs = item.config.stash.setdefault(HANGS, [])
    try:
        return (yield)
    except GuestHang as exc:
        # The VM is already stopped here: tap0's rates would say nothing.
        hangs.append(f"{item.nodeid}: {str(exc)[-1500:]}")
        raise
    except (Exception, pytest.fail.Exception) as exc:
        peer = _peer(item)
        if peer is None or not peer.vm.alive:
            raise
        lost = peer.lost(exc)
        if lost is None:
            exc.add_note("(the underlay to the guest answers ping: not the VM's NIC)")
            raise
        hangs.append(f"{item.nodeid}: {str(lost)[-1500:]}")
        raise lost from exc


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    hangs = terminalreporter.config.stash.get(HANGS, [])
    if hangs:
        terminalreporter.section("interop: the guest stopped (each test reran once)")
        for line in hangs:
            terminalreporter.line(line)
