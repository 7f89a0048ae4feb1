"""Print the state records ``l2tpv3d`` answers to ``show_tunnels``/``show_sessions``
(:mod:`l2tpv3.control.protocol`, validated there), as ``ip l2tp show`` prints them.

The text is what iproute2's ip/ipl2tp.c (print_tunnel, print_session) prints for the
same data, byte for byte, quirks included: a session's cookie, peer cookie and reorder
timeout share one line with no newline between them, and a session with none of
those and no sequencing ends with an empty line. The JSON uses the keys of ``ip -j
l2tp show`` and is one compact array, as iproute2's json_writer prints it.

Additions of ours: ``stats`` (the ``-s`` flag) appends the kernel's ten counters and
the per-reason drop counts (text: only reasons that counted); sessions carry
``"mtu"`` in JSON only; with ``stats``, tunnels carry ``"offload"`` (what their data path
offloads, and what rules UDP GSO out) in JSON only.
One difference: iproute2 fills ``checksum_rx`` from the tx setting (a bug); we report
the rx setting.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from l2tpv3.config import Encap, IPAddress
from l2tpv3.control.protocol import SessionState, TunnelState
from l2tpv3.proto import mss
from l2tpv3.proto.counters import COUNTER_NAMES

__all__ = ["format_sessions", "format_tunnels", "json_sessions", "json_tunnels"]

# The order and line breaks of the "statistics:" block.
_STATS_LINES = (
    ("rx_packets", "rx_bytes", "rx_errors", "rx_seq_discards"),
    ("rx_oos_packets", "rx_cookie_discards", "rx_invalid"),
    ("tx_packets", "tx_bytes", "tx_errors"),
)


def _ntop(address: IPAddress) -> str:
    # The C library's inet_ntop, as iproute2 uses it: it writes ::ffff:1.2.3.4 where
    # Python 3.11's ipaddress writes ::ffff:102:304.
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    return socket.inet_ntop(family, address.packed)


def _stats_dict(stats: Mapping[str, int]) -> dict[str, int]:
    return {name: stats.get(name, 0) for name in COUNTER_NAMES}


def _stats_text(stats: Mapping[str, int]) -> str:
    out = "  statistics:\n"
    for line in _STATS_LINES:
        out += "    " + " ".join(f"{name} {stats.get(name, 0)}" for name in line) + "\n"
    return out


def _drops_text(drops: Mapping[str, int] | None) -> str:
    nonzero = [f"{name} {n}" for name, n in (drops or {}).items() if n]
    return "    drops: " + " ".join(nonzero) + "\n" if nonzero else ""


def _udp6_checksum(tx: bool, rx: bool) -> str:
    if tx and rx:
        return "enabled"
    if tx:
        return "tx"
    if rx:
        return "rx"
    return "disabled"


def _tunnel_text(state: TunnelState, stats: bool) -> str:
    cfg = state.config
    out = f"Tunnel {cfg.tunnel_id}, encap {cfg.encap.value.upper()}\n"
    out += f"  From {_ntop(cfg.local)} to {_ntop(cfg.remote)}\n"
    out += f"  Peer tunnel {cfg.peer_tunnel_id}\n"
    if cfg.encap is Encap.UDP:
        out += f"  UDP source / dest ports: {cfg.udp_sport}/{cfg.udp_dport}\n"
        if cfg.family == 4:
            out += f"  UDP checksum: {'enabled' if cfg.udp_csum else 'disabled'}\n"
        else:
            out += f"  UDP checksum: {_udp6_checksum(cfg.udp6_csum_tx, cfg.udp6_csum_rx)}\n"
    if state.waiting:
        out += f"  Waiting for local address {_ntop(cfg.local)}\n"
    if state.control:
        c = state.control
        out += (
            f"  control: {c.get('hellos_sent', 0)} hellos sent, {c.get('acks_received', 0)} "
            f"acked; {c.get('hellos_received', 0)} received, {c.get('acks_sent', 0)} "
            f"answered; {c.get('control_ignored', 0)} ignored\n"
        )
    if stats:
        out += _stats_text(state.stats) + _drops_text(state.drops)
    return out


def _session_text(state: SessionState, stats: bool) -> str:
    cfg = state.config
    send, recv = state.send_seq, state.recv_seq
    out = f"Session {cfg.session_id} in tunnel {cfg.tunnel_id}\n"
    out += f"  Peer session {cfg.peer_session_id}, tunnel {state.peer_tunnel_id}\n"
    if state.interface:
        out += f"  interface name: {state.interface}\n"
    if cfg.trunk is not None:
        out += f"  trunk {cfg.trunk} vlan {cfg.vlan}{' pop' if cfg.vlan_pop else ''}\n"
    out += "  offset 0, peer offset 0\n"
    if cfg.cookie:
        out += f"  cookie {cfg.cookie.hex()}"
    if cfg.peer_cookie:
        out += f"  peer cookie {cfg.peer_cookie.hex()}"
    if cfg.reorder_timeout:
        out += f"  reorder timeout: {cfg.reorder_timeout}"
    if send or recv:
        out += "\n  sequence numbering:" + (" send" if send else "") + (" recv" if recv else "")
    out += "\n"
    if cfg.mss_clamp != mss.OFF:
        out += f"  mss clamp: {_mss_text(cfg.mss_clamp, state.mtu)}\n"
    out += _liveness_text(state)
    if stats:
        # Sessions count their own drops (a TAP that would not take a frame, ...).
        out += _stats_text(state.stats) + _drops_text(state.drops)
        nonzero = [f"{k} {n}" for k, n in (state.features or {}).items() if n]
        if nonzero:
            out += "    " + " ".join(nonzero) + "\n"
    return out


def _mss_text(setting: str, mtu: int | None) -> str:
    if setting != mss.AUTO:
        return setting
    if mtu is None:
        return "auto (MTU - 40 for IPv4, MTU - 60 for IPv6)"
    v4, v6 = mss.limits(setting, mtu)
    return f"auto ({v4} IPv4, {v6} IPv6)"


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s ago"


def _liveness_text(state: SessionState) -> str:
    # Only when liveness is on: the lines above stay `ip l2tp show session`'s.
    live = state.liveness
    cfg = state.config
    if live is None:
        return ""
    mode = cfg.liveness.value + (f" {cfg.liveness_addr}" if cfg.liveness_addr else "")
    out = (
        f"  liveness {mode} interval {cfg.liveness_interval:g} dead {cfg.liveness_dead}: "
        f"peer {live.state}, {live.transitions} transitions\n"
    )
    out += f"  last received {_ago(live.last_rx_ago)}, last sign of life {_ago(live.last_seen_ago)}"
    if live.mac:
        out += f", probing from {live.mac}"
    out += "\n"
    c = live.control
    if c.get("hellos_received") or c.get("hellos_sent"):
        out += (
            f"  tunnel hellos: {c.get('hellos_sent', 0)} sent, {c.get('acks_received', 0)} "
            f"acked; {c.get('hellos_received', 0)} received, {c.get('acks_sent', 0)} answered\n"
        )
    return out


def format_tunnels(states: Sequence[TunnelState], stats: bool) -> str:
    """``ip l2tp show tunnel`` text for the daemon's tunnel states."""
    return "".join(_tunnel_text(s, stats) for s in states)


def format_sessions(states: Sequence[SessionState], stats: bool) -> str:
    """``ip l2tp show session`` text for the daemon's session states."""
    return "".join(_session_text(s, stats) for s in states)


def _tunnel_json(state: TunnelState, stats: bool) -> dict[str, Any]:
    cfg = state.config
    out: dict[str, Any] = {
        "tunnel_id": cfg.tunnel_id,
        "encap": cfg.encap.value.upper(),
        "local": _ntop(cfg.local),
        "peer": _ntop(cfg.remote),
        "peer_tunnel": cfg.peer_tunnel_id,
    }
    if cfg.encap is Encap.UDP:
        out["local_port"] = cfg.udp_sport
        out["peer_port"] = cfg.udp_dport
        if cfg.family == 4:
            out["checksum"] = cfg.udp_csum
        else:
            out["checksum_tx"] = cfg.udp6_csum_tx
            out["checksum_rx"] = cfg.udp6_csum_rx
    if state.waiting:
        out["state"] = "waiting for local address"
    if state.control:
        out["control"] = dict(state.control)
    if stats:
        out["stats"] = _stats_dict(state.stats)
        out["drops"] = dict(state.drops)
        if state.offload is not None:
            out["offload"] = state.offload.to_json()
    return out


def _session_json(state: SessionState, stats: bool) -> dict[str, Any]:
    cfg = state.config
    out: dict[str, Any] = {
        "session_id": cfg.session_id,
        "tunnel_id": cfg.tunnel_id,
        "peer_session_id": cfg.peer_session_id,
        "peer_tunnel_id": state.peer_tunnel_id,
    }
    if state.interface:
        out["interface"] = state.interface
    if cfg.trunk is not None:
        out["trunk"], out["vlan"], out["vlan_pop"] = cfg.trunk, cfg.vlan, cfg.vlan_pop
    if cfg.cookie:
        out["cookie"] = cfg.cookie.hex()
    if cfg.peer_cookie:
        out["peer_cookie"] = cfg.peer_cookie.hex()
    if cfg.reorder_timeout:
        out["reorder_timeout"] = cfg.reorder_timeout
    # iproute2's print_null: the key is there, valued null, only when the flag is set.
    if state.send_seq:
        out["send_seq"] = None
    if state.recv_seq:
        out["recv_seq"] = None
    if state.mtu is not None:
        out["mtu"] = state.mtu
    if state.liveness is not None:
        live = state.liveness
        out["liveness"] = {
            "mode": cfg.liveness.value,
            "addr": cfg.liveness_addr,
            "interval": cfg.liveness_interval,
            "dead": cfg.liveness_dead,
            "state": live.state,
            "last_rx_ago": live.last_rx_ago,
            "last_seen_ago": live.last_seen_ago,
            "transitions": live.transitions,
            "mac": live.mac,
            "control": dict(live.control),
        }
    if stats:
        out["stats"] = _stats_dict(state.stats)
        if state.drops is not None:
            out["drops"] = dict(state.drops)
    if cfg.mss_clamp != mss.OFF:
        out["mss_clamp"] = cfg.mss_clamp
        if state.mtu is not None:
            out["mss_ipv4"], out["mss_ipv6"] = mss.limits(cfg.mss_clamp, state.mtu)
        if stats and state.features is not None:
            out["features"] = dict(state.features)
    return out


def _dump(objects: list[dict[str, Any]]) -> str:
    return json.dumps(objects, separators=(",", ":"), ensure_ascii=False) + "\n"


def json_tunnels(states: Sequence[TunnelState], stats: bool) -> str:
    """``ip -j l2tp show tunnel``: a JSON array, one object per tunnel, and a newline."""
    return _dump([_tunnel_json(s, stats) for s in states])


def json_sessions(states: Sequence[SessionState], stats: bool) -> str:
    """``ip -j l2tp show session``: a JSON array, one object per session, and a newline."""
    return _dump([_session_json(s, stats) for s in states])
