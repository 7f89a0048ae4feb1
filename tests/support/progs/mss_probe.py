"""TCP traffic and SYN capture for the MSS clamping namespace test (tests/netns/test_mss.py).

    mss_probe.py server ADDR PORT SECONDS      one connection: "bulk N" or "chat R"
    mss_probe.py bulk ADDR PORT N SECONDS      send N random bytes (seed 1)
    mss_probe.py chat ADDR PORT R SECONDS      R ssh-like request/response rounds
    mss_probe.py capture DEV PORT in|out|any [L2TP_HLEN]
                                               MSS option of SYNs to / SYN-ACKs from PORT
                                               received by / sent from DEV
                                               (in L2TP-over-UDP datagrams: inner frames
                                               after L2TP_HLEN bytes of L2TP header)

Nothing waits forever: every socket has a deadline, and a transfer that does not finish
in time is reported ("stalled", with the bytes that did arrive), not hung on. The server
prints one line: "done BYTES SHA256 SECONDS" or "stalled BYTES". The capture prints
"ready", then on SIGINT one line per SYN seen: "syn MSS csum-ok" / "synack MSS csum-ok"
(or csum-bad: the TCP checksum recomputed by scapy differs).
"""

from __future__ import annotations

import hashlib
import random
import signal
import socket
import sys
import time

from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

CHUNK = 65536


def _serve(addr: str, port: int, seconds: float) -> int:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(1)
    ls.settimeout(seconds)
    print("ready", flush=True)
    conn, _ = ls.accept()
    start = time.monotonic()
    deadline = start + seconds
    f = conn.makefile("rb")
    conn.settimeout(seconds)
    got = 0
    try:
        head = f.readline().split()
        if head[0] == b"bulk":
            want = int(head[1])
            h = hashlib.sha256()
            while got < want:
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                data = f.read1(min(CHUNK, want - got))
                if not data:
                    break
                h.update(data)
                got += len(data)
            if got == want:
                print(f"done {got} {h.hexdigest()} {time.monotonic() - start:.2f}", flush=True)
                return 0
        else:
            # An interactive session: short requests; mostly short answers, now and then
            # a screenful or a file listing (the replies that stall without clamping).
            rounds = int(head[1])
            for _ in range(rounds):
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                req = f.readline()
                if not req:
                    break
                size = int(req.split()[1])
                conn.sendall(bytes(random.Random(size).randbytes(size)))
                got += len(req)
            else:
                print(f"done {got} - {time.monotonic() - start:.2f}", flush=True)
                return 0
    except (TimeoutError, OSError, IndexError, ValueError):
        pass
    print(f"stalled {got}", flush=True)
    return 0


def _connect(addr: str, port: int, seconds: float) -> socket.socket:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(seconds)
    s.connect((addr, port))
    return s


def _bulk(addr: str, port: int, n: int, seconds: float) -> int:
    data = random.Random(1).randbytes(n)
    try:
        s = _connect(addr, port, seconds)
        s.sendall(f"bulk {n}\n".encode() + data)
        s.shutdown(socket.SHUT_WR)
        print("sent", flush=True)
    except (TimeoutError, OSError):
        print("stalled", flush=True)
    return 0


def _chat(addr: str, port: int, rounds: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    try:
        s = _connect(addr, port, seconds)
        f = s.makefile("rb")
        s.sendall(f"chat {rounds}\n".encode())
        for i in range(rounds):
            size = 20000 + i if i % 10 == 9 else 40 + i % 50
            s.sendall(f"req {size} {'k' * (i % 30)}\n".encode())
            s.settimeout(max(0.01, deadline - time.monotonic()))
            if f.read(size) != random.Random(size).randbytes(size):
                print(f"stalled {i}", flush=True)
                return 0
        print(f"done {rounds}", flush=True)
    except (TimeoutError, OSError):
        print("stalled", flush=True)
    return 0


def _inner(frame: bytes, decap: int | None) -> bytes | None:
    """The Ethernet frame to look at (inside the L2TP datagram with ``decap``), or None
    when it is plainly not a TCP SYN: a cheap look first, so the capture keeps up."""
    if decap is not None:
        if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            return None
        frame = frame[14 + (frame[14] & 15) * 4 + 8 + decap :]
    if len(frame) < 14:
        return None
    et = frame[12:14]
    if et == b"\x08\x00" and len(frame) >= 34 and frame[23] == 6:
        l4 = 14 + (frame[14] & 15) * 4
    elif et == b"\x86\xdd" and len(frame) >= 54 and frame[20] == 6:
        l4 = 54
    else:
        return None
    if len(frame) < l4 + 14 or not frame[l4 + 13] & 0x02:
        return None
    return frame


def _capture(dev: str, port: int, direction: str, decap: int | None) -> int:
    stop = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((dev, 0))
    s.settimeout(0.2)
    print("ready", flush=True)
    seen: list[str] = []
    quiet_until = time.monotonic() + 300
    while not stop and time.monotonic() < quiet_until:
        try:
            raw, addr = s.recvfrom(65535)
        except TimeoutError:
            continue
        except InterruptedError:
            continue
        outgoing = addr[2] == socket.PACKET_OUTGOING
        if (direction == "in" and outgoing) or (direction == "out" and not outgoing):
            continue
        inner = _inner(raw, decap)
        if inner is None:
            continue
        pkt = Ether(inner)
        if TCP not in pkt or not pkt[TCP].flags.S:
            continue
        tcp = pkt[TCP]
        kind = "synack" if tcp.flags.A else "syn"
        if (kind == "syn" and tcp.dport != port) or (kind == "synack" and tcp.sport != port):
            continue
        mss = [v for k, v in tcp.options if k == "MSS"]
        # The checksum as scapy computes it from scratch over the received bytes.
        got = tcp.chksum
        del tcp.chksum
        ok = Ether(bytes(pkt))[TCP].chksum == got
        seen.append(f"{kind} {mss[0] if mss else 'none'} {'csum-ok' if ok else 'csum-bad'}")
    print("\n".join(seen), flush=True)
    return 0


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "server":
        return _serve(argv[1], int(argv[2]), float(argv[3]))
    if mode == "bulk":
        return _bulk(argv[1], int(argv[2]), int(argv[3]), float(argv[4]))
    if mode == "chat":
        return _chat(argv[1], int(argv[2]), int(argv[3]), float(argv[4]))
    return _capture(argv[1], int(argv[2]), argv[3], int(argv[4]) if len(argv) > 4 else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
