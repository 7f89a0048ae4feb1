"""What a tunnel's options cost (issue 12 item 6): the offload state per tunnel, the
option that rules UDP GSO out and the one that lifts it, the log line's figures (the
same as docs/performance.md's), and the state's way through the control protocol and
``show -s -j`` (the text of ``show -s`` unchanged)."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import pytest

from l2tpv3.cli import show
from l2tpv3.config import Encap, TunnelConfig
from l2tpv3.control.protocol import OffloadState, TunnelState, tunnel_states
from l2tpv3.daemon.offloads import (
    MEASURED_RUN,
    MEASURED_SOURCE,
    NO_GSO,
    UDP_CSUM_ON,
    cost_note,
    offload_state,
)
from l2tpv3.errors import ControlError
from l2tpv3.io.api import Offloads
from l2tpv3.io.datapath import PYTHON

DOCS = Path(__file__).resolve().parents[2] / "docs"
FULL = Offloads(tap_vnet_hdr=True, udp_gso=True, udp_gro=True)
NONE = Offloads(tap_vnet_hdr=False, udp_gso=False, udp_gro=False)
GRO_ONLY = Offloads(tap_vnet_hdr=True, udp_gso=False, udp_gro=True)


def tunnel(encap: Encap = Encap.UDP, v6: bool = False, **kw: bool) -> TunnelConfig:
    local, remote = ("2001:db8::1", "2001:db8::2") if v6 else ("192.0.2.1", "192.0.2.2")
    udp = encap is Encap.UDP
    return TunnelConfig(
        7, 8, ipaddress.ip_address(local), ipaddress.ip_address(remote), encap=encap,
        udp_sport=5000 if udp else None, udp_dport=6000 if udp else None, **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("config", "capable", "offload", "running", "limited_by", "lifted_by"),
    [
        (tunnel(), FULL, True, GRO_ONLY, "udp_csum off", "udp_csum on"),
        (tunnel(udp_csum=True), FULL, True, FULL, None, None),
        (tunnel(v6=True), FULL, True, FULL, None, None),
        (tunnel(v6=True, udp6_csum_tx=False), FULL, True, GRO_ONLY, "udp6_csum_tx off",
         "udp6_csum_tx on"),
        (tunnel(Encap.IP), FULL, True, Offloads(True, False, False), "encap ip",
         "encap udp with udp_csum on, at both ends"),
        (tunnel(udp_csum=True), FULL, False, NONE, "--no-offload", "l2tpv3d without --no-offload"),
        (tunnel(udp_csum=True), PYTHON.offloads, True, NONE, "pure-Python data path", None),
        # Allowed by the options, refused by the kernel at run time (the engine fell back).
        (tunnel(udp_csum=True), FULL, True, GRO_ONLY, "the kernel refused UDP GSO", None),
    ],
)  # fmt: skip
def test_what_rules_gso_out(
    config: TunnelConfig,
    capable: Offloads,
    offload: bool,
    running: Offloads,
    limited_by: str | None,
    lifted_by: str | None,
) -> None:
    state = offload_state(config, capable, offload, running)
    assert (state.udp_gso, state.udp_gro, state.tap_tso) == (
        running.udp_gso, running.udp_gro, running.tap_vnet_hdr,
    )  # fmt: skip
    assert state.limited_by == limited_by
    if lifted_by is None and limited_by == "pure-Python data path":
        assert state.lifted_by and "Cython fast path" in state.lifted_by
    else:
        assert state.lifted_by == lifted_by


def test_the_cost_is_told_for_options_only() -> None:
    csum = tunnel()
    note = cost_note(csum, offload_state(csum, FULL, True, GRO_ONLY))
    assert note is not None
    assert note.startswith("tunnel 7: udp_csum off (the kernel's default) rules out UDP GSO")
    assert "measured 3.20/3.12 Gbit/s TCP at 169 % CPU against 8.79/8.38 Gbit/s at 120 %" in note
    assert f"({MEASURED_SOURCE}, run of {MEASURED_RUN}" in note
    assert note.endswith("udp_csum on lifts it (the peer accepts either)")
    ip = tunnel(Encap.IP)
    note = cost_note(ip, offload_state(ip, FULL, True, Offloads(True, False, False)))
    assert note is not None and note.startswith("tunnel 7: encap ip has no UDP GSO or GRO")
    assert note.endswith("encap udp with udp_csum on, at both ends lifts it")
    v6 = tunnel(v6=True, udp6_csum_tx=False)
    note = cost_note(v6, offload_state(v6, FULL, True, GRO_ONLY))
    assert note is not None and "udp6_csum_tx on (the default) lifts it" in note
    # Nothing to say: GSO on, or ruled out by the implementation or --no-offload.
    on = tunnel(udp_csum=True)
    assert cost_note(on, offload_state(on, FULL, True, FULL)) is None
    assert cost_note(csum, offload_state(csum, PYTHON.offloads, True, NONE)) is None
    assert cost_note(csum, offload_state(csum, FULL, False, NONE)) is None


def _table_row(page: str, case: str) -> list[str]:
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == case:
            return cells
    raise AssertionError(f'no row "{case}" in {MEASURED_SOURCE}')


def test_figures_are_those_of_docs_performance() -> None:
    """The log quotes docs/performance.md: after a new benchmark run, copy its figures
    into l2tpv3/daemon/offloads.py (this test says which)."""
    page = (DOCS / "performance.md").read_text()
    header = _table_row(page, "case")
    ab, ba, cpu = (header.index(h) for h in
                   ("TCP A→B Gbit/s", "TCP B→A Gbit/s", "CPU % (TCP)"))  # fmt: skip
    for measured in (NO_GSO, UDP_CSUM_ON):
        row = _table_row(page, measured.case)
        got = (float(row[ab]), float(row[ba]), int(row[cpu]))
        want = (measured.tcp_ab_gbps, measured.tcp_ba_gbps, measured.cpu_percent)
        assert got == want, f"{MEASURED_SOURCE} says {got} for {measured.case!r}"
    stamp = re.search(r"## Latest run\s+(\S+),", page)
    assert stamp and stamp[1] == MEASURED_RUN


def _state(offload: OffloadState | None) -> dict[str, object]:
    cfg = tunnel()
    return TunnelState(cfg, {}, {}, False, offload).to_json()


def test_offload_state_through_the_protocol_and_show() -> None:
    offload = OffloadState(False, True, True, "udp_csum off", "udp_csum on")
    (state,) = tunnel_states([_state(offload)])
    assert state.offload == offload
    out = json.loads(show.json_tunnels([state], stats=True))
    assert out[0]["offload"] == {
        "udp_gso": False, "udp_gro": True, "tap_tso": True,
        "limited_by": "udp_csum off", "lifted_by": "udp_csum on",
    }  # fmt: skip
    # Only with -s, as the counters; the text of show -s is unchanged.
    assert "offload" not in json.loads(show.json_tunnels([state], stats=False))[0]
    (plain,) = tunnel_states([_state(None)])
    assert plain.offload is None
    assert show.format_tunnels([state], True) == show.format_tunnels([plain], True)
    assert "offload" not in json.loads(show.json_tunnels([plain], stats=True))[0]


@pytest.mark.parametrize(
    "bad",
    [
        "on",
        {"udp_gso": 1, "udp_gro": True, "tap_tso": True},
        {"udp_gso": True, "udp_gro": True},
        {"udp_gso": True, "udp_gro": True, "tap_tso": True, "limited_by": 3},
    ],
)
def test_malformed_offload_is_one_line(bad: object) -> None:
    state = _state(None)
    state["offload"] = bad
    with pytest.raises(ControlError, match=r'^l2tpv3d sent a malformed "offload": '):
        tunnel_states([state])
