# ruff: noqa: E501 - generated, one hex string per 32 bytes
"""Packets a real Linux kernel sent, captured by the interop harness (generated).

Kernel: 6.1.0-56-cloud-amd64 from Debian package linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64 (apt-get download + dpkg -x,
booted under qemu-system-x86_64 -accel tcg with a busybox initramfs: interop/).
Captured: 2026-11-21 20:32 UTC, by `python3 -m interop capture -o tests/kernel_captures.py` (interop/capture.py;
the file has moved to tests/data/ since, and -o now defaults there):
tcpdump -i tap0 -w - 'src host <guest> and <udp|ip proto 115|ip6 proto 115>' in
the harness's namespace while the guest pinged our l2tpv3d through l2tpeth0.
The kernel was configured with the `lines` shown (from peer_lines, i.e. l2tpv3
peer-config --for linux); our end with interop.cases.ours_args(case). Each packet
is the outer IP header onwards, in the order the kernel sent it.
Do not edit: regenerate with the command above.
"""

from __future__ import annotations

from dataclasses import dataclass

KERNEL_RELEASE = "6.1.0-56-cloud-amd64"
KERNEL_PACKAGE = "linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64"


@dataclass(frozen=True)
class KernelCapture:
    encap: str  # udp | ip
    family: int  # 4 | 6
    cookie: str  # what OUR session sends (hex); the kernel expects it
    peer_cookie: str  # what our session expects (hex); the kernel sends it
    l2spec: str  # none | default, both ends
    our_seq: str  # our seq; the kernel's is in `lines`
    our_session_id: int
    kernel_session_id: int
    udp_ports: tuple[int, int]  # (ours, the kernel's); (0, 0) for ip encap
    lines: tuple[str, ...]
    packets: tuple[bytes, ...]


KERNEL_CAPTURES: dict[str, KernelCapture] = {
    "udp4-c0-default-seqnone": KernelCapture(
        encap="udp",
        family=4,
        cookie="",
        peer_cookie="",
        l2spec="default",
        our_seq="none",
        our_session_id=20,
        kernel_session_id=10,
        udp_ports=(5000, 6000),
        lines=(
            "# far end of our tunnel 2000 (udp over IPv4)",
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap udp local 192.0.2.2 remote 192.0.2.1 udp_sport 6000 udp_dport 5000",
            "# far end of our session 20",
            "# MTU with a 1500-byte path: far end 1446, ours 1446",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20",
        ),
        packets=(
            bytes.fromhex(
                "45000052e3d80000401112bfc0000202c000020117701388003e000000030000"
                "0000001400000000ffffffffffff2a8d7f9d1eb7080600010800060400012a8d"
                "7f9d1eb70a6300020000000000000a630001"
            ),
            bytes.fromhex(
                "4500008ae3d9000040111286c0000202c0000201177013880076000000030000"
                "0000001400000000d2495dcf06412a8d7f9d1eb70800450000549be940004001"
                "89f70a6300020a6300010800d7be00890000d9b7460000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "00000000000000000000"
            ),
            bytes.fromhex(
                "4500008ae3da000040111285c0000202c0000201177013880076000000030000"
                "0000001400000000d2495dcf06412a8d7f9d1eb70800450000549bec40004001"
                "89f40a6300020a63000108002d7a0089000183fb460000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "00000000000000000000"
            ),
            bytes.fromhex(
                "4500008ae3db000040111284c0000202c0000201177013880076000000030000"
                "0000001400000000d2495dcf06412a8d7f9d1eb70800450000549bed40004001"
                "89f30a6300020a63000108008371008900022d03470000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "00000000000000000000"
            ),
        ),
    ),
    "udp4-c4-default-seqboth": KernelCapture(
        encap="udp",
        family=4,
        cookie="0a0b0c0d",
        peer_cookie="11223344",
        l2spec="default",
        our_seq="both",
        our_session_id=20,
        kernel_session_id=10,
        udp_ports=(5000, 6000),
        lines=(
            "# far end of our tunnel 2000 (udp over IPv4)",
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap udp local 192.0.2.2 remote 192.0.2.1 udp_sport 6000 udp_dport 5000",
            "# far end of our session 20",
            "# MTU with a 1500-byte path: far end 1442, ours 1442",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 cookie 11223344 peer_cookie 0a0b0c0d seq both",
        ),
        packets=(
            bytes.fromhex(
                "450000562ac700004011cbccc0000202c0000201177013880042000000030000"
                "000000141122334440000000ffffffffffffdaf537b3e44c0806000108000604"
                "0001daf537b3e44c0a6300020000000000000a630001"
            ),
            bytes.fromhex(
                "4500008e2ac800004011cb93c0000202c000020117701388007a000000030000"
                "000000141122334440000001766dd260de0adaf537b3e44c0800450000549d87"
                "4000400188590a6300020a6300010800e4d500a00000af896300000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000"
            ),
            bytes.fromhex(
                "4500008e2ac900004011cb92c0000202c000020117701388007a000000030000"
                "000000141122334440000002766dd260de0adaf537b3e44c0800450000549d88"
                "4000400188580a6300020a6300010800a7cb00a00001ec926300000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000"
            ),
            bytes.fromhex(
                "4500008e2aca00004011cb91c0000202c000020117701388007a000000030000"
                "000000141122334440000003766dd260de0adaf537b3e44c0800450000549d89"
                "4000400188570a6300020a630001080004c600a000028f976300000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000"
            ),
        ),
    ),
    "ip4-c8-none-seqnone": KernelCapture(
        encap="ip",
        family=4,
        cookie="0102030405060708",
        peer_cookie="a1a2a3a4a5a6a7a8",
        l2spec="none",
        our_seq="none",
        our_session_id=20,
        kernel_session_id=10,
        udp_ports=(0, 0),
        lines=(
            "# far end of our tunnel 2000 (ip over IPv4)",
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap ip local 192.0.2.2 remote 192.0.2.1",
            "# far end of our session 20",
            "# MTU with a 1500-byte path: far end 1454, ours 1454",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 cookie a1a2a3a4a5a6a7a8 peer_cookie 0102030405060708 l2spec_type none",
        ),
        packets=(
            bytes.fromhex(
                "4500004a27ee00004073ce4fc0000202c000020100000014a1a2a3a4a5a6a7a8"
                "ffffffffffff0eb867c6c426080600010800060400010eb867c6c4260a630002"
                "0000000000000a630001"
            ),
            bytes.fromhex(
                "4500008227ef00004073ce16c0000202c000020100000014a1a2a3a4a5a6a7a8"
                "967014f5688e0eb867c6c4260800450000549e5d4000400187830a6300020a63"
                "000108003f2400b700003d247b00000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "0000"
            ),
            bytes.fromhex(
                "4500008227f000004073ce15c0000202c000020100000014a1a2a3a4a5a6a7a8"
                "967014f5688e0eb867c6c4260800450000549e5e4000400187820a6300020a63"
                "000108006c1a00b70001102d7b00000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "0000"
            ),
            bytes.fromhex(
                "4500008227f100004073ce14c0000202c000020100000014a1a2a3a4a5a6a7a8"
                "967014f5688e0eb867c6c4260800450000549e5f4000400187810a6300020a63"
                "00010800511500b700022b317b00000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "0000"
            ),
        ),
    ),
    "ip4-c0-default-seqrecv": KernelCapture(
        encap="ip",
        family=4,
        cookie="",
        peer_cookie="",
        l2spec="default",
        our_seq="recv",
        our_session_id=20,
        kernel_session_id=10,
        udp_ports=(0, 0),
        lines=(
            "# far end of our tunnel 2000 (ip over IPv4)",
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap ip local 192.0.2.2 remote 192.0.2.1",
            "# far end of our session 20",
            "# MTU with a 1500-byte path: far end 1458, ours 1458",
            "# we require sequence numbers but send ours only after hearing the far end's: it must send first",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 seq both",
        ),
        packets=(
            bytes.fromhex(
                "45000046171c00004073df25c0000202c00002010000001440000000ffffffff"
                "ffff1287868a358e080600010800060400011287868a358e0a63000200000000"
                "00000a630001"
            ),
            bytes.fromhex(
                "4500007e171d00004073deecc0000202c00002010000001440000001e2e0775d"
                "b3d11287868a358e0800450000549e7540004001876b0a6300020a6300010800"
                "e83900ce000077f7970000000000000000000000000000000000000000000000"
                "000000000000000000000000000000000000000000000000000000000000"
            ),
            bytes.fromhex(
                "4500007e171e00004073deebc0000202c00002010000001440000002e2e0775d"
                "b3d11287868a358e0800450000549e774000400187690a6300020a6300010800"
                "372300ce0001280d980000000000000000000000000000000000000000000000"
                "000000000000000000000000000000000000000000000000000000000000"
            ),
            bytes.fromhex(
                "4500007e171f00004073deeac0000202c00002010000001440000003e2e0775d"
                "b3d11287868a358e0800450000549e784000400187680a6300020a6300010800"
                "7c1800ce0002e316980000000000000000000000000000000000000000000000"
                "000000000000000000000000000000000000000000000000000000000000"
            ),
        ),
    ),
    "udp6-c8-default-seqsend": KernelCapture(
        encap="udp",
        family=6,
        cookie="0102030405060708",
        peer_cookie="a1a2a3a4a5a6a7a8",
        l2spec="default",
        our_seq="send",
        our_session_id=20,
        kernel_session_id=10,
        udp_ports=(5000, 6000),
        lines=(
            "# far end of our tunnel 2000 (udp over IPv6)",
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap udp local 2001:db8:1::2 remote 2001:db8:1::1 udp_sport 6000 udp_dport 5000",
            "# far end of our session 20",
            "# MTU with a 1500-byte path: far end 1418, ours 1418",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 cookie a1a2a3a4a5a6a7a8 peer_cookie 0102030405060708 seq send",
        ),
        packets=(
            bytes.fromhex(
                "600e90e10046114020010db800010000000000000000000220010db800010000"
                "00000000000000011770138800465bce0003000000000014a1a2a3a4a5a6a7a8"
                "40000000ffffffffffffa606f189888608060001080006040001a606f1898886"
                "0a6300020000000000000a630001"
            ),
            bytes.fromhex(
                "600e90e1007e114020010db800010000000000000000000220010db800010000"
                "000000000000000117701388007e5c060003000000000014a1a2a3a4a5a6a7a8"
                "4000000166f57c60e294a606f1898886080045000054a0474000400185990a63"
                "00020a6300010800bed000e500007f49b9000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "000000000000"
            ),
            bytes.fromhex(
                "600e90e1007e114020010db800010000000000000000000220010db800010000"
                "000000000000000117701388007e5c060003000000000014a1a2a3a4a5a6a7a8"
                "4000000266f57c60e294a606f1898886080045000054a0484000400185980a63"
                "00020a63000108003bbb00e50001025eb9000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "000000000000"
            ),
            bytes.fromhex(
                "600e90e1007e114020010db800010000000000000000000220010db800010000"
                "000000000000000117701388007e5c060003000000000014a1a2a3a4a5a6a7a8"
                "4000000366f57c60e294a606f1898886080045000054a0494000400185970a63"
                "00020a630001080024b800e500021960b9000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "000000000000"
            ),
        ),
    ),
    "ip6-c4-default-seqboth": KernelCapture(
        encap="ip",
        family=6,
        cookie="0a0b0c0d",
        peer_cookie="11223344",
        l2spec="default",
        our_seq="both",
        our_session_id=20,
        kernel_session_id=10,
        udp_ports=(0, 0),
        lines=(
            "# far end of our tunnel 2000 (ip over IPv6)",
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap ip local 2001:db8:1::2 remote 2001:db8:1::1",
            "# far end of our session 20",
            "# MTU with a 1500-byte path: far end 1434, ours 1434",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 cookie 11223344 peer_cookie 0a0b0c0d seq both",
        ),
        packets=(
            bytes.fromhex(
                "6000e7310036734020010db800010000000000000000000220010db800010000"
                "0000000000000001000000141122334440000000ffffffffffffb23f2dadc177"
                "08060001080006040001b23f2dadc1770a6300020000000000000a630001"
            ),
            bytes.fromhex(
                "6000e731006e734020010db800010000000000000000000220010db800010000"
                "000000000000000100000014112233444000000112c79524c5e7b23f2dadc177"
                "080045000054a13d4000400184a30a6300020a6300010800ef0900fc00002ff9"
                "d800000000000000000000000000000000000000000000000000000000000000"
                "00000000000000000000000000000000000000000000"
            ),
            bytes.fromhex(
                "6000e731006e734020010db800010000000000000000000220010db800010000"
                "000000000000000100000014112233444000000212c79524c5e7b23f2dadc177"
                "080045000054a13e4000400184a20a6300020a6300010800560000fc0001c801"
                "d900000000000000000000000000000000000000000000000000000000000000"
                "00000000000000000000000000000000000000000000"
            ),
            bytes.fromhex(
                "6000e731006e734020010db800010000000000000000000220010db800010000"
                "000000000000000100000014112233444000000312c79524c5e7b23f2dadc177"
                "080045000054a13f4000400184a10a6300020a6300010800b9fb00fc00026405"
                "d900000000000000000000000000000000000000000000000000000000000000"
                "00000000000000000000000000000000000000000000"
            ),
        ),
    ),
    "udp6-c0-none-seqnone": KernelCapture(
        encap="udp",
        family=6,
        cookie="",
        peer_cookie="",
        l2spec="none",
        our_seq="none",
        our_session_id=20,
        kernel_session_id=10,
        udp_ports=(5000, 6000),
        lines=(
            "# far end of our tunnel 2000 (udp over IPv6)",
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap udp local 2001:db8:1::2 remote 2001:db8:1::1 udp_sport 6000 udp_dport 5000",
            "# far end of our session 20",
            "# MTU with a 1500-byte path: far end 1430, ours 1430",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 l2spec_type none",
        ),
        packets=(
            bytes.fromhex(
                "600e90e1003a114020010db800010000000000000000000220010db800010000"
                "000000000000000117701388003a5bc20003000000000014ffffffffffffc608"
                "71f5e4a008060001080006040001c60871f5e4a00a6300020000000000000a63"
                "0001"
            ),
            bytes.fromhex(
                "600e90e10072114020010db800010000000000000000000220010db800010000"
                "00000000000000011770138800725bfa0003000000000014a652ab3f0d9cc608"
                "71f5e4a0080045000054a1bc4000400184240a6300020a6300010800d2bc0113"
                "0000332ff1000000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000"
            ),
            bytes.fromhex(
                "600e90e10072114020010db800010000000000000000000220010db800010000"
                "00000000000000011770138800725bfa0003000000000014a652ab3f0d9cc608"
                "71f5e4a0080045000054a1be4000400184220a6300020a6300010800afa20113"
                "00015648f1000000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000"
            ),
            bytes.fromhex(
                "600e90e10072114020010db800010000000000000000000220010db800010000"
                "00000000000000011770138800725bfa0003000000000014a652ab3f0d9cc608"
                "71f5e4a0080045000054a1bf4000400184210a6300020a630001080092980113"
                "00027351f1000000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000"
            ),
        ),
    ),
}
