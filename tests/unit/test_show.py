"""``show`` output: iproute2's text byte for byte, its JSON keys, and our statistics."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from l2tpv3.cli import show
from l2tpv3.config import Encap, SeqMode, SessionConfig, TunnelConfig
from l2tpv3.control.protocol import session_states, tunnel_states
from l2tpv3.errors import ControlError
from l2tpv3.proto.counters import COUNTER_NAMES, DROP_REASONS

# The states below are what l2tpv3d answers, as JSON; show formats the records that
# the client reads from them (and refuses, with a one-line error, if malformed).


def format_tunnels(states: Any, stats: bool) -> str:
    return show.format_tunnels(tunnel_states(states), stats)


def format_sessions(states: Any, stats: bool) -> str:
    return show.format_sessions(session_states(states), stats)


def json_tunnels(states: Any, stats: bool) -> str:
    return show.json_tunnels(tunnel_states(states), stats)


def json_sessions(states: Any, stats: bool) -> str:
    return show.json_sessions(session_states(states), stats)


def tunnel_state(tid: int, ptid: int, local: str, remote: str, **kw: Any) -> dict[str, Any]:
    """What l2tpv3d answers for one tunnel: its config, its counters, its drops."""
    stats = kw.pop("stats", {})
    drops = kw.pop("drops", {})
    config = TunnelConfig(
        tid, ptid, ipaddress.ip_address(local), ipaddress.ip_address(remote), **kw
    )
    state = config.to_dict()
    state["stats"] = {name: stats.get(name, 0) for name in COUNTER_NAMES}
    state["drops"] = {name: drops.get(name, 0) for name in DROP_REASONS}
    return state


def session_state(
    tid: int, sid: int, psid: int, *, peer_tunnel_id: int, **kw: Any
) -> dict[str, Any]:
    """What l2tpv3d answers for one session."""
    extra = {
        "interface": kw.pop("interface", "l2tpeth0"),
        "peer_tunnel_id": peer_tunnel_id,
        "mtu": kw.pop("mtu", 1488),
    }
    stats = kw.pop("stats", {})
    send_seq = kw.pop("send_seq", None)
    recv_seq = kw.pop("recv_seq", None)
    config = SessionConfig(tid, sid, psid, **kw)
    state = config.to_dict()
    state.update(extra)
    state["send_seq"] = config.seq.send if send_seq is None else send_seq
    state["recv_seq"] = config.seq.recv if recv_seq is None else recv_seq
    state["stats"] = {name: stats.get(name, 0) for name in COUNTER_NAMES}
    return state


# linux-l2tp-ethernet-pseudowires.md, tun01 then tun02.
TUN01 = tunnel_state(1000, 2000, "1.1.1.2", "2.2.2.2", udp_sport=6000, udp_dport=5000)
TUN02 = tunnel_state(2000, 1000, "2.2.2.2", "1.1.1.2", udp_sport=5000, udp_dport=6000)
SESSION01 = session_state(1000, 3000, 4000, peer_tunnel_id=2000)
SESSION02 = session_state(2000, 4000, 3000, peer_tunnel_id=1000)


def test_seed_show_tunnel() -> None:
    # The seed (iproute2 of 2014) stops after the ports; today's ipl2tp.c adds the
    # IPv4 checksum line.
    assert format_tunnels([TUN01], stats=False) == (
        "Tunnel 1000, encap UDP\n"
        "  From 1.1.1.2 to 2.2.2.2\n"
        "  Peer tunnel 2000\n"
        "  UDP source / dest ports: 6000/5000\n"
        "  UDP checksum: disabled\n"
    )
    assert format_tunnels([TUN02], stats=False) == (
        "Tunnel 2000, encap UDP\n"
        "  From 2.2.2.2 to 1.1.1.2\n"
        "  Peer tunnel 1000\n"
        "  UDP source / dest ports: 5000/6000\n"
        "  UDP checksum: disabled\n"
    )


def test_seed_show_session() -> None:
    # Today's print_session ends every session with a "\n" of its own (the sequence
    # line's end), so a session without cookies or sequencing ends in an empty line.
    assert format_sessions([SESSION01], stats=False) == (
        "Session 3000 in tunnel 1000\n"
        "  Peer session 4000, tunnel 2000\n"
        "  interface name: l2tpeth0\n"
        "  offset 0, peer offset 0\n"
        "\n"
    )
    assert format_sessions([SESSION02], stats=False) == (
        "Session 4000 in tunnel 2000\n"
        "  Peer session 3000, tunnel 1000\n"
        "  interface name: l2tpeth0\n"
        "  offset 0, peer offset 0\n"
        "\n"
    )


def test_several_objects_follow_one_another() -> None:
    assert format_tunnels([TUN01, TUN02], stats=False) == format_tunnels(
        [TUN01], stats=False
    ) + format_tunnels([TUN02], stats=False)


def test_nothing_to_show() -> None:
    assert format_tunnels([], stats=False) == ""
    assert format_sessions([], stats=True) == ""
    assert json_tunnels([], stats=False) == "[]\n"
    assert json_sessions([], stats=True) == "[]\n"


def test_udp_checksum_enabled() -> None:
    state = tunnel_state(
        1, 2, "10.0.0.1", "10.0.0.2", udp_sport=1701, udp_dport=1701, udp_csum=True
    )
    assert format_tunnels([state], stats=False).endswith("  UDP checksum: enabled\n")


@pytest.mark.parametrize(
    ("tx", "rx", "word"),
    [(True, True, "enabled"), (True, False, "tx"), (False, True, "rx"), (False, False, "disabled")],
)
def test_ipv6_tunnel(tx: bool, rx: bool, word: str) -> None:
    state = tunnel_state(
        10,
        20,
        "2001:db8::1",
        "2001:db8:0:0:1::2",
        udp_sport=5000,
        udp_dport=6000,
        udp6_csum_tx=tx,
        udp6_csum_rx=rx,
    )
    assert format_tunnels([state], stats=False) == (
        "Tunnel 10, encap UDP\n"
        "  From 2001:db8::1 to 2001:db8::1:0:0:2\n"
        "  Peer tunnel 20\n"
        "  UDP source / dest ports: 5000/6000\n"
        f"  UDP checksum: {word}\n"
    )
    [obj] = json.loads(json_tunnels([state], stats=False))
    assert obj == {
        "tunnel_id": 10,
        "encap": "UDP",
        "local": "2001:db8::1",
        "peer": "2001:db8::1:0:0:2",
        "peer_tunnel": 20,
        "local_port": 5000,
        "peer_port": 6000,
        "checksum_tx": tx,
        "checksum_rx": rx,
    }


def test_ipv6_addresses_as_inet_ntop_writes_them() -> None:
    state = tunnel_state(1, 2, "::ffff:192.0.2.1", "::ffff:192.0.2.2", encap=Encap.IP)
    assert "  From ::ffff:192.0.2.1 to ::ffff:192.0.2.2\n" in format_tunnels([state], False)


def test_ip_encap_tunnel() -> None:
    state = tunnel_state(2000, 2000, "10.200.100.6", "10.200.100.10", encap=Encap.IP)
    assert format_tunnels([state], stats=False) == (
        "Tunnel 2000, encap IP\n  From 10.200.100.6 to 10.200.100.10\n  Peer tunnel 2000\n"
    )
    [obj] = json.loads(json_tunnels([state], stats=False))
    assert list(obj) == ["tunnel_id", "encap", "local", "peer", "peer_tunnel"]
    assert obj["encap"] == "IP"


def test_tunnel_waiting_for_its_local_address() -> None:
    state = tunnel_state(2000, 2000, "10.200.100.6", "10.200.100.10", encap=Encap.IP)
    normal_text = format_tunnels([state], stats=False)
    normal_json = json.loads(json_tunnels([state], stats=False))
    assert "waiting" not in state  # a normal tunnel's answer and output are unchanged
    assert "Waiting" not in normal_text
    assert "state" not in normal_json[0]
    waiting = {**state, "waiting": True}
    assert format_tunnels([waiting], stats=False) == (
        normal_text + "  Waiting for local address 10.200.100.6\n"
    )
    [obj] = json.loads(json_tunnels([waiting], stats=False))
    assert obj == {**normal_json[0], "state": "waiting for local address"}
    [record] = tunnel_states([waiting])
    assert record.waiting
    assert record.to_json() == waiting
    with pytest.raises(ControlError, match="waiting"):
        tunnel_states([{**state, "waiting": "yes"}])


def test_cookies_share_a_line() -> None:
    # print_cookie's formats have no newline: cookie, peer cookie and reorder timeout
    # run together on one line in iproute2's output.
    state = session_state(
        1,
        2,
        3,
        peer_tunnel_id=4,
        cookie=bytes.fromhex("0123456789abcdef"),
        peer_cookie=bytes.fromhex("deadbeef"),
    )
    assert format_sessions([state], stats=False) == (
        "Session 2 in tunnel 1\n"
        "  Peer session 3, tunnel 4\n"
        "  interface name: l2tpeth0\n"
        "  offset 0, peer offset 0\n"
        "  cookie 0123456789abcdef  peer cookie deadbeef\n"
    )


def test_peer_cookie_alone() -> None:
    state = session_state(1, 2, 3, peer_tunnel_id=4, peer_cookie=bytes.fromhex("00000001"))
    assert format_sessions([state], stats=False).endswith(
        "  offset 0, peer offset 0\n  peer cookie 00000001\n"
    )


def test_reorder_timeout_and_sequencing() -> None:
    state = session_state(
        1,
        2,
        3,
        peer_tunnel_id=4,
        cookie=b"\xca\xfe\xba\xbe",
        seq=SeqMode.BOTH,
        reorder_timeout=250,
    )
    assert format_sessions([state], stats=False) == (
        "Session 2 in tunnel 1\n"
        "  Peer session 3, tunnel 4\n"
        "  interface name: l2tpeth0\n"
        "  offset 0, peer offset 0\n"
        "  cookie cafebabe  reorder timeout: 250\n"
        "  sequence numbering: send recv\n"
    )


@pytest.mark.parametrize(
    ("seq", "words"),
    [(SeqMode.SEND, " send"), (SeqMode.RECV, " recv"), (SeqMode.BOTH, " send recv")],
)
def test_sequencing_alone_leaves_an_empty_line(seq: SeqMode, words: str) -> None:
    state = session_state(1, 2, 3, peer_tunnel_id=4, seq=seq)
    assert format_sessions([state], stats=False).endswith(
        f"  offset 0, peer offset 0\n\n  sequence numbering:{words}\n"
    )


def test_current_sequencing_state_wins() -> None:
    # LAC mode: the peer sent sequence numbers, so we send them too.
    state = session_state(1, 2, 3, peer_tunnel_id=4, seq=SeqMode.RECV, send_seq=True)
    assert format_sessions([state], stats=False).endswith("  sequence numbering: send recv\n")
    [obj] = json.loads(json_sessions([state], stats=False))
    assert obj["send_seq"] is None and obj["recv_seq"] is None


def test_no_interface_line_without_interface() -> None:
    state = session_state(1, 2, 3, peer_tunnel_id=4, interface="")
    text = format_sessions([state], stats=False)
    assert "interface name" not in text
    assert "interface" not in json.loads(json_sessions([state], stats=False))[0]


def test_tunnel_statistics() -> None:
    stats = dict(zip(COUNTER_NAMES, range(1, 11), strict=True))
    state = tunnel_state(
        1000,
        2000,
        "1.1.1.2",
        "2.2.2.2",
        udp_sport=6000,
        udp_dport=5000,
        stats=stats,
        drops={"bad_version": 7, "unknown_session": 9},
    )
    state["drops"]["new_reason"] = 3
    text = format_tunnels([state], stats=True)
    assert text == format_tunnels([state], stats=False) + (
        "  statistics:\n"
        "    rx_packets 4 rx_bytes 5 rx_errors 8 rx_seq_discards 6\n"
        "    rx_oos_packets 7 rx_cookie_discards 9 rx_invalid 10\n"
        "    tx_packets 1 tx_bytes 2 tx_errors 3\n"
        "    drops: bad_version 7 unknown_session 9 new_reason 3\n"
    )
    [obj] = json.loads(json_tunnels([state], stats=True))
    assert obj["stats"] == stats
    assert obj["drops"] == {
        "too_short": 0,
        "bad_version": 7,
        "control_message": 0,
        "unknown_session": 9,
        "wrong_source": 0,
        "new_reason": 3,
    }


def test_no_drops_line_when_nothing_was_dropped() -> None:
    text = format_tunnels([TUN01], stats=True)
    assert text.endswith("    tx_packets 0 tx_bytes 0 tx_errors 0\n")
    assert "drops" not in text


def test_session_statistics() -> None:
    state = session_state(
        1000, 3000, 4000, peer_tunnel_id=2000, stats={"rx_packets": 12, "tx_bytes": 3400}
    )
    assert format_sessions([state], stats=True) == format_sessions([state], stats=False) + (
        "  statistics:\n"
        "    rx_packets 12 rx_bytes 0 rx_errors 0 rx_seq_discards 0\n"
        "    rx_oos_packets 0 rx_cookie_discards 0 rx_invalid 0\n"
        "    tx_packets 0 tx_bytes 3400 tx_errors 0\n"
    )
    state["drops"] = {"tap_write_failed": 2}
    assert format_sessions([state], stats=True).endswith("    drops: tap_write_failed 2\n")
    [obj] = json.loads(json_sessions([state], stats=True))
    assert obj["stats"]["rx_packets"] == 12
    assert obj["drops"] == {"tap_write_failed": 2}


def test_tunnel_json_is_ip_j_l2tp_show() -> None:
    text = json_tunnels([TUN01, TUN02], stats=False)
    # One compact array and a newline, as iproute2's json_writer prints it.
    assert text.startswith('[{"tunnel_id":1000,"encap":"UDP","local":"1.1.1.2",')
    assert text.endswith("}]\n") and "\n" not in text[:-1]
    first, second = json.loads(text)
    assert first == {
        "tunnel_id": 1000,
        "encap": "UDP",
        "local": "1.1.1.2",
        "peer": "2.2.2.2",
        "peer_tunnel": 2000,
        "local_port": 6000,
        "peer_port": 5000,
        "checksum": False,
    }
    assert second["tunnel_id"] == 2000
    assert "stats" not in first and "drops" not in first


def test_session_json_keys() -> None:
    [plain] = json.loads(json_sessions([SESSION01], stats=False))
    assert plain == {
        "session_id": 3000,
        "tunnel_id": 1000,
        "peer_session_id": 4000,
        "peer_tunnel_id": 2000,
        "interface": "l2tpeth0",
        "mtu": 1488,
    }
    state = session_state(
        1,
        2,
        3,
        peer_tunnel_id=4,
        cookie=bytes.fromhex("0123456789abcdef"),
        peer_cookie=bytes.fromhex("deadbeef"),
        seq=SeqMode.SEND,
        reorder_timeout=100,
    )
    [full] = json.loads(json_sessions([state], stats=False))
    assert full == {
        "session_id": 2,
        "tunnel_id": 1,
        "peer_session_id": 3,
        "peer_tunnel_id": 4,
        "interface": "l2tpeth0",
        "cookie": "0123456789abcdef",
        "peer_cookie": "deadbeef",
        "reorder_timeout": 100,
        "send_seq": None,
        "mtu": 1488,
    }


@pytest.mark.parametrize(
    "states",
    [
        None,
        {"tunnel_id": 1},
        ["tunnel"],
        [{"tunnel_id": 1}],
        [{**TUN01, "local": "nowhere"}],
        [{**TUN01, "stats": {"rx_packets": "many"}}],
        [{**TUN01, "stats": [1, 2]}],
        [{**TUN01, "drops": 5}],
    ],
)
def test_malformed_tunnel_states(states: Any) -> None:
    with pytest.raises(ControlError, match="malformed"):
        format_tunnels(states, stats=True)
    with pytest.raises(ControlError, match="malformed"):
        json_tunnels(states, stats=True)


@pytest.mark.parametrize(
    "states",
    [
        [{**SESSION01, "peer_tunnel_id": None}],
        [{**SESSION01, "cookie": "xyz"}],
        [{k: v for k, v in SESSION01.items() if k != "session_id"}],
    ],
)
def test_malformed_session_states(states: Any) -> None:
    with pytest.raises(ControlError, match="malformed"):
        format_sessions(states, stats=False)
    with pytest.raises(ControlError, match="malformed"):
        json_sessions(states, stats=False)
