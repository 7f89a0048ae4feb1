"""The Cython fast path against the pure-Python reference: same random configurations,
same packet streams (well-formed, malformed, reordered, wrong cookies, sequencing
switched on and off, time passing), same bytes out and the same counters."""

from __future__ import annotations

import os
from ipaddress import ip_address
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2tpv3.config import Encap, L2SpecType, SeqMode, SeqPolicy, SessionConfig, TunnelConfig
from l2tpv3.io import datapath
from l2tpv3.proto import ownership, session, tunnel
from tests.support.configs import UdpPorts

fast: Any
try:
    from l2tpv3.fast import _fastpath as fast
except ImportError:  # pragma: no cover - exercised when the build is missing
    fast = None

needs_ext = pytest.mark.skipif(
    fast is None and os.environ.get("CI") != "true",
    reason="the Cython extension is not built",
)


def _expected() -> bool:
    if os.environ.get("L2TPV3_NO_EXTENSIONS"):
        return False
    return os.environ.get("CI") == "true" or bool(os.environ.get("L2TPV3_REQUIRE_EXTENSIONS"))


def test_extension_loaded_when_expected() -> None:
    impl = datapath.choose()
    if os.environ.get("L2TPV3_NO_EXTENSIONS"):
        assert impl.name == "python"
        assert impl.session is session.Session
    elif _expected():
        assert fast is not None, "the Cython extension did not build or import"
        assert impl.name == "cython"
        assert impl.session is fast.Session
        assert impl.tunnel is fast.Tunnel
        assert impl.ownership is fast.IpOwnership
    else:
        assert ("cython" if fast is not None else "python") == impl.name


SIDS = (7, 8)


@st.composite
def configs(draw: st.DrawFn) -> tuple[TunnelConfig, list[SessionConfig]]:
    encap = draw(st.sampled_from(list(Encap)))
    v6 = draw(st.booleans())
    local, remote = ("fd00::1", "fd00::2") if v6 else ("10.0.0.1", "10.0.0.2")
    udp: UdpPorts = {"udp_sport": 1701, "udp_dport": 1702} if encap is Encap.UDP else {}
    tcfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address(local),
                        remote=ip_address(remote), encap=encap, **udp)  # fmt: skip
    sessions = []
    for sid in SIDS[: draw(st.integers(1, 2))]:
        l2spec = draw(st.sampled_from([L2SpecType.DEFAULT] * 3 + [L2SpecType.NONE]))
        seq = SeqMode.NONE
        if l2spec is L2SpecType.DEFAULT:
            seq = draw(st.sampled_from(list(SeqMode)))
        sessions.append(
            SessionConfig(
                tunnel_id=1,
                session_id=sid,
                peer_session_id=draw(st.integers(1, 2**32 - 1)),
                cookie=draw(st.sampled_from([b"", b"\x01\x02\x03\x04", bytes(range(8))])),
                peer_cookie=draw(st.sampled_from([b"", b"\xaa\xbb\xcc\xdd", bytes(range(8, 16))])),
                l2spec_type=l2spec,
                seq=seq,
                reorder_timeout=draw(st.sampled_from([0, 50, 300])),
                seq_policy=draw(st.sampled_from(list(SeqPolicy))),
            )
        )
    return tcfg, sessions


def _payload(tcfg: TunnelConfig, scfg: SessionConfig, op: dict[str, Any]) -> bytes:
    """A data message for scfg as its peer would send it, bent as op says."""
    head = b"\x00\x03\x00\x00" if tcfg.encap is Encap.UDP else b""
    if op["version"] and head:
        head = bytes([0, op["version"] | op["t_bit"], 0, 0])
    cookie = scfg.peer_cookie
    if op["bad_cookie"] and cookie:
        cookie = bytes([cookie[0] ^ 0xFF]) + cookie[1:]
    l2 = b""
    if scfg.l2spec_type is L2SpecType.DEFAULT:
        ns = op["ns"]
        l2 = (0 if ns is None else 0x40000000 | ns).to_bytes(4, "big")
    pkt: bytes = head + op["sid"].to_bytes(4, "big") + cookie + l2 + op["frame"]
    return pkt[: op["cut"]] if op["cut"] is not None else pkt


def ops() -> st.SearchStrategy[dict[str, Any]]:
    rx = st.fixed_dictionaries(
        {
            "kind": st.just("rx"),
            "session": st.integers(0, 1),
            "sid": st.sampled_from([*SIDS, 0, 9]),
            "version": st.sampled_from([0, 0, 0, 2]),
            "t_bit": st.sampled_from([0, 0x80]),
            "bad_cookie": st.sampled_from([False, False, True]),
            "ns": st.one_of(st.none(), st.integers(0, 12), st.integers(0, 0xFFFFFF)),
            "frame": st.binary(min_size=0, max_size=40),
            "cut": st.one_of(st.none(), st.none(), st.none(), st.integers(0, 20)),
        }
    )
    run = st.fixed_dictionaries(
        {
            "kind": st.just("run"),
            "session": st.integers(0, 1),
            "start": st.integers(0, 12),
            "count": st.integers(1, 8),
            "swap": st.one_of(st.none(), st.integers(0, 6)),
            "dup": st.booleans(),
        }
    )
    time = st.fixed_dictionaries(
        {"kind": st.just("time"), "dt": st.sampled_from([0.01, 0.1, 0.4, 2.0])}
    )
    return st.one_of(
        rx,
        rx,
        run,
        run,
        run,
        run,
        st.fixed_dictionaries({"kind": st.just("raw"), "data": st.binary(max_size=24)}),
        # From another host: tunnel 3's peer (the local address, see below), strangers.
        st.fixed_dictionaries(
            {
                "kind": st.just("foreign"),
                "session": st.integers(0, 1),
                "sid": st.sampled_from([*SIDS, 0, 9]),
                "host": st.sampled_from(["local", "10.0.0.99", "fd00::99", "10.0.0.2", "x"]),
                "cut": st.one_of(st.none(), st.integers(0, 6)),
            }
        ),
        st.fixed_dictionaries(
            {"kind": st.just("tx"), "session": st.integers(0, 1), "frame": st.binary(max_size=30)}
        ),
        time,
        time,
        st.fixed_dictionaries(
            {"kind": st.just("mtu"), "session": st.integers(0, 1), "mtu": st.integers(0, 30)}
        ),
        st.fixed_dictionaries(
            {"kind": st.just("send_seq"), "session": st.integers(0, 1), "on": st.booleans()}
        ),
    )


RUN_DEFAULTS = {"version": 0, "t_bit": 0, "bad_cookie": False, "cut": None}


def _state(t: Any) -> tuple[Any, ...]:
    out: list[Any] = [t.counters.as_dict(), dict(t.drops), t.totals().as_dict()]
    for sid in sorted(t.sessions):
        s = t.sessions[sid]
        out += [
            sid,
            s.counters.as_dict(),
            dict(s.drops),
            s.send_seq,
            s.ns,
            s.nr,
            s.held,
            s.next_deadline(),
        ]
    return tuple(out)


@needs_ext
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.lists(ops(), min_size=5, max_size=60), st.booleans())
def test_same_behaviour(
    cfg: tuple[TunnelConfig, list[SessionConfig]], steps: list[dict[str, Any]], foreign: bool
) -> None:
    tcfg, scfgs = cfg
    owns = ownership.IpOwnership(), fast.IpOwnership()
    for own in owns:
        own.add_tunnel(1, tcfg.family, str(tcfg.local), str(tcfg.remote))
        if foreign:
            # Session 9 belongs to tunnel 3 on the same listener: its copy, not ours.
            own.add_tunnel(3, tcfg.family, str(tcfg.local), str(tcfg.local))
            own.claim(3, 9)
    ref, fp = tunnel.Tunnel(tcfg, owns[0]), fast.Tunnel(tcfg, owns[1])
    for scfg in scfgs:
        ref.add(session.Session(tcfg, scfg))
        fp.add(fast.Session(tcfg, scfg))
    now = 100.0
    for op in steps:
        idx = min(op.get("session", 0), len(scfgs) - 1)
        scfg = scfgs[idx]
        sid = scfg.session_id
        kind = op["kind"]
        if kind in ("rx", "raw", "run"):
            if kind == "rx":
                datas = [_payload(tcfg, scfg, op)]
            elif kind == "raw":
                datas = [op["data"]]
            else:
                # Consecutive numbers, maybe with one swap and one duplicate: the cases
                # the kernel's resync and reorder rules are about.
                nss = list(range(op["start"], op["start"] + op["count"]))
                if op["swap"] is not None and op["swap"] + 1 < len(nss):
                    k = op["swap"]
                    nss[k], nss[k + 1] = nss[k + 1], nss[k]
                if op["dup"]:
                    nss.append(nss[len(nss) // 2])
                datas = [
                    _payload(
                        tcfg,
                        scfg,
                        {**RUN_DEFAULTS, "sid": sid, "ns": n, "frame": bytes([n % 256]) * 16},
                    )
                    for n in nss
                ]
            for data in datas:
                (rs, rf), (fs, ff) = ref.receive(data, now), fp.receive(data, now)
                assert rf == ff
                assert (rs and rs.session_id) == (fs and fs.session_id)
        elif kind == "foreign":
            data = op["sid"].to_bytes(4, "big") + bytes(8)
            if tcfg.encap is Encap.UDP:
                data = b"\x00\x03\x00\x00" + data
            data = data[: op["cut"]]
            host = str(tcfg.local) if op["host"] == "local" else op["host"]
            ref.receive_foreign(data, host)
            fp.receive_foreign(data, host)
        elif kind == "tx":
            assert ref.sessions[sid].encapsulate(op["frame"]) == fp.sessions[sid].encapsulate(
                op["frame"]
            )
        elif kind == "time":
            now += op["dt"]
            for s in scfgs:
                assert ref.sessions[s.session_id].poll(now) == fp.sessions[s.session_id].poll(now)
        elif kind == "mtu":
            ref.sessions[sid].set_mtu(op["mtu"])
            fp.sessions[sid].set_mtu(op["mtu"])
        else:
            ref.sessions[sid].send_seq = op["on"]
            fp.sessions[sid].send_seq = op["on"]
        assert _state(ref) == _state(fp)
    for scfg in scfgs:
        ref.remove(scfg.session_id)
        fp.remove(scfg.session_id)
    assert _state(ref) == _state(fp)


@needs_ext
def test_reorder_stream_matches() -> None:
    # A long stream with holes, swaps and duplicates, through both sequencers.
    import random

    rnd = random.Random(4)
    tcfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                        remote=ip_address("10.0.0.2"), encap=Encap.UDP,
                        udp_sport=1, udp_dport=2)  # fmt: skip
    for policy in SeqPolicy:
        scfg = SessionConfig(tunnel_id=1, session_id=7, peer_session_id=7, seq=SeqMode.BOTH,
                             reorder_timeout=20, seq_policy=policy)  # fmt: skip
        ref, fp = session.Session(tcfg, scfg), fast.Session(tcfg, scfg)
        now = 0.0
        order = list(range(3000))
        for i in range(0, 3000, 7):
            j = min(i + rnd.randrange(1, 5), 2999)
            order[i], order[j] = order[j], order[i]
        for k, n in enumerate(order):
            if k % 97 == 0:
                continue
            pkt = b"\x00\x03\x00\x00" + (7).to_bytes(4, "big")
            pkt += (0x40000000 | (n & 0xFFFFFF)).to_bytes(4, "big") + bytes(20)
            now += rnd.choice([0.0001, 0.001, 0.03])
            assert ref.receive(pkt, now) == fp.receive(pkt, now)
            assert ref.poll(now) == fp.poll(now)
        assert ref.counters == fp.counters
        assert ref.counters.rx_oos_packets > 0


def _udp_pair() -> tuple[Any, Any]:
    import socket

    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    a.setblocking(False)
    return a, b


@needs_ext
def test_engine_counts_what_it_receives_and_stops_cleanly() -> None:
    # No TAP needed: datagrams that never reach a session exercise the receive thread.
    import socket
    import time

    a, b = _udp_pair()
    peer = b.getsockname()
    sport = a.getsockname()[1]
    tcfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("127.0.0.1"),
                        remote=ip_address("127.0.0.1"), encap=Encap.UDP,
                        udp_sport=sport, udp_dport=peer[1])  # fmt: skip
    t = fast.Tunnel(tcfg)
    t.add(fast.Session(tcfg, SessionConfig(tunnel_id=1, session_id=7, peer_session_id=7,
                                           peer_cookie=b"\x01\x02\x03\x04")))  # fmt: skip
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        t.start(a, peer, batch=4)
        dst = a.getsockname()
        b.sendto(b"\x00\x03\x00", dst)  # too short
        b.sendto(b"\xc8\x03\x00\x00" + bytes(8), dst)  # control
        b.sendto(b"\x00\x03\x00\x00\x00\x00\x00\x09" + bytes(20), dst)  # unknown session
        b.sendto(b"\x00\x03\x00\x00\x00\x00\x00\x07" + b"\xff" * 4 + bytes(20), dst)  # cookie
        stranger.sendto(b"\x00\x03\x00\x00\x00\x00\x00\x07" + bytes(24), dst)  # wrong source
        deadline = time.monotonic() + 5
        while sum(t.drops.values()) < 4 or t.sessions[7].counters.rx_cookie_discards < 1:
            assert time.monotonic() < deadline, (t.drops, t.sessions[7].counters)
            time.sleep(0.01)
        assert t.drops == {"too_short": 1, "bad_version": 0, "control_message": 1,
                           "unknown_session": 1, "wrong_source": 1}  # fmt: skip
        assert t.counters.rx_invalid == 4
        assert t.sessions[7].counters.rx_errors == 1
        assert t.offload_stats["udp_gro"] in (True, False)
    finally:
        t.stop()
        stranger.close()
        a.close()
        b.close()


@needs_ext
def test_engine_start_stop_leaves_no_descriptors() -> None:
    a, b = _udp_pair()
    tcfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("127.0.0.1"),
                        remote=ip_address("127.0.0.1"), encap=Encap.UDP,
                        udp_sport=1, udp_dport=2)  # fmt: skip
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        t = fast.Tunnel(tcfg)
        t.start(a, b.getsockname())
        assert t.notify_fd >= 0
        t.stop()
        del t
    assert len(os.listdir("/proc/self/fd")) == before
    a.close()
    b.close()


@needs_ext
def test_session_takes_its_layout_from_python(monkeypatch: pytest.MonkeyPatch) -> None:
    # fp_session_init copies the HeaderLayout's fields and derives none; it refuses a
    # layout that would make it read or write out of bounds.
    import dataclasses

    from l2tpv3.proto.layout import HeaderLayout

    tcfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                        remote=ip_address("10.0.0.2"), encap=Encap.IP)  # fmt: skip
    scfg = SessionConfig(tunnel_id=1, session_id=7, peer_session_id=9, cookie=b"\x01\x02\x03\x04",
                         peer_cookie=b"\xaa\xbb\xcc\xdd")  # fmt: skip
    lay = HeaderLayout.for_session(tcfg, scfg)
    assert fast.Session(tcfg, scfg).encapsulate(b"x") == lay.build(b"x", None)
    for bad in (
        {"rx_cookie_offset": lay.rx_header_len},
        {"rx_l2spec_offset": lay.rx_header_len - 2},
        {"tx_header_len": lay.tx_header_len + 1},
        {"tx_prefix": bytes(17), "tx_header_len": 21},
    ):
        broken = dataclasses.replace(lay, **bad)
        monkeypatch.setattr(fast.HeaderLayout, "for_session", lambda t, s, b=broken: b)
        with pytest.raises(ValueError, match="does not fit"):
            fast.Session(tcfg, scfg)
