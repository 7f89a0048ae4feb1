"""One trunk with two sessions (VLAN 5 as it comes, VLAN 7 with pop) in a real daemon
core on IMPL's ports: the same frames written onto the trunk and the same datagrams from
the peer for each implementation; prints what left (datagrams, frames written to the
trunk with their tags put back from PACKET_AUXDATA) and the counters, as JSON. Run inside
a fresh network namespace by test_trunk_engine.py.

    python3 -m tests.differential.trunk_probe IMPL STATE_DIR
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import sys
from ipaddress import ip_address
from typing import Any

from l2tpv3.config import SessionConfig, TunnelConfig
from l2tpv3.daemon.core import Daemon
from l2tpv3.io.datapath import choose

LOCAL, SPORT, DPORT = "127.0.0.1", 5000, 6000
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
PACKET_OUTGOING = 4
MACS = bytes.fromhex("020000000002020000000001")
PAYLOAD = b"\x08\x00" + bytes(range(46))


def tag(tpid: int, vid: int) -> bytes:
    return tpid.to_bytes(2, "big") + vid.to_bytes(2, "big")


# Onto the trunk (read by the port): tagged 5 and 7, QinQ with outer 7 / 5, untagged,
# VLAN 9 (nobody's), an old-QinQ TPID, a frame too short for a tag.
TO_TRUNK = [
    MACS + tag(0x8100, 5) + PAYLOAD,
    MACS + tag(0x8100, 7) + PAYLOAD,
    MACS + tag(0x88A8, 7) + tag(0x8100, 100) + PAYLOAD,
    MACS + tag(0x88A8, 5) + tag(0x8100, 100) + PAYLOAD,
    MACS + PAYLOAD,
    MACS + tag(0x8100, 9) + PAYLOAD,
    MACS + tag(0x9100, 5) + PAYLOAD,
    MACS + tag(0x8100, 0x2005) + PAYLOAD,  # PCP 1, VID 5
]
# From the peer, to session 5 (must carry VID 5) and session 7 (pop: gets tag 7).
FROM_PEER = [
    (5, MACS + tag(0x8100, 5) + PAYLOAD),
    (5, MACS + tag(0x8100, 7) + PAYLOAD),
    (5, MACS + PAYLOAD),
    (5, MACS + tag(0x88A8, 5) + tag(0x8100, 3) + PAYLOAD),
    (7, MACS + PAYLOAD),
    (7, MACS + tag(0x8100, 7) + PAYLOAD),
]


def recv_frame(sock: socket.socket) -> bytes | None:
    data, anc, _, addr = sock.recvmsg(65535, socket.CMSG_SPACE(20))
    if addr[2] == PACKET_OUTGOING:
        return None
    for level, kind, raw in anc:
        if level == SOL_PACKET and kind == PACKET_AUXDATA:
            status, _, _, _, _, tci, tpid = struct.unpack("IIIHHHH", raw[:20])
            if status & TP_STATUS_VLAN_VALID:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                data = data[:12] + tag(tpid, tci) + data[12:]
    return data


async def run(impl: str, state_dir: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    d = Daemon(loop, choose(impl), state_dir=state_dir)  # type: ignore[arg-type]
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((LOCAL, DPORT))
    peer.settimeout(0.5)
    try:
        d.add_tunnel(TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address(LOCAL),
                                  remote=ip_address(LOCAL), udp_sport=SPORT,
                                  udp_dport=DPORT))  # fmt: skip
        for vid, pop in ((5, False), (7, True)):
            d.add_session(SessionConfig(tunnel_id=1, session_id=vid, peer_session_id=vid,
                                        trunk="trk0", vlan=vid, vlan_pop=pop))  # fmt: skip
        subprocess.run(["ip", "link", "set", "trk0", "up"], check=True)
        cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        cap.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        cap.bind(("trk0", 0))
        cap.setblocking(False)
        await asyncio.sleep(0.3)
        # Drain what the kernel sent on raising the device (IPv6 is off: nothing).
        while True:
            try:
                cap.recv(65535)
            except BlockingIOError:
                break
        for frame in TO_TRUNK:
            cap.sendto(frame, ("trk0", 0))
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        datagrams = []
        while True:
            try:
                datagrams.append(peer.recv(65535).hex())
            except TimeoutError:
                break
        for sid, frame in FROM_PEER:
            # UDP flags word, session ID, default sublayer (no sequence number).
            peer.sendto(b"\x00\x03\x00\x00" + sid.to_bytes(4, "big") + bytes(4) + frame,
                        (LOCAL, SPORT))  # fmt: skip
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        frames = []
        while True:
            try:
                got = recv_frame(cap)
            except BlockingIOError:
                break
            if got is not None:
                frames.append(got.hex())
        (tun,) = d.show_tunnels()
        sessions = {
            s.config.session_id: {"stats": s.stats, "drops": s.drops} for s in d.show_sessions()
        }
        return {"datagrams": datagrams, "frames": frames, "tunnel_drops": tun.drops,
                "sessions": sessions}  # fmt: skip
    finally:
        d.close()
        peer.close()


def main(argv: list[str]) -> None:
    print(json.dumps(asyncio.run(run(argv[0], argv[1]))))


if __name__ == "__main__":
    main(sys.argv[1:])
