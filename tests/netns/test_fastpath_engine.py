"""The fast path's threads on their own, inside a namespace of ours: datagrams over
loopback into a running engine, frames out of a real TAP. Covers what the sans-I/O
comparison cannot: the receive thread's reorder timer and the TAP writes."""

from __future__ import annotations

import json

import pytest

from tests.support.netns import Netns, require_root
from tests.support.progs import prog

pytestmark = pytest.mark.root


@pytest.mark.parametrize("vnet", ["plain", "vnet"])
def test_engine_reorders_times_out_and_sends(vnet: str) -> None:
    require_root()
    pytest.importorskip("l2tpv3.fast._fastpath")
    ns = Netns("fpe")
    try:
        out = ns.run(*prog("engine_reorder"), vnet, timeout=30).stdout
    finally:
        ns.delete()
    got = json.loads(out.strip().splitlines()[-1])
    early, late = got["early"], got["late"]
    # 0 delivered, 2 held, 1 sorted in front of it (oos) and both released, 4 held.
    assert (early["rx_packets"], early["rx_oos_packets"], early["held"]) == (3, 1, 1)
    assert early["tap_rx"] == 3
    # The receive thread's timer expired 4 without any further packet: dropped, as the
    # kernel drops a held packet past its reorder timeout.
    assert (late["held"], late["rx_seq_discards"], late["rx_errors"]) == (0, 1, 1)
    assert late["tap_rx"] == 3
    tx = bytes.fromhex(got["tx"])
    # UDP word, peer session 5, sublayer with the S bit (we send sequence numbers).
    assert tx[:8] == b"\x00\x03\x00\x00" + (5).to_bytes(4, "big")
    assert int.from_bytes(tx[8:12], "big") & 0xFF000000 == 0x40000000
    assert tx[12:26] == b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x02" + b"\x88\xb5"


def test_engine_send_socket_after_peer_down() -> None:
    """UDP goes out through a second socket connected to the peer (route cached); an ICMP
    port unreachable from the time the peer was down costs no tx_error, the peer's
    datagrams (now delivered to the connected socket) still reach the TAP and a stranger's
    still count as wrong_source."""
    require_root()
    pytest.importorskip("l2tpv3.fast._fastpath")
    ns = Netns("fpc")
    try:
        out = ns.run(*prog("engine_peer_down"), timeout=30).stdout
    finally:
        ns.delete()
    got = json.loads(out.strip().splitlines()[-1])
    assert (got["sockets"], got["connected"]) == (2, 1)
    assert got["got"] == "00030000" + (5).to_bytes(4, "big").hex()
    c = got["counters"]
    # Both frames left: the first to a closed port (no error for an unconnected socket,
    # the kernel's model), the second to the peer once it was up.
    assert (c["tx_packets"], c["tx_errors"]) == (2, 0)
    assert c["rx_packets"] == 1
    assert got["drops"]["wrong_source"] == 1
