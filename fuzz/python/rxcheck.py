"""Run a receive-path scenario (:mod:`fuzz.python.scenario`) through one implementation,
checking on every step that every datagram is accounted for; record what came out so
that two implementations can be compared.

Accounting, per copy of a datagram a tunnel receives, from its peer through
``Tunnel.receive`` or from anyone else through ``Tunnel.receive_foreign`` (``Q`` of a
session is ``rx_packets + rx_errors + held``, which the sequencer keeps exact: a packet
it does not deliver is counted in ``rx_errors`` once, one it holds is in ``held``):

* exactly one of: the tunnel's ``rx_invalid`` grew by one (and the named drop reason
  with it, ``sum(drops) == rx_invalid`` always; ``wrong_source`` if the datagram was
  not from its peer), or the ``Q`` of exactly one of its sessions grew by one (the
  session :meth:`Tunnel.receive` returned; never for one from another host), or
  nothing grew;
* of all the tunnels that got a copy (over IP, every tunnel on the listener), exactly
  one counted it, the one the rule of :class:`~l2tpv3.proto.api.IpOwnershipAPI` names,
  stated again here from the scenario: the tunnel holding the session ID, else the
  tunnel whose peer sent it, else the lowest tunnel ID on the listener;
* the frames returned plus the frame drops (too short, too long) equal the growth of
  ``rx_packets``, every frame is one Ethernet frame that fits the session's MTU.

A poll changes no ``Q``, and its frames plus frame drops equal the growth of
``rx_packets``. A payload is handed over as a view of a buffer that is overwritten
right after the call (as the daemon reuses its receive buffer), so a frame that is
held must have been copied: the differential target compares the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fuzz.python.scenario import START, Record, Scenario, parse
from l2tpv3.config import SessionConfig
from l2tpv3.constants import ETH_HLEN
from l2tpv3.io.datapath import Implementation, Name, choose
from l2tpv3.proto.api import IpOwnershipAPI, Payload, SessionAPI, TunnelAPI

FRAME_DROPS = ("frame_too_short", "frame_too_long")


class Invariant(AssertionError):
    """An accounting or output rule broken: a finding."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Invariant(what)


def q(s: SessionAPI) -> int:
    c = s.counters
    return c.rx_packets + c.rx_errors + s.held


def frame_drops(s: SessionAPI) -> int:
    d = s.drops
    return sum(d[k] for k in FRAME_DROPS)


@dataclass
class Trace:
    """What an implementation did, step by step, for comparison."""

    steps: list[object] = field(default_factory=list)
    datagrams: int = 0
    other_copies: int = 0  # copies a tunnel left to another one on its listener


def _state(tunnels: list[TunnelAPI]) -> object:
    out = []
    for t in tunnels:
        sessions = []
        for sid in sorted(t.sessions):
            s = t.sessions[sid]
            sessions.append(
                (
                    sid,
                    s.counters.as_dict(),
                    dict(s.drops),
                    s.held,
                    s.nr,
                    bool(s.send_seq),
                    s.next_deadline(),
                )
            )
        out.append((t.counters.as_dict(), dict(t.drops), t.totals().as_dict(), sessions))
    return out


def _frame_ok(s: SessionAPI, frames: list[Payload], what: str) -> list[bytes]:
    got = []
    for f in frames:
        n = len(f)
        check(ETH_HLEN <= n <= s.max_frame, f"{what}: frame of {n} bytes delivered")
        got.append(bytes(f))
    return got


class Runner:
    def __init__(self, impl: Implementation, scenario: Scenario) -> None:
        self.impl = impl
        self.sc = scenario
        self.own: IpOwnershipAPI = impl.ownership()
        self.tunnels: list[TunnelAPI] = []
        for tcfg in scenario.tunnels:
            if scenario.ip:
                host = str(tcfg.remote)
                self.own.add_tunnel(tcfg.tunnel_id, tcfg.family, str(tcfg.local), host)
            self.tunnels.append(impl.tunnel(tcfg, self.own if scenario.ip else None))
        for tindex, scfg in scenario.sessions:
            self._add(tindex, scfg)
        self.now = START
        self.trace = Trace()

    def _add(self, tindex: int, scfg: SessionConfig) -> None:
        t = self.tunnels[tindex]
        if self.sc.ip:
            self.own.claim(t.config.tunnel_id, scfg.session_id)
        session = self.impl.session(self.sc.tunnels[tindex], scfg)
        session.lns_mode = scfg.session_id in self.sc.lns
        t.add(session)

    def run(self) -> Trace:
        for rec in self.sc.records:
            self.step(rec)
        return self.trace

    def step(self, rec: Record) -> None:
        self.now += rec.advance
        steps = self.trace.steps
        if rec.is_datagram:
            steps.append(("rx", self.datagram(rec)))
        elif rec.ctl & 0x40:
            d = rec.data.ljust(2, b"\0")
            mtu = 68 + (d[0] << 8 | d[1]) % 9000
            for t in self.tunnels:
                for s in t.sessions.values():
                    s.set_mtu(mtu)
            steps.append(("mtu", mtu))
        elif self.sc.sessions:
            steps.append(("toggle", self.toggle(rec.data[0] if rec.data else 0)))
        if rec.poll:
            steps.append(("poll", self.poll()))
        steps.append(_state(self.tunnels))

    def toggle(self, index: int) -> object:
        tindex, scfg = self.sc.sessions[index % len(self.sc.sessions)]
        t = self.tunnels[tindex]
        sid = scfg.session_id
        if sid in t.sessions:
            t.remove(sid)
            if self.sc.ip:
                self.own.release(sid)
            return ("del", sid)
        self._add(tindex, scfg)
        return ("add", sid)

    def poll(self) -> object:
        out = []
        for t in self.tunnels:
            for sid, s in list(t.sessions.items()):
                before_q, before_rx, before_fd = q(s), s.counters.rx_packets, frame_drops(s)
                frames = s.poll(self.now)
                got = _frame_ok(s, frames, f"poll of session {sid}")
                check(q(s) == before_q, f"poll of session {sid} changed rx_packets+rx_errors+held")
                check(
                    len(got) + frame_drops(s) - before_fd == s.counters.rx_packets - before_rx,
                    f"poll of session {sid}: frames + frame drops != rx_packets growth",
                )
                out.append((sid, got))
        return out

    def datagram(self, rec: Record) -> object:
        self.trace.datagrams += 1
        recipients = self.sc.recipients(rec.target)
        source = self.sc.source(rec)
        host = self.sc.host(source)
        results: list[object] = []
        counted: list[int] = []  # the tunnel indexes that counted it
        for i in recipients:
            t = self.tunnels[i]
            buf = bytearray(rec.data)
            view = memoryview(buf)
            before_inv = t.counters.rx_invalid
            before_ws = t.drops["wrong_source"]
            before = {
                sid: (q(s), s.counters.rx_packets, frame_drops(s)) for sid, s in t.sessions.items()
            }
            hit: SessionAPI | None = None
            frames: list[Payload] = []
            if i == source:
                hit, frames = t.receive(view, self.now)
            else:
                t.receive_foreign(view, host)
            hit_sid = None if hit is None else hit.session_id
            got = [] if hit is None else _frame_ok(hit, frames, f"tunnel {i + 1}")
            # The daemon reuses its buffer for the next datagram.
            buf[:] = b"\xee" * len(buf)
            del view
            d_inv = t.counters.rx_invalid - before_inv
            check(sum(t.drops.values()) == t.counters.rx_invalid, "sum(drops) != rx_invalid")
            grew = {sid: q(s) - before[sid][0] for sid, s in t.sessions.items() if sid in before}
            check(all(g >= 0 for g in grew.values()), f"a session's Q shrank: {grew}")
            d_q = sum(grew.values())
            check(
                d_inv in (0, 1) and d_q in (0, 1) and d_inv + d_q <= 1,
                f"tunnel {i + 1}: one datagram counted {d_inv} times in rx_invalid and "
                f"{d_q} times in sessions",
            )
            if i != source:
                check(d_q == 0, f"tunnel {i + 1}: a datagram from another host reached a session")
                check(
                    t.drops["wrong_source"] - before_ws == d_inv,
                    f"tunnel {i + 1}: a datagram from another host counted but not as wrong_source",
                )
            if d_inv:
                check(hit is None, "a dropped datagram was given to a session")
                check(not frames, "a dropped datagram delivered frames")
                counted.append(i)
            elif d_q:
                check(
                    hit_sid is not None and grew.get(hit_sid) == 1,
                    f"tunnel {i + 1}: session {hit_sid} returned but another one counted",
                )
                assert hit is not None and hit_sid is not None
                _, rx0, fd0 = before[hit_sid]
                check(
                    len(got) + frame_drops(hit) - fd0 == hit.counters.rx_packets - rx0,
                    f"session {hit_sid}: frames + frame drops != rx_packets growth",
                )
                counted.append(i)
            else:
                check(hit is None and not frames, "an ignored datagram delivered frames")
                self.trace.other_copies += 1
            results.append((i, hit_sid, got))
        want = self.counter(recipients, source, rec.data)
        check(
            counted == [want],
            f"datagram {rec.data[:16].hex()} from {host} counted by tunnels "
            f"{[c + 1 for c in counted]}, not by tunnel {want + 1} alone",
        )
        return results

    def counter(self, recipients: list[int], source: int, data: bytes) -> int:
        """The tunnel that must count a datagram, by the rule of IpOwnershipAPI, stated
        again from the scenario (UDP: the one recipient)."""
        if not self.sc.ip:
            return recipients[0]
        sid = int.from_bytes(data[:4], "big") if len(data) >= 4 else 0
        owners = [i for i in recipients if sid and sid in self.tunnels[i].sessions]
        if owners:
            return owners[0]
        if source in recipients:
            return source
        return min(recipients, key=lambda i: self.tunnels[i].config.tunnel_id)


def run(data: bytes, name: Name) -> Trace:
    return Runner(choose(name), parse(data)).run()


def compare(data: bytes) -> tuple[Trace, Trace]:
    """Both implementations, step by step; Invariant at the first difference."""
    sc = parse(data)
    a = Runner(choose("python"), sc)
    b = Runner(choose("cython"), sc)
    for n, rec in enumerate(sc.records):
        a.step(rec)
        b.step(rec)
        if a.trace.steps != b.trace.steps:
            for x, y in zip(a.trace.steps, b.trace.steps, strict=False):
                if x != y:
                    raise Invariant(f"record {n} ({rec}): python {x!r} != cython {y!r}")
            raise Invariant(f"record {n}: python and cython traces differ in length")
    return a.trace, b.trace
