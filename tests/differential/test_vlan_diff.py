"""Per-VLAN sessions: the C twin (fast/fp_vlan.c, fp_session.c through _fastpath) against
the reference (proto/vlan.py, proto/session.py) on random frames: tagged (802.1Q,
802.1ad, other TPIDs), untagged, unmapped VIDs, short and garbage frames, with and
without pop, both ways; same bytes out, same session IDs, same counters and drops."""

from __future__ import annotations

import os
from ipaddress import ip_address
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.proto import session, vlan

fast: Any
try:
    from l2tpv3.fast import _fastpath as fast
except ImportError:  # pragma: no cover - exercised when the build is missing
    fast = None

pytestmark = pytest.mark.skipif(
    fast is None and os.environ.get("CI") != "true", reason="the Cython extension is not built"
)

_T = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                  remote=ip_address("10.0.0.2"), udp_sport=1, udp_dport=2)  # fmt: skip
_TP = TunnelConfig(tunnel_id=2, peer_tunnel_id=1, local=ip_address("10.0.0.2"),
                   remote=ip_address("10.0.0.1"), udp_sport=2, udp_dport=1)  # fmt: skip
_VIDS = (5, 7, 4094)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    macs = draw(st.binary(min_size=12, max_size=12))
    tpid = draw(st.sampled_from([0x8100, 0x88A8, 0x9100, 0x0800, 0x0806, 0x86DD]))
    tci = (draw(st.integers(0, 7)) << 13) | (draw(st.integers(0, 1)) << 12)
    tci |= draw(st.sampled_from([*_VIDS, 0, 1, 6, 4095, draw(st.integers(0, 4095))]))
    inner = draw(st.binary(max_size=80))
    frame = macs + tpid.to_bytes(2, "big") + tci.to_bytes(2, "big") + inner
    cut = draw(st.one_of(st.none(), st.integers(0, len(frame))))
    return frame if cut is None else frame[:cut]


def _cfg(vid: int, pop: bool) -> SessionConfig:
    return SessionConfig(tunnel_id=1, session_id=10 + vid, peer_session_id=20,
                         trunk="trunk0", vlan=vid, vlan_pop=pop)  # fmt: skip


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(frames(), max_size=20))
def test_trunk_demux_matches(batch: list[bytes]) -> None:
    py, c = vlan.Trunk("t"), fast.Trunk("t")
    for vid in _VIDS:
        py.add(vid, 10 + vid)
        c.add(vid, 10 + vid)
    for f in batch:
        assert py.classify(f) == c.classify(f)
    assert dict(py.drops) == dict(c.drops)
    assert dict(py.vids) == dict(c.vids)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(frames(), max_size=12), st.sampled_from(_VIDS), st.booleans())
def test_session_both_ways_match(batch: list[bytes], vid: int, pop: bool) -> None:
    cfg = _cfg(vid, pop)
    ps, cs = session.Session(_T, cfg), fast.Session(_T, cfg)
    peer = session.Session(_TP, SessionConfig(tunnel_id=2, session_id=20, peer_session_id=10 + vid))
    for f in batch:
        # trunk -> wire: the sans-I/O entry point and the adapters' in-place untag
        assert ps.encapsulate(f) == cs.encapsulate(f)
        bp, bc = bytearray(f), bytearray(f)
        assert ps.untag(memoryview(bp)) == cs.untag(memoryview(bc))
        assert bp == bc
        # wire -> trunk
        dgram = peer.encapsulate(f)
        assert [bytes(x) for x in ps.receive(dgram, 0.0)] == [
            bytes(x) for x in cs.receive(dgram, 0.0)
        ]
    assert ps.counters == cs.counters
    assert ps.drops == cs.drops
