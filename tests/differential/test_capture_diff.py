"""`l2tpv3 capture`: the engine's recorder (fast/fp_capture.c, through the Cython
Tunnel's receive) against the reference (io/capture.py around the pure-Python Tunnel):
the same datagrams, well-formed and malformed, from the peer and from strangers, give
the same records (all but the time) with the same drop reasons, the same session filter
and the same losses when the buffer is full."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2tpv3.config import Encap, SessionConfig, TunnelConfig
from l2tpv3.constants import CAPTURE_HALF_BYTES, CAPTURE_HDR_LEN, CAPTURE_IN
from l2tpv3.io.capture import RECORD, CaptureRing, capture_receivers
from l2tpv3.proto import ownership, session, tunnel
from l2tpv3.proto.counters import CAPTURE_DROP_REASONS
from tests.differential.test_fastpath import RUN_DEFAULTS, _payload, configs, fast, needs_ext


def records(blob: bytes) -> list[tuple[int, int, int, int, bytes]]:
    """(session ID, length, direction, drop code, packet) of each record: all but the time."""
    out = []
    off = 0
    while off < len(blob):
        _, sid, n, direction, drop, _pad = RECORD.unpack_from(blob, off)
        off += CAPTURE_HDR_LEN
        out.append((sid, n, direction, drop, blob[off : off + n]))
        off += n
    assert off == len(blob)
    return out


rx_op = st.fixed_dictionaries(
    {
        "session": st.integers(0, 1),
        "sid": st.sampled_from([7, 8, 0, 9]),
        "version": st.sampled_from([0, 0, 0, 2]),
        "t_bit": st.sampled_from([0, 0x80]),
        "bad_cookie": st.sampled_from([False, False, True]),
        "ns": st.one_of(st.none(), st.integers(0, 12), st.integers(0, 0xFFFFFF)),
        "frame": st.binary(min_size=0, max_size=40),
        "cut": st.one_of(st.none(), st.none(), st.none(), st.integers(0, 20)),
        "foreign": st.sampled_from([None, None, None, "10.0.0.99", "fd00::99"]),
    }
)


def _pair(tcfg: TunnelConfig, scfgs: list[SessionConfig]) -> tuple[Any, Any]:
    owns = ownership.IpOwnership(), fast.IpOwnership()
    for own in owns:
        own.add_tunnel(1, tcfg.family, str(tcfg.local), str(tcfg.remote))
    ref, fp = tunnel.Tunnel(tcfg, owns[0]), fast.Tunnel(tcfg, owns[1])
    for scfg in scfgs:
        ref.add(session.Session(tcfg, scfg))
        fp.add(fast.Session(tcfg, scfg))
    return ref, fp


@needs_ext
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.lists(rx_op, min_size=1, max_size=40), st.sampled_from([0, 7]))
def test_same_records(
    cfg: tuple[TunnelConfig, list[SessionConfig]], steps: list[dict[str, Any]], only: int
) -> None:
    tcfg, scfgs = cfg
    ref, fp = _pair(tcfg, scfgs)
    ring = CaptureRing(only)
    receive, foreign = capture_receivers(ring, ref, tcfg.encap is Encap.UDP)
    fp.capture_start(only)
    now = 100.0
    for op in steps:
        scfg = scfgs[min(op["session"], len(scfgs) - 1)]
        data = _payload(tcfg, scfg, op)
        if op["foreign"]:
            foreign(data, op["foreign"])
            fp.receive_foreign(data, op["foreign"])
        else:
            (_, rf), (_, ff) = receive(data, now), fp.receive(data, now)
            assert rf == ff
        now += 0.01
    mine, lost = fp.capture_take()
    ours = records(ring.take())
    assert records(mine) == ours
    assert lost == ring.lost == 0
    for sid, _n, direction, _drop, _pkt in ours:
        assert direction == CAPTURE_IN
        if only:
            assert sid == only
    fp.capture_stop()


@needs_ext
def test_drop_reasons_named() -> None:
    # One datagram per reason the capture can name, through both: the codes agree and
    # name the counter that moved.
    from ipaddress import ip_address

    tcfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                        remote=ip_address("10.0.0.2"), encap=Encap.UDP,
                        udp_sport=1701, udp_dport=1701)  # fmt: skip
    scfg = SessionConfig(tunnel_id=1, session_id=7, peer_session_id=7, peer_cookie=b"\xaa" * 4)
    ref, fp = _pair(tcfg, [scfg])
    ring = CaptureRing()
    receive, foreign = capture_receivers(ring, ref, True)
    fp.capture_start()
    good = _payload(tcfg, scfg, {**RUN_DEFAULTS, "sid": 7, "ns": None, "frame": bytes(60)})
    cases = {
        "": good,
        "too_short": b"\x00\x03\x00",
        "bad_version": b"\x00\x02\x00\x00" + bytes(8),
        "control_message": b"\xc8\x03\x00\x14" + bytes(16),
        "unknown_session": b"\x00\x03\x00\x00\x00\x00\x00\x09" + bytes(60),
        "rx_cookie_discards": b"\x00\x03\x00\x00\x00\x00\x00\x07" + b"\xbb" * 4 + bytes(60),
        "frame_too_short": b"\x00\x03\x00\x00\x00\x00\x00\x07" + b"\xaa" * 4 + bytes(5),
        "rx_errors": b"\x00\x03\x00\x00\x00\x00\x00\x07\xaa",
    }
    for data in cases.values():
        receive(data, 1.0)
        fp.receive(data, 1.0)
    foreign(good, "10.0.0.9")
    fp.receive_foreign(good, "10.0.0.9")
    want = [*cases, "wrong_source"]
    got = [CAPTURE_DROP_REASONS[r[3] - 1] if r[3] else "" for r in records(ring.take())]
    assert got == want
    mine, _ = fp.capture_take()
    assert [r[3] for r in records(mine)] == [
        CAPTURE_DROP_REASONS.index(w) + 1 if w else 0 for w in want
    ]
    with pytest.raises(Exception, match="already runs"):
        fp.capture_start()
    fp.capture_stop()


@needs_ext
def test_full_buffer_loses_the_same() -> None:
    # Nobody takes: records that no longer fit are lost and counted, alike.
    from ipaddress import ip_address

    tcfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                        remote=ip_address("10.0.0.2"), encap=Encap.IP)  # fmt: skip
    scfg = SessionConfig(tunnel_id=1, session_id=7, peer_session_id=7)
    ref, fp = _pair(tcfg, [scfg])
    ring = CaptureRing()
    receive, _ = capture_receivers(ring, ref, False)
    fp.capture_start()
    data = _payload(tcfg, scfg, {**RUN_DEFAULTS, "sid": 7, "ns": None, "frame": bytes(1400)})
    sent = CAPTURE_HALF_BYTES // (CAPTURE_HDR_LEN + len(data)) + 50
    for _ in range(sent):
        receive(data, 1.0)
        fp.receive(data, 1.0)
    mine, lost = fp.capture_take()
    assert lost == ring.lost == 50
    assert records(mine) == records(ring.take())
    # Room again after the take.
    receive(data, 1.0)
    fp.receive(data, 1.0)
    mine, lost = fp.capture_take()
    assert len(records(mine)) == len(records(ring.take())) == 1
    assert lost == ring.lost == 50
    fp.capture_stop()
