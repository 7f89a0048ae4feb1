"""Micro-benchmark of the per-VLAN rules (no I/O): what a trunk session adds per frame,
C (fp_vlan.c / fp_session.c through ``_fastpath``) against the pure-Python reference
(proto/vlan.py, proto/session.py).

    python3 bench/vlan_micro.py [seconds-per-case]

Per case it prints frames per CPU-second of this thread (thread CPU time, so other load
on the machine does not count), for 1446-byte frames:

- ``trunk -> wire``: ``Trunk.classify`` + ``Session.untag`` (in place) + ``next_header``,
  what the ports do per frame read from a trunk (plus restoring the 1460-byte frame the
  untag moved, which the ports do not do); against ``next_header`` alone (a plain
  session's TAP read);
- ``wire -> trunk``: ``Session.receive`` of a session with ``pop`` (tag pushed, a copy),
  without it (VID checked), and of a plain session.

The C figures include the Python call into the binding per frame; the engine threads
call the same C without it. Figures only, no verdict.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.proto import session as pysession
from l2tpv3.proto import vlan as pyvlan

native: Any
try:
    from l2tpv3.fast import native
except ImportError:
    native = None

T = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                 remote=ip_address("10.0.0.2"), udp_sport=1, udp_dport=2)  # fmt: skip
TP = TunnelConfig(tunnel_id=2, peer_tunnel_id=1, local=ip_address("10.0.0.2"),
                  remote=ip_address("10.0.0.1"), udp_sport=2, udp_dport=1)  # fmt: skip
MACS = bytes.fromhex("020000000002020000000001")
TAGGED = MACS + b"\x81\x00\x00\x05" + b"\x08\x00" + bytes(1446 - 2)
UNTAGGED = MACS + b"\x08\x00" + bytes(1446 - 2)


def rate(fn: Callable[[], object], seconds: float) -> float:
    n, batch = 0, 2000
    start = time.thread_time()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        spent = time.thread_time() - start
        if spent >= seconds:
            return n / spent


def cases(impl: str, mod_session: Any, mod_trunk: Any, seconds: float) -> None:
    cfg = SessionConfig(tunnel_id=1, session_id=5, peer_session_id=5, trunk="t", vlan=5)
    pop = SessionConfig(tunnel_id=1, session_id=5, peer_session_id=5, trunk="t", vlan=5,
                        vlan_pop=True)  # fmt: skip
    plain = SessionConfig(tunnel_id=1, session_id=5, peer_session_id=5)
    far = pysession.Session(TP, SessionConfig(tunnel_id=2, session_id=5, peer_session_id=5))
    trunk = mod_trunk("t")
    trunk.add(5, 5)
    s_pop, s_tag, s_plain = (mod_session(T, c) for c in (pop, cfg, plain))
    buf = bytearray(TAGGED)
    view = memoryview(buf)

    def tx_trunk() -> None:
        buf[:] = TAGGED
        trunk.classify(view)
        cut = s_pop.untag(view)
        s_pop.next_header(len(buf) - cut)

    def tx_plain() -> None:
        s_plain.next_header(len(UNTAGGED))

    d_untagged, d_tagged = far.encapsulate(UNTAGGED), far.encapsulate(TAGGED)
    rows = [
        ("trunk -> wire, classify + pop + header", tx_trunk),
        ("plain  -> wire, header", tx_plain),
        ("wire -> trunk, pop (push tag)", lambda: s_pop.receive(d_untagged, 0.0)),
        ("wire -> trunk, VID check", lambda: s_tag.receive(d_tagged, 0.0)),
        ("wire -> plain TAP", lambda: s_plain.receive(d_untagged, 0.0)),
    ]
    for name, fn in rows:
        print(f"{impl:7} {name:40} {rate(fn, seconds) / 1e6:6.2f} M frames/CPU-s", flush=True)


def main(argv: list[str]) -> int:
    seconds = float(argv[0]) if argv else 1.0
    cases("python", pysession.Session, pyvlan.Trunk, seconds)
    if native is not None:
        cases("C", native.Session, native.Trunk, seconds)
    else:
        print("C: the extension is not built")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
