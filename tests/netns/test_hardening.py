"""The daemon is not a way into the host (issue 11): a tunnel's UDP port stays the
daemon's alone, on both data paths.

Before the fix the fast path's second (connected) send socket left SO_REUSEADDR on both
sockets, so any local program could bind the same address and port with SO_REUSEADDR,
receive the peer's datagrams and inject frames that reached the far end's TAP.
"""

from __future__ import annotations

import pytest

from tests.support.netns import two_hosts
from tests.support.progs import prog

pytestmark = pytest.mark.root

A, B = "10.7.1.1", "10.7.1.2"
A6, B6 = "fd00:7::1", "fd00:7::2"


@pytest.mark.parametrize("family", [4, 6])
def test_udp_port_stays_exclusive(impl: str, family: int) -> None:
    local, remote = (A, B) if family == 4 else (A6, B6)
    with two_hosts("excl", [f"{A}/24", f"{A6}/64"], [f"{B}/24", f"{B6}/64"], impl) as (da, db):
        for ns in (da.ns, db.ns):
            ns.sysctl("net.ipv6.conf.veth0.accept_dad", "0")
        da.cli("add", "tunnel", "tunnel_id", "1", "peer_tunnel_id", "2", "local", local,
               "remote", remote, "udp_sport", "5000", "udp_dport", "6000")  # fmt: skip
        db.cli("add", "tunnel", "tunnel_id", "2", "peer_tunnel_id", "1", "local", remote,
               "remote", local, "udp_sport", "6000", "udp_dport", "5000")  # fmt: skip
        da.cli("add", "session", "tunnel_id", "1", "session_id", "10", "peer_session_id", "20")
        db.cli("add", "session", "tunnel_id", "2", "session_id", "20", "peer_session_id", "10")
        out = da.ns.run(*prog("bind_probe"), local, "5000").stdout.split()
        assert out == ["EADDRINUSE", "EADDRINUSE"], f"{impl}: another socket could bind: {out}"
