"""Answer ARP and ping for one address behind a QEMU socket netdev
(tests/netns/test_peerconfig.py): frames arrive as UDP datagrams on 127.0.0.1:LISTEN,
replies go to 127.0.0.1:QEMU. Prints "ready", then one summary line per reply; exits
after 60 s without a frame.

    arp_icmp_responder.py LISTEN QEMU MY_IP MY_MAC
"""

from __future__ import annotations

import socket
import sys

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet


def reply_to(f: Packet, my_ip: str, my_mac: str) -> Packet | None:
    reply: Packet | None = None
    if ARP in f and f[ARP].op == 1 and f[ARP].pdst == my_ip:
        arp = ARP(op=2, hwsrc=my_mac, psrc=my_ip, hwdst=f[ARP].hwsrc, pdst=f[ARP].psrc)
        reply = Ether(src=my_mac, dst=f.src) / arp
    elif ICMP in f and f[ICMP].type == 8 and f[IP].dst == my_ip:
        echo = ICMP(type=0, id=f[ICMP].id, seq=f[ICMP].seq) / f[ICMP].payload
        reply = Ether(src=my_mac, dst=f.src) / IP(src=my_ip, dst=f[IP].src) / echo
    return reply


def main(argv: list[str]) -> int:
    listen, qemu, my_ip, my_mac = int(argv[0]), int(argv[1]), argv[2], argv[3]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", listen))
    s.settimeout(60)
    print("ready", flush=True)
    while True:
        try:
            data = s.recv(65535)
        except TimeoutError:
            break
        reply = reply_to(Ether(data), my_ip, my_mac)
        if reply is not None:
            s.sendto(bytes(reply), ("127.0.0.1", qemu))
            print(reply.summary(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
