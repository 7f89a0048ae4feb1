"""``l2tpv3 peer-config`` end to end: one daemon configured with the man page's site-A
lines, a second one with nothing but what peer-config printed, then traffic between
them. The mirroring itself is unit-tested in tests/unit/test_peerconfig.py; QEMU's own
l2tpv3 backend as the far end is tests/interop/test_interop_qemu_netdev.py.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import pytest

from tests.support.netns import Daemon, tcp_transfer, two_hosts

# -- the far end configured from our output carries traffic --------------------------------------

UNDERLAY = {4: ("10.7.1.1", "10.7.1.2"), 6: ("fd00:7::1", "fd00:7::2")}
INNER = ("10.77.1.1", "10.77.1.2")
# (encap, family, cookie, peer_cookie, extra session words) for daemon A.
ROOT_CASES = [
    ("udp", 4, "", "", []),
    ("ip", 4, "014d3636deadbeef", "a1a2a3a4", []),
    ("udp", 6, "01020304", "0a0b0c0d0e0f1011", ["seq", "both"]),
    ("ip", 6, "", "", ["l2spec_type", "none"]),
    ("udp", 4, "a1a2a3a4a5a6a7a8", "0102030405060708", ["seq", "recv"]),
]


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[Daemon, Daemon]]:
    a_addrs, b_addrs = ([f"{UNDERLAY[4][i]}/24", f"{UNDERLAY[6][i]}/64"] for i in (0, 1))
    with two_hosts("pc", a_addrs, b_addrs) as pair:
        yield pair


@pytest.mark.root
@pytest.mark.parametrize(("encap", "family", "cookie", "peer_cookie", "extra"), ROOT_CASES)
def test_far_end_from_peer_config_carries_traffic(
    hosts: tuple[Daemon, Daemon], encap: str, family: int, cookie: str, peer_cookie: str,
    extra: list[str],
) -> None:  # fmt: skip
    a, b = hosts
    case = ROOT_CASES.index((encap, family, cookie, peer_cookie, extra))
    loc, rem = UNDERLAY[family]
    # The man page's site-A lines, on our namespace addresses.
    tunnel = f"ip l2tp add tunnel tunnel_id {3000 + case} peer_tunnel_id 4000 encap {encap} "
    tunnel += f"local {loc} remote {rem}"
    if encap == "udp":
        tunnel += f" udp_sport {5000 + case} udp_dport {6000 + case}"
    session = f"ip l2tp add session tunnel_id {3000 + case} session_id {1000 + case} "
    session += "peer_session_id 2000"
    if cookie:
        session += f" cookie {cookie}"
    if peer_cookie:
        session += f" peer_cookie {peer_cookie}"
    session += " " + " ".join(extra)
    a.line(tunnel)
    a.line(session.strip())
    try:
        text = a.cli("peer-config", "--for", "linux").stdout
        lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
        assert len(lines) == 2 and all(ln.startswith("ip l2tp add ") for ln in lines), text
        for ln in lines:
            b.cli(*shlex.split(ln.replace("ip l2tp", "l2tpv3", 1))[1:])
        for d, idx in ((a, 0), (b, 1)):
            d.ns.sysctl("net.ipv6.conf.l2tpeth0.disable_ipv6", "1")
            d.ns.ip("addr", "add", f"{INNER[idx]}/24", "dev", "l2tpeth0")
            d.ns.ip("link", "set", "l2tpeth0", "up")
        # The far end speaks first: with `seq recv` we send sequence numbers only once
        # we have heard the far end's (see peerconfig's docstring).
        b.ns.ping(INNER[0])
        a.ns.ping(INNER[1])
        tcp_transfer(b.ns, a.ns, INNER[1], 4 * 1024 * 1024, seed=case)
        sa, sb = a.session(1000 + case), b.session(2000)
        for s in (sa, sb):
            for key in ("rx_cookie_discards", "rx_seq_discards", "rx_errors"):
                assert s["stats"][key] == 0, (key, s)
        # The mirrored MTUs are what the comment said they would be.
        assert f"far end {sb['mtu']}, ours {sa['mtu']}" in text
    finally:
        a.cli("del", "tunnel", "tunnel_id", str(3000 + case), check=False)
        b.cli("del", "tunnel", "tunnel_id", "4000", check=False)
