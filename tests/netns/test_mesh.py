"""The 3-site mesh of the seed p2mp-layer2-over-layer3-ro.txt (its lines are in
tests/data/seeds.py), as a user would type it with `ip l2tp` replaced by `l2tpv3`.

router joins three /30 links to gw-a, gw-b and gw-c. gw-a <-> gw-b is a UDP tunnel,
gw-b <-> gw-c an IP-encap tunnel; gw-b puts both sessions (l2tpeth0, l2tpeth1) in one
bridge with its LAN port. pc1, pc2 and pc3 sit behind the gateways in 10.200.101.0/24
and must all reach each other.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.data.seeds import P2MP_MESH
from tests.support.netns import Daemon, Netns, require_root, veth, wait_until, workdir

pytestmark = pytest.mark.root

# Verbatim from the seed (its gw-a, gw-b and gw-c sections).
SEED_LINES = {gw: list(P2MP_MESH.sections[gw]) for gw in ("gw-a", "gw-b", "gw-c")}
# router eth0/1/2 and each gateway's eth0, from the seed's addressing plan.
LINKS = {"gw-a": ("10.200.100.1", "10.200.100.2"), "gw-b": ("10.200.100.5", "10.200.100.6"),
         "gw-c": ("10.200.100.9", "10.200.100.10")}  # fmt: skip
PCS = {"gw-a": ("pc1", "10.200.101.1"), "gw-b": ("pc2", "10.200.101.2"),
       "gw-c": ("pc3", "10.200.101.3")}  # fmt: skip


@pytest.fixture
def mesh(impl: str) -> Iterator[tuple[dict[str, Netns], dict[str, Daemon]]]:
    require_root()
    spaces: dict[str, Netns] = {}
    daemons: dict[str, Daemon] = {}
    with workdir() as wd:
        try:
            for name in ("router", "gw-a", "gw-b", "gw-c", "pc1", "pc2", "pc3"):
                spaces[name] = Netns(name)
            router = spaces["router"]
            router.sysctl("net.ipv4.ip_forward", "1")
            for i, (gw, (r_addr, g_addr)) in enumerate(LINKS.items()):
                veth(router, f"eth{i}", spaces[gw], "eth0")
                router.ip("addr", "add", f"{r_addr}/30", "dev", f"eth{i}")
                spaces[gw].ip("addr", "add", f"{g_addr}/30", "dev", "eth0")
                spaces[gw].ip("route", "add", "10.200.100.0/24", "via", r_addr)
                pc, pc_addr = PCS[gw]
                veth(spaces[gw], "eth1", spaces[pc], "eth0")
                spaces[pc].ip("addr", "add", f"{pc_addr}/24", "dev", "eth0")
            for gw in ("gw-a", "gw-b", "gw-c"):
                daemons[gw] = Daemon(spaces[gw], wd, impl=impl)
            yield spaces, daemons
        finally:
            logs = {gw: d.stop() for gw, d in daemons.items()}
            for ns in spaces.values():
                ns.delete()
            for gw, text in logs.items():
                assert "Traceback" not in text, f"{gw}: {text}"


def test_three_site_mesh(mesh: tuple[dict[str, Netns], dict[str, Daemon]]) -> None:
    spaces, daemons = mesh
    for gw, lines in SEED_LINES.items():
        for line in lines:
            daemons[gw].line(line)
    # The seed's layer-2 part, per gateway: bridge the sessions with the LAN port.
    for gw in ("gw-a", "gw-b", "gw-c"):
        ns = spaces[gw]
        ns.ip("link", "add", "br0", "type", "bridge")
        ns.ip("link", "set", "l2tpeth0", "up")
        ns.ip("link", "set", "l2tpeth0", "master", "br0")
        ns.ip("link", "set", "eth1", "master", "br0")
        ns.ip("link", "set", "br0", "up")
    spaces["gw-b"].ip("link", "set", "l2tpeth1", "up")
    spaces["gw-b"].ip("link", "set", "l2tpeth1", "master", "br0")

    names = {s["session_id"]: s["interface"] for s in daemons["gw-b"].sessions()}
    assert names == {1000: "l2tpeth0", 2000: "l2tpeth1"}

    for src in ("pc1", "pc2", "pc3"):
        for _, (dst, addr) in PCS.items():
            if dst != src:
                spaces[src].ping(addr, count=2)

    # Each tunnel's two ends agree on what crossed, once nothing is in flight.
    def stats() -> tuple[dict[str, int], dict[int, dict[str, int]], dict[str, int]]:
        b = {s["session_id"]: s["stats"] for s in daemons["gw-b"].sessions()}
        return daemons["gw-a"].session(1000)["stats"], b, daemons["gw-c"].session(2000)["stats"]

    def agree() -> bool:
        a, b, c = stats()
        return all(
            x[f"{d1}_{k}"] == y[f"{d2}_{k}"]
            for x, y in ((a, b[1000]), (c, b[2000]))
            for d1, d2 in (("tx", "rx"), ("rx", "tx"))
            for k in ("packets", "bytes")
        )

    assert wait_until(agree)
    a, b, c = stats()
    # pc1 <-> pc3 crossed both tunnels: gw-b forwarded between its two sessions.
    assert b[1000]["rx_packets"] > 0
    assert b[2000]["tx_packets"] > 0
    for st in (a, c, *b.values()):
        assert st["rx_errors"] == 0
        assert st["rx_invalid"] == 0
