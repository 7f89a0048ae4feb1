"""A host on VLAN VID of a trunk, for a kernel without 8021q (tests/netns/test_vlan.py):
tagged ARP and ICMP on a plain interface through scapy's AF_PACKET sockets, which put
back the tag the kernel moved into the packet's metadata (PACKET_AUXDATA).

    vlan_probe.py ping DEV VID MY_MAC MY_IP DST_IP   # "arp MAC vid V", "pong vid V" or "noarp"
    vlan_probe.py send DEV VID COUNT                 # VID 0: untagged broadcasts
    vlan_probe.py capture DEV SECONDS                # "ready", then "vid V SRC" per frame
"""

from __future__ import annotations

import sys
import threading
import time

from scapy.config import conf
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet
from scapy.sendrecv import AsyncSniffer, sendp


def _tag(vid: int) -> Packet:
    return Dot1Q(vlan=vid) if vid else Packet()


def _vid(p: Packet) -> int:
    return int(p[Dot1Q].vlan) if Dot1Q in p else 0


def _exchange(dev: str, frame: Packet, match: object, wait: float) -> Packet | None:
    # Send only once the sniffer's socket is open: a fixed sleep lost the answer when
    # the machine was busy (a pong that came back before the sniffer listened).
    listening = threading.Event()
    sniffer = AsyncSniffer(iface=dev, lfilter=match, count=1, started_callback=listening.set)
    sniffer.start()
    if not listening.wait(10):
        return None
    sendp(frame, iface=dev, verbose=False)
    sniffer.join(timeout=wait)
    got = sniffer.stop() if sniffer.running else sniffer.results
    return got[0] if got else None


def ping(dev: str, vid: int, mac: str, ip: str, dst: str) -> int:
    eth = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
    req = eth / _tag(vid) / ARP(op=1, hwsrc=mac, psrc=ip, pdst=dst)
    reply = None
    for _ in range(3):
        reply = _exchange(
            dev, req, lambda p: ARP in p and p[ARP].op == 2 and p[ARP].psrc == dst, 1.5
        )
        if reply is not None:
            break
    if reply is None:
        print("noarp", flush=True)
        return 0
    print(f"arp {reply[ARP].hwsrc} vid {_vid(reply)}", flush=True)
    echo = Ether(src=mac, dst=reply[ARP].hwsrc) / _tag(vid) / IP(src=ip, dst=dst) / ICMP(id=77)
    pong = None
    # Three tries as for the ARP: one lost echo is not a verdict on the path.
    for _ in range(3):
        pong = _exchange(
            dev, echo, lambda p: ICMP in p and p[ICMP].type == 0 and p[IP].src == dst, 2.0
        )
        if pong is not None:
            break
    print(f"pong vid {_vid(pong)}" if pong is not None else "nopong", flush=True)
    return 0


def send(dev: str, vid: int, count: int) -> int:
    frame = Ether(src="02:00:00:00:99:99", dst="ff:ff:ff:ff:ff:ff") / _tag(vid)
    frame = frame / ARP(op=1, hwsrc="02:00:00:00:99:99", psrc="10.99.0.1", pdst="10.99.0.2")
    sendp([frame] * count, iface=dev, verbose=False)
    print(f"sent {count}", flush=True)
    return 0


def capture(dev: str, seconds: float) -> int:
    listening = threading.Event()
    sniffer = AsyncSniffer(iface=dev, lfilter=lambda p: ARP in p or ICMP in p,
                           started_callback=listening.set)  # fmt: skip
    sniffer.start()
    if not listening.wait(10):
        print("sniffer did not start", flush=True)
        return 1
    print("ready", flush=True)
    time.sleep(seconds)
    for p in sniffer.stop() or []:
        print(f"vid {_vid(p)} {p.src}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    conf.verb = 0
    mode, dev = argv[0], argv[1]
    if mode == "ping":
        return ping(dev, int(argv[2]), argv[3], argv[4], argv[5])
    if mode == "send":
        return send(dev, int(argv[2]), int(argv[3]))
    if mode == "capture":
        return capture(dev, float(argv[2]))
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
