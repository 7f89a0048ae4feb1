"""Receive-side sequencing for one session: a sans-I/O copy of Linux net/l2tp.

:class:`RxSequencer` is fed every data packet that already passed the cookie and
``recv_seq`` checks, together with its 24-bit sequence number (or ``None`` when the
sublayer's S bit is clear), and answers with the packets deliverable now. Time is
passed in by the caller (``now``, seconds from any monotonic clock); nothing here
sleeps, reads a clock or does I/O.

Policy ``kernel`` follows net/l2tp/l2tp_core.c (l2tp_recv_common, l2tp_recv_data_seq,
l2tp_seq_check_rx_window, l2tp_recv_queue_skb, l2tp_recv_dequeue,
l2tp_recv_dequeue_skb; initial state from l2tp_session_create):

* nr starts at 0 with ``reorder_skip`` set, so the first sequenced packet that passes
  the window check defines nr ("use NR of first received packet").
* Window: accepted if ``(ns - nr) mod 2**24 < nr_window_size``, which is
  ``nr_max / 2 = 0x7fffff``; outside it the packet is dropped and only ``rx_errors``
  counts it.
* ``reorder_timeout == 0``: only ``ns == nr`` passes. Other packets are dropped
  (``rx_seq_discards`` and ``rx_errors``) while the run of consecutive numbers after
  the first out-of-sequence one is counted; once that run passes
  ``nr_oos_count_max`` (4), ``reorder_skip`` is set and the sixth packet of the run
  resynchronises nr. One lost packet therefore costs five more.
* ``reorder_timeout > 0``: packets are held in ``reorder_q`` ordered by ns (a packet
  inserted in front of another counts ``rx_oos_packets``) and released while the head
  carries nr. A held packet older than its deadline is dropped (``rx_seq_discards``
  and ``rx_errors``) and sets ``reorder_skip``, so nr jumps to the next held packet.
* Packets without a sequence number join the tail of the same queue, so they never
  overtake sequenced packets received before them.

Deliberate differences from the kernel:

* A run of packets behind nr resynchronises it, where the kernel drops them until the
  peer's numbers catch up; see "Recovery" below.

* The queue is ordered by sequence distance from nr instead of the kernel's plain
  ``>`` on raw numbers, so reordering across the 2**24 wrap works (the kernel sorts
  ``0`` in front of ``0xffffff``, where it blocks the queue until it expires and is
  lost). Without a wrap the order is the kernel's. See :meth:`RxSequencer._insert`.
* The kernel only walks the queue when a packet arrives; :meth:`RxSequencer.poll`
  walks it too, driven by the caller's timer at :meth:`RxSequencer.next_deadline`, so
  held packets are not stuck when traffic stops. The next arrival would have made the
  same drops and releases, so while traffic flows the outcome is normally the same.
  It differs when a late packet sorts in front of an entry that had already expired:
  the kernel walk stops at the late packet and holds it behind the gap (often until it
  expires too, lost), here the expired entry is gone and reorder_skip lets the late
  packet through. Likewise a packet released at the deadline may leave nr past a
  straggler the kernel would still have sorted in.

Policy ``rfc3931`` follows RFC 3931 Appendix C ("Processing Sequence Numbers"): a
packet is "new" if its number is equal to or greater than the expected one, with
"greater" taken in serial arithmetic (RFC 1982) over 24 bits: less than half of the
2**24 space ahead of the last in-order packet. A new packet is accepted at once and nr
moves past it; gaps are not waited for. An old or duplicate packet is discarded
(``rx_seq_discards`` and ``rx_errors``). The appendix leaves reordering to the
implementation; with ``reorder_timeout > 0`` out-of-order packets are held, in order,
until the gap fills or the oldest of them has waited ``reorder_timeout``; then the gap
is skipped and they are released, never dropped. The first sequenced packet defines
nr, as in the kernel.

Recovery (both policies): a run of packets behind nr. The kernel's resync
(l2tp_recv_data_seq, ``nr_oos_count``) only sees packets inside its window; a packet
behind nr fails l2tp_seq_check_rx_window first and is dropped without being counted in
any run. So when the peer's numbers restart at 0 (a restarted peer) or nr was set far
ahead (one spoofed packet with the S bit while reorder_skip was set, or, under the RFC
policy, any spoofed "new" packet), every real packet is behind nr and the kernel only
recovers once the peer's numbers have caught up, after up to 2**23 packets: the
pseudowire is dead. Here a packet behind nr (outside the window, or not "new" under the
RFC policy) is dropped and counted exactly as before, but also counted in a run of
consecutive numbers, with the kernel's limit: when the run passes
``nr_oos_count_max + 1`` packets (its sixth packet, as for the kernel's own resync) nr
resynchronises onto it and that packet is delivered. Whatever the queue held expires
first, by the policy's own rule (dropped under the kernel policy, released under the
RFC policy). Any sequenced packet that passes the window (or is "new") ends the run, so
duplicates and late packets interleaved with an accepted stream never resynchronise it.

Packet 0 that is behind nr, or (kernel policy without reordering) out of sequence inside
the window, resynchronises at once: sessions number from 0 (kernel
l2tp_session_create, and ours), so that is a peer that started again, and a restarted
peer's first packets are often ARP requests one second apart, too few and too slow for
a run. The price is a late duplicate of packet 0 (once per 2**24 packets), which costs
a resync back and forth: a few packets.

A blind attacker can therefore cost a few packets per injection, never the pseudowire;
only cookies (RFC 3931 §8.2) or IPsec keep injected packets out.

The sequencer touches only ``rx_seq_discards``, ``rx_oos_packets`` and ``rx_errors``;
every packet it does not deliver is counted in ``rx_errors`` exactly once, so
``delivered + rx_errors + len(sequencer) == pushed``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Generic, TypeVar

from l2tpv3.config import SeqPolicy
from l2tpv3.constants import (
    DEFAULT_REORDER_HOLD,
    KERNEL_NR_WINDOW,
    NR_OOS_COUNT_MAX,
    RFC_SEQ_HALF,
    SEQ_MASK,
)
from l2tpv3.proto.counters import Counters

__all__ = ["RxSequencer"]

T = TypeVar("T")

# The kernel's window, out-of-sequence run limit and default hold, and RFC 3931's half
# of the sequence space are in constants.py (shared with the C mirror).

# Marks an unsequenced entry in the queue; real numbers are 0..SEQ_MASK.
_NO_SEQ = -1

_Entry = tuple[int, float, T]


class RxSequencer(Generic[T]):
    """Receive sequencer for one session; see the module documentation."""

    __slots__ = (
        "_counters",
        "_hold",
        "_nr",
        "_nr_oos",
        "_nr_oos_count",
        "_old_count",
        "_old_ns",
        "_q",
        "_reorder",
        "_rfc",
        "_skip",
        "_timeout",
    )

    def __init__(
        self,
        counters: Counters,
        *,
        reorder_timeout: float = 0.0,
        policy: SeqPolicy = SeqPolicy.KERNEL,
    ) -> None:
        # Reject NaN too: every comparison with it is false, which would hold packets
        # for ever.
        if not 0.0 <= reorder_timeout < math.inf:
            raise ValueError(
                f"reorder_timeout must be a finite number >= 0, not {reorder_timeout!r}"
            )
        self._counters = counters
        self._timeout = float(reorder_timeout)
        self._reorder = reorder_timeout > 0.0
        self._hold = self._timeout if self._reorder else DEFAULT_REORDER_HOLD
        self._rfc = SeqPolicy(policy) is SeqPolicy.RFC3931
        self._nr = 0
        self._nr_oos = 0
        self._nr_oos_count = 0
        # The run of consecutive numbers behind nr (see the module documentation): its
        # length (0: no run) and its last number.
        self._old_count = 0
        self._old_ns = 0
        # Kernel: "Use NR of first received packet". RFC policy: not yet synchronised.
        self._skip = True
        self._q: deque[_Entry[T]] = deque()

    @property
    def nr(self) -> int:
        """The sequence number expected next."""
        return self._nr

    def __len__(self) -> int:
        return len(self._q)

    def push(self, item: T, ns: int | None, now: float) -> list[T]:
        """Offer one received packet; return the packets deliverable now, in order."""
        if self._rfc:
            return self._push_rfc(item, ns, now)
        q = self._q
        if ns is None:
            # Queued at the tail; with nothing in front it is released by the same walk.
            if not q:
                return [item]
            q.append((_NO_SEQ, now + self._hold, item))
            return self._dequeue(now)
        ns &= SEQ_MASK
        nr = self._nr
        if (ns - nr) & SEQ_MASK >= KERNEL_NR_WINDOW:
            # l2tp_seq_check_rx_window: outside, rx_errors only. Ours: unless it makes
            # a run long enough to resynchronise on.
            if self._old_run(ns):
                return self._resync(item, ns)
            self._counters.rx_errors += 1
            return []
        self._old_count = 0
        if self._reorder:
            if q:
                self._insert(ns, now + self._hold, item)
                return self._dequeue(now)
            # Empty queue: the kernel's tail insert plus walk, without the allocation.
            if self._skip:
                self._skip = False
                nr = ns
            if ns != nr:
                self._nr = nr
                q.append((ns, now + self._hold, item))
                return []
            self._nr = (ns + 1) & SEQ_MASK
            return [item]
        # Without reordering the queue is always empty after a walk: only ns == nr or a
        # resync (reorder_skip) is queued, and the walk releases both at once.
        if ns != nr:
            if ns == (self._nr_oos + 1) & SEQ_MASK:
                self._nr_oos_count += 1
            else:
                self._nr_oos_count = 0
            self._nr_oos = ns
            # Kernel: the run rule. Ours too: packet 0, a peer that started again.
            if self._nr_oos_count > NR_OOS_COUNT_MAX or ns == 0:
                self._skip = True
            if not self._skip:
                c = self._counters
                c.rx_seq_discards += 1
                c.rx_errors += 1
                return []
        self._skip = False
        self._nr = (ns + 1) & SEQ_MASK
        return [item]

    def poll(self, now: float) -> list[T]:
        """Let time pass: release or expire what the queue holds."""
        if not self._q:
            return []
        if self._rfc:
            return self._release_rfc(now)
        return self._dequeue(now)

    def next_deadline(self) -> float | None:
        """The earliest ``now`` at which :meth:`poll` has work, or None if none is held.

        Entries expire strictly after their deadline (the kernel's ``time_after``), so
        this is the next float above it: ``poll(next_deadline())`` always makes
        progress and a timer loop cannot spin.
        """
        q = self._q
        if not q:
            return None
        if self._rfc:
            return math.nextafter(min(e[1] for e in q), math.inf)
        # After every walk the head is a sequenced packet waiting for nr; nothing behind
        # it can move before it expires.
        return math.nextafter(q[0][1], math.inf)

    # -- recovery (both policies) ------------------------------------------------------

    def _old_run(self, ns: int) -> bool:
        """Count ``ns``, a packet behind nr, in the run; True if the run resyncs now.

        The counting is the kernel's nr_oos / nr_oos_count rule of l2tp_recv_data_seq
        (a run continues while each number is the previous one plus one, and the
        packet that takes it past nr_oos_count_max + 1 resynchronises), applied to the
        packets l2tp_seq_check_rx_window drops, which the kernel never counts.
        """
        if self._old_count and ns == (self._old_ns + 1) & SEQ_MASK:
            self._old_count += 1
        else:
            self._old_count = 1
        self._old_ns = ns
        # Packet 0: the peer started again (see the module documentation).
        return ns == 0 or self._old_count > NR_OOS_COUNT_MAX + 1

    def _resync(self, item: T, ns: int) -> list[T]:
        # The stream the queue waited in is abandoned and the gaps it waits for will not
        # come: everything held expires now, by the policy's own rule (kernel
        # l2tp_recv_dequeue drops expired packets; the RFC policy releases them). Then
        # nr follows the new run, like reorder_skip.
        out: list[T] = []
        if self._q:
            out = self._release_rfc(math.inf) if self._rfc else self._dequeue(math.inf)
        self._old_count = 0
        self._skip = False
        self._nr = (ns + 1) & SEQ_MASK
        out.append(item)
        return out

    # -- kernel policy -------------------------------------------------------------

    def _insert(self, ns: int, expires: float, item: T) -> None:
        # l2tp_recv_queue_skb puts the packet in front of the first entry whose ns is
        # larger. Comparing raw numbers breaks at the 2**24 wrap, so compare distances
        # from nr instead. Entries with a distance outside the window are stale
        # duplicates left behind nr; the kernel's `>` finds them smaller than any new
        # packet, so they are skipped here too. Unsequenced entries never compare
        # larger: the kernel compares their unset ns field, which is zero for a fresh
        # skb (inference), so nothing is ever put in front of them. Without a wrap this
        # is exactly the kernel's order.
        q = self._q
        nr = self._nr
        dist = (ns - nr) & SEQ_MASK
        for i, (ens, _, _) in enumerate(q):
            if ens != _NO_SEQ and dist < (ens - nr) & SEQ_MASK < KERNEL_NR_WINDOW:
                q.insert(i, (ns, expires, item))
                self._counters.rx_oos_packets += 1
                return
        q.append((ns, expires, item))

    def _dequeue(self, now: float) -> list[T]:
        # l2tp_recv_dequeue: the walk always looks at the head, because every entry it
        # passes is either dropped or released.
        q = self._q
        out: list[T] = []
        while q:
            ns, expires, item = q[0]
            if now > expires:
                q.popleft()
                c = self._counters
                c.rx_seq_discards += 1
                c.rx_errors += 1
                self._skip = True
                continue
            if ns != _NO_SEQ:
                if self._skip:
                    self._skip = False
                    self._nr = ns
                if ns != self._nr:
                    break
                self._nr = (ns + 1) & SEQ_MASK
            q.popleft()
            out.append(item)
        return out

    # -- RFC 3931 policy -----------------------------------------------------------

    def _push_rfc(self, item: T, ns: int | None, now: float) -> list[T]:
        q = self._q
        if ns is None:
            if not q:
                return [item]
            q.append((_NO_SEQ, now + self._timeout, item))
            return self._release_rfc(now)
        ns &= SEQ_MASK
        if self._skip:
            self._skip = False
            self._nr = ns
        nr = self._nr
        dist = (ns - nr) & SEQ_MASK
        # nr - 1 is the last in-order packet; "new" is 0 < ns - (nr - 1) < 2**23.
        if dist >= RFC_SEQ_HALF - 1:
            # Old or a duplicate: discarded, unless it makes a run long enough to
            # resynchronise on (the same rule as under the kernel policy).
            if self._old_run(ns):
                return self._resync(item, ns)
            return self._discard()
        self._old_count = 0
        if not self._reorder:
            # Appendix C: a new packet is taken at once, whatever it skips.
            self._nr = (ns + 1) & SEQ_MASK
            return [item]
        if not q:
            if dist == 0:
                self._nr = (ns + 1) & SEQ_MASK
                return [item]
            q.append((ns, now + self._timeout, item))
            return []
        # Everything held is ahead of nr and unique, so plain distance order is total.
        for i, (ens, _, _) in enumerate(q):
            if ens == _NO_SEQ:
                continue
            edist = (ens - nr) & SEQ_MASK
            if edist == dist:
                return self._discard()
            if edist > dist:
                q.insert(i, (ns, now + self._timeout, item))
                self._counters.rx_oos_packets += 1
                break
        else:
            q.append((ns, now + self._timeout, item))
        return self._release_rfc(now)

    def _discard(self) -> list[T]:
        c = self._counters
        c.rx_seq_discards += 1
        c.rx_errors += 1
        return []

    def _release_rfc(self, now: float) -> list[T]:
        # A packet is held at most reorder_timeout: once any held packet has waited
        # that long, stop waiting for the gaps in front of it and release everything up
        # to it; then release whatever follows in sequence.
        q = self._q
        last = -1
        for i, (_, expires, _) in enumerate(q):
            if now > expires:
                last = i
        out: list[T] = []
        for _ in range(last + 1):
            ns, _, item = q.popleft()
            if ns != _NO_SEQ:
                self._nr = (ns + 1) & SEQ_MASK
            out.append(item)
        while q:
            ns, _, item = q[0]
            if ns != _NO_SEQ:
                if ns != self._nr:
                    break
                self._nr = (ns + 1) & SEQ_MASK
            q.popleft()
            out.append(item)
        return out
