"""Session state, sans I/O: two sessions wired back to back in memory."""

from __future__ import annotations

from ipaddress import ip_address

from hypothesis import given
from hypothesis import strategies as st

from l2tpv3.config import Encap, L2SpecType, SeqMode, SessionConfig, TunnelConfig
from l2tpv3.io.datapath import Implementation
from l2tpv3.proto.api import SessionAPI
from l2tpv3.proto.session import FRAME_TOO_LONG, FRAME_TOO_SHORT
from tests.support.configs import UdpPorts

FRAME = bytes(range(14)) + b"payload"

# Every test here runs against the pure-Python classes and the Cython ones (``sansio``).


def _pair(
    sansio: Implementation,
    seq_a: SeqMode = SeqMode.NONE,
    seq_b: SeqMode = SeqMode.NONE,
    encap: Encap = Encap.UDP,
    l2spec: L2SpecType = L2SpecType.DEFAULT,
    cookies: tuple[str, str] = ("", ""),
    reorder_timeout: int = 0,
) -> tuple[SessionAPI, SessionAPI]:
    udp: UdpPorts = {"udp_sport": 1, "udp_dport": 2} if encap is Encap.UDP else {}
    addr_a, addr_b = ip_address("10.0.0.1"), ip_address("10.0.0.2")
    cookie_a, cookie_b = bytes.fromhex(cookies[0]), bytes.fromhex(cookies[1])
    ta = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=addr_a, remote=addr_b,
                      encap=encap, **udp)  # fmt: skip
    tb = TunnelConfig(tunnel_id=2, peer_tunnel_id=1, local=addr_b, remote=addr_a,
                      encap=encap, **udp)  # fmt: skip
    a = sansio.session(ta, SessionConfig(tunnel_id=1, session_id=10, peer_session_id=20,
                                         cookie=cookie_a, peer_cookie=cookie_b,
                                         l2spec_type=l2spec, seq=seq_a,
                                         reorder_timeout=reorder_timeout))  # fmt: skip
    b = sansio.session(tb, SessionConfig(tunnel_id=2, session_id=20, peer_session_id=10,
                                         cookie=cookie_b, peer_cookie=cookie_a,
                                         l2spec_type=l2spec, seq=seq_b,
                                         reorder_timeout=reorder_timeout))  # fmt: skip
    return a, b


def test_frames_cross_and_counters_agree(sansio: Implementation) -> None:
    a, b = _pair(sansio, cookies=("deadbeef", "0102030405060708"))
    for i in range(5):
        frame = FRAME + bytes([i])
        assert b.receive(a.encapsulate(frame), 0.0) == [frame]
        assert a.receive(b.encapsulate(frame), 0.0) == [frame]
    assert a.counters.tx_packets == b.counters.rx_packets == 5
    assert a.counters.tx_bytes == b.counters.rx_bytes
    # Header: UDP word 4 + session 4 + cookie 4 + sublayer 4 = 16 bytes per packet.
    assert a.counters.tx_bytes == sum(len(FRAME) + 1 + 16 for _ in range(5))
    assert b.counters.tx_bytes == sum(len(FRAME) + 1 + 20 for _ in range(5))


def test_lac_mode_follows_the_peer(sansio: Implementation) -> None:
    # Kernel l2tp_recv_common: an `ip l2tp` session (LAC mode) starts sending sequence
    # numbers when the peer's packets carry them, and stops when they stop.
    a, b = _pair(sansio, seq_a=SeqMode.SEND, seq_b=SeqMode.NONE)
    assert not b.send_seq
    b.receive(a.encapsulate(FRAME), 0.0)
    assert b.send_seq
    pkt = b.encapsulate(FRAME)
    assert pkt[8:12] == (0x40000000).to_bytes(4, "big")
    a.send_seq = False
    b.receive(a.encapsulate(FRAME), 0.0)
    assert not b.send_seq
    assert b.encapsulate(FRAME)[8:12] == b"\0\0\0\0"


def test_recv_seq_drops_unsequenced(sansio: Implementation) -> None:
    a, b = _pair(sansio, seq_a=SeqMode.NONE, seq_b=SeqMode.RECV)
    assert b.receive(a.encapsulate(FRAME), 0.0) == []
    assert b.counters.rx_seq_discards == 1
    assert b.counters.rx_errors == 1
    assert b.counters.rx_packets == 0


def test_sequence_numbers_count_up_and_wrap(sansio: Implementation) -> None:
    a, _ = _pair(sansio, seq_a=SeqMode.BOTH, seq_b=SeqMode.BOTH)
    a.ns = 0xFFFFFE
    sent = [a.encapsulate(FRAME) for _ in range(4)]
    assert [int.from_bytes(p[8:12], "big") for p in sent] == [
        0x40FFFFFE, 0x40FFFFFF, 0x40000000, 0x40000001,
    ]  # fmt: skip


def test_short_inner_frame_is_counted_on_the_device(sansio: Implementation) -> None:
    a, b = _pair(sansio)
    assert b.receive(a.encapsulate(b"\x01\x02\x03"), 0.0) == []
    assert b.counters.rx_packets == 1  # the session received it, as in the kernel
    assert b.drops[FRAME_TOO_SHORT] == 1


def test_frame_longer_than_mtu_plus_18_is_dropped_on_the_device(sansio: Implementation) -> None:
    a, b = _pair(sansio)
    b.set_mtu(100)
    ok, too_long = bytes(118), bytes(119)
    assert b.receive(a.encapsulate(ok), 0.0) == [ok]
    assert b.receive(a.encapsulate(too_long), 0.0) == []
    assert b.counters.rx_packets == 2
    assert b.drops[FRAME_TOO_LONG] == 1


def test_short_session_header_is_an_error(sansio: Implementation) -> None:
    a, b = _pair(sansio, cookies=("deadbeef", "deadbeef"))
    pkt = a.encapsulate(FRAME)
    assert b.receive(pkt[:10], 0.0) == []
    assert b.counters.rx_errors == 1


def test_tx_failed_moves_the_count_to_errors(sansio: Implementation) -> None:
    a, _ = _pair(sansio)
    pkt = a.encapsulate(FRAME)
    a.tx_failed(len(pkt))
    assert (a.counters.tx_packets, a.counters.tx_bytes, a.counters.tx_errors) == (0, 0, 1)


def test_reorder_queue_releases_in_order(sansio: Implementation) -> None:
    a, b = _pair(sansio, seq_a=SeqMode.BOTH, seq_b=SeqMode.BOTH, reorder_timeout=100)
    frames = [FRAME + bytes([i]) for i in range(3)]
    pkts = [a.encapsulate(f) for f in frames]
    assert b.receive(pkts[0], 0.0) == [frames[0]]
    assert b.receive(pkts[2], 0.01) == []
    assert b.next_deadline() is not None
    assert b.receive(pkts[1], 0.02) == [frames[1], frames[2]]
    assert b.counters.rx_packets == 3
    # Kernel l2tp_recv_queue_skb: packet 1 was put before the queued packet 2.
    assert b.counters.rx_oos_packets == 1


@given(
    frames=st.lists(st.binary(min_size=14, max_size=200), min_size=1, max_size=20),
    encap=st.sampled_from(list(Encap)),
    l2spec=st.sampled_from(list(L2SpecType)),
    cookies=st.sampled_from([("", ""), ("01020304", "a1a2a3a4a5a6a7a8")]),
)
def test_in_memory_wire_delivers_everything(
    sansio: Implementation,
    frames: list[bytes],
    encap: Encap,
    l2spec: L2SpecType,
    cookies: tuple[str, str],
) -> None:
    seq = SeqMode.BOTH if l2spec is L2SpecType.DEFAULT else SeqMode.NONE
    a, b = _pair(sansio, seq_a=seq, seq_b=seq, encap=encap, l2spec=l2spec, cookies=cookies)
    out = [f for frame in frames for f in b.receive(a.encapsulate(frame), 0.0)]
    assert out == frames
    assert a.counters.tx_bytes == b.counters.rx_bytes
    assert b.counters.rx_errors == 0


# -- recovery (issue 11 items 2 and 3): unauthenticated input costs packets, never the
# pseudowire. Two sessions back to back, a clock, and a third session with B's
# configuration standing in for the attacker (same header, no cookie) or for B after a
# restart (numbers from 0 again).


def _exchange(a: SessionAPI, b: SessionAPI, rounds: int, now: float) -> tuple[int, int, float]:
    """A sends a frame to B, B answers, ``rounds`` times, 0.1 s apart (pings);
    the frames each side received."""
    got_b = got_a = 0
    for i in range(rounds):
        now += 0.1
        frame = FRAME + bytes([i % 256])
        got_b += len(b.receive(a.encapsulate(frame), now))
        got_a += len(a.receive(b.encapsulate(frame), now))
    return got_a, got_b, now


def test_spoofed_s_bit_switches_both_ends_and_costs_nothing(sansio: Implementation) -> None:
    # Issue 11 item 2: no cookie, sequencing off on both ends (LAC mode). One datagram
    # with B's header, the S bit and 0x7ffff0 defines A's nr and switches A's sending on;
    # A's next packet switches B on, and B numbers from 0, far behind A's nr. Before,
    # A never accepted B again; now B's packet 0 resyncs A at once.
    a, b = _pair(sansio)
    assert _exchange(a, b, 5, 0.0)[:2] == (5, 5)
    _, attacker = _pair(sansio)
    attacker.send_seq = True
    attacker.ns = 0x7FFFF0
    assert a.receive(attacker.encapsulate(FRAME), 1.0) == [FRAME]
    assert a.send_seq and a.nr == 0x7FFFF1
    assert _exchange(a, b, 20, 1.0)[:2] == (20, 20)
    assert a.send_seq and b.send_seq  # both stay in sequencing, as the kernel does
    assert a.counters.rx_errors == b.counters.rx_errors == 0


def test_spoofed_s_bit_then_the_peer_keeps_sending_without(sansio: Implementation) -> None:
    # LAC mode both ways: the spoofed S bit turns A's sequencing on, B's next packet
    # (still without) turns it off again, and nothing is lost.
    a, b = _pair(sansio)
    _, attacker = _pair(sansio)
    attacker.send_seq = True
    attacker.ns = 0x7FFFF0
    a.receive(attacker.encapsulate(FRAME), 0.0)
    assert a.send_seq
    assert a.receive(b.encapsulate(FRAME), 0.1) == [FRAME]
    assert not a.send_seq
    assert _exchange(a, b, 10, 0.1)[:2] == (10, 10)
    assert not a.send_seq and not b.send_seq


def test_spoofed_run_under_seq_both_costs_five_packets(sansio: Implementation) -> None:
    # Six spoofed consecutive numbers: the kernel's own run rule follows them, and B's
    # real numbers are then behind A's nr. Before: dead for 2**23 packets. Now B's run
    # of six takes nr back; five of B's packets are lost.
    a, b = _pair(sansio, seq_a=SeqMode.BOTH, seq_b=SeqMode.BOTH)
    _, _, now = _exchange(a, b, 50, 0.0)
    _, attacker = _pair(sansio, seq_a=SeqMode.BOTH, seq_b=SeqMode.BOTH)
    attacker.ns = 0x7FFFF0
    for _ in range(6):
        a.receive(attacker.encapsulate(FRAME), now)
    got_a, got_b, now = _exchange(a, b, 20, now)
    assert (got_a, got_b) == (15, 20)
    assert _exchange(a, b, 10, now)[:2] == (10, 10)


def test_restarted_peer_under_seq_both(sansio: Implementation) -> None:
    # Issue 11 item 3: B is killed and started again with the same configuration; its
    # numbers start at 0, far behind A's nr. Its packet 0 resyncs A at once.
    a, b = _pair(sansio, seq_a=SeqMode.BOTH, seq_b=SeqMode.BOTH)
    _, _, now = _exchange(a, b, 3000, 0.0)
    assert a.nr == 3000
    _, b = _pair(sansio, seq_a=SeqMode.BOTH, seq_b=SeqMode.BOTH)
    assert _exchange(a, b, 10, now + 5.0)[:2] == (10, 10)
    assert a.counters.rx_errors == 0


def test_restarted_peer_whose_first_packets_are_lost(sansio: Implementation) -> None:
    # Without packet 0, the run rule: the sixth consecutive number behind nr resyncs.
    a, b = _pair(sansio, seq_a=SeqMode.BOTH, seq_b=SeqMode.BOTH)
    _, _, now = _exchange(a, b, 3000, 0.0)
    _, b = _pair(sansio, seq_a=SeqMode.BOTH, seq_b=SeqMode.BOTH)
    for _ in range(3):
        b.encapsulate(FRAME)  # lost on the way
    got = [a.receive(b.encapsulate(FRAME), now + 0.1 * k) for k in range(8)]
    assert [len(g) for g in got] == [0, 0, 0, 0, 0, 1, 1, 1]
    assert a.counters.rx_errors == 5
    assert a.nr == 11
