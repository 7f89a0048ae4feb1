"""Both implementations have every member of the protocols in l2tpv3/proto/api.py (mypy
checks the types through io/datapath.py; this checks the objects at run time)."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from l2tpv3.config import Encap, SessionConfig, TunnelConfig
from l2tpv3.io.datapath import Implementation
from l2tpv3.proto import api
from tests.support.configs import UdpPorts


def _members(protocol: type) -> set[str]:
    names = {n for n in vars(protocol) if not n.startswith("_")}
    return names | set(getattr(protocol, "__annotations__", {}))


@pytest.mark.parametrize("encap", list(Encap))
def test_objects_have_every_protocol_member(sansio: Implementation, encap: Encap) -> None:
    udp: UdpPorts = {"udp_sport": 1, "udp_dport": 2} if encap is Encap.UDP else {}
    tcfg = TunnelConfig(tunnel_id=1, peer_tunnel_id=2, local=ip_address("10.0.0.1"),
                        remote=ip_address("10.0.0.2"), encap=encap, **udp)  # fmt: skip
    own = sansio.ownership()
    tunnel = sansio.tunnel(tcfg, own)
    session = sansio.session(tcfg, SessionConfig(tunnel_id=1, session_id=7, peer_session_id=7))
    tunnel.add(session)
    for obj, protocol in ((session, api.SessionAPI), (tunnel, api.TunnelAPI),
                          (own, api.IpOwnershipAPI)):  # fmt: skip
        missing = {n for n in _members(protocol) if not hasattr(obj, n)}
        assert not missing, f"{type(obj).__module__}.{type(obj).__name__} lacks {missing}"
    assert tunnel.sessions[7] is session
    assert (session.nr, session.held) == (0, 0)
    assert session.next_header(10) == session.layout.header(None)
