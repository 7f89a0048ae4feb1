# ruff: noqa: E501 - generated, one hex string per 32 bytes
"""Packets a real Linux kernel sent, captured by the interop harness (generated).

Kernel: 6.1.0-56-cloud-amd64 from Debian package linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64 (apt-get download + dpkg -x,
booted under qemu-system-x86_64 -accel tcg with a busybox initramfs: interop/).
Captured: 2026-11-21 20:19 UTC, by `python3 -m interop capture -o tests/kernel_captures.py` (interop/capture.py):
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
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap udp local 192.0.2.2 remote 192.0.2.1 udp_sport 6000 udp_dport 5000",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 l2spec_type default",
        ),
        packets=(
            bytes.fromhex(
                "450000523a3700004011bc60c0000202c000020117701388003e000000030000"
                "0000001400000000ffffffffffff7ebcc7c74af7080600010800060400017ebc"
                "c7c74af70a6300020000000000000a630001"
            ),
            bytes.fromhex(
                "4500008a3a3800004011bc27c0000202c0000201177013880076000000030000"
                "0000001400000000260ac62b29637ebcc7c74af7080045000054a30a40004001"
                "82d60a6300020a630001080070fb00880000007c860000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "00000000000000000000"
            ),
            bytes.fromhex(
                "4500008a3a3900004011bc26c0000202c0000201177013880076000000030000"
                "0000001400000000260ac62b29637ebcc7c74af7080045000054a30c40004001"
                "82d40a6300020a63000108001fb10088000151c5860000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "00000000000000000000"
            ),
            bytes.fromhex(
                "4500008a3a3a00004011bc25c0000202c0000201177013880076000000030000"
                "0000001400000000260ac62b29637ebcc7c74af7080045000054a30d40004001"
                "82d30a6300020a630001080028aa0088000248cb860000000000000000000000"
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
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap udp local 192.0.2.2 remote 192.0.2.1 udp_sport 6000 udp_dport 5000",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 cookie 11223344 peer_cookie 0a0b0c0d l2spec_type default seq both",
        ),
        packets=(
            bytes.fromhex(
                "450000565f990000401196fac0000202c0000201177013880042000000030000"
                "000000141122334440000000ffffffffffff36806d03d4200806000108000604"
                "000136806d03d4200a6300020000000000000a630001"
            ),
            bytes.fromhex(
                "4500008e5f9a0000401196c1c0000202c000020117701388007a000000030000"
                "0000001411223344400000011a21bc3b9ca736806d03d420080045000054a5d0"
                "4000400180100a6300020a6300010800669c009f0000d9c3b700000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000"
            ),
            bytes.fromhex(
                "4500008e5f9b0000401196c0c0000202c000020117701388007a000000030000"
                "0000001411223344400000021a21bc3b9ca736806d03d420080045000054a5d1"
                "40004001800f0a6300020a63000108008b90009f0001b4ceb700000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000"
            ),
            bytes.fromhex(
                "4500008e5f9c0000401196bfc0000202c000020117701388007a000000030000"
                "0000001411223344400000031a21bc3b9ca736806d03d420080045000054a5d2"
                "40004001800e0a6300020a6300010800b58b009f00028ad2b700000000000000"
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
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap ip local 192.0.2.2 remote 192.0.2.1",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 cookie a1a2a3a4a5a6a7a8 peer_cookie 0102030405060708 l2spec_type none",
        ),
        packets=(
            bytes.fromhex(
                "4500004a7cfe00004073793fc0000202c000020100000014a1a2a3a4a5a6a7a8"
                "ffffffffffffb2482cfc4b6b08060001080006040001b2482cfc4b6b0a630002"
                "0000000000000a630001"
            ),
            bytes.fromhex(
                "450000827cff000040737906c0000202c000020100000014a1a2a3a4a5a6a7a8"
                "b6408202b93eb2482cfc4b6b080045000054a62e400040017fb20a6300020a63"
                "00010800e7ce00b60000007a0f01000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "0000"
            ),
            bytes.fromhex(
                "450000827d00000040737905c0000202c000020100000014a1a2a3a4a5a6a7a8"
                "b6408202b93eb2482cfc4b6b080045000054a632400040017fae0a6300020a63"
                "000108008d7600b600015ad10f01000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "0000"
            ),
            bytes.fromhex(
                "450000827d01000040737904c0000202c000020100000014a1a2a3a4a5a6a7a8"
                "b6408202b93eb2482cfc4b6b080045000054a633400040017fad0a6300020a63"
                "000108001b6900b60002ccdd0f01000000000000000000000000000000000000"
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
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap ip local 192.0.2.2 remote 192.0.2.1",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 l2spec_type default seq both",
        ),
        packets=(
            bytes.fromhex(
                "45000046919c0000407364a5c0000202c00002010000001440000000ffffffff"
                "ffff568567fc0a5f08060001080006040001568567fc0a5f0a63000200000000"
                "00000a630001"
            ),
            bytes.fromhex(
                "4500007e919d00004073646cc0000202c00002010000001440000001ae333aa1"
                "97b4568567fc0a5f080045000054a642400040017f9e0a6300020a6300010800"
                "2d3d00cd000067f4620100000000000000000000000000000000000000000000"
                "000000000000000000000000000000000000000000000000000000000000"
            ),
            bytes.fromhex(
                "4500007e919e00004073646bc0000202c00002010000001440000002ae333aa1"
                "97b4568567fc0a5f080045000054a643400040017f9d0a6300020a6300010800"
                "d93100cd0001bbfe620100000000000000000000000000000000000000000000"
                "000000000000000000000000000000000000000000000000000000000000"
            ),
            bytes.fromhex(
                "4500007e919f00004073646ac0000202c00002010000001440000003ae333aa1"
                "97b4568567fc0a5f080045000054a644400040017f9c0a6300020a6300010800"
                "422c00cd00025203630100000000000000000000000000000000000000000000"
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
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap udp local 2001:db8:1::2 remote 2001:db8:1::1 udp_sport 6000 udp_dport 5000",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 cookie a1a2a3a4a5a6a7a8 peer_cookie 0102030405060708 l2spec_type default seq send",
        ),
        packets=(
            bytes.fromhex(
                "60080dbf0046114020010db800010000000000000000000220010db800010000"
                "00000000000000011770138800465bce0003000000000014a1a2a3a4a5a6a7a8"
                "40000000ffffffffffff1ad24c239552080600010800060400011ad24c239552"
                "0a6300020000000000000a630001"
            ),
            bytes.fromhex(
                "60080dbf007e114020010db800010000000000000000000220010db800010000"
                "000000000000000117701388007e5c060003000000000014a1a2a3a4a5a6a7a8"
                "400000014a7934dd6d5e1ad24c239552080045000054a759400040017e870a63"
                "00020a6300010800622d00e40000f5ec9f010000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "000000000000"
            ),
            bytes.fromhex(
                "60080dbf007e114020010db800010000000000000000000220010db800010000"
                "000000000000000117701388007e5c060003000000000014a1a2a3a4a5a6a7a8"
                "400000024a7934dd6d5e1ad24c239552080045000054a75a400040017e860a63"
                "00020a6300010800271800e400013001a0010000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000"
                "000000000000"
            ),
            bytes.fromhex(
                "60080dbf007e114020010db800010000000000000000000220010db800010000"
                "000000000000000117701388007e5c060003000000000014a1a2a3a4a5a6a7a8"
                "400000034a7934dd6d5e1ad24c239552080045000054a75b400040017e850a63"
                "00020a6300010800a01400e40002b703a0010000000000000000000000000000"
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
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap ip local 2001:db8:1::2 remote 2001:db8:1::1",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 cookie 11223344 peer_cookie 0a0b0c0d l2spec_type default seq both",
        ),
        packets=(
            bytes.fromhex(
                "600a5bcf0036734020010db800010000000000000000000220010db800010000"
                "0000000000000001000000141122334440000000ffffffffffff3a834901ba83"
                "080600010800060400013a834901ba830a6300020000000000000a630001"
            ),
            bytes.fromhex(
                "600a5bcf006e734020010db800010000000000000000000220010db800010000"
                "00000000000000010000001411223344400000011631ebfb28cc3a834901ba83"
                "080045000054a961400040017c7f0a6300020a6300010800796b00fb0000b397"
                "ca01000000000000000000000000000000000000000000000000000000000000"
                "00000000000000000000000000000000000000000000"
            ),
            bytes.fromhex(
                "600a5bcf006e734020010db800010000000000000000000220010db800010000"
                "00000000000000010000001411223344400000021631ebfb28cc3a834901ba83"
                "080045000054a962400040017c7e0a6300020a6300010800374f00fb0001f5b2"
                "ca01000000000000000000000000000000000000000000000000000000000000"
                "00000000000000000000000000000000000000000000"
            ),
            bytes.fromhex(
                "600a5bcf006e734020010db800010000000000000000000220010db800010000"
                "00000000000000010000001411223344400000031631ebfb28cc3a834901ba83"
                "080045000054a963400040017c7d0a6300020a6300010800814200fb0002abbe"
                "ca01000000000000000000000000000000000000000000000000000000000000"
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
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap udp local 2001:db8:1::2 remote 2001:db8:1::1 udp_sport 6000 udp_dport 5000",
            "ip l2tp add session tunnel_id 1000 session_id 10 peer_session_id 20 l2spec_type none",
        ),
        packets=(
            bytes.fromhex(
                "60080dbf003a114020010db800010000000000000000000220010db800010000"
                "000000000000000117701388003a5bc20003000000000014ffffffffffffb265"
                "f15be44b08060001080006040001b265f15be44b0a6300020000000000000a63"
                "0001"
            ),
            bytes.fromhex(
                "60080dbf0072114020010db800010000000000000000000220010db800010000"
                "00000000000000011770138800725bfa00030000000000146ac30a330ce8b265"
                "f15be44b080045000054aa8e400040017b520a6300020a6300010800824c0112"
                "0000749f00020000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000"
            ),
            bytes.fromhex(
                "60080dbf0072114020010db800010000000000000000000220010db800010000"
                "00000000000000011770138800725bfa00030000000000146ac30a330ce8b265"
                "f15be44b080045000054aa8f400040017b510a6300020a6300010800253f0112"
                "0001d1ab00020000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000"
            ),
            bytes.fromhex(
                "60080dbf0072114020010db800010000000000000000000220010db800010000"
                "00000000000000011770138800725bfa00030000000000146ac30a330ce8b265"
                "f15be44b080045000054aa90400040017b500a6300020a63000108002d3a0112"
                "0002c9af00020000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000"
            ),
        ),
    ),
}
