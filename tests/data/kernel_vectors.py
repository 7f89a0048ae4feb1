# ruff: noqa: E501 - the titles are the headings of docs/kernel-vectors.md, verbatim
"""Packets a real Linux kernel sent and accepted, byte for byte.

Source: docs/kernel-vectors.md (a copy of the seed notes' kernel-vectors.md; captured
from a stock Debian 6.1 kernel, linux-image-cloud-amd64, configured with `ip l2tp`,
booted under qemu and talking to a probe over a TAP). The VM is session_id 3000 / peer_session_id 4000; the
probe (us) is session_id 4000 / peer_session_id 3000. Offsets in each packet are
from the outer IP header. Titles are the headings of that file.
"""

from __future__ import annotations

KERNEL_PACKETS: dict[str, bytes] = {
    "udp-default: encap udp, l2spec_type default, no cookie, seq none - VM's ARP reply": bytes.fromhex(
        "450000528e6700004011d76b0a6300020a63000106a506a5003e000000030000"
        "00000fa000000000029900000001029900000002080600010800060400020299"
        "000000020a6301020299000000010a630101"
    ),
    "udp-default: same session - VM-originated broadcast frame (`ip neigh flush all; ping` inside the VM)": bytes.fromhex(
        "450000528e6b00004011d7670a6300020a63000106a506a5003e000000030000"
        "00000fa000000000ffffffffffff029900000002080600010800060400010299"
        "000000020a6301020000000000000a630101"
    ),
    "udp-cookie8: encap udp, cookie 1122334455667788 / peer_cookie a1a2a3a4a5a6a7a8 - VM's ARP reply": bytes.fromhex(
        "4500005a160e000040114fbd0a6300020a63000106a506a50046000000030000"
        "00000fa011223344556677880000000002990000000102990000000208060001"
        "0800060400020299000000020a6301020299000000010a630101"
    ),
    "ip-none-cookie4: encap ip (proto 115), l2spec_type none, cookie deadbeef / peer_cookie cafef00d - VM's ARP reply": bytes.fromhex(
        "4500004641580000407324250a6300020a63000100000fa0deadbeef02990000"
        "0001029900000002080600010800060400020299000000020a63010202990000"
        "00010a630101"
    ),
    "udp-seq-both: encap udp, l2spec_type default, seq both - VM's 2nd packet (echo reply)": bytes.fromhex(
        "450000727a4800004011eb6a0a6300020a63000106a506a5005e000000030000"
        "00000fa04000000102990000000102990000000208004500003c0a6e00004001"
        "598b0a6301020a6301010000c3ae4b500000000102030405060708090a0b0c0d"
        "0e0f101112131415161718191a1b1c1d1e1f"
    ),
    "ip-seq-both-cookie8: encap ip, l2spec default, seq both, 8-byte cookie - VM's ARP reply": bytes.fromhex(
        "4500004e1e630000407347120a6300020a63000100000fa01122334455667788"
        "4000000002990000000102990000000208060001080006040002029900000002"
        "0a6301020299000000010a630101"
    ),
    "udp-l2spec-none: encap udp, l2spec_type none - VM's ARP reply": bytes.fromhex(
        "4500004e2df70000401137e00a6300020a63000106a506a5003a000000030000"
        "00000fa002990000000102990000000208060001080006040002029900000002"
        "0a6301020299000000010a630101"
    ),
    "udp-csum-on: encap udp, udp_csum on - VM's ARP reply": bytes.fromhex(
        "45000052722a00004011f3a80a6300020a63000106a506a5003e967c00030000"
        "00000fa000000000029900000001029900000002080600010800060400020299"
        "000000020a6301020299000000010a630101"
    ),
    "udp6-default: IPv6 underlay, encap udp (udp6_csum_tx default) - VM's ARP reply": bytes.fromhex(
        "60039135003e1140fd000099000000000000000000000002fd00009900000000"
        "000000000000000106a506a5003eb00e0003000000000fa00000000002990000"
        "0001029900000002080600010800060400020299000000020a63010202990000"
        "00010a630101"
    ),
    "ip6-none-cookie8: IPv6 underlay, encap ip, l2spec none, 8-byte cookie - VM's ARP reply": bytes.fromhex(
        "600cc57000367340fd000099000000000000000000000002fd00009900000000"
        "000000000000000100000fa01122334455667788029900000001029900000002"
        "080600010800060400020299000000020a6301020299000000010a630101"
    ),
    "udp-cookie8: packet the kernel ACCEPTED (host -> VM): encap udp, cookie = VM's peer_cookie, ARP request": bytes.fromhex(
        "4500005a589f40004011cd2b0a6300010a63000206a506a500460cf500030000"
        "00000bb8a1a2a3a4a5a6a7a800000000ffffffffffff02990000000108060001"
        "0800060400010299000000010a6301010000000000000a630102"
    ),
    "ip-none-cookie4: packet the kernel ACCEPTED (host -> VM): encap ip, cookie = VM's peer_cookie, ARP request": bytes.fromhex(
        "45000046f4584000407331240a6300010a63000200000bb8cafef00dffffffff"
        "ffff029900000001080600010800060400010299000000010a63010100000000"
        "00000a630102"
    ),
    "udp-seq-both: packet the kernel ACCEPTED (host -> VM) under seq both: S=1, seq 1": bytes.fromhex(
        "4500007229a540004011fc0d0a6300010a63000206a506a5005e842e00030000"
        "00000bb84000000102990000000202990000000108004500003c123440004001"
        "11c50a6301010a6301020800bbae4b500000000102030405060708090a0b0c0d"
        "0e0f101112131415161718191a1b1c1d1e1f"
    ),
}
