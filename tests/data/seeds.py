"""The ``ip l2tp`` command lines of the project's seed documents, copied here so that no
test reads anything outside the repository.

Provenance: the seed documents the project started from (``shared/seeds/`` beside the
repository, not part of it), copied on 2026-12-05. For each document, its SHA-256 at
the time and, per section, every ``ip l2tp add|del|show`` line in document order, as
the seed gives it except: "\\\\" line continuations joined, shell prompts ("site-A:#",
"root@tun01:~#", "#") dropped, runs of whitespace collapsed to one space. The
OpenWrt document configures its pseudowire with OpenWrt's own files and holds no
``ip l2tp`` line. Used by tests/unit/test_grammar.py (every line must parse into its
expected command), tests/unit/test_peerconfig.py and tests/netns/test_peerconfig.py
(the man page's site-A/site-B pair) and tests/netns/test_mesh.py (the 3-site mesh).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Seed:
    document: str  # file name under shared/seeds/
    sha256: str  # of that file when the lines were copied
    title: str
    sections: dict[str, tuple[str, ...]]  # section of the document -> its lines


IP_L2TP_MAN = Seed(
    "ip-l2tp-man.txt",
    "31849b1ef44c0b84457612e70bb7f8b4e68fdf87a0652348fa0bdf032e6fb083",
    "ip-l2tp(8) manual page, iproute2",
    {
        "EXAMPLES, site-A": (
            "ip l2tp add tunnel tunnel_id 3000 peer_tunnel_id 4000 encap udp local 1.2.3.4 "
            "remote 5.6.7.8 udp_sport 5000 udp_dport 6000",
            "ip l2tp add session tunnel_id 3000 session_id 1000 peer_session_id 2000",
        ),
        "EXAMPLES, site-B": (
            "ip l2tp add tunnel tunnel_id 4000 peer_tunnel_id 3000 encap udp local 5.6.7.8 "
            "remote 1.2.3.4 udp_sport 6000 udp_dport 5000",
            "ip l2tp add session tunnel_id 4000 session_id 2000 peer_session_id 1000",
        ),
    },
)

LINUX_PSEUDOWIRES = Seed(
    "linux-l2tp-ethernet-pseudowires.md",
    "7fa3c8b712afdbdcf697ba276824bc41c0870bc36a03677317507a445b020581",
    "Linux L2TP ethernet pseudowires (blog post, 2014-02-16)",
    {
        "tun01": (
            "ip l2tp add tunnel tunnel_id 1000 peer_tunnel_id 2000 encap udp local 1.1.1.2 "
            "remote 2.2.2.2 udp_sport 6000 udp_dport 5000",
            "ip l2tp add session tunnel_id 1000 session_id 3000 peer_session_id 4000",
            "ip l2tp show tunnel",
            "ip l2tp show session",
        ),
        "tun02": (
            "ip l2tp add tunnel tunnel_id 2000 peer_tunnel_id 1000 encap udp local 2.2.2.2 "
            "remote 1.1.1.2 udp_sport 5000 udp_dport 6000",
            "ip l2tp add session tunnel_id 2000 session_id 4000 peer_session_id 3000",
            "ip l2tp show tunnel",
            "ip l2tp show session",
        ),
    },
)

OPENWRT_PSEUDOWIRE = Seed(
    "openwrt-pseudowire.md",
    "333261929584e7dd270a5f985a0ec39c1066f49b32c9b06a00c67138fa24ce5b",
    "Pseudowire (OpenWrt wiki: L2TPv3 between OpenWrt routers)",
    {},
)

P2MP_MESH = Seed(
    "p2mp-layer2-over-layer3-ro.txt",
    "aa320b67b43183f3e3d6e2618b24a0d6a4491603905ea54f3c88946bb3727320",
    "p2p/mp layer2 networking over layer3 (blog post, Romanian)",
    {
        # gw-a <-> gw-b over UDP, then the IP-encap tunnel gw-b <-> gw-c.
        "gw-a": (
            "ip l2tp add tunnel local 10.200.100.2 remote 10.200.100.6 tunnel_id 1000 "
            "peer_tunnel_id 1000 encap udp udp_sport 5001 udp_dport 6001",
            "ip l2tp add session tunnel_id 1000 session_id 1000 peer_session_id 1000",
        ),
        "gw-b": (
            "ip l2tp add tunnel local 10.200.100.6 remote 10.200.100.2 tunnel_id 1000 "
            "peer_tunnel_id 1000 encap udp udp_sport 6001 udp_dport 5001",
            "ip l2tp add session tunnel_id 1000 session_id 1000 peer_session_id 1000",
            "ip l2tp add tunnel tunnel_id 2000 peer_tunnel_id 2000 local 10.200.100.6 "
            "remote 10.200.100.10 encap ip",
            "ip l2tp add session tunnel_id 2000 session_id 2000 peer_session_id 2000",
        ),
        "gw-c": (
            "ip l2tp add tunnel tunnel_id 2000 peer_tunnel_id 2000 local 10.200.100.10 "
            "remote 10.200.100.6 encap ip",
            "ip l2tp add session tunnel_id 2000 session_id 2000 peer_session_id 2000",
        ),
    },
)

SEEDS = (IP_L2TP_MAN, LINUX_PSEUDOWIRES, OPENWRT_PSEUDOWIRE, P2MP_MESH)


def all_lines() -> set[str]:
    """Every distinct ``ip l2tp`` line of every seed document."""
    return {line for seed in SEEDS for lines in seed.sections.values() for line in lines}


# The OpenWrt data-centre pair's liveness, which monit provides there: each side pings
# the other's LAN address and re-runs `ifup lan` when it stops answering. Copied from
# openwrt-pseudowire.md (sha256 as OPENWRT_PSEUDOWIRE above, 2026-12-05): the
# "/etc/monitrc" stanza of l-01 and l-02 verbatim (their last three lines; the pluto
# check is IPsec's), and the `config interface lan` options of each side that the
# pseudowire uses. tests/netns/test_liveness.py runs the same pair with
# `liveness arp <the other side's lan ipaddr>` and on_down/on_up hooks instead.
OPENWRT_MONIT = {
    "l-01": {
        "ipaddr": "10.1.0.1",
        "sport": 1701,
        "dport": 1702,
        "localaddr": "172.30.201.5",
        "peeraddr": "172.30.201.9",
        "monitrc": (
            "check host secondary with address 10.1.0.2",
            "if failed icmp type echo count 5 with timeout 30 seconds",
            'then exec "/sbin/ifup lan"',
        ),
    },
    "l-02": {
        "ipaddr": "10.1.0.2",
        "sport": 1702,
        "dport": 1701,
        "localaddr": "172.30.201.9",
        "peeraddr": "172.30.201.5",
        "monitrc": (
            "check host secondary with address 10.1.0.1",
            "if failed icmp type echo count 5 with timeout 30 seconds",
            'then exec "/sbin/ifup lan"',
        ),
    },
}
