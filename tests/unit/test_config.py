"""Configuration validation: iproute2 defaults, and errors that name field and value."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2tpv3.config import (
    Encap,
    L2SpecType,
    SeqMode,
    SeqPolicy,
    SessionConfig,
    TunnelConfig,
)
from l2tpv3.errors import ConfigError, MissingArgument
from tests.unit.test_cli import one_error_line, run

T = {"tunnel_id": 1, "peer_tunnel_id": 2, "local": "10.0.0.1", "remote": "10.0.0.2",
     "udp_sport": 1701, "udp_dport": 1701}  # fmt: skip
S = {"tunnel_id": 1, "session_id": 3, "peer_session_id": 4}
A1, A2 = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")


def test_defaults_are_iproute2s() -> None:
    t = TunnelConfig.from_dict(T)
    assert t.encap is Encap.UDP
    assert (t.udp_csum, t.udp6_csum_tx, t.udp6_csum_rx) == (False, True, True)
    s = SessionConfig.from_dict(S)
    assert s.l2spec_type is L2SpecType.DEFAULT
    assert s.seq is SeqMode.NONE
    assert s.cookie == s.peer_cookie == b""
    assert s.reorder_timeout == 0
    assert s.seq_policy is SeqPolicy.KERNEL


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"tunnel_id": 0}, "tunnel_id", "0"),
        ({"peer_tunnel_id": 2**32}, "peer_tunnel_id", "4294967296"),
        ({"local": "1.2.3"}, "local", "1.2.3"),
        ({"remote": "fd00::1"}, "remote", "fd00::1"),
        ({"udp_sport": 70000}, "udp_sport", "70000"),
        ({"encap": "gre"}, "encap", "gre"),
        ({"udp_csum": "yes"}, "udp_csum", "yes"),
    ],
)
def test_tunnel_errors_name_field_and_value(changes: dict[str, object], field: str,
                                            value: str) -> None:  # fmt: skip
    with pytest.raises(ConfigError) as info:
        TunnelConfig(**{**T, **changes})  # type: ignore[arg-type]
    assert info.value.field == field
    assert field in str(info.value)
    assert f'"{value}"' in str(info.value)


@pytest.mark.parametrize(
    ("local", "remote", "field", "reason"),
    [
        ("0.0.0.0", "10.0.0.2", "local", "not a wildcard"),
        ("::", "fd00::2", "local", "not a wildcard"),
        ("224.0.0.5", "10.0.0.2", "local", "unicast"),
        ("255.255.255.255", "10.0.0.2", "local", "unicast"),
        ("10.0.0.1", "0.0.0.0", "remote", "not a wildcard"),
        ("fd00::1", "::", "remote", "not a wildcard"),
        ("10.0.0.1", "239.1.2.3", "remote", "unicast"),
        ("fd00::1", "ff02::1", "remote", "unicast"),
        ("10.0.0.1", "255.255.255.255", "remote", "unicast"),
    ],
)
def test_endpoints_must_be_unicast(local: str, remote: str, field: str, reason: str) -> None:
    for encap in ("udp", "ip"):
        with pytest.raises(ConfigError) as info:
            TunnelConfig(**{**T, "local": local, "remote": remote, "encap": encap})  # type: ignore[arg-type]
        assert info.value.field == field
        message = str(info.value)
        assert message.startswith(f"invalid {field} ")
        assert reason in message
        assert "\n" not in message


@pytest.mark.parametrize("addr", ["10.0.0.1", "fd00::1", "127.0.0.1"])
def test_a_tunnel_to_itself_is_refused(addr: str) -> None:
    same = {**T, "local": addr, "remote": addr}
    with pytest.raises(ConfigError, match="udp_dport must differ from udp_sport") as info:
        TunnelConfig(**same)  # type: ignore[arg-type]
    assert info.value.field == "remote"
    with pytest.raises(ConfigError, match="not be the local address with encap ip"):
        TunnelConfig(**{**same, "encap": "ip"})  # type: ignore[arg-type]
    # Two UDP ports on one address are two endpoints (QEMU's -netdev l2tpv3 on the host).
    assert TunnelConfig(**{**same, "udp_dport": 1702}).remote == ipaddress.ip_address(addr)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("words", "line"),
    [
        ("local any remote 10.9.0.2 encap ip",
         'Error: invalid local "0.0.0.0": must be an address of this host, not a wildcard\n'),
        ("local 10.9.0.1 remote 224.0.0.1 encap ip",
         'Error: invalid remote "224.0.0.1": must be a unicast address\n'),
        ("local 10.9.0.1 remote 10.9.0.1 udp_sport 5000 udp_dport 5000",
         'Error: invalid remote "10.9.0.1": is the local address: udp_dport must differ from '
         "udp_sport\n"),
    ],
)  # fmt: skip
def test_client_refuses_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, words: str, line: str
) -> None:
    argv = ["-S", str(tmp_path / "none.sock"), "add", "tunnel", "tid", "5", "ptid", "5"]
    status, out, err = run(capsys, *argv, *words.split())
    assert (status, out) == (2, "")
    assert one_error_line(err) == line


def test_udp_ports_are_required_for_udp_only() -> None:
    with pytest.raises(MissingArgument, match="udp_sport"):
        TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local=A1, remote=A2)
    t = TunnelConfig(tunnel_id=1, peer_tunnel_id=1, local=A1, remote=A2, encap=Encap.IP)
    assert t.udp_sport is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"session_id": -1}, "session_id"),
        ({"cookie": "1234"}, "cookie"),
        ({"peer_cookie": "zzzzzzzz"}, "peer_cookie"),
        ({"name": "x" * 16}, "name"),
        ({"name": "a/b"}, "name"),
        ({"l2spec_type": "cisco"}, "l2spec_type"),
        ({"seq": "always"}, "seq"),
        ({"reorder_timeout": -5}, "reorder_timeout"),
        ({"seq": "both", "l2spec_type": "none"}, "seq"),
    ],
)
def test_session_errors_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        SessionConfig(**{**S, **changes})  # type: ignore[arg-type]
    assert info.value.field == field
    assert str(info.value).startswith(f"invalid {field} ")


@given(
    sid=st.integers(1, 2**32 - 1),
    cookie=st.sampled_from(["", "deadbeef", "0011223344556677"]),
    l2spec=st.sampled_from(list(L2SpecType)),
    seq=st.sampled_from(list(SeqMode)),
    name=st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9]{0,14}", fullmatch=True)),
)
def test_session_dict_round_trip(sid: int, cookie: str, l2spec: L2SpecType, seq: SeqMode,
                                 name: str | None) -> None:  # fmt: skip
    if l2spec is L2SpecType.NONE:
        seq = SeqMode.NONE
    # The cookie as iproute2's HEXSTR: the record reads it (from_dict, as from a file).
    s = SessionConfig.from_dict({"tunnel_id": 1, "session_id": sid, "peer_session_id": sid,
                                 "cookie": cookie, "peer_cookie": cookie,
                                 "l2spec_type": l2spec, "seq": seq, "name": name})  # fmt: skip
    assert SessionConfig.from_dict(s.to_dict()) == s


def test_tunnel_dict_round_trip_v6() -> None:
    t = TunnelConfig(**{**T, "local": "fd00::1", "remote": "fd00::2", "udp6_csum_rx": False})  # type: ignore[arg-type]
    assert TunnelConfig.from_dict(t.to_dict()) == t
    assert t.family == 6


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        SessionConfig.from_dict({**S, "colour": "blue"})
