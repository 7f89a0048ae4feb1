"""Receive sequencing, checked against hand traces of Linux net/l2tp/l2tp_core.c.

Each expected value below comes from stepping through l2tp_recv_common,
l2tp_recv_data_seq, l2tp_recv_queue_skb and l2tp_recv_dequeue by hand (initial state
from l2tp_session_create: nr 0, reorder_skip 1, nr_window_size 0x7fffff,
nr_oos_count_max 4). Where a kernel selftest (katalix l2tp-ktest seqnum.c, run against
real kernels) covers the same stream, its expected statistics are quoted.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2tpv3.config import SeqPolicy
from l2tpv3.proto.counters import Counters
from l2tpv3.proto.sequence import RxSequencer

MASK = 0xFFFFFF
WINDOW = 0x7FFFFF  # nr_max / 2: nws must be strictly below this
SEQ_FIELDS = ("rx_seq_discards", "rx_oos_packets", "rx_errors")


def make(
    timeout: float = 0.0, policy: SeqPolicy = SeqPolicy.KERNEL
) -> tuple[RxSequencer[object], Counters]:
    counters = Counters()
    return RxSequencer(counters, reorder_timeout=timeout, policy=policy), counters


def stats(c: Counters) -> tuple[int, int, int]:
    """(rx_seq_discards, rx_oos_packets, rx_errors), and nothing else may move."""
    others = {k: v for k, v in c.as_dict().items() if k not in SEQ_FIELDS}
    assert others == dict.fromkeys(others, 0)
    return c.rx_seq_discards, c.rx_oos_packets, c.rx_errors


def feed(seq: RxSequencer[object], numbers: list[int], now: float = 0.0) -> list[object]:
    out: list[object] = []
    for ns in numbers:
        out += seq.push(ns, ns, now)
    return out


# -- policy kernel, reorder_timeout 0 -----------------------------------------------


def test_in_order_stream_is_delivered_one_by_one() -> None:
    seq, c = make()
    for ns in range(10):
        assert seq.push(f"p{ns}", ns, float(ns)) == [f"p{ns}"]
    assert seq.nr == 10
    assert len(seq) == 0
    assert seq.next_deadline() is None
    assert stats(c) == (0, 0, 0)


def test_first_packet_sets_nr() -> None:
    # reorder_skip starts at 1 ("Use NR of first received packet").
    seq, c = make()
    assert seq.push("a", 1000, 0.0) == ["a"]
    assert seq.nr == 1001
    assert seq.push("b", 1001, 0.0) == ["b"]
    assert stats(c) == (0, 0, 0)


@pytest.mark.parametrize(
    ("first", "delivered", "errors"),
    [
        (0, True, 0),
        (1, True, 0),
        (0x7FFFFE, True, 0),  # l2tp-ktest rxwindow: 8388606 accepted
        (0x7FFFFF, False, 1),  # 8388607: outside the window, rx_errors only
        (0xFFFFFF, False, 1),  # 16777215
    ],
)
def test_first_packet_is_window_checked_against_zero(
    first: int, delivered: bool, errors: int
) -> None:
    seq, c = make()
    assert seq.push("x", first, 0.0) == (["x"] if delivered else [])
    assert stats(c) == (0, 0, errors)
    assert seq.nr == ((first + 1) & MASK if delivered else 0)


def advance(seq: RxSequencer[object], timeout: float, target: int, now: float) -> float:
    """Drive a kernel-policy sequencer's nr to target with traffic it accepts.

    Without reordering: a run of six consecutive numbers ahead of nr resyncs onto it
    (five out-of-sequence drops, then reorder_skip). With reordering: a packet ahead is
    held, expires, sets reorder_skip, and the same number sent again becomes nr. Hops
    stay well inside the window. Returns the time reached.
    """
    for _ in range(16):
        if seq.nr == target:
            return now
        hop = min((target - seq.nr) & MASK, 0x400000)
        if timeout == 0.0:
            if hop < 6:
                for _ in range(hop):
                    seq.push("hop", seq.nr, now)
            else:
                first = (seq.nr + hop - 6) & MASK
                for k in range(6):
                    seq.push("hop", (first + k) & MASK, now)
        else:
            last = (seq.nr + hop - 1) & MASK
            if last != seq.nr:
                seq.push("hop", last, now)
                now += 2 * timeout + 1.0
                seq.poll(now)
            seq.push("hop", last, now)
    raise AssertionError(f"nr stuck at {seq.nr:#x}, wanted {target:#x}")


def test_wrap_in_order_across_zero() -> None:
    # A first packet of 0xfffffe is outside the window of nr 0, so get there the way a
    # real peer would: 0x7ffffe is accepted as the first packet (nr 0x7fffff), then
    # 0xfffff0.. is in the window but out of sequence; its sixth packet resyncs.
    seq, c = make()
    assert seq.push("a", 0x7FFFFE, 0.0) == ["a"]
    got = feed(seq, list(range(0xFFFFF0, 0xFFFFF6)))
    assert got == [0xFFFFF5]
    assert stats(c) == (5, 0, 5)
    assert seq.nr == 0xFFFFF6
    got = feed(seq, [*range(0xFFFFF6, 0x1000000), 0, 1, 2])
    assert got == [*range(0xFFFFF6, 0x1000000), 0, 1, 2]
    assert seq.nr == 3
    assert stats(c) == (5, 0, 5)


@pytest.mark.parametrize("timeout", [0.0, 1.0])
def test_wrap_fffffe_ffffff_0_1(timeout: float) -> None:
    seq, c = make(timeout)
    now = advance(seq, timeout, 0xFFFFFE, 0.0)
    base = stats(c)
    got = [seq.push(n, n, now) for n in (0xFFFFFE, 0xFFFFFF, 0, 1)]
    assert got == [[0xFFFFFE], [0xFFFFFF], [0], [1]]
    assert seq.nr == 2
    assert stats(c) == base


def test_advance_helper_counts_what_the_kernel_counts() -> None:
    # The helper's hops are themselves kernel traces: first packet 0x3ffffa (in the
    # window of nr 0) sets nr, the rest of its run is in order, so nr 0x400000 costs
    # nothing; the next hop's run 0x7ffffa.. costs five drops.
    seq, c = make()
    advance(seq, 0.0, 0x400000, 0.0)
    assert stats(c) == (0, 0, 0)
    advance(seq, 0.0, 0x800000, 0.0)
    assert stats(c) == (5, 0, 5)
    seq, c = make(1.0)
    # nr 0 -> first packet 0x3fffff sets nr 0x400000 at once; the repeat of it is then
    # behind nr: one window drop.
    advance(seq, 1.0, 0x400000, 0.0)
    assert stats(c) == (0, 0, 1)
    # Next hop: 0x7fffff held, expired (one drop), sent again: nr 0x800000.
    advance(seq, 1.0, 0x800000, 0.0)
    assert stats(c) == (1, 0, 2)


def test_one_loss_costs_five_more_packets() -> None:
    # l2tp-ktest noqueue: 0, 2..8 -> rx_packets 3, rx_oos_discards 5, rx_errors 5.
    # Trace: 2: nr_oos 0 -> next 1 != 2, count 0, drop. 3..6: count 1..4, drop.
    # 7: count 5 > 4 -> reorder_skip, queued, walk sets nr 7 and releases it. 8 in order.
    seq, c = make()
    out = [seq.push(n, n, 0.0) for n in [0, 2, 3, 4, 5, 6, 7, 8]]
    assert out == [[0], [], [], [], [], [], [7], [8]]
    assert stats(c) == (5, 0, 5)
    assert seq.nr == 9


def test_loss_in_long_stream_exact_drops() -> None:
    seq, c = make()
    stream = [n for n in range(20) if n != 10]
    assert feed(seq, stream) == [*range(10), *range(16, 20)]
    assert stats(c) == (5, 0, 5)


def test_broken_run_restarts_the_count() -> None:
    # 2,3 then 5 breaks the run (5 != nr_oos+1), count restarts at 0 on 5: the resync
    # happens at 10 (5:0, 6:1, 7:2, 8:3, 9:4, 10:5).
    seq, c = make()
    assert feed(seq, [0, 2, 3, 5, 6, 7, 8, 9, 10, 11]) == [0, 10, 11]
    assert stats(c) == (7, 0, 7)


def test_late_packet_is_dropped_without_reordering() -> None:
    # l2tp-ktest noqueue: 0, 2, 1 -> rx_packets 2, rx_oos_discards 1, rx_errors 1.
    seq, c = make()
    assert [seq.push(n, n, 0.0) for n in (0, 2, 1)] == [[0], [], [1]]
    assert stats(c) == (1, 0, 1)
    assert seq.nr == 2


def test_duplicates_and_old_packets_are_outside_the_window() -> None:
    seq, c = make()
    feed(seq, list(range(5)))  # nr 5
    assert seq.push("dup", 4, 0.0) == []  # nws 0xffffff
    assert seq.push("old", 1, 0.0) == []  # nws 0xfffffc
    assert stats(c) == (0, 0, 2)  # window drops count rx_errors only
    assert seq.push("next", 5, 0.0) == ["next"]


def test_very_old_packet_falls_into_the_window() -> None:
    # Older than nr by more than half the space: it looks new, is out of sequence and
    # is dropped as such (rx_seq_discards as well as rx_errors).
    seq, c = make()
    feed(seq, list(range(5)))  # nr 5
    ancient = (5 - 0x800002) & MASK  # nws 0x7ffffe
    assert seq.push("ancient", ancient, 0.0) == []
    assert stats(c) == (1, 0, 1)


@pytest.mark.parametrize(
    ("ahead", "expected"),
    [
        (0x7FFFFE, (1, 0, 1)),  # inside: out-of-sequence drop
        (0x7FFFFF, (0, 0, 1)),  # nws == nr_window_size: outside
        (0x800000, (0, 0, 1)),
        (0xFFFFFF, (0, 0, 1)),
    ],
)
def test_window_boundary(ahead: int, expected: tuple[int, int, int]) -> None:
    seq, c = make()
    feed(seq, list(range(5)))  # nr 5
    assert seq.push("x", (5 + ahead) & MASK, 0.0) == []
    assert stats(c) == expected
    assert seq.nr == 5


@pytest.mark.parametrize(("ahead", "held"), [(0x7FFFFE, 1), (0x7FFFFF, 0)])
def test_window_boundary_with_reordering(ahead: int, held: int) -> None:
    seq, c = make(timeout=1.0)
    feed(seq, list(range(5)))
    assert seq.push("x", (5 + ahead) & MASK, 0.0) == []
    assert len(seq) == held
    assert stats(c) == (0, 0, 1 - held)


def test_unsequenced_packets_pass_straight_through_without_reordering() -> None:
    seq, c = make()
    assert seq.push("u1", None, 0.0) == ["u1"]
    assert seq.nr == 0
    assert feed(seq, [7]) == [7]
    assert seq.push("u2", None, 0.0) == ["u2"]
    assert seq.nr == 8
    assert stats(c) == (0, 0, 0)


# -- policy kernel, reorder_timeout > 0 -----------------------------------------------


def test_reorder_holds_and_releases_in_order() -> None:
    # l2tp-ktest queue: 0, 2, 1 -> rx_packets 3, rx_oos_packets 1.
    seq, c = make(timeout=0.25)
    assert seq.push(0, 0, 0.0) == [0]
    assert seq.push(2, 2, 0.125) == []
    assert len(seq) == 1
    assert seq.next_deadline() == math.nextafter(0.375, math.inf)
    assert seq.push(1, 1, 0.25) == [1, 2]
    assert stats(c) == (0, 1, 0)
    assert len(seq) == 0
    assert seq.next_deadline() is None
    assert seq.nr == 3


def test_reorder_several_held() -> None:
    seq, c = make(timeout=1.0)
    seq.push(0, 0, 0.0)
    # 4 to the tail, 3 before 4 (oos 1), 2 before 3 (oos 2), 1 before 2 (oos 3).
    assert [seq.push(n, n, 0.0) for n in (4, 3, 2)] == [[], [], []]
    assert seq.push(1, 1, 0.0) == [1, 2, 3, 4]
    assert stats(c) == (0, 3, 0)


def test_in_order_tail_insert_is_not_counted_oos() -> None:
    seq, c = make(timeout=1.0)
    seq.push(0, 0, 0.0)
    assert [seq.push(n, n, 0.0) for n in (2, 3, 4)] == [[], [], []]
    assert stats(c) == (0, 0, 0)
    assert seq.push(1, 1, 0.0) == [1, 2, 3, 4]
    assert stats(c) == (0, 1, 0)


def test_expiry_through_push() -> None:
    # l2tp-ktest queue: 0, 2, (pause > timeout), 3 -> rx_packets 2, rx_oos_discards 1,
    # rx_errors 1. 3 goes behind 2; the walk drops the expired 2, sets reorder_skip,
    # then takes nr from 3 and releases it. 2 is lost even though it was next in line.
    seq, c = make(timeout=0.1)
    assert seq.push(0, 0, 0.0) == [0]
    assert seq.push(2, 2, 0.0) == []
    assert seq.push(3, 3, 0.2) == [3]
    assert stats(c) == (1, 0, 1)
    assert seq.nr == 4
    assert len(seq) == 0


def test_expiry_through_poll() -> None:
    seq, c = make(timeout=0.1)
    seq.push(0, 0, 0.0)
    seq.push(2, 2, 0.0)
    deadline = seq.next_deadline()
    assert deadline == math.nextafter(0.1, math.inf)
    assert seq.poll(0.05) == []
    assert seq.poll(0.1) == []  # time_after is strict: not expired at the instant
    assert len(seq) == 1
    assert stats(c) == (0, 0, 0)
    assert seq.poll(deadline) == []
    assert stats(c) == (1, 0, 1)
    assert len(seq) == 0
    assert seq.next_deadline() is None
    # reorder_skip stays set: the next packet defines nr, as in the push path.
    assert seq.push(3, 3, 0.3) == [3]
    assert seq.nr == 4
    assert stats(c) == (1, 0, 1)


def test_poll_releases_what_follows_an_expired_head() -> None:
    seq, c = make(timeout=0.1)
    seq.push(0, 0, 0.0)
    seq.push(2, 2, 0.0)  # expires 0.1
    seq.push(3, 3, 0.05)  # expires 0.15
    assert seq.next_deadline() == math.nextafter(0.1, math.inf)
    assert seq.poll(0.12) == [3]  # 2 dropped, nr jumps to 3
    assert stats(c) == (1, 0, 1)
    assert seq.nr == 4


def test_head_blocks_expiry_of_entries_behind_it() -> None:
    # 3 arrives first (expires 0.25), 2 later (expires 0.375) and goes in front of it.
    # The walk only reaches 3 once 2 has gone, so nothing moves before 0.375; then both
    # are stale and both are dropped.
    seq, c = make(timeout=0.25)
    seq.push(0, 0, 0.0)
    seq.push(3, 3, 0.0)
    seq.push(2, 2, 0.125)
    assert stats(c) == (0, 1, 0)
    assert seq.next_deadline() == math.nextafter(0.375, math.inf)
    assert seq.poll(0.3) == []
    assert len(seq) == 2
    assert seq.poll(0.4) == []
    assert stats(c) == (2, 1, 2)
    assert len(seq) == 0


def test_poll_gives_the_same_result_as_the_next_push() -> None:
    # 2 and 3 are held waiting for 1 and expire. Kernel (no poll): 5 goes to the tail,
    # the walk drops 2 and 3, reorder_skip makes 5 nr; 4 is then behind nr: window
    # drop. With poll the drops happen earlier and 5 finds an empty queue with
    # reorder_skip set: the same outcome.
    def run(with_poll: bool) -> tuple[list[object], tuple[int, int, int], int]:
        seq, c = make(timeout=0.25)
        out = seq.push(0, 0, 0.0) + seq.push(2, 2, 0.0) + seq.push(3, 3, 0.125)
        if with_poll:
            out += seq.poll(0.5)
            assert stats(c) == (2, 0, 2)
        out += seq.push(5, 5, 1.0) + seq.push(4, 4, 1.0)
        return out, stats(c), seq.nr

    assert run(True) == run(False) == ([0, 5], (2, 0, 3), 6)


def test_poll_differs_when_a_late_packet_sorts_before_an_expired_one() -> None:
    # Kernel: 2 arrives after 3 expired and sorts in front of it (oos); the walk stops
    # at 2 (waiting for 1), so the stale 3 stays, and both expire: 2 is lost.
    seq, c = make(timeout=0.25)
    seq.push(0, 0, 0.0)
    seq.push(3, 3, 0.0)
    assert seq.push(2, 2, 0.5) == []
    assert len(seq) == 2
    assert stats(c) == (0, 1, 0)
    assert seq.poll(2.0) == []
    assert stats(c) == (2, 1, 2)
    # Timer-driven walk: 3 is dropped at its deadline with reorder_skip set, so 2
    # becomes nr when it arrives and is delivered.
    seq, c = make(timeout=0.25)
    seq.push(0, 0, 0.0)
    seq.push(3, 3, 0.0)
    deadline = seq.next_deadline()
    assert deadline is not None
    assert seq.poll(deadline) == []
    assert seq.push(2, 2, 0.5) == [2]
    assert stats(c) == (1, 0, 1)
    assert seq.nr == 3


def test_unsequenced_packets_queue_behind_sequenced() -> None:
    seq, c = make(timeout=1.0)
    assert seq.push(0, 0, 0.0) == [0]
    assert seq.push(2, 2, 0.0) == []
    assert seq.push("u", None, 0.0) == []  # tail, behind 2
    assert len(seq) == 2
    assert seq.push(1, 1, 0.0) == [1, 2, "u"]
    assert seq.nr == 3  # unsequenced packets do not move nr
    assert stats(c) == (0, 1, 0)


def test_sequenced_packet_after_unsequenced_goes_behind_it() -> None:
    seq, c = make(timeout=1.0)
    seq.push(0, 0, 0.0)
    seq.push(2, 2, 0.0)
    seq.push("u", None, 0.0)
    assert seq.push(3, 3, 0.0) == []  # no larger sequenced entry: tail, no oos
    assert stats(c) == (0, 0, 0)
    assert seq.push(1, 1, 0.0) == [1, 2, "u", 3]


def test_unsequenced_entries_expire_too() -> None:
    seq, c = make(timeout=0.1)
    seq.push(0, 0, 0.0)
    seq.push(2, 2, 0.0)
    seq.push("u", None, 0.05)
    assert seq.poll(0.2) == []
    assert stats(c) == (2, 0, 2)


def test_duplicate_of_a_held_packet_is_stuck_until_it_expires() -> None:
    # The kernel's `>` puts the second 2 behind the first. After 1, 2 are released the
    # duplicate sits at the head with ns != nr; 3 goes behind it and waits until the
    # duplicate expires, is dropped, and reorder_skip lets nr jump to 3.
    seq, c = make(timeout=1.0)
    seq.push(0, 0, 0.0)
    assert seq.push("2a", 2, 0.0) == []
    assert seq.push("2b", 2, 0.0) == []
    assert stats(c) == (0, 0, 0)
    assert seq.push(1, 1, 0.0) == [1, "2a"]
    assert stats(c) == (0, 1, 0)
    assert len(seq) == 1
    assert seq.push(3, 3, 0.5) == []
    assert stats(c) == (0, 1, 0)  # 3 went behind the stale duplicate, no oos
    assert seq.next_deadline() == math.nextafter(1.0, math.inf)
    assert seq.poll(1.01) == [3]
    assert stats(c) == (1, 1, 1)
    assert seq.nr == 4


def test_reorder_across_the_wrap() -> None:
    # Deliberate difference: the kernel's raw `>` keeps 0 in front of 0xfffffe and
    # 0xffffff, so 0 blocks the queue until it expires and is lost.
    seq, c = make(timeout=1.0)
    now = advance(seq, 1.0, 0xFFFFFE, 0.0)
    base_discards, _, base_errors = stats(c)
    assert seq.push(0, 0, now) == []
    assert seq.push(0xFFFFFF, 0xFFFFFF, now) == []  # in front of 0: oos
    assert seq.push(1, 1, now) == []  # behind 0: tail
    assert seq.push(0xFFFFFE, 0xFFFFFE, now) == [0xFFFFFE, 0xFFFFFF, 0, 1]
    assert stats(c) == (base_discards, 2, base_errors)
    assert seq.nr == 2


def test_first_packet_sets_nr_with_reordering() -> None:
    seq, c = make(timeout=1.0)
    assert seq.push("a", 500, 0.0) == ["a"]
    assert seq.nr == 501
    assert seq.push("b", 499, 0.0) == []  # behind nr now: window drop
    assert stats(c) == (0, 0, 1)


# -- policy rfc3931 -----------------------------------------------------------------


def test_rfc_first_packet_sets_nr_anywhere() -> None:
    seq, c = make(policy=SeqPolicy.RFC3931)
    assert seq.push("a", 0xFFFFF0, 0.0) == ["a"]
    assert seq.nr == 0xFFFFF1
    assert stats(c) == (0, 0, 0)


def test_rfc_gap_is_accepted_at_once_and_old_is_discarded() -> None:
    seq, c = make(policy=SeqPolicy.RFC3931)
    assert [seq.push(n, n, 0.0) for n in (0, 5, 6)] == [[0], [5], [6]]
    assert stats(c) == (0, 0, 0)
    assert seq.push(3, 3, 0.0) == []  # older than the last in-order packet
    assert seq.push(6, 6, 0.0) == []  # duplicate
    assert stats(c) == (2, 0, 2)
    assert seq.nr == 7


@pytest.mark.parametrize(
    ("ahead", "accepted"),
    [(0, True), (0x7FFFFE, True), (0x7FFFFF, False), (0x800000, False), (MASK, False)],
)
def test_rfc_half_space_boundary(ahead: int, accepted: bool) -> None:
    # "new" is 0 < ns - last < 2**23 with last = nr - 1 (RFC 1982 serial arithmetic).
    seq, c = make(policy=SeqPolicy.RFC3931)
    seq.push("sync", 9, 0.0)  # nr 10
    ns = (10 + ahead) & MASK
    assert seq.push("x", ns, 0.0) == (["x"] if accepted else [])
    assert stats(c) == ((0, 0, 0) if accepted else (1, 0, 1))


def test_rfc_wrap() -> None:
    seq, c = make(policy=SeqPolicy.RFC3931)
    assert feed(seq, [0xFFFFFE, 0xFFFFFF, 0, 1]) == [0xFFFFFE, 0xFFFFFF, 0, 1]
    assert seq.nr == 2
    assert stats(c) == (0, 0, 0)


def test_rfc_reorder_holds_then_skips_the_gap_releasing_everything() -> None:
    seq, c = make(timeout=1.0, policy=SeqPolicy.RFC3931)
    assert seq.push(0, 0, 0.0) == [0]
    assert seq.push(3, 3, 0.0) == []  # expires 1.0
    assert seq.push(2, 2, 0.5) == []  # expires 1.5, goes in front of 3
    assert stats(c) == (0, 1, 0)
    # The oldest held packet sets the deadline, even though it is not at the head.
    assert seq.next_deadline() == math.nextafter(1.0, math.inf)
    assert seq.poll(1.0) == []
    assert seq.poll(seq.next_deadline() or 0.0) == [2, 3]
    assert seq.nr == 4
    assert stats(c) == (0, 1, 0)  # released, not dropped
    assert seq.push(1, 1, 2.0) == []  # the gap arrives too late: old
    assert stats(c) == (1, 1, 1)


def test_rfc_reorder_in_order_fill() -> None:
    seq, c = make(timeout=1.0, policy=SeqPolicy.RFC3931)
    seq.push(0, 0, 0.0)
    assert seq.push(2, 2, 0.0) == []
    assert seq.push("u", None, 0.0) == []
    assert seq.push(1, 1, 0.0) == [1, 2, "u"]
    assert stats(c) == (0, 1, 0)


def test_rfc_duplicate_of_held_packet_is_discarded() -> None:
    seq, c = make(timeout=1.0, policy=SeqPolicy.RFC3931)
    seq.push(0, 0, 0.0)
    assert seq.push("2a", 2, 0.0) == []
    assert seq.push("2b", 2, 0.0) == []
    assert len(seq) == 1
    assert stats(c) == (1, 0, 1)
    assert seq.push(1, 1, 0.0) == [1, "2a"]


def test_rfc_unsequenced_without_reordering() -> None:
    seq, c = make(policy=SeqPolicy.RFC3931)
    assert seq.push("u", None, 0.0) == ["u"]
    assert seq.push(4, 4, 0.0) == [4]
    assert seq.push("v", None, 0.0) == ["v"]
    assert stats(c) == (0, 0, 0)


# -- recovery: runs behind nr and packet 0 (both policies) ---------------------------
#
# The kernel drops a packet behind nr (outside the window) without counting it in any
# run, so a restarted peer or a spoofed jump of nr leaves it deaf until the peer's
# numbers catch up. Here six consecutive numbers behind nr, or packet 0, resync.

KINDS = [
    (0.0, SeqPolicy.KERNEL),
    (1.0, SeqPolicy.KERNEL),
    (0.0, SeqPolicy.RFC3931),
    (1.0, SeqPolicy.RFC3931),
]


def _behind(policy: SeqPolicy, n: int) -> tuple[int, int, int]:
    # A packet behind nr: rx_errors only under the kernel policy (window check), a
    # discard as well under the RFC policy.
    return (n if policy is SeqPolicy.RFC3931 else 0, 0, n)


@pytest.mark.parametrize(("timeout", "policy"), KINDS)
def test_spoofed_first_packet_costs_five_packets(timeout: float, policy: SeqPolicy) -> None:
    # Issue 11 item 2: one datagram with the S bit and 0x7ffff0 defines nr (reorder_skip
    # is set); the peer's real numbers are then behind it. Kernel: dead until they
    # reach 0x7ffff1. Here the sixth of the run resyncs.
    seq, c = make(timeout, policy)
    assert seq.push("spoof", 0x7FFFF0, 0.0) == ["spoof"]
    got = [seq.push(n, n, 0.1 * n) for n in range(1, 9)]
    assert got == [[], [], [], [], [], [6], [7], [8]]
    assert stats(c) == _behind(policy, 5)
    assert seq.nr == 9
    assert len(seq) == 0


@pytest.mark.parametrize(("timeout", "policy"), KINDS)
def test_packet_zero_behind_nr_resyncs_at_once(timeout: float, policy: SeqPolicy) -> None:
    # Issue 11 item 3: a restarted peer numbers from 0 again (l2tp_session_create).
    seq, c = make(timeout, policy)
    feed(seq, list(range(1000)))
    assert seq.push("restart", 0, 1.0) == ["restart"]
    assert feed(seq, [1, 2, 3], 1.0) == [1, 2, 3]
    assert seq.nr == 4
    assert stats(c) == (0, 0, 0)


def test_packet_zero_in_the_window_resyncs_at_once() -> None:
    # Past half the space, 0 is ahead of nr: the kernel drops it as out of sequence and
    # resyncs on its run's sixth packet; here 0 resyncs at once.
    seq, c = make()
    advance(seq, 0.0, 0x900000, 0.0)
    base = stats(c)
    assert feed(seq, [0x900000, 0, 1]) == [0x900000, 0, 1]
    assert stats(c) == base


@pytest.mark.parametrize(("timeout", "policy"), KINDS)
def test_restarted_peer_whose_first_packets_were_lost(timeout: float, policy: SeqPolicy) -> None:
    seq, c = make(timeout, policy)
    feed(seq, list(range(1000)))
    assert feed(seq, list(range(3, 11)), 1.0) == [8, 9, 10]  # 3..7 lost, 8 resyncs
    assert stats(c) == _behind(policy, 5)


@pytest.mark.parametrize(("timeout", "policy"), KINDS)
def test_broken_run_behind_nr_restarts_the_count(timeout: float, policy: SeqPolicy) -> None:
    seq, c = make(timeout, policy)
    feed(seq, list(range(1000)))
    # 500, 501, 503 breaks the run; 503..508 is the run of six.
    assert feed(seq, [500, 501, *range(503, 510)], 1.0) == [508, 509]
    assert stats(c) == _behind(policy, 7)


@pytest.mark.parametrize(("timeout", "policy"), KINDS)
def test_duplicates_interleaved_with_the_stream_never_resync(
    timeout: float, policy: SeqPolicy
) -> None:
    # Late copies of consecutive packets, each followed by a packet nr accepts: every
    # accepted packet ends the run, so nr never goes back.
    seq, c = make(timeout, policy)
    feed(seq, list(range(100)))
    out = []
    for k in range(20):
        out += seq.push(("dup", 90 + k), 90 + k, 1.0)
        out += seq.push(100 + k, 100 + k, 1.0)
    assert out == list(range(100, 120))
    assert seq.nr == 120
    assert stats(c) == _behind(policy, 20)


@pytest.mark.parametrize(
    ("policy", "out", "expected"),
    [
        (SeqPolicy.KERNEL, [8], (2, 0, 7)),  # held: dropped as expired (and counted)
        (SeqPolicy.RFC3931, [12, 13, 8], (5, 0, 5)),  # held: released, never dropped
    ],
)
def test_resync_expires_what_the_queue_held(
    policy: SeqPolicy, out: list[int], expected: tuple[int, int, int]
) -> None:
    # 12 and 13 wait for 10 and 11 when the peer restarts; its run of six (3..8)
    # resyncs: the gaps will never come, so the queue expires at once by the policy's
    # own rule, then the sixth of the run is delivered.
    seq, c = make(1.0, policy)
    feed(seq, list(range(10)))
    assert feed(seq, [12, 13]) == []
    assert len(seq) == 2
    assert feed(seq, list(range(3, 9)), 0.5) == out
    assert len(seq) == 0
    assert seq.next_deadline() is None
    assert seq.nr == 9
    assert stats(c) == expected


def test_spoofed_packet_far_ahead_is_held_costs_nothing_and_expires() -> None:
    # Synchronised, with reordering: a packet half the space ahead is held; the real
    # stream is put in front of it (rx_oos_packets) and delivered as it comes; at its
    # deadline it is dropped and the stream goes on. Driven by the clock.
    seq, c = make(0.1)
    feed(seq, list(range(10)))
    assert seq.push("spoof", 10 + 0x7FFFF0, 0.0) == []
    now, out = 0.0, []
    for n in range(10, 30):
        now += 0.01
        out += seq.push(n, n, now)
        deadline = seq.next_deadline()
        if deadline is not None and deadline <= now:
            out += seq.poll(now)
    assert out == list(range(10, 30))
    assert stats(c) == (1, 11, 1)  # put in front of it until it expired at 0.1
    assert len(seq) == 0


def test_spoofed_packet_far_ahead_without_reordering_is_one_drop() -> None:
    seq, c = make()
    feed(seq, list(range(10)))
    assert seq.push("spoof", 10 + 0x7FFFF0, 0.0) == []
    assert feed(seq, list(range(10, 20))) == list(range(10, 20))
    assert stats(c) == (1, 0, 1)


@pytest.mark.parametrize(("timeout", "policy"), KINDS)
def test_spoofed_run_then_the_real_stream_resyncs_back(timeout: float, policy: SeqPolicy) -> None:
    # Six spoofed consecutive numbers move nr (the kernel's own run rule, or RFC "new"
    # packets); the real stream, now behind, takes it back with its own run of six.
    # Kernel policy with reordering: the spoofed run is only held, expires, and the
    # real stream defines nr again at once.
    lost = 0 if (timeout, policy) == (1.0, SeqPolicy.KERNEL) else 5
    seq, c = make(timeout, policy)
    now = advance(seq, timeout, 1000, 0.0) if policy is SeqPolicy.KERNEL else 0.0
    if policy is SeqPolicy.RFC3931:
        feed(seq, list(range(1000)))
    base = stats(c)
    feed(seq, [0x7FFFF0 + k for k in range(6)], now)
    now += 5.0
    seq.poll(now)
    mid = stats(c)
    got = [x for n in range(1000, 1010) for x in seq.push(n, n, now)]
    assert got == list(range(1000 + lost, 1010))
    after = stats(c)
    assert after[2] - mid[2] == lost
    assert mid[2] >= base[2]
    assert seq.nr == 1010


# -- construction and shape -----------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.001, math.nan, math.inf])
def test_bad_reorder_timeout(bad: float) -> None:
    with pytest.raises(ValueError, match="reorder_timeout"):
        RxSequencer(Counters(), reorder_timeout=bad)


def test_policy_accepts_its_string_value() -> None:
    seq = RxSequencer[object](Counters(), policy=SeqPolicy("rfc3931"))
    seq.push("a", 0, 0.0)
    assert seq.push("b", 5, 0.0) == ["b"]  # would be an OOS drop under the kernel


def test_no_instance_dict() -> None:
    seq, _ = make()
    assert not hasattr(seq, "__dict__")


# -- properties -------------------------------------------------------------------------

POLICIES = st.sampled_from([SeqPolicy.KERNEL, SeqPolicy.RFC3931])
TIMEOUTS = st.sampled_from([0.0, 0.05, 1.0])


@given(
    policy=POLICIES,
    timeout=TIMEOUTS,
    start=st.integers(0, MASK),
    kinds=st.lists(st.booleans(), max_size=60),
    steps=st.lists(st.floats(0.0, 2.0), min_size=60, max_size=60),
)
def test_in_order_stream_is_delivered_completely(
    policy: SeqPolicy, timeout: float, start: int, kinds: list[bool], steps: list[float]
) -> None:
    seq, c = make(timeout, policy)
    now = 0.0
    if policy is SeqPolicy.KERNEL and start >= WINDOW:
        # The kernel window-checks the first packet against nr 0.
        now = advance(seq, timeout, start, now)
    base = stats(c)
    ns = start
    items: list[object] = []
    out: list[object] = []
    for i, sequenced in enumerate(kinds):
        now += steps[i]
        item = ("s", ns) if sequenced else ("u", i)
        items.append(item)
        out += seq.push(item, ns if sequenced else None, now)
        if sequenced:
            ns = (ns + 1) & MASK
        out += seq.poll(now)
    assert out == items
    assert len(seq) == 0
    assert stats(c) == base


def near_or_random(base: int) -> st.SearchStrategy[int | None]:
    return st.one_of(
        st.integers(-3, 12).map(lambda d: (base + d) & MASK),
        st.integers(0, MASK),
        st.none(),
    )


@settings(max_examples=300)
@given(
    policy=POLICIES,
    timeout=TIMEOUTS,
    base=st.sampled_from([0, 100, 0xFFFFF8, 0x7FFFF8]),
    data=st.data(),
)
def test_conservation_and_order(
    policy: SeqPolicy, timeout: float, base: int, data: st.DataObject
) -> None:
    seq, c = make(timeout, policy)
    n = data.draw(st.integers(0, 80))
    now = 0.0
    delivered: list[tuple[int, int | None]] = []
    numbers_drawn: list[int | None] = []
    # Packets delivered by a call that also timed one out: after such a discard the
    # kernel takes the next queued packet's number as nr (reorder_skip in
    # l2tp_recv_dequeue), whatever it is, even a duplicate of one just delivered.
    skipped: set[int] = set()
    for i in range(n):
        # Numbers cluster around a point that drifts forward, with noise.
        ns = data.draw(near_or_random((base + i) & MASK))
        numbers_drawn.append(ns)
        now += data.draw(st.floats(0.0, 0.2))
        discards = c.rx_seq_discards
        got = seq.push((i, ns), ns, now)
        if data.draw(st.booleans()):
            now += data.draw(st.floats(0.0, 0.2))
            got += seq.poll(now)
        for item in got:
            assert isinstance(item, tuple)
            delivered.append(item)
            if c.rx_seq_discards > discards:
                skipped.add(item[0])
        assert len(delivered) + c.rx_errors + len(seq) == i + 1
        assert c.rx_seq_discards <= c.rx_errors
        deadline = seq.next_deadline()
        assert (deadline is None) == (len(seq) == 0)
    ids = [i for i, _ in delivered]
    assert len(ids) == len(set(ids))
    if timeout > 0:
        # In order, except where a packet resynchronised nr (Recovery): packet 0, or
        # the sixth of a run whose five others were the sequenced packets just before.
        pushed = [(i, ns) for i, ns in enumerate(numbers_drawn) if ns is not None]
        where = {i: k for k, (i, _) in enumerate(pushed)}
        numbered = [(i, ns) for i, ns in delivered if ns is not None]
        for (_, a), (j, b) in itertools.pairwise(numbered):
            if 0 < (b - a) & MASK < 0x800000 or j in skipped:
                continue
            k = where[j]
            before = [ns for _, ns in pushed[max(0, k - 5) : k]]
            assert b == 0 or before == [(b - d) & MASK for d in range(5, 0, -1)], (a, b)
    # Draining the queue at the end loses nothing uncounted either.
    final = seq.poll(now + 10.0)
    assert len(delivered) + len(final) + c.rx_errors == n
    assert len(seq) == 0
    stats(c)
