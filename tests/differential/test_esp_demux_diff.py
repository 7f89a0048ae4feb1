"""Two tunnels to the same peer on the same local address hear each other's ESP packets
(every raw IPPROTO_ESP socket gets a copy): with the parts proto/espdemux.py gives them
(``set_foreign``), the fast path's ``native.EspTunnel`` (fp_esp_path_open) and
io/espport.py ``EspPath`` (EspInbound.open) take the same packets alike. A packet under
the other tunnel's SPI is ignored without a counter, one under an SPI neither knows (or
too short for one) is counted ``unknown_spi`` (``too_short``) by the one tunnel of the
two that counts, and every packet lands in exactly one tunnel's counters.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from typing import Protocol

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2tpv3.config import Encap, TunnelConfig
from l2tpv3.io.espport import EspPath
from l2tpv3.io.ivstate import IvStore
from l2tpv3.proto import counters
from l2tpv3.proto.esp import AEAD_GCM, EspSA
from l2tpv3.proto.espdemux import EspListener, esp_demux

try:
    from l2tpv3.fast import native
except ImportError:  # pragma: no cover - the extension is required under CI
    native = None  # type: ignore[assignment]

REQUIRED = os.environ.get("CI") == "true" or os.environ.get("L2TPV3_REQUIRE_EXTENSIONS") == "1"
KEYS = {0x100: bytes(range(20)), 0x200: bytes(range(1, 21))}
LISTENER = EspListener(4, "10.1.2.3", 0, "10.4.5.6", 0)


def _need_c() -> None:
    if native is None or not native.HAVE_ESP:
        if REQUIRED:
            pytest.fail("the fast path's ESP (libcrypto) is not built")
        pytest.skip("the fast path is not built with libcrypto")


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def _config(tid: int) -> TunnelConfig:
    return TunnelConfig(
        tunnel_id=tid,
        peer_tunnel_id=tid,
        local=ip_address(LISTENER.local),
        remote=ip_address(LISTENER.peer),
        encap=Encap.IP,
    )


class _Path(Protocol):
    """One tunnel's ESP receive work, either implementation."""

    def set_foreign(self, foreign: frozenset[int], count_unknown: bool) -> None: ...
    def receive(self, packet: bytes) -> bytes | str | None: ...
    def state(self) -> tuple[object, ...]: ...


class _Py:
    def __init__(self, loop: asyncio.AbstractEventLoop, tid: int, spi: int, ivs: str) -> None:
        self.delivered: list[bytes] = []
        self.path = EspPath(loop, _config(tid), self.delivered.append, IvStore(ivs))
        self.path.inbound.sas[spi] = EspSA(spi, AEAD_GCM, KEYS[spi], replay_window=32)
        self.spi = spi

    def set_foreign(self, foreign: frozenset[int], count_unknown: bool) -> None:
        self.path.set_foreign(foreign, count_unknown)

    def receive(self, packet: bytes) -> bytes | str | None:
        before = len(self.delivered), dict(self.path.inbound.drops)
        self.path.receive(packet)
        if len(self.delivered) > before[0]:
            return self.delivered[-1]
        changed = [k for k, v in self.path.inbound.drops.items() if v != before[1][k]]
        return changed[0] if changed else None

    def state(self) -> tuple[object, ...]:
        sa = self.path.inbound.sas[self.spi]
        return sa.counters.as_dict(), dict(sa.drops), dict(self.path.inbound.drops)


class _C:
    def __init__(self, tid: int, spi: int) -> None:
        self.et = native.EspTunnel(_config(tid))
        self.sa = native.EspSA(spi, AEAD_GCM, KEYS[spi], replay_window=32)
        self.et.add_in(self.sa)
        # The engine's way (under the tunnel's locks), on an engine not started.
        self.engine = native.Tunnel(_config(tid))

    def set_foreign(self, foreign: frozenset[int], count_unknown: bool) -> None:
        self.engine.esp_set_foreign(self.et, foreign, count_unknown)
        assert (self.et.foreign, self.et.count_unknown) == (foreign, count_unknown)

    def receive(self, packet: bytes) -> bytes | str | None:
        before = self.et.drops
        out = self.et.open(packet)
        if isinstance(out, str):
            # fp_esp_path_open names the SA's drops too; keep only the path's, as _Py.
            changed = [k for k, v in self.et.drops.items() if v != before[k]]
            return changed[0] if changed else None
        return out

    def state(self) -> tuple[object, ...]:
        return self.sa.counters.as_dict(), dict(self.sa.drops), dict(self.et.drops)


def _pair(make: Callable[[int, int], _Path]) -> dict[int, _Path]:
    """Tunnels 1 (inbound SPI 0x100) and 2 (0x200) to one peer, set as the daemon does."""
    paths = {1: make(1, 0x100), 2: make(2, 0x200)}
    plan = esp_demux({1: (LISTENER, frozenset({0x100})), 2: (LISTENER, frozenset({0x200}))})
    for tid, part in plan.items():
        paths[tid].set_foreign(part.foreign, part.count_unknown)
    return paths


def _makers(loop: asyncio.AbstractEventLoop, ivs: str) -> dict[str, Callable[[int, int], _Path]]:
    return {"python": lambda tid, spi: _Py(loop, tid, spi, ivs), "cython": _C}


_SEQ = {0x100: 0, 0x200: 0}


def _from_peer(spi: int, body: bytes) -> bytes:
    sa = EspSA(spi, AEAD_GCM, KEYS[spi])
    _SEQ[spi] += 1
    sa.seq = _SEQ[spi] - 1
    packet = sa.seal(body, 115)
    assert packet is not None
    return packet


@pytest.mark.parametrize("which", ["python", "cython"])
def test_foreign_spi_ignored_unknown_counted_once(
    loop: asyncio.AbstractEventLoop, tmp_path: object, which: str
) -> None:
    """Both implementations, the same inputs: each tunnel opens its own SPI's packets
    and ignores the other's without a counter; an SPI neither knows is counted
    ``unknown_spi`` once, by tunnel 1 (the lowest ID with an inbound SA)."""
    _need_c()
    paths = _pair(_makers(loop, str(tmp_path))[which])
    mine = _from_peer(0x100, b"to tunnel 1")
    theirs = _from_peer(0x200, b"to tunnel 2")
    unknown = struct.pack("!II", 0x777, 1) + bytes(40)
    got = {
        tid: [p.receive(pkt) for pkt in (mine, theirs, unknown, b"\1\2")]
        for tid, p in paths.items()
    }
    assert got[1] == [b"to tunnel 1", None, counters.ESP_UNKNOWN_SPI, counters.ESP_TOO_SHORT]
    assert got[2] == [None, b"to tunnel 2", None, None]
    for tid, p in paths.items():
        _, sa_drops, path_drops = p.state()
        assert sum(sa_drops.values()) == 0  # type: ignore[attr-defined]
        assert path_drops[counters.ESP_UNKNOWN_SPI] == (tid == 1)  # type: ignore[index]
        assert path_drops[counters.ESP_TOO_SHORT] == (tid == 1)  # type: ignore[index]


_PACKET = st.one_of(
    st.tuples(st.sampled_from([0x100, 0x200]), st.binary(min_size=1, max_size=50)),
    st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 60)),  # an SPI, maybe unknown
    st.binary(max_size=12),  # nonsense, or too short for an SPI
)


@settings(max_examples=80, deadline=None)
@given(packets=st.lists(_PACKET, max_size=30))
def test_every_packet_lands_in_one_tunnel_alike(
    loop: asyncio.AbstractEventLoop,
    tmp_path_factory: pytest.TempPathFactory,
    packets: list[object],
) -> None:
    """Random packets given to both tunnels (as their sockets get them), on both
    implementations: the same outcome packet by packet and the same counters; each
    packet changes exactly one tunnel's counters or is delivered by exactly one."""
    _need_c()
    ivs = str(tmp_path_factory.mktemp("iv"))
    makers = _makers(loop, ivs)
    impls = {name: _pair(make) for name, make in makers.items()}
    for item in packets:
        if isinstance(item, bytes):
            packet = item
        else:
            assert isinstance(item, tuple)
            spi, what = item
            if isinstance(what, bytes):
                packet = _from_peer(spi, what)
            else:
                packet = struct.pack("!II", spi, 1) + bytes(what)
        outcomes = {}
        for name, paths in impls.items():
            before = {tid: p.state() for tid, p in paths.items()}
            outs = {tid: p.receive(packet) for tid, p in paths.items()}
            after = {tid: p.state() for tid, p in paths.items()}
            moved = [tid for tid in paths if before[tid] != after[tid]]
            assert len(moved) == 1, (name, packet.hex(), outs)
            outcomes[name] = outs
        assert outcomes["python"] == outcomes["cython"]
        assert impls["python"][1].state() == impls["cython"][1].state()
        assert impls["python"][2].state() == impls["cython"][2].state()
