"""Write the committed seed corpus, fuzz/corpus/<target>/, from the kernel's own packets
(tests/data/kernel_vectors.py, tests/data/kernel_captures.py), TCP super-frames and
segments (the builders of tests/unit/test_offload.py) and control requests.

    python3 -m fuzz.make_corpus          # rewrites fuzz/corpus/{rx,tso,gro,control}/

Deterministic: the same tree gives the same files (named by their SHA-1, as libFuzzer
names what it adds). The rx corpus serves the rx-python, rx-diff and C rx targets.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

from fuzz.python import scenario as sc
from l2tpv3.config import L2SpecType, SeqMode, SeqPolicy, SessionConfig
from tests.data.kernel_captures import KERNEL_CAPTURES
from tests.data.kernel_vectors import KERNEL_PACKETS

ROOT = Path(__file__).resolve().parent / "corpus"
TARGETS = ("rx", "tso", "gro", "control")


def l2tp_part(packet: bytes) -> tuple[bool, bool, bytes]:
    """(ip encap, IPv6, the L2TP part) of a captured IP packet."""
    v6 = packet[0] >> 4 == 6
    proto, off = (packet[6], 40) if v6 else (packet[9], (packet[0] & 15) * 4)
    if proto == 17:
        return False, v6, packet[off + 8 :]
    if proto != 115:
        raise ValueError(f"protocol {proto}")
    return True, v6, packet[off:]


def _session(
    sid: int, peer_cookie: bytes, l2spec: bool, seq: SeqMode, reorder: int = 0, rfc: bool = False
) -> SessionConfig:
    return SessionConfig(
        tunnel_id=1,
        session_id=sid,
        peer_session_id=sid,
        peer_cookie=peer_cookie,
        l2spec_type=L2SpecType.DEFAULT if l2spec else L2SpecType.NONE,
        seq=seq if l2spec else SeqMode.NONE,
        reorder_timeout=reorder,
        seq_policy=SeqPolicy.RFC3931 if rfc else SeqPolicy.KERNEL,
    )


def _decoy(ip: bool) -> bytes:
    """A session that no packet is for: the first of a three-tunnel set-up."""
    return sc.encode_session(_session(0x7FFF0001, b"", True, SeqMode.NONE))


def rx_seeds() -> list[bytes]:
    rnd = random.Random(11)
    seeds = []
    # One seed per kernel vector: the session is read off the packet itself.
    for title, packet in KERNEL_PACKETS.items():
        ip, v6, part = l2tp_part(packet)
        head = 0 if ip else 4
        sid = int.from_bytes(part[head : head + 4], "big")
        clen = 8 if "cookie8" in title else 4 if "cookie4" in title else 0
        l2spec = "none" not in title.split(":")[0]
        seq = SeqMode.BOTH if "seq-both" in title.split(":")[0] else SeqMode.NONE
        cookie = part[head + 4 : head + 4 + clen]
        cfg = _session(sid, cookie, l2spec, seq)
        header = sc.encode_header(ip, v6, [sc.encode_session(cfg)])
        seeds.append(header + sc.encode_record(part))
    # The captures: every packet in order, then variations that reach the sequencer's
    # queue, the ownership check and the session toggles.
    for cap in KERNEL_CAPTURES.values():
        parts = [l2tp_part(p)[2] for p in cap.packets]
        ip, v6 = cap.encap == "ip", cap.family == 6
        cfg = _session(
            cap.our_session_id,
            bytes.fromhex(cap.peer_cookie),
            cap.l2spec == "default",
            SeqMode(cap.our_seq),
        )
        one = sc.encode_header(ip, v6, [sc.encode_session(cfg)])
        seeds.append(one + b"".join(sc.encode_record(p, ctl=1 << 2) for p in parts))
        # The same in LNS mode: the peer's packets cannot switch our sequencing.
        lns = sc.encode_header(ip, v6, [sc.encode_session(cfg, reorder_code=sc.LNS_CODE)])
        seeds.append(lns + b"".join(sc.encode_record(p) for p in parts))
        reorder = _session(
            cfg.session_id,
            cfg.peer_cookie,
            cfg.l2spec_type is L2SpecType.DEFAULT,
            SeqMode.BOTH if cfg.l2spec_type is L2SpecType.DEFAULT else SeqMode.NONE,
            reorder=50,
            rfc=rnd.random() < 0.5,
        )
        shuffled = parts[:]
        rnd.shuffle(shuffled)
        recs = b"".join(
            sc.encode_record(p, ctl=rnd.choice([0, 1 << 2, 2 << 2, 0x20])) for p in shuffled
        )
        recs += sc.encode_record(b"", ctl=(6 << 2) | 0x20 | 0x80 | 0x40)
        seeds.append(sc.encode_header(ip, v6, [sc.encode_session(reorder)]) + recs)
        # Three tunnels, our session on the second: over IP the first sees a copy.
        three = sc.encode_header(ip, v6, [_decoy(ip), sc.encode_session(cfg)], three=True)
        recs = b"".join(sc.encode_record(p, ctl=0) for p in parts[:3])
        recs += sc.encode_record(bytes([1]), ctl=0x80)  # delete the session, then
        recs += b"".join(sc.encode_record(p, ctl=2) for p in parts[:2])  # to the third
        recs += sc.encode_record(bytes([1]), ctl=0x80)  # and back
        seeds.append(three + recs + sc.encode_record(parts[-1], ctl=1))
        # The same from other hosts (ctl bit 6): each tunnel's peer with the others'
        # session IDs, and strangers; over IP one tunnel of the listener counts each.
        seeds.append(three + b"".join(sc.encode_record(p, ctl=c) for p in parts[:2]
                                      for c in (0x40, 0x41, 0x42, 0x43, 1)))  # fmt: skip
        # Corrupted: cut short, bad cookie, version, T bit, session 0.
        bad = []
        for p in parts[:4]:
            bad.append(p[: rnd.randrange(len(p))])
            q = bytearray(p)
            q[rnd.randrange(min(len(q), 24))] ^= 1 << rnd.randrange(8)
            bad.append(bytes(q))
        if not ip:
            bad += [b"\x80\x03" + parts[0][2:], b"\x00\x02" + parts[0][2:]]
        bad.append(bytes(8) + parts[0][8:])
        bad.append(parts[0][:3])  # shorter than any header
        seeds.append(one + b"".join(sc.encode_record(p) for p in bad))
    return seeds


def _offload_builders() -> Any:
    """tests/unit/test_offload.py (scapy), untyped: the tests are not type-checked."""
    return importlib.import_module("tests.unit.test_offload")


def _tso_params(max_frame: int, max_segs: int) -> bytes:
    """The two bytes of fuzz_tso.c that choose max_frame (60..) and max_segs (1..32)."""
    mf = max_frame - 60
    return bytes([mf & 0xFF, (mf >> 8) & 7 | (max_segs - 1) << 3])


def tso_seeds() -> list[bytes]:
    super_frame = _offload_builders().super_frame
    rnd = random.Random(12)
    seeds = []
    for v6 in (False, True):
        for size, gso, flags in (
            (1, 1000, "A"),
            (3000, 1000, "PA"),
            (5000, 1448, "FPA"),
            (1500, 536, "A"),
            (2000, 700, "CA"),
        ):
            vh, frame, _ = super_frame(v6, rnd.randbytes(size), gso, flags=flags)
            seeds.append(vh + _tso_params(1514, 32) + frame)
        vh, frame, _ = super_frame(v6, rnd.randbytes(1200), 400, vlan=True)
        seeds.append(vh + _tso_params(900, 8) + frame)
    return seeds


def gro_seeds() -> list[bytes]:
    segments_of = _offload_builders().segments_of
    rnd = random.Random(13)
    seeds = []
    for v6 in (False, True):
        for n, mss in ((3000, 1000), (6000, 1448), (2500, 512)):
            segs = segments_of(v6, rnd.randbytes(n), mss, flags="PA")
            other = segments_of(v6, rnd.randbytes(n), mss, sport=40001, seq=5)
            mixed = [s for pair in zip(segs, other, strict=False) for s in pair]
            for order in (segs, mixed):
                recs = b"".join(sc.encode_record(s, ctl=0) for s in order)
                seeds.append(bytes([rnd.randrange(2)]) + recs)
    return seeds


def control_seeds() -> list[bytes]:
    udp4 = {
        "tunnel_id": 1,
        "peer_tunnel_id": 2,
        "local": "10.0.0.1",
        "remote": "10.0.0.2",
        "encap": "udp",
        "udp_sport": 1701,
        "udp_dport": 1702,
    }
    ip6 = {
        "tunnel_id": 3,
        "peer_tunnel_id": 4,
        "local": "fd00::1",
        "remote": "fd00::2",
        "encap": "ip",
    }
    s1 = {
        "tunnel_id": 1,
        "session_id": 10,
        "peer_session_id": 20,
        "name": "l2tpeth7",
        "cookie": "deadbeef",
        "peer_cookie": "0102030405060708",
        "l2spec_type": "default",
        "seq": "both",
        "reorder_timeout": 50,
        "seq_policy": "rfc3931",
    }
    s3 = {"tunnel_id": 3, "session_id": 30, "peer_session_id": 40, "l2spec_type": "none"}
    conv = [
        {"op": "ping"},
        {"op": "add_tunnel", "config": udp4},
        {"op": "add_tunnel", "config": ip6},
        {"op": "add_session", "config": s1},
        {"op": "add_session", "config": s3},
        {"op": "show_tunnels"},
        {"op": "show_tunnels", "tunnel_id": 1},
        {"op": "show_sessions", "tunnel_id": 1, "session_id": 10},
        {"op": "del_session", "tunnel_id": 1, "session_id": 10},
        {"op": "del_tunnel", "tunnel_id": 3},
        {"op": "del_tunnel", "tunnel_id": 1},
    ]
    lines = [json.dumps(m).encode() + b"\n" for m in conv]
    seeds = [b"".join(lines), *lines]
    seeds += [
        b'{"op": "add_tunnel", "config": {"tunnel_id": 1}}\n',
        b'{"op": "del_session", "tunnel_id": true, "session_id": 1.5}\n',
        b'{"op": 7}\n[1, 2]\n"x"\nnull\n{}\n',
        b'{"op": "add_session", "config": {"cookie": "zz", "seq": "sideways"}}\n',
        b'{"op": "show_sessions", "tunnel_id": -1}\n{"op": "ping"',
        b"\xff\xfe{}\n",
    ]
    return seeds


def write(target: str, seeds: list[bytes]) -> int:
    d = ROOT / target
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for s in seeds:
        (d / hashlib.sha1(s).hexdigest()).write_bytes(s)
    return len(set(seeds))


def main() -> None:
    for target, seeds in (
        ("rx", rx_seeds()),
        ("tso", tso_seeds()),
        ("gro", gro_seeds()),
        ("control", control_seeds()),
    ):
        print(f"fuzz/corpus/{target}: {write(target, seeds)} inputs")


if __name__ == "__main__":
    main()
